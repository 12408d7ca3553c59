//! The host session in-process over a Unix socket pair: what a device sees on the
//! wire for discovery, heartbeats, bad frames, unexpected types and DEV_DATA.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use pitcrew_catalog::{Catalog, Uid};
use pitcrew_devices::estop::{self, Latch};
use pitcrew_devices::registry::Registry;
use pitcrew_devices::robot::Gate;
use pitcrew_devices::session::{self, SessionContext, SessionEnd, Timing};
use pitcrew_sdp::{ErrorCode, FrameDecoder, Message, ParamData, ParamWidths};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

/// A session context with a disabled robot (must be called inside a tokio runtime).
fn ctx(ns: &str, timing: Timing) -> SessionContext {
    let registry = Arc::new(Registry::new(ns, Catalog::embedded()));
    let latch = Arc::new(Latch::new());
    let lease = Duration::from_millis(100);
    let tap = pitcrew_devices::tap::BrokerTap::disabled();
    let gate = Gate::start(
        ns,
        lease,
        lease,
        Arc::clone(&latch),
        Arc::clone(&registry),
        tap.clone(),
    )
    .unwrap();
    SessionContext {
        registry,
        timing,
        shutdown: CancellationToken::new(),
        decode_errors: Arc::new(AtomicU64::new(0)),
        latch,
        realtime: None,
        gate,
        output_lease: lease,
        tap,
    }
}

fn ns(tag: &str) -> String {
    format!("u{}-{tag}", std::process::id())
}

/// Reads frames until one satisfies `pred` (skipping heartbeats and the like).
async fn expect(dev: &mut UnixStream, what: &str, pred: impl Fn(&Message<'_>) -> bool) {
    let mut decoder = FrameDecoder::new();
    let mut buf = [0u8; 256];
    let widths = ParamWidths::new();
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let n = dev.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed while waiting for {what}");
            for p in decoder.decode(&buf[..n]) {
                let p = p.unwrap();
                if let Ok(m) = Message::from_packet(&p, &widths) {
                    if pred(&m) {
                        return;
                    }
                }
            }
        }
    })
    .await;
    assert!(found.is_ok(), "no {what}");
}

async fn send(dev: &mut UnixStream, msg: Message<'_>) {
    let mut out = Vec::new();
    msg.encode_frame(&mut out).unwrap();
    dev.write_all(&out).await.unwrap();
}

#[tokio::test]
async fn a_frame_torn_by_the_previous_session_does_not_swallow_the_first_ping() {
    let ns = ns("torn");
    let ctx = ctx(&ns, Timing::default());
    let (host_end, mut dev) = UnixStream::pair().expect("a socket pair");
    let task = tokio::spawn(session::run(host_end, "test".into(), ctx.clone()));
    // The device's decoder still holds the start of a frame the previous broker was killed
    // in the middle of writing (half of a DEV_WRITE).
    let mut decoder = FrameDecoder::new();
    assert!(decoder.decode(&[0x04, 0x14, 0x03, 0x02]).next().is_none());
    // The torn frame ends as a bad frame of its own; the PING after it arrives whole,
    // well within the ping interval (1 s) after which a lost one would be repeated.
    let mut buf = [0u8; 256];
    let widths = ParamWidths::new();
    let first_ping = async {
        loop {
            let n = dev.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed");
            let frames: Vec<_> = decoder.decode(&buf[..n]).collect();
            if frames
                .into_iter()
                .filter_map(Result::ok)
                .any(|p| Message::from_packet(&p, &widths).ok() == Some(Message::Ping))
            {
                return true;
            }
        }
    };
    let ping = tokio::time::timeout(Duration::from_millis(500), first_ping)
        .await
        .is_ok();
    assert!(ping, "the first PING was lost to the torn frame");
    ctx.shutdown.cancel();
    let _ = task.await;
}

