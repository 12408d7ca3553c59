//! Serial-port discovery: ports matching the configured patterns (default `/dev/ttyACM*`,
//! `/dev/ttyUSB*`) are opened at the configured baud rate, 8N1, no flow control, through
//! tokio-serial, and each runs a host [`session`]. A port that fails to open or to identify
//! is offered again at a later scan; a port with a live session is not reopened.
//!
//! Scanning is driven by inotify on the patterns' directories (a new node triggers a scan at
//! once) with a periodic rescan as fallback ([`SerialOptions::rescan`]). Patterns support `*` and `?` in the
//! file name only (the directory part is literal), which covers device paths.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_serial::{DataBits, FlowControl, Parity, SerialPortBuilderExt, StopBits};
use tokio_util::task::TaskTracker;

use crate::session::{self, SessionContext, SessionEnd};

/// Serial discovery settings.
#[derive(Debug, Clone)]
pub struct SerialOptions {
    /// Path patterns of candidate ports.
    pub patterns: Vec<String>,
    /// Baud rate.
    pub baud: u32,
    /// Interval between scans.
    pub rescan: Duration,
}

/// What discovery did with one port so far (served by the `status` RPC, so a test or an
/// operator can see that a silent port is being retried rather than forgotten).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PortStats {
    /// Times the port was opened (each one starts a session).
    pub opens: u64,
    /// Times it could not be opened.
    pub open_failures: u64,
    /// Sessions that ended because nothing identified itself within the discovery limit.
    pub discovery_timeouts: u64,
    /// Whether a session runs on it now.
    pub active: bool,
}

/// Per-port discovery counters, keyed by path. Holds only paths that matched a pattern,
/// so it is bounded by the ports that exist.
#[derive(Debug, Default)]
pub struct SerialStats {
    ports: Mutex<BTreeMap<String, PortStats>>,
}

impl SerialStats {
    fn update(&self, port: &str, f: impl FnOnce(&mut PortStats)) {
        let mut ports = self
            .ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(ports.entry(port.to_owned()).or_default());
    }

    /// A copy of every port's counters.
    pub fn snapshot(&self) -> BTreeMap<String, PortStats> {
        self.ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Whether `name` matches `pattern` (`*` any run, `?` one character).
pub fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0usize, 0usize, None, 0usize);
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some(pi);
                mark = ni;
                pi += 1;
            }
            Some(&c) if c == '?' || Some(&c) == n.get(ni) => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some(s) => {
                    pi = s + 1;
                    mark += 1;
                    ni = mark;
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

/// The existing paths matching `patterns`, sorted.
pub fn scan(patterns: &[String]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for pattern in patterns {
        let path = Path::new(pattern);
        let (Some(dir), Some(file)) = (path.parent(), path.file_name().and_then(|f| f.to_str()))
        else {
            continue;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| wildcard(file, n))
            {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Removes a port from the active set when its session ends, however it ends.
struct ActiveGuard {
    active: Arc<Mutex<HashSet<PathBuf>>>,
    path: PathBuf,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let mut set = self
            .active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        set.remove(&self.path);
    }
}

/// How long the inotify thread waits in one poll before checking its stop flag.
const INOTIFY_POLL_MS: i32 = 200;

/// Stops the inotify thread when dropped.
struct InotifyGuard(Arc<AtomicBool>);

impl Drop for InotifyGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Watches the patterns' directories for new entries on a thread of its own and notifies
/// `wake` on each batch of events. `None` when inotify is unavailable (the rescan remains).
fn watch_dirs(patterns: &[String], wake: Arc<tokio::sync::Notify>) -> Option<InotifyGuard> {
    // SAFETY: plain system call; the descriptor is owned by the thread below.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just returned by inotify_init1 and nothing else owns it.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    for dir in patterns.iter().filter_map(|p| Path::new(p).parent()) {
        let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        let mask = libc::IN_CREATE | libc::IN_ATTRIB | libc::IN_MOVED_TO;
        // SAFETY: `c` is a valid NUL-terminated path; a failure only means no watch.
        unsafe { libc::inotify_add_watch(raw, c.as_ptr(), mask) };
    }
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = Arc::clone(&stop);
    let spawned = std::thread::Builder::new()
        .name("serial-inotify".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            while !thread_stop.load(Ordering::Acquire) {
                let mut pfd = libc::pollfd {
                    fd: raw,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd; `fd` lives as long as this closure.
                let n = unsafe { libc::poll(&mut pfd, 1, INOTIFY_POLL_MS) };
                if n > 0 {
                    // SAFETY: reads into a buffer we own, of the given length.
                    while unsafe { libc::read(raw, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
                    wake.notify_one();
                }
            }
            drop(fd);
        });
    spawned.ok().map(|_| InotifyGuard(stop))
}

/// Scans and opens ports until shutdown, counting what happens to each in `stats`.
pub async fn discover(
    options: SerialOptions,
    ctx: SessionContext,
    tracker: TaskTracker,
    stats: Arc<SerialStats>,
) {
    if options.patterns.is_empty() {
        return;
    }
    let active: Arc<Mutex<HashSet<PathBuf>>> = Arc::default();
    let mut failed_logged: HashSet<PathBuf> = HashSet::new();
    let mut tick = tokio::time::interval(options.rescan);
    let wake = Arc::new(tokio::sync::Notify::new());
    let _inotify = watch_dirs(&options.patterns, Arc::clone(&wake));
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            _ = tick.tick() => {}
            _ = wake.notified() => {}
        }
        for path in scan(&options.patterns) {
            {
                let mut set = active
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if !set.insert(path.clone()) {
                    continue;
                }
            }
            let guard = ActiveGuard {
                active: Arc::clone(&active),
                path: path.clone(),
            };
            let name = path.to_string_lossy().into_owned();
            let opened = tokio_serial::new(name.as_str(), options.baud)
                .data_bits(DataBits::Eight)
                .parity(Parity::None)
                .stop_bits(StopBits::One)
                .flow_control(FlowControl::None)
                .open_native_async();
            match opened {
                Ok(stream) => {
                    failed_logged.remove(&path);
                    stats.update(&name, |s| {
                        s.opens += 1;
                        s.active = true;
                    });
                    tracing::info!(port = %name, baud = options.baud, "serial port opened");
                    let ctx = ctx.clone();
                    let stats = Arc::clone(&stats);
                    tracker.spawn(async move {
                        let _guard = guard;
                        let end = session::run(stream, name.clone(), ctx).await;
                        stats.update(&name, |s| {
                            s.active = false;
                            s.discovery_timeouts += u64::from(end == SessionEnd::DiscoveryTimeout);
                        });
                        if end == SessionEnd::DiscoveryTimeout {
                            tracing::info!(port = %name, "nothing identified itself; the port will be retried at the next scan");
                        }
                        end
                    });
                }
                Err(e) => {
                    stats.update(&name, |s| s.open_failures += 1);
                    if failed_logged.insert(path.clone()) {
                        tracing::warn!(port = %name, error = %e, "cannot open serial port; will retry");
                    }
                    drop(guard);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_device_names() {
        assert!(wildcard("ttyACM*", "ttyACM0"));
        assert!(wildcard("ttyACM*", "ttyACM"));
        assert!(!wildcard("ttyACM*", "ttyUSB0"));
        assert!(wildcard("tty?SB*", "ttyUSB12"));
        assert!(!wildcard("ttyUSB?", "ttyUSB12"));
        assert!(wildcard("*", "anything"));
    }
}
