//! The thread that feeds the robot state machine: it blocks on the gamepad receiver's
//! `driver-links` segment (a futex wait, woken by each datagram the receiver stores) with a
//! timeout set to the machine's next deadline — the enabling link's expiry, the end of a
//! match phase — so a lost link disables the robot on time whether the receiver is silent,
//! stopped, or gone. A receiver that dies takes its segment's owner with it: its links
//! are then dead at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use pitcrew::robot::monotonic_ns;
use pitcrew::robot::segment::{open_links, read_links};
use pitcrew_buffer::Buffer;

use super::Gate;

/// The longest wait between two steps: bounds how late an RPC-made deadline (an enable by
/// RPC, a match started) is noticed, and how soon a restarted receiver's segment is found.
const MAX_WAIT: Duration = Duration::from_millis(10);

/// The running thread; dropping it stops the thread.
#[derive(Debug)]
pub struct LinksThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LinksThread {
    /// Starts watching `namespace`'s driver links for `gate`, at SCHED_FIFO `realtime` if
    /// given.
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub fn spawn(
        gate: Arc<Gate>,
        namespace: &str,
        realtime: Option<u8>,
    ) -> std::io::Result<LinksThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let namespace = namespace.to_owned();
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("robot-links".into())
            .spawn(move || {
                if let Some(priority) = realtime {
                    pitcrew::realtime::raise_priority("devices-links", priority);
                }
                watch(&gate, &namespace, &thread_stop);
            })?;
        Ok(LinksThread {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for LinksThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the robot-links thread panicked");
            }
        }
    }
}

fn watch(gate: &Gate, namespace: &str, stop: &AtomicBool) {
    let mut segment: Option<Buffer> = None;
    let mut seen = 0u32;
    while !stop.load(Ordering::Acquire) {
        if segment.as_ref().is_none_or(|b| b.is_superseded()) {
            segment = open_links(namespace).ok();
            seen = segment.as_ref().map_or(0, Buffer::update_count);
        }
        let now = monotonic_ns();
        let wait = gate
            .next_deadline()
            .map_or(MAX_WAIT, |d| Duration::from_nanos(d.saturating_sub(now)))
            .min(MAX_WAIT);
        match &segment {
            Some(b) => match b.wait_for_update(seen, wait) {
                Ok(count) => seen = count,
                Err(_) => segment = None,
            },
            None => std::thread::sleep(wait),
        }
        match &segment {
            Some(b) => {
                let alive = b.owner_alive() && b.is_valid();
                let links = read_links(b).unwrap_or_default();
                gate.on_links(&links, alive);
            }
            None => gate.tick(),
        }
    }
}