#[tokio::test]
async fn discovery_then_errors_then_data_reach_the_buffer() {
    let ns = ns("flow");
    let ctx = ctx(&ns, Timing::default());
    let registry = Arc::clone(&ctx.registry);
    let (host_end, mut dev) = UnixStream::pair().expect("a socket pair");
    let task = tokio::spawn(session::run(host_end, "test".into(), ctx.clone()));

    expect(&mut dev, "PING", |m| *m == Message::Ping).await;
    send(&mut dev, Message::HbReq(9)).await;
    expect(&mut dev, "HB_RES during discovery", |m| {
        *m == Message::HbRes(9)
    })
    .await;
    let uid = Uid::new(0, 1, 77);
    send(
        &mut dev,
        Message::SubRes {
            params: 0,
            interval_ms: 0,
            uid,
        },
    )
    .await;
    expect(&mut dev, "default SUB_REQ", |m| {
        *m == Message::SubReq {
            params: 0b111,
            interval_ms: 40,
        }
    })
    .await;

    send(&mut dev, Message::Ping).await;
    expect(&mut dev, "INVALID_TYPE", |m| {
        *m == Message::Error(ErrorCode::InvalidType)
    })
    .await;
    dev.write_all(&[0x04, 0x15, 0x05, 0x07, 0x01, 0x04, 0x01, 0x01, 0x18, 0x00])
        .await
        .unwrap();
    expect(&mut dev, "BAD_CHECKSUM", |m| {
        *m == Message::Error(ErrorCode::BadChecksum)
    })
    .await;
    dev.write_all(&[0x55; 300]).await.unwrap();
    dev.write_all(&[0x00]).await.unwrap();
    expect(&mut dev, "BUFFER_OVERFLOW", |m| {
        *m == Message::Error(ErrorCode::BufferOverflow)
    })
    .await;

    let data = ParamData::new()
        .with(1, &[1])
        .unwrap()
        .with(2, &[1])
        .unwrap();
    send(&mut dev, Message::DevData(data)).await;
    let owner = registry.owner(uid).expect("attached");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while owner.get::<bool>("switch2").ok() != Some(true) {
        assert!(
            std::time::Instant::now() < deadline,
            "DEV_DATA never reached the buffer"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(owner.get::<bool>("switch1").unwrap());
    assert!(!owner.get::<bool>("switch0").unwrap());
    let list = registry.list();
    assert_eq!(
        list[0]
            .counters
            .invalid_types
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    ctx.shutdown.cancel();
    expect(&mut dev, "DEV_DISABLE on shutdown", |m| {
        *m == Message::DevDisable
    })
    .await;
    assert_eq!(task.await.unwrap(), SessionEnd::Shutdown);
    assert!(!owner.is_valid());
}

#[tokio::test]
async fn a_device_that_stops_talking_is_lost() {
    let ns = ns("lost");
    let timing = Timing {
        liveness_timeout: Duration::from_millis(300),
        ..Timing::default()
    };
    let ctx = ctx(&ns, timing);
    let (host_end, mut dev) = UnixStream::pair().expect("a socket pair");
    let task = tokio::spawn(session::run(host_end, "test".into(), ctx.clone()));
    expect(&mut dev, "PING", |m| *m == Message::Ping).await;
    let uid = Uid::new(3, 0, 5);
    send(
        &mut dev,
        Message::SubRes {
            params: 0,
            interval_ms: 0,
            uid,
        },
    )
    .await;
    let end = tokio::time::timeout(Duration::from_secs(10), task).await;
    assert_eq!(end.unwrap().unwrap(), SessionEnd::Lost);
    assert!(!ctx.registry.owner(uid).unwrap().is_valid());
}

#[tokio::test]
async fn discovery_gives_up() {
    let ns = ns("giveup");
    let timing = Timing {
        ping_interval: Duration::from_millis(50),
        discovery_timeout: Duration::from_millis(300),
        ..Timing::default()
    };
    let (host_end, _dev) = UnixStream::pair().expect("a socket pair");
    let end = session::run(host_end, "test".into(), ctx(&ns, timing)).await;
    assert_eq!(end, SessionEnd::DiscoveryTimeout);
}

/// Reads whatever frames arrive within `window`, decoded with `widths`.
async fn drain(dev: &mut UnixStream, widths: &ParamWidths, window: Duration) -> Vec<Vec<u8>> {
    let mut decoder = FrameDecoder::new();
    let mut buf = [0u8; 512];
    let mut packets = Vec::new();
    let _ = tokio::time::timeout(window, async {
        loop {
            let n = dev.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            for p in decoder.decode(&buf[..n]) {
                let p = p.unwrap();
                // Keep the raw packet; the test decodes what it looks for.
                let _ = Message::from_packet(&p, widths).unwrap();
                packets.push(p.as_bytes().to_vec());
            }
        }
    })
    .await;
    packets
}

#[tokio::test]
async fn an_estop_disables_sends_safe_values_and_discards_later_writes() {
    let ns = ns("estop");
    let ctx = ctx(&ns, Timing::default());
    let registry = Arc::clone(&ctx.registry);
    let (host_end, mut dev) = UnixStream::pair().expect("a socket pair");
    let task = tokio::spawn(session::run(host_end, "test".into(), ctx.clone()));
    expect(&mut dev, "PING", |m| *m == Message::Ping).await;
    let uid = Uid::new(12, 0, 42);
    send(
        &mut dev,
        Message::SubRes {
            params: 0,
            interval_ms: 0,
            uid,
        },
    )
    .await;
    expect(&mut dev, "default SUB_REQ", |m| {
        matches!(m, Message::SubReq { .. })
    })
    .await;

    let done = estop::run(&registry, &ctx.latch).await;
    assert_eq!(done, [uid.to_string()]);
    assert!(ctx.latch.is_engaged());
    let ty = Arc::clone(Catalog::embedded().get("polar-bear").unwrap());
    let widths = ty.write_widths();
    // Confirmed means on the line: both frames are readable now.
    let packets = drain(&mut dev, &widths, Duration::from_millis(200)).await;
    let kinds: Vec<u8> = packets
        .iter()
        .map(|p| p[0])
        .filter(|&t| t != 0x17)
        .collect();
    assert_eq!(
        kinds,
        [0x16, 0x14],
        "DEV_DISABLE then DEV_WRITE: {packets:02x?}"
    );
    // DEV_WRITE(duty_cycle = 0.0), encoded from the catalog's safe value.
    let write = packets.iter().find(|p| p[0] == 0x14).unwrap();
    assert_eq!(write, &[0x14, 0x06, 0x01, 0x00, 0, 0, 0, 0, 0x13]);

    // A consumer write after the estop is counted and dropped, never sent.
    let owner = registry.owner(uid).unwrap();
    owner
        .write_value("duty_cycle", pitcrew_catalog::Value::F32(0.5))
        .unwrap();
    let counters = Arc::clone(&registry.list()[0].counters);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while counters
        .writes_discarded
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        assert!(std::time::Instant::now() < deadline, "write never taken");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let after = drain(&mut dev, &widths, Duration::from_millis(100)).await;
    assert!(after.iter().all(|p| p[0] != 0x14), "{after:02x?}");
    assert_eq!(ctx.latch.discarded(), 1);

    ctx.shutdown.cancel();
    assert_eq!(task.await.unwrap(), SessionEnd::Shutdown);
}
