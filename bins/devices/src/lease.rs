//! Output leases of one device session (robot-state.md rule 5): while the robot is enabled,
//! a value written to an output holds for its lease (the catalog's `lease`, or
//! `--output-lease`), and unless rewritten in time the session drives it to its safe value.
//! A controller that hangs or is stopped therefore stops its motors within the lease.
//!
//! A controller that *dies* stops them at once: each output remembers the pid that wrote it
//! (the buffer records the last writer), the session holds a pidfd of each such process,
//! and its exit makes the pidfd readable.
//!
//! [`safe_frames`] is the one encoder of "these outputs to their safe values", shared with
//! the emergency stop.

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};

use pitcrew_catalog::DeviceType;
use pitcrew_sdp::{Message, ParamData};
use tokio::io::unix::AsyncFd;

/// Writer processes watched at once per device; past this, the lease alone covers a death.
const MAX_WATCHED: usize = 4;

/// A writer process watched for its exit.
#[derive(Debug)]
struct Watched {
    pid: u32,
    fd: AsyncFd<OwnedFd>,
}

/// When each output's lease runs out and who wrote it: plain data under a lock, shared by
/// the session (which drives expired outputs safe) and the device's waker thread (which
/// forwards consumer writes, `outbound`). Watching writers for their exit needs the event
/// loop's reactor and stays in [`Leases`].
#[derive(Debug)]
pub struct LeaseClock {
    /// Lease length per param id (outputs only; `None`: no lease).
    length: [Option<Duration>; 16],
    /// When each driven output's lease runs out.
    deadline: [Option<Instant>; 16],
    /// Who wrote each driven output.
    writer: [u32; 16],
    /// Outputs forwarded at a consumer's value and not reset since.
    driven: u64,
}

impl LeaseClock {
    /// Leases for `ty`'s outputs: the catalog's own `lease` of a param, else `default`;
    /// zero turns a lease off.
    pub fn new(ty: &DeviceType, default: Duration) -> LeaseClock {
        let mut length = [None; 16];
        for (p, _) in ty.outputs() {
            let l = p.lease().unwrap_or(default);
            if let Some(slot) = length.get_mut(p.id()) {
                *slot = (!l.is_zero()).then_some(l);
            }
        }
        LeaseClock {
            length,
            deadline: [None; 16],
            writer: [0; 16],
            driven: 0,
        }
    }

    /// Outputs `bits` were forwarded at values `pid` wrote, at `now`. True when the session
    /// must look: a lease started (its timer is not armed yet) or `pid` is a new writer
    /// (to be watched). A write that only renews a lease is not worth waking it for: its
    /// timer finds the later deadline when it fires.
    pub fn forwarded(&mut self, bits: u64, pid: u32, now: Instant) -> bool {
        let new_writer = bits != 0 && !self.is_writer(pid);
        let started = bits & !self.driven != 0;
        for id in 0..16 {
            if bits & (1 << id) == 0 {
                continue;
            }
            self.driven |= 1 << id;
            self.writer[id] = pid;
            self.deadline[id] = self.length[id].map(|l| now + l);
        }
        new_writer || started
    }

    /// Whether `pid` wrote a driven output.
    fn is_writer(&self, pid: u32) -> bool {
        (0..16).any(|id| self.driven & (1 << id) != 0 && self.writer[id] == pid)
    }

    /// The writers of driven outputs.
    fn writers(&self) -> impl Iterator<Item = u32> + '_ {
        (0..16)
            .filter(|id| self.driven & (1 << id) != 0)
            .map(|id| self.writer[id])
    }

    /// The earliest lease deadline of a driven output.
    pub fn next_deadline(&self) -> Option<Instant> {
        (0..16)
            .filter(|id| self.driven & (1 << id) != 0)
            .filter_map(|id| self.deadline[id])
            .min()
    }

    /// The driven outputs whose lease ran out by `now`; they are no longer driven.
    pub fn expired(&mut self, now: Instant) -> u64 {
        let mut bits = 0;
        for id in 0..16 {
            if self.driven & (1 << id) != 0 && self.deadline[id].is_some_and(|d| d <= now) {
                bits |= 1 << id;
            }
        }
        self.driven &= !bits;
        bits
    }

    /// The outputs `pid` drove, which are no longer driven.
    fn writer_died(&mut self, pid: u32) -> u64 {
        let mut bits = 0;
        for id in 0..16 {
            if self.driven & (1 << id) != 0 && self.writer[id] == pid {
                bits |= 1 << id;
            }
        }
        self.driven &= !bits;
        bits
    }
}

