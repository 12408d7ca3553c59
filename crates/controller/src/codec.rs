//! The one place that knows the serializer: MessagePack through `rmpv`.
//!
//! Everything on the wire except the Smart Device serial line is one MessagePack value per
//! ZeroMQ frame or UDP datagram (spec/wire.md). Other modules speak in [`Value`] and call
//! [`encode`]/[`decode`]; swapping the serializer means touching only this file and
//! [`scan`], which checks and reads encoded bytes in place for hot paths.

pub mod scan;

use thiserror::Error;

/// A dynamically typed MessagePack value, as carried by every RPC, log record and update.
pub use rmpv::Value;

/// How deeply nested a decoded value may be. Real messages nest three or four levels; a
/// bound keeps a hostile `[[[[...]]]]` from exhausting the stack.
pub const MAX_DEPTH: usize = 32;

/// Why bytes could not be decoded into exactly one [`Value`].
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes are not MessagePack, or end in the middle of a value.
    #[error("not a MessagePack value: {0}")]
    Invalid(String),
    /// A valid value was followed by more bytes; a frame must hold exactly one value.
    #[error("{0} trailing bytes after the MessagePack value")]
    Trailing(usize),
}

/// The value of `key` in a map (`None` for a non-map or a missing key): how a reply's or a
/// record's field is read.
pub fn get<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    match map {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// Encodes `value` as MessagePack, appending to `out`.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail: `Write for Vec<u8>` never returns an error.
    let _ = rmpv::encode::write_value(out, value);
}

/// Encodes `value` as a fresh MessagePack buffer.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(value, &mut out);
    out
}

/// Decodes exactly one MessagePack value from `bytes`.
///
/// # Errors
/// [`DecodeError`] when the bytes are not one complete value, nest deeper than
/// [`MAX_DEPTH`], or carry trailing bytes.
pub fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut rd = bytes;
    let value = rmpv::decode::read_value_with_max_depth(&mut rd, MAX_DEPTH)
        .map_err(|e| DecodeError::Invalid(e.to_string()))?;
    if !rd.is_empty() {
        return Err(DecodeError::Trailing(rd.len()));
    }
    Ok(value)
}

/// The MessagePack-RPC header of a payload, read without decoding the rest.
///
/// The router uses this to answer `unreachable`/`busy` for a request it cannot deliver
/// while never decoding payloads on its fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// `[0, msgid, ...]`: a request that expects a response.
    Request {
        /// The request's msgid.
        msgid: u32,
    },
    /// `[1, msgid, ...]`: a response.
    Response {
        /// The msgid of the request being answered.
        msgid: u32,
    },
    /// `[2, ...]`: a notification.
    Notification,
}

/// Reads the type code and msgid at the front of an RPC payload.
///
/// Returns `None` when the prefix is not a well-formed RPC header.
pub fn peek_header(bytes: &[u8]) -> Option<Header> {
    let mut rd = bytes;
    let len = rmp::decode::read_array_len(&mut rd).ok()?;
    let kind: u8 = rmp::decode::read_int(&mut rd).ok()?;
    match (kind, len) {
        (0, 4) => Some(Header::Request {
            msgid: rmp::decode::read_int(&mut rd).ok()?,
        }),
        (1, 4) => Some(Header::Response {
            msgid: rmp::decode::read_int(&mut rd).ok()?,
        }),
        (2, 3) => Some(Header::Notification),
        _ => None,
    }
}

/// Converts JSON (from a command line or a JSON client) into a [`Value`]. Integers stay
/// integers; other numbers become 64-bit floats.
pub fn from_json(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => n
            .as_u64()
            .map(Value::from)
            .or_else(|| n.as_i64().map(Value::from))
            .unwrap_or_else(|| Value::F64(n.as_f64().unwrap_or(f64::NAN))),
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(from_json).collect()),
        serde_json::Value::Object(o) => Value::Map(
            o.iter()
                .map(|(k, v)| (Value::from(k.as_str()), from_json(v)))
                .collect(),
        ),
    }
}

/// Converts a [`Value`] into JSON for display. Binary becomes an array of byte values,
/// non-string map keys are written as text, and non-finite floats become `null`.
pub fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Nil => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::Integer(i) => i
            .as_u64()
            .map(J::from)
            .or_else(|| i.as_i64().map(J::from))
            .unwrap_or(J::Null),
        Value::F32(f) => serde_json::Number::from_f64(f64::from(*f)).map_or(J::Null, J::Number),
        Value::F64(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::String(s) => J::String(s.as_str().map_or_else(
            || String::from_utf8_lossy(s.as_bytes()).into_owned(),
            str::to_owned,
        )),
        Value::Binary(b) => J::Array(b.iter().map(|x| J::from(*x)).collect()),
        Value::Array(a) => J::Array(a.iter().map(to_json).collect()),
        Value::Map(m) => J::Object(
            m.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::String(s) => s.as_str().unwrap_or_default().to_owned(),
                        other => other.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Value::Ext(..) => J::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_trailing_bytes() {
        let v = Value::Array(vec![Value::from(0), Value::from(7), Value::from("ping")]);
        let bytes = encode(&v);
        assert_eq!(decode(&bytes), Ok(v));
        let mut longer = bytes.clone();
        longer.push(0xc0);
        assert_eq!(decode(&longer), Err(DecodeError::Trailing(1)));
        assert!(matches!(decode(&bytes[..2]), Err(DecodeError::Invalid(_))));
    }

    #[test]
    fn deep_nesting_is_rejected_not_a_stack_overflow() {
        let bytes = vec![0x91; 100_000]; // [[[[...
        assert!(decode(&bytes).is_err());
    }

    #[test]
    fn json_roundtrip_keeps_integers_exact() {
        let json: serde_json::Value =
            serde_json::from_str(r#"{"uid":"56668397794435742564352","n":18446744073709551615,"x":-0.5,"l":[true,null]}"#)
                .unwrap();
        assert_eq!(to_json(&from_json(&json)), json);
    }

    #[test]
    fn header_is_read_without_decoding_the_body() {
        let req = encode(&Value::Array(vec![
            0.into(),
            Value::from(70_000u32),
            "m".into(),
            Value::Array(vec![]),
        ]));
        assert_eq!(peek_header(&req), Some(Header::Request { msgid: 70_000 }));
        // Only the prefix is needed: a truncated body still yields the header.
        assert_eq!(
            peek_header(&req[..7]),
            Some(Header::Request { msgid: 70_000 })
        );
        assert_eq!(peek_header(&[0x93, 0x02]), Some(Header::Notification));
        assert_eq!(peek_header(b"garbage"), None);
        assert_eq!(peek_header(&[]), None);
    }
}
