//! The router's own RPC methods, answered at identity `router`: `ping`, `list_peers`,
//! `stats`, and the `hello` notification with which services announce themselves.

use pitcrew::codec::Value;
use pitcrew::rpc::{ErrorCode, Message, Response, RpcError};

use crate::broker::Broker;
use crate::peers::Side;

/// Handles one message addressed to the router; returns the encoded response, if any.
pub(crate) fn handle(
    broker: &mut Broker,
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
        ("list_peers", 0) => Ok(broker.peers.to_value()),
        ("stats", 0) => Ok(stats(broker)),
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

fn stats(broker: &Broker) -> Value {
    let c = &broker.counters;
    Value::Map(vec![
        (
            "uptime_s".into(),
            broker.started.elapsed().as_secs_f64().into(),
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
        ("clients".into(), broker.peers.count(Side::Client).into()),
        ("services".into(), broker.peers.count(Side::Service).into()),
    ])
}