/// The lease state of one device's outputs, as its session sees it: the shared
/// [`LeaseClock`] and the writer processes watched for their exit.
#[derive(Debug)]
pub struct Leases {
    clock: Arc<Mutex<LeaseClock>>,
    watched: Vec<Watched>,
}

impl Leases {
    /// Leases for `ty`'s outputs (see [`LeaseClock::new`]).
    pub fn new(ty: &DeviceType, default: Duration) -> Leases {
        Leases {
            clock: Arc::new(Mutex::new(LeaseClock::new(ty, default))),
            watched: Vec::new(),
        }
    }

    /// The clock, for the thread that forwards consumer writes.
    pub fn clock(&self) -> Arc<Mutex<LeaseClock>> {
        Arc::clone(&self.clock)
    }

    fn lock(&self) -> MutexGuard<'_, LeaseClock> {
        lock_clock(&self.clock)
    }

    /// Outputs `bits` were forwarded at values `pid` wrote, at `now`.
    pub fn forwarded(&mut self, bits: u64, pid: u32, now: Instant) {
        self.lock().forwarded(bits, pid, now);
        self.watch_writers();
    }

    /// Watches every writer of a driven output that is not watched yet (after the waker
    /// thread forwarded a new writer's value).
    pub fn watch_writers(&mut self) {
        let writers: Vec<u32> = self.lock().writers().collect();
        self.watched.retain(|w| writers.contains(&w.pid));
        for pid in writers {
            self.watch(pid);
        }
    }

    /// Starts watching `pid` for its exit (not this process, not twice, bounded).
    fn watch(&mut self, pid: u32) {
        if pid == 0 || pid == std::process::id() || self.watched.iter().any(|w| w.pid == pid) {
            return;
        }
        if self.watched.len() >= MAX_WATCHED {
            return;
        }
        match pidfd(pid) {
            Ok(fd) => self.watched.push(Watched { pid, fd }),
            // Already gone: its outputs go safe at the next look (`dead_writer`).
            Err(e) => tracing::debug!(pid, error = %e, "cannot watch a writer process"),
        }
    }

    /// The earliest lease deadline of a driven output.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.lock().next_deadline()
    }

    /// Resolves at the earliest lease deadline, as [`Leases::next_deadline`] says now; never
    /// while no output is driven (the session's select guard skips it then, and a lease
    /// that starts later wakes the session's loop, which asks again).
    ///
    /// # Cancel safety
    /// Cancel safe: it only sleeps.
    pub fn expiry(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let deadline = self.next_deadline();
        async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        }
    }

    /// The driven outputs whose lease ran out by `now`; they are no longer driven.
    pub fn expired(&mut self, now: Instant) -> u64 {
        self.lock().expired(now)
    }

    /// Every output is safe again (a disable, an estop): nothing is driven.
    pub fn clear(&mut self) {
        self.lock().driven = 0;
        self.watched.clear();
    }

    /// Whether a writer process is watched (the session selects on [`Leases::dead_writer`]
    /// only then).
    pub fn watching(&self) -> bool {
        !self.watched.is_empty()
    }

    /// Resolves with the pid of a watched writer that exited.
    ///
    /// # Cancel safety
    /// Cancel safe: it only polls readiness.
    pub async fn dead_writer(&self) -> u32 {
        std::future::poll_fn(|cx| {
            for w in &self.watched {
                if w.fd.poll_read_ready(cx).is_ready() {
                    return Poll::Ready(w.pid);
                }
            }
            Poll::Pending
        })
        .await
    }

    /// `pid` exited: the outputs it drove, which are no longer driven.
    pub fn writer_died(&mut self, pid: u32) -> u64 {
        self.watched.retain(|w| w.pid != pid);
        self.lock().writer_died(pid)
    }
}

/// Locks a lease clock; a panic elsewhere while it was held leaves plain data behind, still
/// usable.
pub fn lock_clock(clock: &Mutex<LeaseClock>) -> MutexGuard<'_, LeaseClock> {
    clock.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A pidfd of `pid` (Linux 5.3+), readable once the process exits.
fn pidfd(pid: u32) -> std::io::Result<AsyncFd<OwnedFd>> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| std::io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is
    // passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| std::io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: `fd` was just returned by pidfd_open and is owned by nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: the AsyncFd owns `owned`, an open pidfd whose `as_raw_fd` never changes, and
    // closes it only when dropped.
    unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }
        .map_err(std::io::Error::from)
}

