//! MessagePack-RPC messages (spec/wire.md): request, response, notification, error map.
//!
//! Decoding validates the whole shape before anything acts on it. A message that fails
//! validation yields a [`BadMessage`] that still carries the msgid when one could be read,
//! so the receiver can answer `bad_request` instead of leaving the caller to time out.

use std::fmt;

use crate::codec::{self, Value};

/// The largest RPC payload a service accepts. Device buffers top out at a few KiB and
/// `recent_logs` at about 1000 records, so 1 MiB leaves ample room while bounding what a
/// hostile peer can make a service allocate.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;

/// The error codes of spec/wire.md, plus any code a newer peer may send.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The service has no handler of that name.
    NoSuchMethod,
    /// Wrong arity or a parameter of the wrong type; the message names the parameter.
    InvalidParams,
    /// The handler returned an error; the message is its text.
    HandlerFailed,
    /// No answer within the deadline (client side) or the handler ran too long (service).
    Timeout,
    /// No peer with that identity is connected to the router.
    Unreachable,
    /// The service's queue is full, or the peer's pipe is full; try again later.
    Busy,
    /// The message was malformed.
    BadRequest,
    /// The service is stopping and takes no new work.
    ShuttingDown,
    /// A code this version does not know, kept verbatim.
    Other(String),
}

impl ErrorCode {
    /// The code as it travels on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::NoSuchMethod => "no_such_method",
            Self::InvalidParams => "invalid_params",
            Self::HandlerFailed => "handler_failed",
            Self::Timeout => "timeout",
            Self::Unreachable => "unreachable",
            Self::Busy => "busy",
            Self::BadRequest => "bad_request",
            Self::ShuttingDown => "shutting_down",
            Self::Other(s) => s,
        }
    }

    /// Parses a wire code; unknown codes are kept as [`ErrorCode::Other`].
    pub fn parse(s: &str) -> Self {
        match s {
            "no_such_method" => Self::NoSuchMethod,
            "invalid_params" => Self::InvalidParams,
            "handler_failed" => Self::HandlerFailed,
            "timeout" => Self::Timeout,
            "unreachable" => Self::Unreachable,
            "busy" => Self::Busy,
            "bad_request" => Self::BadRequest,
            "shutting_down" => Self::ShuttingDown,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An RPC error as carried in a response: `{"code", "message", "context"}`.
///
/// Its `Display` reads as a sentence (`unreachable: no peer "x-service" is connected`), so
/// the CLI can print it as is.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The machine-readable code.
    pub code: ErrorCode,
    /// A sentence for a person.
    pub message: String,
    /// Extra fields (e.g. the service and method); a map, possibly empty.
    pub context: Vec<(Value, Value)>,
}

impl RpcError {
    /// An error with an empty context.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            context: Vec::new(),
        }
    }

    /// Adds one context field.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.context.push((key.into(), value.into()));
        self
    }

    /// The error map of the wire format.
    pub fn to_value(&self) -> Value {
        Value::Map(vec![
            ("code".into(), self.code.as_str().into()),
            ("message".into(), self.message.as_str().into()),
            ("context".into(), Value::Map(self.context.clone())),
        ])
    }

    /// Reads an error map. Missing keys are tolerated (other implementations may omit
    /// `context`), but the value must be a map with a string `code`.
    pub fn from_value(value: &Value) -> Option<Self> {
        let map = value.as_map()?;
        let get = |k: &str| {
            map.iter()
                .find(|(key, _)| key.as_str() == Some(k))
                .map(|(_, v)| v)
        };
        let code = ErrorCode::parse(get("code")?.as_str()?);
        let message = get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let context = get("context")
            .and_then(Value::as_map)
            .cloned()
            .unwrap_or_default();
        Some(Self {
            code,
            message,
            context,
        })
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for RpcError {}

/// `[0, msgid, method, params]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Unique among the sender's requests in flight.
    pub msgid: u32,
    /// The method name.
    pub method: String,
    /// Positional parameters.
    pub params: Vec<Value>,
}

