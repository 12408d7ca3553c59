//! The flood guard: while the control port is flooded with junk, the kernel drops the junk
//! before it is queued, and the driver stations' datagrams go on as if nothing happened.
//!
//! A flood (another team's laptop gone wrong, an attacker: one machine sends 200 000
//! datagrams a second and more) does not cost the checks much: junk is refused by its
//! length or first bytes, or at worst by one MAC. It costs the kernel's queue and the
//! receive thread's time: every datagram is queued, copied out and woken for, and when the
//! thread falls behind (it is not running, or not fast enough), the queue overflows and
//! drops whatever arrives, the driver's datagrams with the junk. A queue is first come,
//! first served; nothing in user space can put the driver first.
//!
//! So when more than [`FLOOD_RATE`] datagrams a second are refused (or `FLOOD_BURST` in
//! less than a tenth of a second), the receiver attaches
//! a classic BPF socket filter (`SO_ATTACH_FILTER`, no privilege needed) that lets through
//! only the datagrams of the senders whose datagrams were applied in the last
//! [`KNOWN_FOR`] (at most [`MAX_KNOWN`], by address and port), and one in
//! [`SAMPLE`] of everything else (the kernel's random number), so that a station that
//! (re)connects during the flood still gets in within a second or so, and the junk is still
//! seen, counted by kind, recorded and logged as a sample. The rest is dropped in the
//! kernel at the cost of a few BPF instructions: no queue, no copy, no wake-up. The kernel
//! counts it (`SO_MEMINFO`'s drops), and so does `gamepad-service.status` (`filtered`).
//! When fewer than [`CALM_RATE`] junk datagrams a second arrive for [`CALM_FOR`], the
//! filter is removed and every datagram is looked at again.
//!
//! A sender that forges a known station's address and port gets through the filter, and is
//! refused as before (by its MAC, or as unsealed). Only IPv4 sockets are guarded (the
//! default `0.0.0.0`); an IPv6 one runs without the guard.

use std::collections::VecDeque;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Refused datagrams per second that start the guard.
pub const FLOOD_RATE: u64 = 20_000;
/// Junk datagrams per second (refused and filtered) below which the flood is over...
pub const CALM_RATE: u64 = 2_000;
/// ...for this long.
pub const CALM_FOR: Duration = Duration::from_secs(1);
/// How long a sender whose datagram was applied stays known.
pub const KNOWN_FOR: Duration = Duration::from_secs(2);
/// How many known senders the filter lets through (a robot has one or two stations).
pub const MAX_KNOWN: usize = 8;
/// One in this many datagrams of unknown senders passes the filter.
pub const SAMPLE: u32 = 16;
/// How often the rates are measured.
const WINDOW: Duration = Duration::from_millis(100);
/// Refused datagrams that start the guard at once, before the window ends: a flood is
/// caught within milliseconds, before the junk it queued meanwhile delays the driver's
/// datagrams behind it (a challenge that ages past its window in the queue is stale).
const FLOOD_BURST: u64 = 1_000;

/// What the guard did, for `status` and the counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct FloodStats {
    /// Whether the filter is on now.
    pub active: bool,
    /// Times the filter went on.
    pub floods: u64,
    /// Datagrams the kernel dropped while the filter was on (its socket drop count,
    /// which also counts a full queue's drops).
    pub filtered: u64,
}

/// The guard of one socket (module docs).
pub struct FloodGuard {
    fd: Option<std::os::fd::RawFd>,
    known: VecDeque<(SocketAddrV4, Instant)>,
    /// The senders the attached filter lets through.
    filtering: Option<Vec<SocketAddrV4>>,
    window_start: Instant,
    refused_in_window: u64,
    drops_seen: u32,
    calm_since: Option<Instant>,
    active_since: Option<Instant>,
    stats: FloodStats,
}

impl FloodGuard {
    /// A guard for `socket`, off; a socket not bound to IPv4 is never guarded.
    pub fn new(socket: &UdpSocket, now: Instant) -> FloodGuard {
        let ipv4 = socket.local_addr().is_ok_and(|a| a.is_ipv4());
        FloodGuard {
            fd: ipv4.then(|| socket.as_raw_fd()),
            known: VecDeque::new(),
            filtering: None,
            window_start: now,
            refused_in_window: 0,
            drops_seen: 0,
            calm_since: None,
            active_since: None,
            stats: FloodStats::default(),
        }
    }

