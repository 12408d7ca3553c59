//! The raw SDP packet: `[type: u8][len: u8][payload: len bytes][checksum: u8]`.
//!
//! A [`Packet`] is always valid: its length byte matches its payload and its checksum is the
//! XOR of every other byte. It keeps the whole wire form in a fixed array, so building,
//! decoding and sending one never allocates, and [`Packet::as_bytes`] is free.

use std::fmt;

use thiserror::Error;

use crate::ErrorCode;

/// The largest payload a packet can carry (`len` is one byte).
pub const MAX_PAYLOAD_LEN: usize = 255;

/// Bytes a packet adds around its payload: type, len and checksum.
pub const PACKET_OVERHEAD: usize = 3;

/// The largest raw packet, before COBS: 3 + 255 = 258 bytes.
pub const MAX_PACKET_LEN: usize = PACKET_OVERHEAD + MAX_PAYLOAD_LEN;

/// Why bytes are not a valid packet, or a payload cannot become one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PacketError {
    /// Fewer than 3 bytes: not even type, len and checksum.
    #[error(
        "packet is {actual} bytes long, shorter than the 3-byte minimum (type, len, checksum)"
    )]
    TooShort {
        /// The decoded length.
        actual: usize,
    },
    /// The length byte disagrees with the number of bytes received.
    #[error(
        "packet length byte says {declared} payload bytes, so the packet should be {expected} \
         bytes, but {actual} bytes arrived"
    )]
    LengthMismatch {
        /// The `len` byte.
        declared: u8,
        /// `3 + len`.
        expected: usize,
        /// The decoded length.
        actual: usize,
    },
    /// The checksum byte is not the XOR of the other bytes.
    #[error("packet checksum is 0x{actual:02X} but its bytes XOR to 0x{expected:02X}; a byte was corrupted on the line")]
    BadChecksum {
        /// The checksum computed from the received bytes.
        expected: u8,
        /// The checksum byte received.
        actual: u8,
    },
    /// A payload longer than 255 bytes cannot be sent in one packet.
    #[error("payload of {len} bytes exceeds the {MAX_PAYLOAD_LEN}-byte packet limit; split it into several messages")]
    PayloadTooLong {
        /// The payload length that was asked for.
        len: usize,
    },
}

impl PacketError {
    /// The ERROR code the receiver answers this with.
    #[must_use]
    pub const fn error_code(&self) -> ErrorCode {
        match self {
            PacketError::TooShort { .. } | PacketError::LengthMismatch { .. } => {
                ErrorCode::UnexpectedDelimiter
            }
            PacketError::BadChecksum { .. } => ErrorCode::BadChecksum,
            PacketError::PayloadTooLong { .. } => ErrorCode::GenericError,
        }
    }
}

/// One validated SDP packet, stored in its raw wire form.
///
/// The type byte is kept raw (not a [`crate::MessageType`]) so that an unknown type can still
/// be framed, checked and answered with INVALID_TYPE one layer up.
#[derive(Clone, PartialEq, Eq)]
pub struct Packet {
    /// `[type, len, payload.., checksum]`; bytes past `3 + len` are zero.
    ///
    /// Invariant relied on by the indexing below: `len = bytes[1] <= 255`, so
    /// `3 + len <= MAX_PACKET_LEN` and every range used here is in bounds.
    bytes: [u8; MAX_PACKET_LEN],
}

impl Packet {
    /// Builds a packet of type `msg_type` around `payload`, computing len and checksum.
    ///
    /// # Errors
    ///
    /// [`PacketError::PayloadTooLong`] if `payload` is longer than 255 bytes.
    pub fn new(msg_type: u8, payload: &[u8]) -> Result<Packet, PacketError> {
        let len = u8::try_from(payload.len())
            .map_err(|_| PacketError::PayloadTooLong { len: payload.len() })?;
        // `len <= 255` was just checked, so `end = 2 + len < MAX_PACKET_LEN`.
        let mut bytes = [0u8; MAX_PACKET_LEN];
        bytes[0] = msg_type;
        bytes[1] = len;
        let end = 2 + payload.len();
        bytes[2..end].copy_from_slice(payload);
        bytes[end] = checksum(&bytes[..end]);
        Ok(Packet { bytes })
    }

