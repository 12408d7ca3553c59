//! The machine's own floor for the suite's paths: the same kernel work (a UDP receive,
//! futex wake-ups between processes through shared memory, a write on a pseudo-terminal)
//! in a few lines of plain Rust and libc, with no pitcrew code, so that a benchmark can
//! print what pitcrew costs *above* what the kernel needs on this machine at this moment.
//!
//! The floor stages run as processes of their own (the benchmark re-executes itself with
//! [`stage_main`]'s arguments), laid out like the suite: a receiver, a controller and a
//! broker, each blocked in the kernel until the previous one wakes it.

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A shared-memory file of [`WORDS`] `u32`s, mapped `MAP_SHARED` in every stage.
pub struct Shared {
    ptr: *mut AtomicU32,
}

/// Words of a [`Shared`]: per hop a sequence number (the futex word) and a value.
pub const WORDS: usize = 16;

// SAFETY: the mapping is only accessed through atomics.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Shared {
    /// Maps `path` (created and sized if need be).
    ///
    /// # Errors
    /// When the file cannot be opened, sized or mapped.
    pub fn open(path: &std::path::Path) -> std::io::Result<Shared> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = WORDS * 4;
        file.set_len(len as u64)?;
        // SAFETY: a fresh shared mapping of a file at least `len` long; it is never unmapped
        // (the stages live until killed; the benchmark keeps its own until it exits).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&file),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Shared { ptr: ptr.cast() })
    }

    /// Word `i` (< [`WORDS`]).
    pub fn word(&self, i: usize) -> &AtomicU32 {
        assert!(i < WORDS, "floor: word {i} out of range");
        // SAFETY: in bounds of the live mapping; AtomicU32 has u32's layout.
        unsafe { &*self.ptr.add(i) }
    }

    /// Stores `value` in word `hop * 2 + 1`, bumps the sequence word `hop * 2` and wakes it.
    pub fn publish(&self, hop: usize, value: u32) {
        self.word(hop * 2 + 1).store(value, Ordering::Relaxed);
        self.word(hop * 2).fetch_add(1, Ordering::Release);
        futex_wake(self.word(hop * 2));
    }

    /// Blocks until hop `hop`'s sequence moves past `seen`; returns (new sequence, value).
    pub fn next(&self, hop: usize, seen: u32) -> (u32, u32) {
        loop {
            let now = self.word(hop * 2).load(Ordering::Acquire);
            if now != seen {
                return (now, self.word(hop * 2 + 1).load(Ordering::Relaxed));
            }
            futex_wait(self.word(hop * 2), seen, Duration::from_millis(200));
        }
    }
}

/// FUTEX_WAIT on a process-shared word while it holds `expected`, at most `timeout`.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `word` is a live u32 in shared memory; a spurious return is re-checked.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