/// Appends the DEV_WRITE(s) that drive the outputs of `ty` in `bits` to their catalog safe
/// values (encoded from the catalog, never read from the buffer, so a consumer writing at
/// the same moment cannot slip its value in); returns the message count.
pub fn safe_frames(ty: &DeviceType, bits: u64, out: &mut Vec<u8>) -> u64 {
    let values: Vec<(u8, pitcrew_catalog::LeBytes)> = ty
        .outputs()
        .filter(|(p, _)| bits & (1 << p.id()) != 0)
        .filter_map(|(p, v)| u8::try_from(p.id()).ok().map(|id| (id, v.le_bytes())))
        .collect();
    if values.is_empty() {
        return 0;
    }
    let mut data = ParamData::new();
    for (id, b) in &values {
        // Outputs have ids < 16 and safe values of their width (`Param::is_output`).
        let _ = data.insert(*id, b.as_slice());
    }
    let mut count = 0;
    for part in data.split() {
        count += u64::from(Message::DevWrite(part).encode_frame(out).is_ok());
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitcrew_catalog::Catalog;

    #[tokio::test]
    async fn a_lease_runs_out_unless_rewritten_and_zero_turns_it_off() {
        let koala = Catalog::embedded().get("koala-bear").unwrap();
        let a = 1u64 << koala.param("duty_cycle_a").unwrap().id();
        let b = 1u64 << koala.param("duty_cycle_b").unwrap().id();
        let mut l = Leases::new(koala, Duration::from_millis(100));
        let t = Instant::now();
        l.forwarded(a | b, std::process::id(), t);
        assert!(!l.watching(), "this process is not watched");
        assert_eq!(l.next_deadline(), Some(t + Duration::from_millis(100)));
        l.forwarded(b, 1, t + Duration::from_millis(50));
        assert_eq!(l.expired(t + Duration::from_millis(99)), 0);
        assert_eq!(l.expired(t + Duration::from_millis(100)), a);
        assert_eq!(l.expired(t + Duration::from_millis(150)), b);
        assert_eq!(l.next_deadline(), None);
        let mut off = Leases::new(koala, Duration::ZERO);
        off.forwarded(a, 1, t);
        assert_eq!(off.next_deadline(), None);
        assert_eq!(
            off.writer_died(1),
            a,
            "a dead writer still resets its outputs"
        );
    }

    #[test]
    fn only_a_new_lease_or_a_new_writer_needs_the_session() {
        let koala = Catalog::embedded().get("koala-bear").unwrap();
        let a = 1u64 << koala.param("duty_cycle_a").unwrap().id();
        let b = 1u64 << koala.param("duty_cycle_b").unwrap().id();
        let mut clock = LeaseClock::new(koala, Duration::from_millis(100));
        let t = Instant::now();
        assert!(clock.forwarded(a, 7, t), "a lease starts");
        assert!(
            !clock.forwarded(a, 7, t),
            "a renewal does not wake the session"
        );
        assert!(clock.forwarded(b, 7, t), "another output's lease starts");
        assert!(clock.forwarded(a, 8, t), "a new writer is to be watched");
        assert_eq!(clock.writers().collect::<Vec<_>>(), [8, 7]);
        assert!(
            !clock.forwarded(0, 9, t),
            "nothing forwarded, nothing to do"
        );
    }

    #[tokio::test]
    async fn a_dead_writer_is_seen_through_its_pidfd() {
        let koala = Catalog::embedded().get("koala-bear").unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let mut l = Leases::new(koala, Duration::from_secs(60));
        l.forwarded(1, child.id(), Instant::now());
        assert!(l.watching());
        child.kill().unwrap();
        let pid = tokio::time::timeout(Duration::from_secs(5), l.dead_writer())
            .await
            .unwrap();
        assert_eq!(pid, child.id());
        assert_eq!(l.writer_died(pid), 1);
        let _ = child.wait();
    }

    #[test]
    fn safe_frames_write_only_the_outputs_asked_for() {
        let koala = Catalog::embedded().get("koala-bear").unwrap();
        let mut out = Vec::new();
        assert_eq!(safe_frames(koala, koala.output_mask(), &mut out), 1);
        let mut none = Vec::new();
        assert_eq!(
            safe_frames(koala, 1 << koala.param("pid_kp_a").unwrap().id(), &mut none),
            0
        );
        assert!(none.is_empty());
    }
}
