//! The loop that owns one [`AsyncSocket`]: sends what arrives on a bounded channel and hands
//! every received message to a callback.
//!
//! Back-pressure is explicit at both ends: when libzmq's high-water mark is reached the
//! loop holds one message and stops taking from the channel (senders then wait on the
//! bounded channel); when the callback is slow the loop simply reads less and libzmq's
//! receive high-water mark pushes back on the peer.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::socket::{AsyncSocket, Frames, Want};

/// How many messages are received in a row before the loop yields, so that one busy socket
/// cannot starve other tasks on the same runtime thread.
const RECV_BATCH: usize = 256;

/// Runs until `cancel` fires or every sender of `outgoing` is dropped.
pub(crate) async fn run(
    mut socket: AsyncSocket,
    mut outgoing: mpsc::Receiver<Frames>,
    mut on_message: impl FnMut(Frames),
    cancel: CancellationToken,
    name: String,
) {
    let mut held: Option<Frames> = None;
    let mut closed = false;
    loop {
        // Send everything we can without blocking.
        loop {
            if held.is_none() {
                match outgoing.try_recv() {
                    Ok(frames) => held = Some(frames),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            let Some(frames) = held.as_ref() else { break };
            match socket.try_send(frames) {
                Ok(true) => held = None,
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(socket = %name, error = %e, "dropping a message the socket refused");
                    held = None;
                }
            }
        }
        if closed && held.is_none() {
            return;
        }

        // Receive a bounded batch.
        let mut received = 0;
        while received < RECV_BATCH {
            match socket.try_recv() {
                Ok(Some(frames)) => {
                    on_message(frames);
                    received += 1;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(socket = %name, error = %e, "receive failed");
                    break;
                }
            }
        }
        if received == RECV_BATCH {
            tokio::task::yield_now().await;
            continue;
        }

        let want = if held.is_some() {
            Want::RecvOrSend
        } else {
            Want::Recv
        };
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            frames = outgoing.recv(), if held.is_none() && !closed => match frames {
                Some(frames) => held = Some(frames),
                None => closed = true,
            },
            ready = socket.wait(want) => {
                if let Err(e) = ready {
                    tracing::error!(socket = %name, error = %e, "socket readiness failed; closing");
                    return;
                }
            }
        }
    }
}