/// `[1, msgid, error, result]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The msgid of the request answered.
    pub msgid: u32,
    /// The result, or the error map.
    pub result: Result<Value, RpcError>,
}

/// `[2, method, params]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The method (or, for streams, the event) name.
    pub method: String,
    /// Positional parameters.
    pub params: Vec<Value>,
}

/// Any MessagePack-RPC message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Expects a [`Response`].
    Request(Request),
    /// Answers a [`Request`].
    Response(Response),
    /// Fire and forget.
    Notification(Notification),
}

/// Why a payload is not a valid RPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadMessage {
    /// The msgid, when the header was readable: the receiver answers `bad_request` to it.
    pub msgid: Option<u32>,
    /// What is wrong, for the error response and the log.
    pub reason: String,
}

impl fmt::Display for BadMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for BadMessage {}

fn bad(msgid: Option<u32>, reason: impl Into<String>) -> BadMessage {
    BadMessage {
        msgid,
        reason: reason.into(),
    }
}

impl Message {
    /// Encodes the message as one MessagePack frame.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(&self.to_value())
    }

    /// The message as a MessagePack array.
    pub fn to_value(&self) -> Value {
        match self {
            Message::Request(r) => Value::Array(vec![
                0.into(),
                r.msgid.into(),
                r.method.as_str().into(),
                Value::Array(r.params.clone()),
            ]),
            Message::Response(r) => {
                let (err, res) = match &r.result {
                    Ok(v) => (Value::Nil, v.clone()),
                    Err(e) => (e.to_value(), Value::Nil),
                };
                Value::Array(vec![1.into(), r.msgid.into(), err, res])
            }
            Message::Notification(n) => Value::Array(vec![
                2.into(),
                n.method.as_str().into(),
                Value::Array(n.params.clone()),
            ]),
        }
    }

    /// Decodes and fully validates one RPC payload.
    ///
    /// # Errors
    /// [`BadMessage`] for anything that is not exactly one well-formed RPC array: not
    /// MessagePack, not an array, an unknown type code, wrong arity, a msgid that is not a
    /// u32, a method that is not a string, params that are not an array, or a payload over
    /// [`MAX_PAYLOAD_BYTES`].
    pub fn decode(bytes: &[u8]) -> Result<Message, BadMessage> {
        let header_msgid = match codec::peek_header(bytes) {
            Some(codec::Header::Request { msgid }) => Some(msgid),
            _ => None,
        };
        if bytes.len() > MAX_PAYLOAD_BYTES {
            return Err(bad(
                header_msgid,
                format!(
                    "message of {} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit",
                    bytes.len()
                ),
            ));
        }
        let value = codec::decode(bytes).map_err(|e| bad(header_msgid, e.to_string()))?;
        Self::from_value(value).map_err(|reason| bad(header_msgid, reason))
    }

    fn from_value(value: Value) -> Result<Message, String> {
        let Value::Array(items) = value else {
            return Err(format!("expected an RPC array, got {}", type_name(&value)));
        };
        let kind = items.first().and_then(Value::as_u64);
        match (kind, items.len()) {
            (Some(0), 4) => {
                let mut it = items.into_iter().skip(1);
                let (msgid, method, params) = (it.next(), it.next(), it.next());
                Ok(Message::Request(Request {
                    msgid: msgid_of(msgid)?,
                    method: method_of(method)?,
                    params: params_of(params)?,
                }))
            }
            (Some(1), 4) => {
                let mut it = items.into_iter().skip(1);
                let (msgid, error, result) = (it.next(), it.next(), it.next());
                let msgid = msgid_of(msgid)?;
                let result = match error {
                    None | Some(Value::Nil) => Ok(result.unwrap_or(Value::Nil)),
                    Some(e) => Err(RpcError::from_value(&e)
                        .ok_or_else(|| "response error is not a map with a code".to_owned())?),
                };
                Ok(Message::Response(Response { msgid, result }))
            }
            (Some(2), 3) => {
                let mut it = items.into_iter().skip(1);
                let (method, params) = (it.next(), it.next());
                Ok(Message::Notification(Notification {
                    method: method_of(method)?,
                    params: params_of(params)?,
                }))
            }
            (Some(k @ 0..=2), n) => Err(format!("message type {k} with {n} elements")),
            (Some(k), _) => Err(format!("unknown message type {k}")),
            (None, _) => Err("message type is not an integer".to_owned()),
        }
    }
}

