//! [`Waker`]: the thread that forwards a consumer's write to its device. It blocks in the
//! buffer's futex wait ([`Owner::wait_for_change`]) and, when a write, read request or
//! subscription change is pending, takes it and sends it itself ([`Outbound`]): no poll
//! tick, and no further thread wake-up between the consumer and the line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::outbound::Outbound;
#[cfg(doc)]
use pitcrew_buffer::Owner;

/// Longest single futex wait: bounds how long the thread outlives its session (it checks
/// the stop flag between waits). Not on the latency path: a write wakes the futex at once.
const WAIT_SLICE: Duration = Duration::from_millis(100);
/// How long [`Waker::stop`] waits for the thread beyond a write it may be finishing (the
/// line's stall): one futex slice it may be in, and margin.
const STOP_WAIT: Duration = Duration::from_millis(250);
/// Pause while the buffer is invalid (the futex wait refuses an invalid buffer).
const INVALID_PAUSE: Duration = Duration::from_millis(20);

/// Handle of a waker thread; dropping it stops the thread within `WAIT_SLICE`, and
/// [`Waker::stop`] also waits for that.
#[derive(Debug)]
pub struct Waker {
    stop: Arc<AtomicBool>,
    /// How long a write of the thread's may wait for room.
    stall: Duration,
    /// Fires once the thread has let go of its `Outbound` (and so of the buffer).
    done: Option<oneshot::Receiver<()>>,
}

impl Waker {
    /// Starts the thread for `outbound`'s device, at SCHED_FIFO `realtime` priority if
    /// given.
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub fn spawn(
        outbound: Arc<Outbound>,
        name: &str,
        realtime: Option<u8>,
    ) -> std::io::Result<Waker> {
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done) = oneshot::channel();
        let thread_stop = Arc::clone(&stop);
        let stall = outbound.write_stall();
        std::thread::Builder::new()
            .name(format!("wake-{name}"))
            .spawn(move || {
                if let Some(priority) = realtime {
                    pitcrew::realtime::raise_priority("devices-waker", priority);
                }
                watch(&outbound, &thread_stop);
                drop(outbound);
                let _ = done_tx.send(());
            })?;
        Ok(Waker {
            stop,
            stall,
            done: Some(done),
        })
    }

    /// Tells the thread to stop (it notices within `WAIT_SLICE`) without waiting.
    pub fn signal_stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Stops the thread and waits until it has dropped its reference to the buffer (at
    /// most `STOP_WAIT` beyond the line's stall). The owner unlinks the segment when the last
    /// reference goes, so a broker that exits without this wait can leave a segment behind
    /// in /dev/shm.
    pub async fn stop(mut self) {
        self.signal_stop();
        if let Some(done) = self.done.take() {
            let _ = tokio::time::timeout(STOP_WAIT + self.stall, done).await;
        }
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

fn watch(outbound: &Outbound, stop: &AtomicBool) {
    let mut frames = Vec::with_capacity(pitcrew_sdp::frame::MAX_FRAME_LEN + 1);
    while !stop.load(Ordering::Acquire) {
        match outbound.owner().wait_for_change(WAIT_SLICE) {
            Ok(true) => outbound.forward_pending(&mut frames),
            Ok(false) => {}
            Err(_) => std::thread::sleep(INVALID_PAUSE),
        }
    }
}
