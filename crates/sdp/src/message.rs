//! Typed SDP messages and their conversion to and from [`Packet`]s.
//!
//! [`Message`] is what the device broker, the emulator and the CLI work with. Conversion from
//! a packet validates the type byte and the exact payload layout of that type; nothing is
//! returned for a packet that fails any check, so a bad message is never half-applied. DEV_WRITE
//! and DEV_DATA values stay borrowed from the packet (see [`crate::params`]).

use std::fmt;

use thiserror::Error;

use crate::frame;
use crate::packet::{Packet, MAX_PAYLOAD_LEN};
use crate::params::{ParamData, ParamError, ParamWidths};
use crate::uid::{Uid, UID_WIRE_LEN};
use crate::ErrorCode;

/// Which side of the link sends a message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Only the host (device broker) sends it.
    HostToDevice,
    /// Only the Smart Device sends it.
    DeviceToHost,
    /// Either side sends it.
    Both,
}

/// The type byte of an SDP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// 0x10: discovery; the device answers with SUB_RES.
    Ping = 0x10,
    /// 0x11: set the subscription (params bitmap and interval).
    SubReq = 0x11,
    /// 0x12: the device's subscription and UID.
    SubRes = 0x12,
    /// 0x13: ask for a fresh reading of some params.
    DevRead = 0x13,
    /// 0x14: set some params' values.
    DevWrite = 0x14,
    /// 0x15: some params' current values.
    DevData = 0x15,
    /// 0x16: stop actuating (keep talking).
    DevDisable = 0x16,
    /// 0x17: heartbeat request.
    HbReq = 0x17,
    /// 0x18: heartbeat response.
    HbRes = 0x18,
    /// 0xFF: an error report.
    Error = 0xFF,
}

impl MessageType {
    /// Every type, in wire order.
    pub const ALL: [MessageType; 10] = [
        MessageType::Ping,
        MessageType::SubReq,
        MessageType::SubRes,
        MessageType::DevRead,
        MessageType::DevWrite,
        MessageType::DevData,
        MessageType::DevDisable,
        MessageType::HbReq,
        MessageType::HbRes,
        MessageType::Error,
    ];

    /// The type byte.
    #[must_use]
    pub const fn as_byte(self) -> u8 {
        self as u8
    }

    /// Parses a type byte; `None` for a byte the spec does not define.
    #[must_use]
    pub const fn from_byte(byte: u8) -> Option<MessageType> {
        Some(match byte {
            0x10 => MessageType::Ping,
            0x11 => MessageType::SubReq,
            0x12 => MessageType::SubRes,
            0x13 => MessageType::DevRead,
            0x14 => MessageType::DevWrite,
            0x15 => MessageType::DevData,
            0x16 => MessageType::DevDisable,
            0x17 => MessageType::HbReq,
            0x18 => MessageType::HbRes,
            0xFF => MessageType::Error,
            _ => return None,
        })
    }

    /// Who may send this type; the broker rejects device-sent host-only types with
    /// INVALID_TYPE before they touch any state.
    #[must_use]
    pub const fn direction(self) -> Direction {
        match self {
            MessageType::Ping
            | MessageType::SubReq
            | MessageType::DevRead
            | MessageType::DevWrite
            | MessageType::DevDisable => Direction::HostToDevice,
            MessageType::SubRes | MessageType::DevData => Direction::DeviceToHost,
            MessageType::HbReq | MessageType::HbRes | MessageType::Error => Direction::Both,
        }
    }

    /// The spec's name for the type (`SUB_REQ`, ...).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            MessageType::Ping => "PING",
            MessageType::SubReq => "SUB_REQ",
            MessageType::SubRes => "SUB_RES",
            MessageType::DevRead => "DEV_READ",
            MessageType::DevWrite => "DEV_WRITE",
            MessageType::DevData => "DEV_DATA",
            MessageType::DevDisable => "DEV_DISABLE",
            MessageType::HbReq => "HB_REQ",
            MessageType::HbRes => "HB_RES",
            MessageType::Error => "ERROR",
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02X})", self.name(), self.as_byte())
    }
}

