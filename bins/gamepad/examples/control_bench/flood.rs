//! `control_flood_valid_loss_pct` and `control_flood_false_trips` (the bench's module doc):
//! a keyed receiver, a driver station that drives it, and one socket that floods the
//! control port with junk.

use std::collections::HashSet;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use pitcrew::control::auth::Sealer;
use pitcrew::control::{self, ControlMessage, Meta, PadInput, StationRequest};
use pitcrew::gamepad::{Gamepad, PadState};
use pitcrew::key::{Key, KeyKind};
use pitcrew::robot::Mode;

use super::{FLOOD_SECONDS, STATION_PERIOD};

/// Datagrams per `sendmmsg(2)`.
const BURST: usize = 64;
/// Distinct junk datagrams, sent in turn.
const JUNK: usize = 4 * BURST;
/// The receiver's control timeout (the default): a longer gap between applied datagrams
/// is a link a broker would call lost.
const CONTROL_TIMEOUT: Duration = Duration::from_millis(100);

/// Removes the bench's directory (its key file) when dropped.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the station sent and what the receiver applied of it (answered with the state).
#[derive(Default)]
struct StationLog {
    sent: Vec<(u64, Instant)>,
    applied: HashSet<u64>,
}

pub fn run(namespace: &str) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(namespace);
    std::fs::create_dir_all(&dir).context("cannot create the bench's directory")?;
    let _remove = RemoveDir(dir.clone());
    let key = Key::generate(KeyKind::Team)?;
    let key_file = dir.join("team.key");
    key.write_new(&key_file)?;
    let mut options = vec!["--key-file".to_owned(), key_file.display().to_string()];
    // As deployed (scripts/supervise), unless PAD_BENCH_FLOOD_NORMAL=1.
    if std::env::var_os("PAD_BENCH_FLOOD_NORMAL").is_none() {
        options.extend(["--realtime".to_owned(), "10".to_owned()]);
    }
    let (_receiver, addr) = super::start_with(namespace, &options)?;
    let stop = Arc::new(AtomicBool::new(false));
    let station = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || station(addr, &key, &stop))
    };
    let pad = wait_for_gamepad(namespace)?;
    let watching = Arc::new(AtomicBool::new(true));
    let monitor = {
        let watching = Arc::clone(&watching);
        std::thread::spawn(move || count_trips(&pad, &watching))
    };
    let rate = std::env::var("PAD_BENCH_FLOOD_RATE")
        .ok()
        .and_then(|r| r.parse::<f64>().ok());
    // PAD_BENCH_FLOOD_THREADS senders (2 by default: a machine with two cores), each with
    // its own socket.
    let threads = std::env::var("PAD_BENCH_FLOOD_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(2)
        .clamp(1, 8);
    let window = Instant::now();
    let floods: Vec<_> = (0..threads)
        .map(|_| {
            let rate = rate.map(|r| r / threads as f64);
            std::thread::spawn(move || flood(addr, Duration::from_secs(FLOOD_SECONDS), rate))
        })
        .collect();
    let (mut junk_sent, mut took) = (0, Duration::ZERO);
    for f in floods {
        let (sent, t) = f
            .join()
            .map_err(|_| anyhow::anyhow!("a flood thread panicked"))??;
        junk_sent += sent;
        took = took.max(t);
    }
    let window = (window, Instant::now());
    // Answers to the last datagrams of the window.
    std::thread::sleep(Duration::from_millis(300));
    watching.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let trips = monitor
        .join()
        .map_err(|_| anyhow::anyhow!("the monitor panicked"))?;
    let log = station
        .join()
        .map_err(|_| anyhow::anyhow!("the station panicked"))??;
    let in_window: Vec<&(u64, Instant)> = log
        .sent
        .iter()
        .filter(|(_, at)| *at >= window.0 && *at <= window.1)
        .collect();
    let lost = in_window
        .iter()
        .filter(|(counter, _)| !log.applied.contains(counter))
        .count();
    let mut gaps = 0;
    let mut max_gap = Duration::ZERO;
    let mut last = window.0;
    for (counter, at) in &in_window {
        if log.applied.contains(counter) {
            let gap = at.saturating_duration_since(last);
            max_gap = max_gap.max(gap);
            if gap > CONTROL_TIMEOUT {
                gaps += 1;
            }
            last = *at;
        }
    }
    let flood_rate = junk_sent as f64 / took.as_secs_f64();
    let valid = in_window.len();
    if valid == 0 {
        bail!("the station sent nothing during the flood");
    }
    println!(
        "{{\"bench\":\"control_flood_valid_loss_pct\",\"loss_pct\":{:.2},\"valid_sent\":{valid},\"valid_lost\":{lost},\"flood_rate\":{flood_rate:.0},\"flood_sent\":{junk_sent},\"seconds\":{FLOOD_SECONDS}}}",
        lost as f64 * 100.0 / valid as f64,
    );
    println!(
        "{{\"bench\":\"control_flood_false_trips\",\"trips\":{trips},\"link_gaps\":{gaps},\"max_gap_ms\":{:.1},\"flood_rate\":{flood_rate:.0}}}",
        max_gap.as_secs_f64() * 1e3
    );
    Ok(())
}

