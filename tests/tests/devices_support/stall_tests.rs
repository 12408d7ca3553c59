//! A device that stops reading holds up only itself: here one on a real pseudo-terminal,
//! played by this test, floods heartbeat requests and reads none of the answers, until its
//! line is full and the broker's write to it waits out `--write-stall`. Meanwhile the
//! broker serves every other device and every call: an emergency stop reaches an emulated
//! device at once, not when the stall is over.

use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use pitcrew_e2e::device::{pty, serve};
use pitcrew_e2e::Namespace;
use pitcrew_sdp::{FrameDecoder, Message};

use crate::devices_support::{uid, Broker, Emu, PtyDir, PATIENCE};

/// How long the broker waits on the full line before it gives the device up: long enough
/// that a broker that waited in its event loop could not pass the bounds below.
const STALL: Duration = Duration::from_secs(2);
/// The flooding device's master side refused writes this long: the broker stopped
/// reading it, so its session is waiting on the full line.
const STALLED_AFTER: Duration = Duration::from_millis(300);
/// Generous bounds (the requirement is 50 ms) that a stalled event loop would miss by
/// most of [`STALL`].
const ESTOP_BOUND: Duration = Duration::from_millis(500);
const CALL_BOUND: Duration = Duration::from_millis(500);
/// Generous for an answer that takes milliseconds, below the 250 ms a stalled device's
/// confirmation was waited for.
const ANSWER_BOUND: Duration = Duration::from_millis(200);

/// A broker with a healthy emulated koala-bear, and a device on a real pty (played here)
/// that floods heartbeat requests and reads nothing, returned once the flood is refused:
/// the broker's write to its line waits for room.
struct Stalled {
    broker: Broker,
    emu: Emu,
    healthy: String,
    flooder: String,
    /// When the flood's writes began to be refused.
    stall_began: Instant,
    master: std::fs::File,
    _slave: std::os::fd::OwnedFd,
    _dir: PtyDir,
    ns: Namespace,
}

async fn stalled(tag: &str) -> Stalled {
    let ns = Namespace::new(tag);
    let dir = PtyDir::new(&ns, tag);
    let (mut master, _slave) = pty(std::path::Path::new(&dir.link(0))).expect("a pty");
    let glob = dir.glob();
    let stall = format!("{}ms", STALL.as_millis());
    let broker = Broker::start(
        &ns,
        &[
            "--serial-glob",
            &glob,
            "--write-stall",
            &stall,
            "--liveness-timeout",
            "5s",
        ],
    )
    .await;
    let healthy = uid(13, 602);
    let emu = Emu::start(&ns, broker.port, &[&format!("koala-bear:{healthy}")], &[]);
    broker.wait_valid(&healthy, true).await;

    // The flooding device identifies itself and is attached (its SUB_REQ arrives).
    let flooder = uid(12, 601);
    let identified = {
        let uid = flooder.parse().expect("a uid");
        let mut master = master.try_clone().expect("the master again");
        tokio::task::spawn_blocking(move || {
            serve(&mut master, &mut FrameDecoder::new(), uid, |m| {
                matches!(m, Message::SubReq { .. })
            })
        })
    };
    tokio::time::timeout(PATIENCE, identified)
        .await
        .expect("the broker attaches the device")
        .unwrap()
        .expect("the device is served");
    broker.wait_valid(&flooder, true).await;

    // Heartbeat requests, and never a read: the answers fill the line, the broker's write
    // to it waits, and it stops reading this device, so the flood's writes stop going in.
    set_nonblocking(&master);
    let mut frame = Vec::new();
    let mut refused_since: Option<Instant> = None;
    let deadline = Instant::now() + PATIENCE;
    for id in (0..=u8::MAX).cycle() {
        if refused_since.is_some_and(|t| t.elapsed() >= STALLED_AFTER) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the broker read the flood on and on"
        );
        frame.clear();
        Message::HbReq(id).encode_frame(&mut frame).unwrap();
        match master.write_all(&frame) {
            Ok(()) => refused_since = None,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                refused_since.get_or_insert_with(Instant::now);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => panic!("writing the flood: {e}"),
        }
    }
    let stall_began = refused_since.expect("the flood was refused");
    Stalled {
        broker,
        emu,
        healthy,
        flooder,
        stall_began,
        master,
        _slave,
        _dir: dir,
        ns,
    }
}