    /// Parses and validates a decoded (un-COBSed) packet.
    ///
    /// Validates everything before returning, as the spec demands: the length must be exactly
    /// `3 + len` and the checksum must match.
    ///
    /// # Errors
    ///
    /// [`PacketError::TooShort`], [`PacketError::LengthMismatch`] or
    /// [`PacketError::BadChecksum`].
    pub fn decode(raw: &[u8]) -> Result<Packet, PacketError> {
        let [msg_type, declared, _, ..] = *raw else {
            return Err(PacketError::TooShort { actual: raw.len() });
        };
        let expected = PACKET_OVERHEAD + usize::from(declared);
        if raw.len() != expected {
            return Err(PacketError::LengthMismatch {
                declared,
                expected,
                actual: raw.len(),
            });
        }
        // `raw.len() >= 3` (matched above), so `body` holds at least type and len.
        let (body, received) = raw.split_at(raw.len() - 1);
        let computed = checksum(body);
        if received != [computed] {
            return Err(PacketError::BadChecksum {
                expected: computed,
                actual: received.first().copied().unwrap_or_default(),
            });
        }
        Packet::new(msg_type, &body[2..])
    }

    /// The raw type byte.
    #[must_use]
    pub fn msg_type(&self) -> u8 {
        self.bytes[0]
    }

    /// The payload (0..=255 bytes).
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.bytes[2..2 + usize::from(self.bytes[1])]
    }

    /// The checksum byte: XOR of type, len and every payload byte.
    #[must_use]
    pub fn checksum(&self) -> u8 {
        self.bytes[self.wire_len() - 1]
    }

    /// The raw packet as it goes into COBS: type, len, payload, checksum.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.wire_len()]
    }

    /// Length of the raw packet, `3 + len`.
    fn wire_len(&self) -> usize {
        PACKET_OVERHEAD + usize::from(self.bytes[1])
    }
}

impl fmt::Debug for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Packet")
            .field("msg_type", &format_args!("0x{:02X}", self.msg_type()))
            .field("payload", &format_args!("{:02x?}", self.payload()))
            .finish()
    }
}

/// XOR of all bytes: the SDP checksum of `type, len, payload`.
fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |acc, b| acc ^ b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_spec_raw_packets() {
        let table: &[(u8, &[u8], &[u8])] = &[
            (0x10, &[], &[0x10, 0x00, 0x10]),
            (0x17, &[0x80], &[0x17, 0x01, 0x80, 0x96]),
            (
                0x11,
                &[0x02, 0x00, 0xe8, 0x03],
                &[0x11, 0x04, 0x02, 0x00, 0xe8, 0x03, 0xfc],
            ),
        ];
        for &(msg_type, payload, raw) in table {
            let packet = Packet::new(msg_type, payload).expect("fits");
            assert_eq!(packet.as_bytes(), raw);
            assert_eq!(Packet::decode(raw), Ok(packet));
        }
    }

    #[test]
    fn accessors() {
        let packet = Packet::new(0x13, &[0x05, 0x00]).expect("fits");
        assert_eq!(packet.msg_type(), 0x13);
        assert_eq!(packet.payload(), &[0x05, 0x00]);
        assert_eq!(packet.checksum(), 0x14);
    }

    #[test]
    fn longest_payload_fits_and_one_more_does_not() {
        assert!(Packet::new(0x14, &[0xff; 255]).is_ok());
        assert_eq!(
            Packet::new(0x14, &[0xff; 256]),
            Err(PacketError::PayloadTooLong { len: 256 })
        );
    }

    #[test]
    fn rejects_short_mismatched_and_corrupt_packets() {
        let table: &[(&[u8], PacketError)] = &[
            (&[], PacketError::TooShort { actual: 0 }),
            (&[0x10, 0x00], PacketError::TooShort { actual: 2 }),
            (
                &[0x10, 0x01, 0x10],
                PacketError::LengthMismatch {
                    declared: 1,
                    expected: 4,
                    actual: 3,
                },
            ),
            (
                &[0x10, 0x00, 0x10, 0x00],
                PacketError::LengthMismatch {
                    declared: 0,
                    expected: 3,
                    actual: 4,
                },
            ),
            (
                &[0x17, 0x01, 0x81, 0x96],
                PacketError::BadChecksum {
                    expected: 0x97,
                    actual: 0x96,
                },
            ),
        ];
        for (raw, error) in table {
            assert_eq!(Packet::decode(raw), Err(*error), "{raw:02x?}");
        }
    }

    #[test]
    fn error_codes() {
        assert_eq!(
            PacketError::TooShort { actual: 2 }.error_code(),
            ErrorCode::UnexpectedDelimiter
        );
        let bad = PacketError::BadChecksum {
            expected: 1,
            actual: 2,
        };
        assert_eq!(bad.error_code(), ErrorCode::BadChecksum);
    }
}
