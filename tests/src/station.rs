//! A driver station for tests: [`ControlSender`] streams control datagrams like
//! `pitcrew-gamepad send` (unsealed, or sealed with a key), the datagram builders the
//! tests and benchmarks share, and [`JunkFlood`], another machine flooding the control
//! port.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pitcrew::control::{self, ControlMessage, Meta, PadInput, StationRequest};
use pitcrew::gamepad::PadState;
use pitcrew::robot::Mode;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sending {
    to: SocketAddr,
    sticks: (f32, f32, u32),
    request: StationRequest,
    paused: bool,
}

/// A driver station for tests: streams control datagrams for gamepad 0 to a receiver at
/// 50 Hz (and at once on a change), with the sticks and the station's requests (mode,
/// enable, estop) set by the test; [`ControlSender::pause`] goes silent like a lost link.
pub struct ControlSender {
    sending: Arc<Mutex<Sending>>,
    sent: Arc<std::sync::atomic::AtomicU64>,
    last: Arc<Mutex<Option<Instant>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The SCHED_FIFO priority of a station's thread (the suite runs at 10).
const STATION_PRIORITY: u8 = 20;

impl ControlSender {
    /// Starts sending neutral input to `to`, as station `source`, not asking for enable.
    pub fn start(to: SocketAddr) -> ControlSender {
        ControlSender::named(to, "test-station")
    }

    /// As [`ControlSender::start`] with a given source name.
    pub fn named(to: SocketAddr, source: &str) -> ControlSender {
        ControlSender::spawn(to, source, None)
    }

    /// As [`ControlSender::named`], sealing every datagram with `key` (a new session) and
    /// taking the robot's challenges from its answers, as `pitcrew-gamepad send --key-file`
    /// does.
    pub fn sealed(to: SocketAddr, source: &str, key: &pitcrew::key::Key) -> ControlSender {
        ControlSender::spawn(to, source, Some(key.clone()))
    }