    /// What the guard did so far.
    pub fn stats(&self) -> FloodStats {
        self.stats
    }

    /// Notes a batch: `refused` of its datagrams were refused, and `applied` are the
    /// senders of those applied. Measures the rates every `WINDOW` and turns the filter
    /// on, updates or removes it. The socket must be the one given to [`FloodGuard::new`],
    /// still open.
    pub fn note(&mut self, refused: u64, applied: &[SocketAddr], now: Instant) {
        let Some(fd) = self.fd else { return };
        self.refused_in_window += refused;
        for peer in applied {
            if let SocketAddr::V4(v4) = peer {
                self.known.retain(|(p, _)| p != v4);
                if self.known.len() >= MAX_KNOWN {
                    self.known.pop_front();
                }
                self.known.push_back((*v4, now));
            }
        }
        let elapsed = now.saturating_duration_since(self.window_start);
        let burst = self.filtering.is_none() && self.refused_in_window >= FLOOD_BURST;
        if elapsed < WINDOW && !burst {
            return;
        }
        while self
            .known
            .front()
            .is_some_and(|(_, t)| now.saturating_duration_since(*t) > KNOWN_FOR)
        {
            self.known.pop_front();
        }
        let drops = socket_drops(fd).unwrap_or(self.drops_seen);
        let dropped = u64::from(drops.wrapping_sub(self.drops_seen));
        self.drops_seen = drops;
        let per_s = |n: u64| n * 1000 / (elapsed.as_millis().max(1) as u64);
        let refused_rate = per_s(self.refused_in_window);
        let junk_rate = per_s(self.refused_in_window + dropped);
        self.refused_in_window = 0;
        self.window_start = now;
        let peers: Vec<SocketAddrV4> = self.known.iter().map(|(p, _)| *p).collect();
        if self.filtering.is_none() {
            if refused_rate >= FLOOD_RATE && attach(fd, &peers) {
                tracing::warn!(
                    junk_per_s = refused_rate,
                    stations = peers.len(),
                    sample = SAMPLE,
                    "the control port is flooded: the kernel now drops the junk, letting through the stations applied in the last {} s and one in {SAMPLE} of the rest",
                    KNOWN_FOR.as_secs()
                );
                self.filtering = Some(peers);
                self.stats.active = true;
                self.stats.floods += 1;
                self.active_since = Some(now);
                self.calm_since = None;
            }
            return;
        }
        self.stats.filtered += dropped;
        if junk_rate >= CALM_RATE {
            self.calm_since = None;
        } else if now.saturating_duration_since(*self.calm_since.get_or_insert(now)) >= CALM_FOR {
            detach(fd);
            tracing::info!(
                lasted_s = self
                    .active_since
                    .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64()),
                filtered = self.stats.filtered,
                "the flood of the control port is over: every datagram is looked at again"
            );
            self.filtering = None;
            self.stats.active = false;
            return;
        }
        // The stations come and go: the filter follows them.
        if self.filtering.as_ref() != Some(&peers) && attach(fd, &peers) {
            self.filtering = Some(peers);
        }
    }
}

/// One classic BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// A classic BPF program (`struct sock_fprog`).
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

fn op(code: u32, k: i32) -> SockFilter {
    SockFilter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k: k as u32,
    }
}