/// FUTEX_WAKE of every waiter on `word`, in any process.
pub fn futex_wake(word: &AtomicU32) {
    // SAFETY: as in `futex_wait`.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

/// SCHED_FIFO at `priority` for the calling thread, as `--realtime` does for pitcrew (a
/// warning without the privilege).
pub fn realtime(priority: Option<u8>) {
    let Some(priority) = priority else { return };
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: plain syscall on the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
        eprintln!(
            "floor: no SCHED_FIFO {priority}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// The e2e floor's stages, run as `BENCH floor-STAGE SHM ARG [PRIORITY]`:
/// * `floor-recv SHM PORT`: a UDP datagram's first 4 bytes → hop 0;
/// * `floor-ctl SHM -`: hop 0 → hop 1 (the controller);
/// * `floor-brk SHM TTY`: hop 1 → 4 bytes written on the terminal `TTY` (the broker).
///
/// Returns false when `args` is not a floor stage.
///
/// # Errors
/// Bad arguments, or a socket, mapping or terminal that cannot be opened.
pub fn stage_main(args: &[String]) -> anyhow::Result<bool> {
    let [stage, shm, arg, rest @ ..] = args else {
        return Ok(false);
    };
    if !stage.starts_with("floor-") {
        return Ok(false);
    }
    realtime(rest.first().and_then(|p| p.parse().ok()));
    let shared = Shared::open(std::path::Path::new(shm))?;
    match stage.as_str() {
        "floor-recv" => {
            let socket = std::net::UdpSocket::bind(("127.0.0.1", arg.parse::<u16>()?))?;
            let mut buf = [0u8; 64];
            loop {
                let n = socket.recv(&mut buf)?;
                if let Some(&[a, b, c, d]) = buf.get(..4.min(n)) {
                    shared.publish(0, u32::from_le_bytes([a, b, c, d]));
                }
            }
        }
        "floor-ctl" => {
            let mut seen = shared.word(0).load(Ordering::Acquire);
            loop {
                let (now, v) = shared.next(0, seen);
                seen = now;
                shared.publish(1, v);
            }
        }
        "floor-brk" => {
            let mut tty = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(arg)?;
            let mut seen = shared.word(2).load(Ordering::Acquire);
            loop {
                let (now, v) = shared.next(1, seen);
                seen = now;
                tty.write_all(&v.to_le_bytes())?;
            }
        }
        other => anyhow::bail!("unknown floor stage {other}"),
    }
}

/// The router's floor: a bare libzmq ROUTER that sends every message back, as
/// `BENCH zmq-echo ADDR`. Runs until killed.
///
/// # Errors
/// When the socket cannot bind or fails.
pub fn zmq_echo_server(addr: &str) -> anyhow::Result<()> {
    let ctx = zmq::Context::new();
    let socket = ctx.socket(zmq::ROUTER)?;
    socket.bind(addr)?;
    loop {
        let parts = socket.recv_multipart(0)?;
        socket.send_multipart(parts, 0)?;
    }
}

/// A bare libzmq forwarder, the least any router built on libzmq does, as `BENCH
/// zmq-forward FRONT BACK`: clients' DEALERs connect to the ROUTER at `front`, one echo
/// service ([`zmq_echo_service`]) to the ROUTER at `back`; a message `[client, payload]`
/// goes out as `[service, client, payload]`, and back the other way. Blocking
/// `zmq::poll`, no checks, no bookkeeping. Runs until killed.
///
/// # Errors
/// When a socket cannot bind or fails.
pub fn zmq_forward_server(front: &str, back: &str) -> anyhow::Result<()> {
    let ctx = zmq::Context::new();
    let clients = ctx.socket(zmq::ROUTER)?;
    clients.bind(front)?;
    let services = ctx.socket(zmq::ROUTER)?;
    services.bind(back)?;
    loop {
        let (to_service, to_client) = {
            let mut items = [
                clients.as_poll_item(zmq::POLLIN),
                services.as_poll_item(zmq::POLLIN),
            ];
            zmq::poll(&mut items, -1)?;
            (items[0].is_readable(), items[1].is_readable())
        };
        if to_service {
            while let Some(mut parts) = try_recv(&clients)? {
                parts.insert(0, ECHO_SERVICE.to_vec());
                services.send_multipart(parts, 0)?;
            }
        }
        if to_client {
            while let Some(parts) = try_recv(&services)? {
                clients.send_multipart(parts.into_iter().skip(1), 0)?;
            }
        }
    }
}

/// One message if one is waiting; other failures are errors.
fn try_recv(socket: &zmq::Socket) -> anyhow::Result<Option<Vec<Vec<u8>>>> {
    match socket.recv_multipart(zmq::DONTWAIT) {
        Ok(parts) => Ok(Some(parts)),
        Err(zmq::Error::EAGAIN) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Waits until the echo at `addr` (direct, or through the forwarder once its echo service
/// has connected) answers, for up to `timeout`: a forwarder drops what it cannot deliver
/// yet, so measuring before then would time out.
///
/// # Errors
/// When nothing answered within `timeout`.
pub fn wait_for_echo(addr: &str, timeout: Duration) -> anyhow::Result<()> {
    let ctx = zmq::Context::new();
    let socket = ctx.socket(zmq::DEALER)?;
    socket.set_rcvtimeo(50)?;
    socket.set_linger(0)?;
    socket.connect(addr)?;
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        socket.send(&b"ping"[..], 0)?;
        if socket.recv_bytes(0).is_ok() {
            return Ok(());
        }
    }
    anyhow::bail!("the echo at {addr} did not answer within {timeout:?}")
}

/// The identity [`zmq_echo_service`] connects to [`zmq_forward_server`] with.
const ECHO_SERVICE: &[u8] = b"echo";

/// The service behind [`zmq_forward_server`], as `BENCH zmq-echo-service BACK`: a DEALER
/// that sends every message back as it came. Runs until killed.
///
/// # Errors
/// When the socket cannot connect or fails.
pub fn zmq_echo_service(back: &str) -> anyhow::Result<()> {
    let ctx = zmq::Context::new();
    let socket = ctx.socket(zmq::DEALER)?;
    socket.set_identity(ECHO_SERVICE)?;
    socket.connect(back)?;
    loop {
        let parts = socket.recv_multipart(0)?;
        socket.send_multipart(parts, 0)?;
    }
}

/// Round trips of a 48-byte message from one DEALER, alternating between the echoes at
/// `direct` ([`zmq_echo_server`]) and `routed` ([`zmq_forward_server`]), `calls` of each
/// after as many unmeasured: the latency floors of a direct call and of a routed one, in
/// microseconds.
///
/// # Errors
/// When a socket cannot connect or an echo does not answer within 2 s.
pub fn zmq_rtt_pair(
    direct: &str,
    routed: &str,
    calls: usize,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let ctx = zmq::Context::new();
    let connect = |addr: &str| -> anyhow::Result<zmq::Socket> {
        let socket = ctx.socket(zmq::DEALER)?;
        socket.set_rcvtimeo(2000)?;
        socket.connect(addr)?;
        Ok(socket)
    };
    let (direct, routed) = (connect(direct)?, connect(routed)?);
    let payload = [0x5au8; 48];
    let trip = |socket: &zmq::Socket| -> anyhow::Result<f64> {
        let started = std::time::Instant::now();
        socket.send(&payload[..], 0)?;
        socket.recv_bytes(0)?;
        Ok(started.elapsed().as_secs_f64() * 1e6)
    };
    for _ in 0..calls {
        trip(&direct)?;
        trip(&routed)?;
    }
    let (mut straight, mut via) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    for _ in 0..calls {
        via.push(trip(&routed)?);
        straight.push(trip(&direct)?);
    }
    Ok((straight, via))
}

/// Messages per second echoed by [`zmq_echo_server`] (or through [`zmq_forward_server`])
/// at `addr` to `clients` DEALERs (one thread each) keeping `depth` 48-byte messages in
/// flight for `seconds`, as the router's throughput figure loads the router.
///
/// # Errors
/// When a socket cannot connect or fails.
pub fn zmq_echo_throughput(
    addr: &str,
    clients: usize,
    depth: usize,
    seconds: f64,
) -> anyhow::Result<f64> {
    let ctx = zmq::Context::new();
    let started = std::time::Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let counts = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let ctx = ctx.clone();
                s.spawn(move || -> anyhow::Result<u64> {
                    let socket = ctx.socket(zmq::DEALER)?;
                    socket.set_rcvtimeo(2000)?;
                    socket.connect(addr)?;
                    let payload = [1u8; 48];
                    for _ in 0..depth {
                        socket.send(&payload[..], 0)?;
                    }
                    let mut n = 0u64;
                    while std::time::Instant::now() < deadline {
                        socket.recv_bytes(0)?;
                        n += 1;
                        socket.send(&payload[..], 0)?;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Ok(0)))
            .collect::<Vec<_>>()
    });
    let mut total = 0;
    for c in counts {
        total += c?;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}