/// Why a packet is not a valid message, or a message cannot be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MessageError {
    /// The type byte is not one the spec defines.
    #[error("unknown message type 0x{0:02X}")]
    InvalidType(u8),
    /// The payload length is wrong for a fixed-layout type.
    #[error("{msg_type} payload must be {expected} bytes but is {actual}")]
    PayloadLength {
        /// The message type.
        msg_type: MessageType,
        /// The layout's length.
        expected: usize,
        /// The received length.
        actual: usize,
    },
    /// An ERROR packet carries a code the spec does not define.
    #[error("ERROR packet carries undefined code 0x{0:02X}")]
    UnknownErrorCode(u8),
    /// A DEV_WRITE/DEV_DATA parameter set is malformed or too long.
    #[error("{msg_type} rejected: {source}")]
    Params {
        /// DEV_WRITE or DEV_DATA.
        msg_type: MessageType,
        /// What is wrong with the parameter set.
        #[source]
        source: ParamError,
    },
}

impl MessageError {
    /// The ERROR code the receiver answers this with.
    ///
    /// Never answer an incoming ERROR packet with another ERROR, or two peers can ping-pong.
    #[must_use]
    pub const fn error_code(&self) -> ErrorCode {
        match self {
            MessageError::InvalidType(_) => ErrorCode::InvalidType,
            MessageError::PayloadLength { .. }
            | MessageError::UnknownErrorCode(_)
            | MessageError::Params { .. } => ErrorCode::GenericError,
        }
    }
}

/// One SDP message, typed. `'a` is the lifetime of DEV_WRITE/DEV_DATA value bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// Discovery request; the device answers with SUB_RES.
    Ping,
    /// Subscribe to `params` every `interval_ms` (0 = no subscription).
    SubReq {
        /// Params bitmap (bit i = param i).
        params: u16,
        /// Interval in milliseconds; firmware clamps to 40..=250 (0 stays 0).
        interval_ms: u16,
    },
    /// The device's current subscription and identity.
    SubRes {
        /// Params bitmap of the subscription.
        params: u16,
        /// Subscription interval in milliseconds.
        interval_ms: u16,
        /// The device's UID.
        uid: Uid,
    },
    /// Ask for a fresh reading of `params`.
    DevRead {
        /// Params bitmap.
        params: u16,
    },
    /// Set parameter values (host → device).
    DevWrite(ParamData<'a>),
    /// Current parameter values (device → host).
    DevData(ParamData<'a>),
    /// Stop actuating but keep talking.
    DevDisable,
    /// Heartbeat request with its id.
    HbReq(u8),
    /// Heartbeat response echoing the request's id.
    HbRes(u8),
    /// An error report.
    Error(ErrorCode),
}

impl Message<'static> {
    /// SUB_REQ for the params of a bitmap (ids below 16) and an interval, saturated to
    /// the wire's u16 milliseconds.
    #[must_use]
    pub fn sub_req(params: u64, interval: std::time::Duration) -> Message<'static> {
        Message::SubReq {
            params: (params & 0xFFFF) as u16,
            interval_ms: u16::try_from(interval.as_millis()).unwrap_or(u16::MAX),
        }
    }
}

impl<'a> Message<'a> {
    /// The message's type byte.
    #[must_use]
    pub const fn msg_type(&self) -> MessageType {
        match self {
            Message::Ping => MessageType::Ping,
            Message::SubReq { .. } => MessageType::SubReq,
            Message::SubRes { .. } => MessageType::SubRes,
            Message::DevRead { .. } => MessageType::DevRead,
            Message::DevWrite(_) => MessageType::DevWrite,
            Message::DevData(_) => MessageType::DevData,
            Message::DevDisable => MessageType::DevDisable,
            Message::HbReq(_) => MessageType::HbReq,
            Message::HbRes(_) => MessageType::HbRes,
            Message::Error(_) => MessageType::Error,
        }
    }

    /// Builds the packet for this message.
    ///
    /// # Errors
    ///
    /// [`MessageError::Params`] with [`ParamError::TooLongForOneMessage`] if a DEV_WRITE or
    /// DEV_DATA set needs more than 255 payload bytes; send each of
    /// [`ParamData::split`]'s parts instead. Every other message always succeeds.
    pub fn to_packet(&self) -> Result<Packet, MessageError> {
        let msg_type = self.msg_type();
        let mut payload = [0u8; MAX_PAYLOAD_LEN];
        let len = match *self {
            Message::Ping | Message::DevDisable => 0,
            Message::SubReq {
                params,
                interval_ms,
            } => put(
                &mut payload,
                &[&params.to_le_bytes(), &interval_ms.to_le_bytes()],
            ),
            Message::SubRes {
                params,
                interval_ms,
                uid,
            } => put(
                &mut payload,
                &[
                    &params.to_le_bytes(),
                    &interval_ms.to_le_bytes(),
                    &uid.to_wire_bytes(),
                ],
            ),
            Message::DevRead { params } => put(&mut payload, &[&params.to_le_bytes()]),
            Message::DevWrite(data) | Message::DevData(data) => {
                data.encode_payload(&mut payload)
                    .map_err(|source| MessageError::Params { msg_type, source })?
            }
            Message::HbReq(id) | Message::HbRes(id) => put(&mut payload, &[&[id]]),
            Message::Error(code) => put(&mut payload, &[&[code.as_byte()]]),
        };
        // `len` never exceeds the 255-byte buffer, so neither error below can happen; they
        // are mapped rather than unwrapped to keep this function panic-free.
        let too_long = MessageError::Params {
            msg_type,
            source: ParamError::TooLongForOneMessage { len },
        };
        let payload = payload.get(..len).ok_or(too_long)?;
        Packet::new(msg_type.as_byte(), payload).map_err(|_| too_long)
    }