    /// Every station sends from a SCHED_FIFO thread above the suite's own real-time threads
    /// (best effort: without CAP_SYS_NICE it warns and sends as a normal thread). A driver's
    /// laptop is another machine, which the test machine's load must not slow down: a
    /// 100 ms stall of this thread would be a link loss the test did not ask for.
    fn spawn(to: SocketAddr, source: &str, key: Option<pitcrew::key::Key>) -> ControlSender {
        let sending = Arc::new(Mutex::new(Sending {
            to,
            sticks: (0.0, 0.0, 0),
            request: StationRequest {
                mode: Mode::Teleop,
                enable: false,
                enable_id: 0,
                estop: false,
            },
            paused: false,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let sent_count = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let last = Arc::new(Mutex::new(None));
        let last_sent = Arc::clone(&last);
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
        socket.set_nonblocking(true).expect("a non-blocking socket");
        let mut sealer = key.map(|k| pitcrew::control::auth::Sealer::new(&k).expect("a session"));
        let (shared, stopping, counter) = (
            Arc::clone(&sending),
            Arc::clone(&stop),
            Arc::clone(&sent_count),
        );
        let source = source.to_owned();
        let thread = std::thread::spawn(move || {
            pitcrew::realtime::raise_priority("test-station", STATION_PRIORITY);
            let started = Instant::now();
            let mut seq = 0u64;
            let mut sent: Option<(Sending, Instant)> = None;
            let mut answer = [0u8; 1500];
            while !stopping.load(Ordering::Relaxed) {
                while let Ok(n) = socket.recv(&mut answer) {
                    if let Some(s) = sealer.as_mut() {
                        s.open_answer(&answer[..n]);
                    }
                }
                let now = *shared.lock().unwrap_or_else(|e| e.into_inner());
                // 50 Hz, and at once (within 2 ms) on a change.
                let due = !now.paused
                    && sent.is_none_or(|(value, at)| {
                        value != now || at.elapsed() >= Duration::from_millis(20)
                    });
                if due {
                    seq += 1;
                    let sent_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                    let mut bytes =
                        station_datagram(now.sticks, seq, sent_us, &source, Some(now.request));
                    if let Some(s) = sealer.as_mut() {
                        bytes = s.seal(&bytes);
                    }
                    let _ = socket.send_to(&bytes, now.to);
                    counter.fetch_add(1, Ordering::Relaxed);
                    *last_sent.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                    sent = Some((now, Instant::now()));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        ControlSender {
            sending,
            sent: sent_count,
            last,
            stop,
            thread: Some(thread),
        }
    }

    fn update(&self, f: impl FnOnce(&mut Sending)) {
        f(&mut self.sending.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Sets the left and right stick's y axes (in [-1, 1]) and the buttons.
    pub fn set(&self, left_y: f32, right_y: f32, buttons: u32) {
        self.update(|s| s.sticks = (left_y, right_y, buttons));
    }

    /// Sends to another receiver from now on (the same station: same name, same requests).
    pub fn retarget(&self, to: SocketAddr) {
        self.update(|s| s.to = to);
    }

    /// Presses enable in `mode` (a new enable request).
    pub fn enable(&self, mode: Mode) {
        self.update(|s| {
            s.request.mode = mode;
            s.request.enable = true;
            s.request.enable_id += 1;
        });
    }

    /// Asks for the robot to be disabled.
    pub fn disable(&self) {
        self.update(|s| s.request.enable = false);
    }

    /// Presses the emergency stop.
    pub fn estop(&self) {
        self.update(|s| s.request.estop = true);
    }

    /// Stops sending (a lost link) until [`ControlSender::resume`], keeping its requests.
    pub fn pause(&self) {
        self.update(|s| s.paused = true);
    }

    /// Sends again, with the same requests as before the pause.
    pub fn resume(&self) {
        self.update(|s| s.paused = false);
    }

    /// When the last datagram went out.
    pub fn last_sent(&self) -> Option<Instant> {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Datagrams sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for ControlSender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One control datagram (spec/wire.md) for gamepad 0, through the suite's one codec.
pub fn station_datagram(
    (ly, ry, btn): (f32, f32, u32),
    seq: u64,
    sent_us: u64,
    source: &str,
    station: Option<StationRequest>,
) -> Vec<u8> {
    let pad = PadState {
        ly,
        ry,
        btn,
        ..PadState::NEUTRAL
    };
    control::encode(&ControlMessage {
        gamepads: vec![(0, PadInput::from_state(pad))],
        meta: Some(Meta {
            seq,
            sent_us,
            source: source.to_owned(),
            station,
        }),
    })
}

/// The state of gamepad `index` as read from its buffer in one version, if it is valid.
pub fn read_pad(namespace: &str, index: u32) -> Option<PadState> {
    let g = pitcrew::gamepad::Gamepad::open(namespace, index).ok()?;
    let names: Vec<&str> = pitcrew_catalog::Catalog::embedded()
        .get("gamepad")?
        .params()
        .iter()
        .map(|p| p.name())
        .collect();
    let values = g.buffer().read_values(&names).ok()?;
    let mut state = PadState::NEUTRAL;
    for (i, v) in values.iter().enumerate() {
        match (i, v) {
            (0..=16, pitcrew_catalog::Value::Bool(true)) => state.btn |= 1 << i,
            (17, pitcrew_catalog::Value::F32(x)) => state.lx = *x,
            (18, pitcrew_catalog::Value::F32(x)) => state.ly = *x,
            (19, pitcrew_catalog::Value::F32(x)) => state.rx = *x,
            (20, pitcrew_catalog::Value::F32(x)) => state.ry = *x,
            _ => {}
        }
    }
    Some(state)
}

/// A control datagram without driver-station fields: moves gamepads, never enables.
pub fn control_datagram(sticks: (f32, f32, u32), seq: u64, sent_us: u64) -> Vec<u8> {
    station_datagram(sticks, seq, sent_us, "supervise-test", None)
}

/// Another machine on the network flooding a control port with junk as fast as it sends
/// (`senders` threads at normal priority, each with a socket and one `sendmmsg(2)` per
/// round): random bytes, unsealed control datagrams under a driver's name with the largest
/// `seq`, and datagrams sealed with a key of its own, in turn, until [`JunkFlood::stop`].
pub struct JunkFlood {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<(u64, Duration)>>,
}

impl JunkFlood {
    /// Starts flooding `to` from `senders` sockets, claiming to be `source` in the
    /// unsealed datagrams.
    pub fn start(to: SocketAddr, source: &str, senders: usize) -> JunkFlood {
        let stranger = pitcrew::key::Key::generate(pitcrew::key::KeyKind::Team).expect("a key");
        let mut forger = pitcrew::control::auth::Sealer::new(&stranger).expect("a session");
        let unsealed = station_datagram((1.0, 0.0, 0), u64::MAX, 0, source, None);
        // Made before the flood, so the sender's own work stays small.
        let junk: Arc<Vec<Vec<u8>>> = Arc::new(
            (0..240usize)
                .map(|i| match i % 3 {
                    0 => (0..16 + i * 5).map(|j| (j * 31 + i) as u8).collect(),
                    1 => unsealed.clone(),
                    _ => forger.seal(&unsealed),
                })
                .collect(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..senders.max(1))
            .map(|_| {
                let (stopping, junk) = (Arc::clone(&stop), Arc::clone(&junk));
                std::thread::spawn(move || flood(to, &junk, &stopping))
            })
            .collect();
        JunkFlood { stop, threads }
    }

    /// Stops the flood; returns the datagrams sent and their rate per second.
    pub fn stop(mut self) -> (u64, f64) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut sent, mut took) = (0, Duration::ZERO);
        for t in self.threads.drain(..) {
            let (n, d) = t.join().unwrap_or_default();
            sent += n;
            took = took.max(d);
        }
        (sent, sent as f64 / took.as_secs_f64().max(1e-9))
    }
}

/// One flooding socket: sends `junk` to `to` until `stop`; returns the datagrams sent and
/// the time taken.
fn flood(to: SocketAddr, junk: &[Vec<u8>], stop: &AtomicBool) -> (u64, Duration) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    socket.connect(to).expect("a UDP destination");
    let mut iovecs: Vec<libc::iovec> = junk
        .iter()
        .map(|d| libc::iovec {
            iov_base: d.as_ptr() as *mut libc::c_void,
            iov_len: d.len(),
        })
        .collect();
    // SAFETY: an all-zero mmsghdr is a valid value (null pointers, zero lengths).
    let mut headers: Vec<libc::mmsghdr> = iovecs
        .iter()
        .map(|_| unsafe { std::mem::zeroed() })
        .collect();
    for (h, iov) in headers.iter_mut().zip(iovecs.iter_mut()) {
        h.msg_hdr.msg_iov = iov;
        h.msg_hdr.msg_iovlen = 1;
    }
    let start = Instant::now();
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // One sendmmsg(2) for the whole list: the rate of a machine, not of a system call
        // per datagram.
        // SAFETY: `headers` are valid mmsghdrs pointing at live iovecs and junk buffers
        // (the socket is connected: no address), none moved during the call.
        let n = unsafe {
            libc::sendmmsg(
                std::os::fd::AsRawFd::as_raw_fd(&socket),
                headers.as_mut_ptr(),
                headers.len() as libc::c_uint,
                0,
            )
        };
        sent += u64::try_from(n).unwrap_or(0);
    }
    (sent, start.elapsed())
}

impl Drop for JunkFlood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