fn jeq(k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

/// The filter: accept one in [`SAMPLE`] at random, and every datagram from `peers`
/// (IPv4 source address and UDP source port); drop the rest.
fn program(peers: &[SocketAddrV4]) -> Vec<SockFilter> {
    const PER_PEER: usize = 5;
    let accept_at = 3 + PER_PEER * peers.len() + 1;
    let mut p = vec![
        // A = a random number; one in SAMPLE is accepted.
        op(
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
            libc::SKF_AD_OFF + libc::SKF_AD_RANDOM,
        ),
        op(
            libc::BPF_ALU | libc::BPF_AND | libc::BPF_K,
            (SAMPLE - 1) as i32,
        ),
    ];
    p.push(jeq(0, (accept_at - 3) as u8, 0));
    for (i, peer) in peers.iter().enumerate() {
        let here = 3 + PER_PEER * i;
        // A = the IPv4 source address.
        p.push(op(
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
            libc::SKF_NET_OFF + 12,
        ));
        p.push(jeq(u32::from(*peer.ip()), 0, 3));
        // X = the IP header's length; A = the UDP source port after it.
        p.push(op(
            libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH,
            libc::SKF_NET_OFF,
        ));
        p.push(op(
            libc::BPF_LD | libc::BPF_H | libc::BPF_IND,
            libc::SKF_NET_OFF,
        ));
        let to_accept = accept_at - (here + PER_PEER);
        p.push(jeq(u32::from(peer.port()), to_accept as u8, 0));
    }
    p.push(op(libc::BPF_RET | libc::BPF_K, 0));
    p.push(op(libc::BPF_RET | libc::BPF_K, -1));
    p
}

/// Attaches (or replaces) the filter letting `peers` through; false (logged) when the
/// kernel refuses it.
fn attach(fd: std::os::fd::RawFd, peers: &[SocketAddrV4]) -> bool {
    let filter = program(peers);
    let prog = SockFprog {
        len: filter.len() as u16,
        filter: filter.as_ptr(),
    };
    // SAFETY: `prog` points at `filter`, a valid program of `len` instructions, both alive
    // for the call (the kernel copies the program).
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&prog as *const SockFprog).cast(),
            std::mem::size_of::<SockFprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::error!(error = %std::io::Error::last_os_error(), "cannot attach the flood filter to the control socket");
    }
    rc == 0
}

fn detach(fd: std::os::fd::RawFd) {
    let zero: libc::c_int = 0;
    // SAFETY: `zero` is a valid c_int that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DETACH_FILTER,
            (&zero as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::error!(error = %std::io::Error::last_os_error(), "cannot detach the flood filter from the control socket");
    }
}

/// The socket's count of dropped datagrams (filtered, or a full queue's).
fn socket_drops(fd: std::os::fd::RawFd) -> Option<u32> {
    let mut info = [0u32; 9];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` and `len` are valid out-pointers; the kernel writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    (rc == 0).then(|| info[libc::SK_MEMINFO_DROPS as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `n` datagrams from `from` to `to`.
    fn send(from: &UdpSocket, to: SocketAddr, n: usize) {
        for _ in 0..n {
            from.send_to(b"x", to).unwrap();
        }
    }

    /// Receives everything queued on `socket` (non-blocking), counting.
    fn drain(socket: &UdpSocket) -> usize {
        let mut buf = [0u8; 64];
        let mut n = 0;
        while socket.recv_from(&mut buf).is_ok() {
            n += 1;
        }
        n
    }

    #[test]
    fn the_filter_passes_known_senders_and_a_sample_of_the_rest_and_counts_the_drops() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver.set_nonblocking(true).unwrap();
        let to = receiver.local_addr().unwrap();
        let station = UdpSocket::bind("127.0.0.1:0").unwrap();
        let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
        let t = Instant::now();
        let mut guard = FloodGuard::new(&receiver, t);
        let station_addr = station.local_addr().unwrap();
        // A flood is noticed after a window: the filter goes on.
        guard.note(0, &[station_addr], t);
        guard.note(5_000, &[], t + WINDOW);
        assert!(guard.stats().active);
        send(&station, to, 100);
        send(&junk, to, 1600);
        let got = drain(&receiver);
        // Every datagram of the station, about 1600 / 16 = 100 of the junk.
        assert!((100 + 40..=100 + 200).contains(&got), "{got}");
        // The kernel's drop count is the filtered junk; calm for CALM_FOR ends it.
        let mut at = t + WINDOW * 2;
        guard.note(0, &[station_addr], at);
        assert!(guard.stats().filtered >= 1300, "{:?}", guard.stats());
        while guard.stats().active {
            at += WINDOW;
            guard.note(0, &[station_addr], at);
            assert!(
                at < t + Duration::from_secs(5),
                "the guard never calmed down"
            );
        }
        send(&junk, to, 100);
        assert_eq!(drain(&receiver), 100, "no filter once calm");
    }
}
