//! The router's own RPC methods, answered at identity `router`: `ping`, `list_peers`,
//! `stats`, and the `hello` notification with which services announce themselves.

use pitcrew::codec::Value;
use pitcrew::rpc::{ErrorCode, Message, Response, RpcError};

use std::time::Instant;

use crate::peers::{Peers, Side};

/// What the router's own methods read of it.
#[derive(Debug, Clone, Copy)]
pub struct RouterView<'a> {
    /// Who is connected.
    pub peers: &'a Peers,
    /// What was routed and refused.
    pub counters: &'a Counters,
    /// When the router started.
    pub started: Instant,
}

/// Counters served by `stats`.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// Messages forwarded.
    pub routed: u64,
    /// Messages for an identity that is not connected.
    pub unreachable: u64,
    /// Messages refused because the destination's pipe was full.
    pub busy: u64,
    /// Messages with the wrong number of frames.
    pub malformed: u64,
    /// Messages addressed to their own sender.
    pub self_addressed: u64,
    /// Responses and notifications that could not be delivered (dropped).
    pub undeliverable: u64,
    /// Requests answered by the router itself.
    pub router_calls: u64,
    /// Requests of field-key clients for something other than match phases and the
    /// emergency stop (refused).
    pub forbidden: u64,
}

/// Handles one message addressed to the router; returns the encoded response, if any.
pub fn handle(
    router: &RouterView<'_>,
    side: Side,
    sender: &[u8],
    payload: &[u8],
) -> Option<Vec<u8>> {
    let request = match Message::decode(payload) {
        Ok(Message::Request(request)) => request,
        // `hello` and other notifications only update the peer table, done already.
        Ok(Message::Notification(_)) => return None,
        Ok(Message::Response(_)) => return None,
        Err(bad) => {
            tracing::debug!(peer = %String::from_utf8_lossy(sender), side = side.as_str(), reason = %bad.reason, "malformed request to the router");
            let msgid = bad.msgid?;
            return Some(response(
                msgid,
                Err(RpcError::new(ErrorCode::BadRequest, bad.reason)),
            ));
        }
    };
    let result = match (request.method.as_str(), request.params.len()) {
        ("ping", 0) => Ok(Value::from("pong")),
        ("list_peers", 0) => Ok(router.peers.to_value()),
        ("stats", 0) => Ok(stats(router)),
        ("ping" | "list_peers" | "stats", n) => Err(RpcError::new(
            ErrorCode::InvalidParams,
            format!("{} takes no parameters, got {n}", request.method),
        )),
        (other, _) => Err(RpcError::new(
            ErrorCode::NoSuchMethod,
            format!("the router has no method {other:?} (it has ping, list_peers, stats)"),
        )),
    };
    Some(response(request.msgid, result))
}

fn response(msgid: u32, result: Result<Value, RpcError>) -> Vec<u8> {
    Message::Response(Response { msgid, result }).encode()
}

fn stats(router: &RouterView<'_>) -> Value {
    let c = router.counters;
    Value::Map(vec![
        (
            "uptime_s".into(),
            router.started.elapsed().as_secs_f64().into(),
        ),
        ("routed".into(), c.routed.into()),
        ("unreachable".into(), c.unreachable.into()),
        ("busy".into(), c.busy.into()),
        ("malformed".into(), c.malformed.into()),
        ("self_addressed".into(), c.self_addressed.into()),
        ("undeliverable".into(), c.undeliverable.into()),
        ("router_calls".into(), c.router_calls.into()),
        ("forbidden".into(), c.forbidden.into()),
        (
            "refused_connections".into(),
            pitcrew::endpoint::curve::refused_connections().into(),
        ),
        ("clients".into(), router.peers.count(Side::Client).into()),
        ("services".into(), router.peers.count(Side::Service).into()),
    ])
}
