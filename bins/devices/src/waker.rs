//! [`Waker`]: turns a consumer's write into a wake-up of the device's session without a poll
//! tick. A dedicated thread blocks in the buffer's futex wait ([`Owner::wait_for_change`])
//! and, when a write, read request or subscription change is pending, notifies the async
//! session, then waits until the session has taken the pending sets before waiting again
//! (otherwise it would spin on a still-pending flag).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use pitcrew_buffer::Owner;
use tokio::sync::{oneshot, Notify};

/// Longest single futex wait: bounds how long the thread outlives its session (it checks
/// the stop flag between waits). Not on the latency path: a write wakes the futex at once.
const WAIT_SLICE: Duration = Duration::from_millis(100);
/// How long to wait for the session to take the pending sets before looking again; the
/// session answers within one turn of its loop, so this only matters if it is stuck.
const SERVICE_WAIT: Duration = Duration::from_millis(100);
/// How long [`Waker::stop`] waits for the thread: one futex slice it may be in, and margin.
const STOP_WAIT: Duration = Duration::from_millis(300);
/// Pause while the buffer is invalid (the futex wait refuses an invalid buffer).
const INVALID_PAUSE: Duration = Duration::from_millis(20);

/// Handle of a waker thread; dropping it stops the thread within [`WAIT_SLICE`], and
/// [`Waker::stop`] also waits for that.
#[derive(Debug)]
pub struct Waker {
    stop: Arc<AtomicBool>,
    notify: Arc<Notify>,
    serviced: SyncSender<()>,
    /// Fires once the thread has let go of its `Owner`.
    done: Option<oneshot::Receiver<()>>,
}

impl Waker {
    /// Starts the thread for `owner`'s buffer, at SCHED_FIFO `realtime` priority if given.
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub fn spawn(owner: Arc<Owner>, name: &str, realtime: Option<u8>) -> std::io::Result<Waker> {
        let stop = Arc::new(AtomicBool::new(false));
        let notify = Arc::new(Notify::new());
        let (serviced, serviced_rx) = sync_channel(1);
        let (done_tx, done) = oneshot::channel();
        let thread_stop = Arc::clone(&stop);
        let thread_notify = Arc::clone(&notify);
        std::thread::Builder::new()
            .name(format!("wake-{name}"))
            .spawn(move || {
                if let Some(priority) = realtime {
                    pitcrew::realtime::raise_priority("devices-waker", priority);
                }
                watch(&owner, &thread_stop, &thread_notify, &serviced_rx);
                drop(owner);
                let _ = done_tx.send(());
            })?;
        Ok(Waker {
            stop,
            notify,
            serviced,
            done: Some(done),
        })
    }

    /// Tells the thread to stop (it notices within [`WAIT_SLICE`]) without waiting.
    pub fn signal_stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Stops the thread and waits until it has dropped its reference to the buffer (at
    /// most [`STOP_WAIT`]). The owner unlinks the segment when the last
    /// reference goes, so a broker that exits without this wait can leave a segment behind
    /// in /dev/shm.
    pub async fn stop(mut self) {
        self.signal_stop();
        if let Some(done) = self.done.take() {
            let _ = tokio::time::timeout(STOP_WAIT, done).await;
        }
    }

    /// Resolves when something is pending in the buffer.
    ///
    /// # Cancel safety
    /// Cancel safe: a notification that arrives while nobody waits is kept for the next call.
    pub async fn changed(&self) {
        self.notify.notified().await;
    }

    /// Tells the thread the pending sets were taken, so it may wait again.
    pub fn serviced(&self) {
        let _ = self.serviced.try_send(());
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

fn watch(owner: &Owner, stop: &AtomicBool, notify: &Notify, serviced: &Receiver<()>) {
    while !stop.load(Ordering::Acquire) {
        match owner.wait_for_change(WAIT_SLICE) {
            Ok(true) => {
                notify.notify_one();
                if serviced.recv_timeout(SERVICE_WAIT).is_err() && stop.load(Ordering::Acquire) {
                    return;
                }
            }
            Ok(false) => {}
            Err(_) => std::thread::sleep(INVALID_PAUSE),
        }
    }
}
