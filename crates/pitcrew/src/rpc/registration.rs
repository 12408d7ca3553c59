//! Whether a service really holds its identity at the router.
//!
//! The router does not hand a service identity over (its ROUTER socket runs without
//! `ROUTER_HANDOVER`): while a live peer holds `device-service`, libzmq ignores a second
//! connection with that identity, and the first one keeps serving. The second one would
//! then wait forever for requests that never come, so a service confirms its registration:
//! it pings the router on its own connection, which is answered only if the router reads
//! that connection, i.e. if the identity is ours. While no answer comes, it asks the router
//! from a connection of its own whether another peer holds the name; if one does for
//! [`PATIENCE`] (longer than a dead peer's heartbeat expiry, so a peer that was killed is
//! gone by then), this service is refused and stops with [`EndpointError::IdentityTaken`].
//! A router that does not answer at all is not up yet: the ping waits for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::message::{Message, Request};
use super::Client;
use crate::codec::{peek_header, Header, Value};
use crate::endpoint::{Dealer, EndpointError, Frames, HEARTBEAT_TIMEOUT};

/// The msgid of the registration ping. Services send no other requests to the router.
const PING_MSGID: u32 = u32::MAX;
/// How long to wait for the ping's answer before asking whether the identity is taken.
const ANSWER_WAIT: Duration = Duration::from_millis(1500);
/// How long another peer must hold the identity before this service gives up.
pub const PATIENCE: Duration = Duration::from_millis(HEARTBEAT_TIMEOUT.as_millis() as u64 + 2000);

/// Whether `frames` is the router's answer to the registration ping.
pub(crate) fn is_answer(frames: &Frames) -> bool {
    matches!(frames.as_slice(), [sender, payload]
        if sender.as_slice() == b"router"
            && peek_header(payload) == Some(Header::Response { msgid: PING_MSGID }))
}

/// Pings the router on `dealer` and waits for `answered`; returns only if the identity
/// `name` turns out to be held by another live peer (the error to stop with). Once
/// registered it never returns.
pub(crate) async fn confirm(
    dealer: Dealer,
    answered: Arc<Notify>,
    address: String,
    name: String,
) -> EndpointError {
    let ping = Message::Request(Request {
        msgid: PING_MSGID,
        method: "ping".into(),
        params: Vec::new(),
    });
    let _ = dealer.try_send(vec![b"router".to_vec(), ping.encode()]);
    let mut held_since: Option<Instant> = None;
    loop {
        tokio::select! {
            () = answered.notified() => {
                tracing::debug!(service = %name, "registered at the router");
                return std::future::pending().await;
            }
            () = tokio::time::sleep(ANSWER_WAIT) => {}
        }
        match held_by_another(&address, &name).await {
            Some(true) => {
                let since = *held_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= PATIENCE {
                    return EndpointError::IdentityTaken(name);
                }
                tracing::warn!(service = %name, "the router lists another peer with this service's identity; waiting for it to go");
            }
            _ => held_since = None,
        }
    }
}

/// Asks the router (from a connection with an identity of its own) whether a peer named
/// `name` is listed; `None` when the router does not answer.
async fn held_by_another(address: &str, name: &str) -> Option<bool> {
    let client = Client::connect(address, &format!("{name}-check"), Duration::from_secs(1)).ok()?;
    let peers = client.call("router", "list_peers", Vec::new()).await.ok()?;
    let Value::Array(peers) = peers else {
        return None;
    };
    Some(peers.iter().any(|peer| {
        let field = |key: &str| match peer {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .and_then(|(_, v)| v.as_str().map(str::to_owned)),
            _ => None,
        };
        field("identity").as_deref() == Some(name) && field("side").as_deref() == Some("service")
    }))
}
