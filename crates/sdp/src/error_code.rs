//! The protocol's error codes, carried by ERROR packets.
//!
//! Every decode error in this crate maps to one of these (`error_code()` on
//! [`FrameError`](crate::FrameError) and [`MessageError`](crate::MessageError)), so the
//! device broker can answer an undecodable frame with the matching ERROR packet and keep the
//! connection.

use std::fmt;

/// An SDP error code, the single payload byte of an ERROR (0xFF) packet.
///
/// Only the codes the spec defines exist; an ERROR packet carrying any other byte is rejected
/// by [`Message::from_packet`](crate::Message::from_packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorCode {
    /// 0xFA: the receiver is busy; the sender should slow down.
    Backoff = 0xFA,
    /// 0xFB: the type byte is unknown, or not accepted in this direction.
    InvalidType = 0xFB,
    /// 0xFC: a frame exceeded the maximum frame length without a delimiter.
    BufferOverflow = 0xFC,
    /// 0xFD: a frame ended where COBS or the packet length said it must not.
    UnexpectedDelimiter = 0xFD,
    /// 0xFE: the packet's XOR checksum did not match.
    BadChecksum = 0xFE,
    /// 0xFF: any other error (e.g. a payload of the wrong length for its type).
    GenericError = 0xFF,
}

impl ErrorCode {
    /// Every defined code, in wire order; handy for exhaustive tests and tools.
    pub const ALL: [ErrorCode; 6] = [
        ErrorCode::Backoff,
        ErrorCode::InvalidType,
        ErrorCode::BufferOverflow,
        ErrorCode::UnexpectedDelimiter,
        ErrorCode::BadChecksum,
        ErrorCode::GenericError,
    ];

    /// The byte that goes on the wire.
    #[must_use]
    pub const fn as_byte(self) -> u8 {
        self as u8
    }

    /// Parses a wire byte; `None` for a byte the spec does not define.
    #[must_use]
    pub const fn from_byte(byte: u8) -> Option<ErrorCode> {
        match byte {
            0xFA => Some(ErrorCode::Backoff),
            0xFB => Some(ErrorCode::InvalidType),
            0xFC => Some(ErrorCode::BufferOverflow),
            0xFD => Some(ErrorCode::UnexpectedDelimiter),
            0xFE => Some(ErrorCode::BadChecksum),
            0xFF => Some(ErrorCode::GenericError),
            _ => None,
        }
    }

    /// The spec's name for the code, as used in logs (`BAD_CHECKSUM`, ...).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            ErrorCode::Backoff => "BACKOFF",
            ErrorCode::InvalidType => "INVALID_TYPE",
            ErrorCode::BufferOverflow => "BUFFER_OVERFLOW",
            ErrorCode::UnexpectedDelimiter => "UNEXPECTED_DELIMITER",
            ErrorCode::BadChecksum => "BAD_CHECKSUM",
            ErrorCode::GenericError => "GENERIC_ERROR",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02X})", self.name(), self.as_byte())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_for_every_code() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_byte(code.as_byte()), Some(code));
        }
    }

    #[test]
    fn spec_code_values() {
        let table = [
            (0xFA, "BACKOFF"),
            (0xFB, "INVALID_TYPE"),
            (0xFC, "BUFFER_OVERFLOW"),
            (0xFD, "UNEXPECTED_DELIMITER"),
            (0xFE, "BAD_CHECKSUM"),
            (0xFF, "GENERIC_ERROR"),
        ];
        for (byte, name) in table {
            let code = ErrorCode::from_byte(byte).expect("spec code");
            assert_eq!(code.name(), name);
        }
    }

    #[test]
    fn undefined_bytes_are_not_codes() {
        let defined = (0..=255u8).filter(|b| ErrorCode::from_byte(*b).is_some());
        assert_eq!(defined.count(), 6);
        assert_eq!(ErrorCode::from_byte(0x00), None);
        assert_eq!(ErrorCode::from_byte(0xF9), None);
    }

    #[test]
    fn display_names_code_and_byte() {
        assert_eq!(ErrorCode::BadChecksum.to_string(), "BAD_CHECKSUM (0xFE)");
    }
}