#[tokio::test]
async fn a_device_that_floods_without_reading_holds_up_only_itself() {
    let Stalled {
        broker,
        emu,
        healthy,
        flooder,
        stall_began,
        master,
        ..
    } = stalled("stall").await;

    // The broker still answers calls...
    let asked = Instant::now();
    let list = broker.list().await;
    let took = asked.elapsed();
    eprintln!("list_devices during the stall: {took:?}");
    assert!(
        took < CALL_BOUND,
        "list_devices took {took:?} during a stall"
    );
    assert!(list.as_array().is_some_and(|l| l.len() == 2), "{list}");
    // The flooder is still attached: its session waits on its line (rather than the flood
    // having been refused for another reason, such as a starved machine).
    let attached = list
        .as_array()
        .into_iter()
        .flatten()
        .any(|d| d["uid"] == flooder.as_str() && d["valid"] == true);
    assert!(attached, "the flooding device is gone already: {list}");

    // ...and an emergency stop reaches the other device at once, and is answered without
    // waiting for the stalled device to confirm (it waited the 250 ms confirmation
    // deadline before).
    let asked = Instant::now();
    let answer = broker.call("estop", vec![]).await;
    let answered = asked.elapsed();
    eprintln!("estop answered in {answered:?}: {answer}");
    assert!(
        answered < ANSWER_BOUND,
        "the estop answer took {answered:?}"
    );
    emu.wait_event(&healthy, "disable").await;
    let seen = emu
        .first_seen(|e| e["uid"] == healthy.as_str() && e["event"] == "disable")
        .expect("seen");
    let took = seen.saturating_duration_since(asked);
    eprintln!("DEV_DISABLE at the healthy device {took:?} after the estop call");
    assert!(
        took < ESTOP_BOUND,
        "the healthy device's DEV_DISABLE took {took:?}"
    );
    assert!(
        stall_began.elapsed() < STALL,
        "the stall was over before the checks: they proved nothing"
    );

    // The stalled device's line fails once it waited out the stall, not before; its
    // session ends.
    broker.wait_valid(&flooder, false).await;
    let failed_after = stall_began.elapsed();
    eprintln!("the flooder's line failed {failed_after:?} after its flood was refused");
    assert!(
        failed_after >= STALL / 2,
        "the line failed {failed_after:?} after the flood was refused: it did not wait out the stall"
    );
    drop(master);
}

/// Makes the flood's writes return `WouldBlock` instead of hanging the test once the
/// broker stops reading.
fn set_nonblocking(file: &std::fs::File) {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on an open descriptor, reading then setting its status flags.
    let set = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
    };
    assert!(
        set,
        "O_NONBLOCK on the pty: {}",
        std::io::Error::last_os_error()
    );
}

#[tokio::test]
async fn a_broker_stopped_while_a_line_is_stalled_stops_in_time_and_leaves_no_shared_memory() {
    let Stalled {
        mut broker,
        emu,
        ns,
        master,
        ..
    } = stalled("stallstop").await;
    let asked = Instant::now();
    let status = broker
        .devices
        .signal_and_wait(libc::SIGTERM, Duration::from_secs(10));
    let took = asked.elapsed();
    eprintln!("the broker stopped {took:?} after SIGTERM, during the stall: {status:?}");
    assert!(
        status.is_some_and(|s| s.success()),
        "the broker did not stop cleanly: {status:?}"
    );
    // It waits out the stall at most (the supervisor allows 3 s before SIGKILL, which
    // would leave the segments behind).
    assert!(
        took < STALL + Duration::from_millis(800),
        "stopping took {took:?}"
    );
    let left = crate::devices_support::broker_segments_left(&ns.name);
    assert!(left.is_empty(), "segments left: {left:?}");
    drop((emu, master));
}