    /// Parses a validated packet; `widths` are the receiver's value slots for
    /// DEV_WRITE/DEV_DATA (ignored for other types).
    ///
    /// # Errors
    ///
    /// [`MessageError::InvalidType`] for an unknown type byte,
    /// [`MessageError::PayloadLength`] for a fixed-layout payload of the wrong length,
    /// [`MessageError::UnknownErrorCode`] for an ERROR with an undefined code and
    /// [`MessageError::Params`] for a parameter set that does not match `widths`.
    pub fn from_packet(
        packet: &'a Packet,
        widths: &ParamWidths,
    ) -> Result<Message<'a>, MessageError> {
        let msg_type = MessageType::from_byte(packet.msg_type())
            .ok_or(MessageError::InvalidType(packet.msg_type()))?;
        let payload = packet.payload();
        let params = |source| MessageError::Params { msg_type, source };
        Ok(match msg_type {
            MessageType::Ping => {
                fixed::<0>(msg_type, payload)?;
                Message::Ping
            }
            MessageType::DevDisable => {
                fixed::<0>(msg_type, payload)?;
                Message::DevDisable
            }
            MessageType::SubReq => {
                let [p0, p1, i0, i1] = fixed(msg_type, payload)?;
                Message::SubReq {
                    params: u16::from_le_bytes([p0, p1]),
                    interval_ms: u16::from_le_bytes([i0, i1]),
                }
            }
            MessageType::SubRes => {
                let [p0, p1, i0, i1, uid @ ..] = fixed::<{ 4 + UID_WIRE_LEN }>(msg_type, payload)?;
                Message::SubRes {
                    params: u16::from_le_bytes([p0, p1]),
                    interval_ms: u16::from_le_bytes([i0, i1]),
                    uid: Uid::from_wire_bytes(uid),
                }
            }
            MessageType::DevRead => Message::DevRead {
                params: u16::from_le_bytes(fixed(msg_type, payload)?),
            },
            MessageType::DevWrite => {
                Message::DevWrite(ParamData::decode(payload, widths).map_err(params)?)
            }
            MessageType::DevData => {
                Message::DevData(ParamData::decode(payload, widths).map_err(params)?)
            }
            MessageType::HbReq => Message::HbReq(u8::from_le_bytes(fixed(msg_type, payload)?)),
            MessageType::HbRes => Message::HbRes(u8::from_le_bytes(fixed(msg_type, payload)?)),
            MessageType::Error => {
                let [code] = fixed(msg_type, payload)?;
                Message::Error(
                    ErrorCode::from_byte(code).ok_or(MessageError::UnknownErrorCode(code))?,
                )
            }
        })
    }

    /// Appends this message as a frame (COBS bytes then `0x00`) to `out`.
    ///
    /// # Errors
    ///
    /// As [`Message::to_packet`].
    pub fn encode_frame(&self, out: &mut Vec<u8>) -> Result<(), MessageError> {
        frame::encode(&self.to_packet()?, out);
        Ok(())
    }
}

/// Copies `parts` one after another into `payload`, returning the total length.
///
/// Only used for the fixed layouts (at most 15 bytes), which always fit.
fn put(payload: &mut [u8; MAX_PAYLOAD_LEN], parts: &[&[u8]]) -> usize {
    let mut len = 0;
    for part in parts {
        if let Some(dst) = payload.get_mut(len..len + part.len()) {
            dst.copy_from_slice(part);
        }
        len += part.len();
    }
    len
}