/// Waits until the station's datagrams are applied (the handshake done, gamepad 0 valid).
fn wait_for_gamepad(namespace: &str) -> anyhow::Result<Gamepad> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(pad) = Gamepad::open(namespace, 0) {
            if pad.buffer().is_valid() {
                return Ok(pad);
            }
        }
        if Instant::now() > deadline {
            bail!("the station's datagrams were never applied");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Counts the watchdog's trips (gamepad 0 marked disconnected) while `watching`.
fn count_trips(pad: &Gamepad, watching: &AtomicBool) -> u64 {
    let mut trips = 0;
    let mut valid = true;
    while watching.load(Ordering::Relaxed) {
        let now = pad.buffer().is_valid();
        if valid && !now {
            trips += 1;
        }
        valid = now;
        std::thread::sleep(Duration::from_micros(500));
    }
    trips
}

/// A sealed driver station, at SCHED_FIFO 20 (another machine: the bench's load must not
/// slow it), sending every [`STATION_PERIOD`] until `stop`.
fn station(to: SocketAddr, key: &Key, stop: &AtomicBool) -> anyhow::Result<StationLog> {
    pitcrew::realtime::raise_priority("bench-station", 20);
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_nonblocking(true)?;
    let mut sealer = Sealer::new(key)?;
    let mut log = StationLog::default();
    let mut answer = [0u8; 1500];
    let request = StationRequest {
        mode: Mode::Teleop,
        enable: false,
        enable_id: 0,
        estop: false,
    };
    let mut next = Instant::now();
    for seq in 1u64.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let ly = if seq % 2 == 0 { 0.5 } else { -0.5 };
        let datagram = station_datagram(seq, ly, "bench-driver", Some(request));
        let sealed = sealer.seal(&datagram);
        let _ = socket.send_to(&sealed, to);
        log.sent.push((seq, Instant::now()));
        next += STATION_PERIOD;
        loop {
            while let Ok(n) = socket.recv(&mut answer) {
                if let Some(a) = answer.get(..n).and_then(|b| sealer.open_answer(b)) {
                    if !a.payload.is_empty() {
                        log.applied.insert(a.counter);
                    }
                }
            }
            let now = Instant::now();
            if now >= next {
                break;
            }
            std::thread::sleep((next - now).min(Duration::from_millis(1)));
        }
    }
    Ok(log)
}

fn station_datagram(seq: u64, ly: f32, source: &str, ds: Option<StationRequest>) -> Vec<u8> {
    control::encode(&ControlMessage {
        gamepads: vec![(
            0,
            PadInput::from_state(PadState {
                ly,
                ..PadState::NEUTRAL
            }),
        )],
        meta: Some(Meta {
            seq,
            sent_us: 0,
            source: source.to_owned(),
            station: ds,
        }),
    })
}

/// The junk: random bytes of many lengths, unsealed control datagrams claiming the
/// driver's name (with the largest `seq`), and datagrams sealed with another key, in turn.
fn junk() -> anyhow::Result<Vec<Vec<u8>>> {
    let stranger = Key::generate(KeyKind::Team)?;
    let mut forger = Sealer::new(&stranger)?;
    let unsealed = station_datagram(u64::MAX, 1.0, "bench-driver", None);
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let mut random = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    Ok((0..JUNK)
        .map(|i| match i % 3 {
            0 => {
                let len = 16 + (random() % 600) as usize;
                (0..len).map(|_| random() as u8).collect()
            }
            1 => unsealed.clone(),
            _ => forger.seal(&unsealed),
        })
        .collect())
}

/// Sends junk to `to` from one socket for `length`, as fast as `sendmmsg(2)` goes (or at
/// `rate` per second); returns the datagrams sent and the time taken.
fn flood(to: SocketAddr, length: Duration, rate: Option<f64>) -> anyhow::Result<(u64, Duration)> {
    let SocketAddr::V4(to) = to else {
        bail!("the flood sends to IPv4 only");
    };
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let junk = junk()?;
    let mut addr = sockaddr(to);
    let mut iovecs: Vec<libc::iovec> = junk
        .iter()
        .map(|d| libc::iovec {
            iov_base: d.as_ptr() as *mut libc::c_void,
            iov_len: d.len(),
        })
        .collect();
    // SAFETY: an all-zero mmsghdr is a valid value (null pointers, zero lengths).
    let mut headers: Vec<libc::mmsghdr> =
        (0..JUNK).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (h, iov) in headers.iter_mut().zip(iovecs.iter_mut()) {
        h.msg_hdr.msg_name = (&mut addr as *mut libc::sockaddr_in).cast();
        h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
    }
    let start = Instant::now();
    let mut sent = 0u64;
    let mut at = 0usize;
    while start.elapsed() < length {
        let mut burst = BURST;
        if let Some(rate) = rate {
            let due = (start.elapsed().as_secs_f64() * rate) as u64;
            if due <= sent {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            burst = burst.min((due - sent) as usize);
        }
        // SAFETY: headers[at..at + burst] are valid mmsghdrs pointing at live iovecs, junk
        // buffers and `addr`, none of which moves during the call.
        let n = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr().add(at),
                burst as libc::c_uint,
                0,
            )
        };
        if n > 0 {
            sent += n as u64;
        }
        at = (at + BURST) % JUNK;
    }
    Ok((sent, start.elapsed()))
}

fn sockaddr(to: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: to.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*to.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}