fn msgid_of(v: Option<Value>) -> Result<u32, String> {
    v.as_ref()
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| "msgid is not a u32".to_owned())
}

fn method_of(v: Option<Value>) -> Result<String, String> {
    match v {
        Some(Value::String(s)) => s
            .into_str()
            .ok_or_else(|| "method name is not valid UTF-8".to_owned()),
        other => Err(format!(
            "method is {}, expected a string",
            other.as_ref().map_or("missing", type_name)
        )),
    }
}

fn params_of(v: Option<Value>) -> Result<Vec<Value>, String> {
    match v {
        Some(Value::Array(a)) => Ok(a),
        other => Err(format!(
            "params is {}, expected an array",
            other.as_ref().map_or("missing", type_name)
        )),
    }
}

/// A short English name of a value's type, for error messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "a boolean",
        Value::Integer(_) => "an integer",
        Value::F32(_) | Value::F64(_) => "a float",
        Value::String(_) => "a string",
        Value::Binary(_) => "binary",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        Value::Ext(..) => "an extension value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(msgid: u32, method: &str, params: Vec<Value>) -> Message {
        Message::Request(Request {
            msgid,
            method: method.into(),
            params,
        })
    }

    #[test]
    fn every_kind_roundtrips() {
        let msgs = [
            req(1, "ping", vec![]),
            req(u32::MAX, "write", vec!["123".into(), Value::Map(vec![])]),
            Message::Response(Response {
                msgid: 9,
                result: Ok("pong".into()),
            }),
            Message::Response(Response {
                msgid: 9,
                result: Err(RpcError::new(ErrorCode::Busy, "queue full").with("service", "x")),
            }),
            Message::Notification(Notification {
                method: "update".into(),
                params: vec![1.into()],
            }),
        ];
        for m in msgs {
            assert_eq!(Message::decode(&m.encode()), Ok(m));
        }
    }

    #[test]
    fn malformed_messages_are_rejected_with_msgid_when_readable() {
        let enc = |v: Value| codec::encode(&v);
        let cases: Vec<(Vec<u8>, Option<u32>, &str)> = vec![
            (b"\x92\x01".to_vec(), None, "not a MessagePack value"),
            (enc(Value::from(5)), None, "expected an RPC array"),
            (
                enc(Value::Array(vec![7.into()])),
                None,
                "unknown message type 7",
            ),
            (
                enc(Value::Array(vec![0.into(), 3.into(), "m".into()])),
                None,
                "message type 0 with 3 elements",
            ),
            (
                enc(Value::Array(vec![
                    0.into(),
                    3.into(),
                    4.into(),
                    Value::Array(vec![]),
                ])),
                Some(3),
                "method is an integer",
            ),
            (
                enc(Value::Array(vec![
                    0.into(),
                    3.into(),
                    "m".into(),
                    "x".into(),
                ])),
                Some(3),
                "params is a string",
            ),
            (
                enc(Value::Array(vec![
                    0.into(),
                    (-1).into(),
                    "m".into(),
                    Value::Array(vec![]),
                ])),
                None,
                "msgid is not a u32",
            ),
        ];
        for (bytes, msgid, reason) in cases {
            let err = Message::decode(&bytes).expect_err(reason);
            assert_eq!(err.msgid, msgid, "{reason}");
            assert!(err.reason.contains(reason), "{} !~ {reason}", err.reason);
        }
    }

    #[test]
    fn oversized_payload_is_rejected_before_decoding() {
        let big = Message::Request(Request {
            msgid: 77,
            method: "m".into(),
            params: vec![Value::Binary(vec![0; MAX_PAYLOAD_BYTES])],
        })
        .encode();
        let err = Message::decode(&big).unwrap_err();
        assert_eq!(err.msgid, Some(77));
        assert!(err.reason.contains("exceeds"));
    }
}
