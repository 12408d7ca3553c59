//! The `read` RPC's fresh read: asks a device for params through its buffer and waits for
//! the DEV_DATA that brings them ([`crate::arrivals`] records what each one brought).

use std::sync::Arc;
use std::time::Duration;

use pitcrew_buffer::{BufferError, Owner};
use pitcrew_catalog::Uid;

use crate::registry::Registry;

/// How long a `read` waits for the device to answer its DEV_READ. A device answers within
/// milliseconds; one silent for a second is being declared lost by the liveness timeout
/// (1 s) anyway, so waiting longer would only hold an RPC worker for nothing.
pub const READ_ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a fresh read failed.
#[derive(Debug, thiserror::Error)]
pub enum FreshReadError {
    /// No session: there is nobody to ask.
    #[error("device {uid} is not connected, so it cannot be asked for fresh values")]
    NotConnected {
        /// The device.
        uid: Uid,
    },
    /// The buffer refused the request (unknown or unreadable param, invalid buffer).
    #[error("device {uid}: {source}")]
    Request {
        /// The device.
        uid: Uid,
        /// The buffer's error.
        source: BufferError,
    },
    /// The device did not send the params within the bound.
    #[error(
        "device {uid} ({type_name}) did not answer DEV_READ of {params} within {waited:?}; \
         check its connection with `pitcrew devices` or `pitcrew call device-service heartbeat {uid}`"
    )]
    NoAnswer {
        /// The device.
        uid: Uid,
        /// Its catalog type.
        type_name: String,
        /// The params asked for, comma separated.
        params: String,
        /// How long the broker waited.
        waited: Duration,
    },
    /// The device disconnected while the broker waited.
    #[error("device {uid} disconnected before answering DEV_READ of {params}")]
    Disconnected {
        /// The device.
        uid: Uid,
        /// The params asked for, comma separated.
        params: String,
    },
}

/// Asks `uid` for fresh values of `names` (a DEV_READ through the buffer's `read` bits,
/// the same path a controller's request takes) and waits up to `timeout` until the device
/// has sent every one of them. Values streamed by the subscription after the request count
/// too: they are just as fresh.
///
/// # Errors
/// [`FreshReadError`]: not connected, a bad param, no answer in time, or a disconnect.
pub async fn read_fresh(
    registry: &Registry,
    uid: Uid,
    owner: &Arc<Owner>,
    names: &[String],
    timeout: Duration,
) -> Result<(), FreshReadError> {
    let mut arrivals = match (registry.commands(uid), registry.arrivals(uid)) {
        (Some(_), Some(rx)) => rx,
        _ => return Err(FreshReadError::NotConnected { uid }),
    };
    let ty = owner.device_type();
    let bits = pitcrew_catalog::mask_of(names.iter().filter_map(|name| ty.param(name)));
    let since = arrivals.borrow_and_update().stamp();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    owner
        .request_read(&refs)
        .map_err(|source| FreshReadError::Request { uid, source })?;
    let answered = tokio::time::timeout(timeout, async {
        arrivals
            .wait_for(|a| a.all_since(bits, since))
            .await
            .map(|_| ())
    })
    .await;
    match answered {
        Ok(Ok(())) => Ok(()),
        // The sender lives in the registry as long as the broker; treat its end as a loss.
        Ok(Err(_)) => Err(FreshReadError::Disconnected {
            uid,
            params: names.join(", "),
        }),
        Err(_) if registry.commands(uid).is_none() => Err(FreshReadError::Disconnected {
            uid,
            params: names.join(", "),
        }),
        Err(_) => Err(FreshReadError::NoAnswer {
            uid,
            type_name: ty.name().to_owned(),
            params: names.join(", "),
            waited: timeout,
        }),
    }
}