/// Reads a payload that must be exactly `N` bytes.
fn fixed<const N: usize>(msg_type: MessageType, payload: &[u8]) -> Result<[u8; N], MessageError> {
    payload.try_into().map_err(|_| MessageError::PayloadLength {
        msg_type,
        expected: N,
        actual: payload.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(msg_type: u8, payload: &[u8]) -> Packet {
        Packet::new(msg_type, payload).expect("fits")
    }

    fn decode(packet: &Packet) -> Result<Message<'_>, MessageError> {
        let mut widths = ParamWidths::new();
        widths.set(0, 4).expect("valid");
        Message::from_packet(packet, &widths)
    }

    #[test]
    fn type_bytes_round_trip() {
        for msg_type in MessageType::ALL {
            assert_eq!(MessageType::from_byte(msg_type.as_byte()), Some(msg_type));
        }
        let defined = (0..=255u8).filter(|b| MessageType::from_byte(*b).is_some());
        assert_eq!(defined.count(), MessageType::ALL.len());
        assert_eq!(MessageType::SubRes.to_string(), "SUB_RES (0x12)");
    }

    #[test]
    fn unknown_type_is_invalid_type() {
        for byte in [0x00, 0x0F, 0x19, 0x80, 0xFE] {
            let error = decode(&packet(byte, &[])).expect_err("unknown type");
            assert_eq!(error, MessageError::InvalidType(byte));
            assert_eq!(error.error_code(), ErrorCode::InvalidType);
        }
    }

    #[test]
    fn wrong_payload_length_is_an_error_for_every_fixed_type() {
        let table = [
            (MessageType::Ping, 0usize),
            (MessageType::DevDisable, 0),
            (MessageType::SubReq, 4),
            (MessageType::SubRes, 15),
            (MessageType::DevRead, 2),
            (MessageType::HbReq, 1),
            (MessageType::HbRes, 1),
            (MessageType::Error, 1),
        ];
        for (msg_type, expected) in table {
            for actual in [0, expected.saturating_sub(1), expected + 1, 255] {
                if actual == expected {
                    continue;
                }
                let p = packet(msg_type.as_byte(), &vec![0xFF; actual]);
                let error = decode(&p).expect_err("wrong length");
                assert_eq!(
                    error,
                    MessageError::PayloadLength {
                        msg_type,
                        expected,
                        actual
                    }
                );
                assert_eq!(error.error_code(), ErrorCode::GenericError);
            }
        }
    }

    #[test]
    fn undefined_error_code_is_rejected() {
        let error = decode(&packet(0xFF, &[0x00])).expect_err("undefined code");
        assert_eq!(error, MessageError::UnknownErrorCode(0x00));
    }

    #[test]
    fn param_set_without_slot_is_rejected_whole() {
        // Param 0 has a 4-byte slot, param 1 none.
        let p = packet(0x15, &[0x03, 0x00, 1, 2, 3, 4, 5]);
        let error = decode(&p).expect_err("no slot for param 1");
        assert_eq!(
            error,
            MessageError::Params {
                msg_type: MessageType::DevData,
                source: ParamError::NoSlot { id: 1 }
            }
        );
        assert_eq!(error.error_code(), ErrorCode::GenericError);
    }

    #[test]
    fn oversized_param_set_cannot_become_one_packet() {
        let big = [0x11u8; 200];
        let data = ParamData::new()
            .with(0, &big)
            .and_then(|d| d.with(1, &big))
            .expect("valid");
        assert_eq!(
            Message::DevWrite(data).to_packet(),
            Err(MessageError::Params {
                msg_type: MessageType::DevWrite,
                source: ParamError::TooLongForOneMessage { len: 402 }
            })
        );
        for part in data.split() {
            assert!(Message::DevWrite(part).to_packet().is_ok());
        }
    }

    #[test]
    fn directions_follow_the_spec_table() {
        use Direction::*;
        let device_may_send: Vec<_> = MessageType::ALL
            .into_iter()
            .filter(|t| t.direction() != HostToDevice)
            .collect();
        assert_eq!(
            device_may_send,
            [
                MessageType::SubRes,
                MessageType::DevData,
                MessageType::HbReq,
                MessageType::HbRes,
                MessageType::Error
            ]
        );
    }

    #[test]
    fn encode_frame_appends() {
        let mut out = Vec::new();
        Message::Ping.encode_frame(&mut out).expect("encodes");
        Message::DevDisable.encode_frame(&mut out).expect("encodes");
        assert_eq!(
            out,
            [0x02, 0x10, 0x02, 0x10, 0x00, 0x02, 0x16, 0x02, 0x16, 0x00]
        );
    }
}
