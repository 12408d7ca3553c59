//! The 88-bit Smart Device UID and its decimal text form.
//!
//! A UID is `device_id << 72 | year << 64 | random` (see the SDP spec). Outside the serial
//! line it is always written as a decimal string, because it does not fit the integer types
//! of many clients. The `pitcrew-sdp` crate has its own `Uid`; this one exists so that the
//! catalog and the shared-memory buffers do not depend on the protocol crate.

use std::fmt;
use std::str::FromStr;

/// Why a UID was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UidError {
    /// The text is not a decimal integer.
    #[error("UID `{text}` is not a decimal integer")]
    NotDecimal {
        /// The offending text.
        text: String,
    },
    /// The value has bits set above bit 87; it is refused rather than truncated.
    #[error("UID {value} has bits above the 88 UID bits")]
    TooWide {
        /// The offending value, in decimal.
        value: String,
    },
}

/// An 88-bit Smart Device UID.
///
/// Ordered and hashable so it can key maps of connected devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uid(u128);

impl Uid {
    /// The number of significant bits in a UID.
    pub const BITS: u32 = 88;

    /// Builds a UID from its three fields; cannot fail because every field fits.
    pub fn new(device_id: u16, year: u8, random: u64) -> Self {
        Uid((u128::from(device_id) << 72) | (u128::from(year) << 64) | u128::from(random))
    }

    /// Wraps a raw integer, refusing values wider than 88 bits.
    ///
    /// # Errors
    /// [`UidError::TooWide`] when any bit above bit 87 is set.
    pub fn from_u128(value: u128) -> Result<Self, UidError> {
        if value >> Self::BITS != 0 {
            return Err(UidError::TooWide {
                value: value.to_string(),
            });
        }
        Ok(Uid(value))
    }

    /// The raw 88-bit integer.
    pub fn as_u128(self) -> u128 {
        self.0
    }

    /// The Smart Device type id (bits 72..88), used to find the catalog type.
    pub fn device_id(self) -> u16 {
        // Truncation is the point: the value has at most 88 bits, so bits 72.. fit in 16.
        (self.0 >> 72) as u16
    }

    /// The season year (bits 64..72); 0 is spring 2016.
    pub fn year(self) -> u8 {
        (self.0 >> 64) as u8
    }

    /// The board's random part (bits 0..64).
    pub fn random(self) -> u64 {
        self.0 as u64
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Uid {
    type Err = UidError;

    /// Parses the decimal form. Signs, spaces and hex are refused: a UID is never typed
    /// in another form outside the serial line.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(UidError::NotDecimal {
                text: text.to_owned(),
            });
        }
        match text.parse::<u128>() {
            Ok(v) => Uid::from_u128(v),
            // Only digits, so the only possible failure is overflow of u128: too wide.
            Err(_) => Err(UidError::TooWide {
                value: text.to_owned(),
            }),
        }
    }
}

impl TryFrom<u128> for Uid {
    type Error = UidError;

    fn try_from(value: u128) -> Result<Self, Self::Error> {
        Uid::from_u128(value)
    }
}

impl From<Uid> for u128 {
    fn from(uid: Uid) -> u128 {
        uid.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let uid = Uid::new(0x0C, 0, 0);
        assert_eq!(uid.to_string(), "56668397794435742564352");
        let parsed: Uid = "56668397794435742564352".parse().unwrap();
        assert_eq!(parsed, uid);
        assert_eq!(parsed.device_id(), 12);
        let full = Uid::new(0xFFFF, 0xFF, u64::MAX);
        assert_eq!(full.as_u128(), (1u128 << 88) - 1);
        assert_eq!(
            (full.device_id(), full.year(), full.random()),
            (0xFFFF, 0xFF, u64::MAX)
        );
    }

    #[test]
    fn bits_above_88_are_an_error() {
        let err = Uid::from_u128(1u128 << 88).unwrap_err();
        assert!(matches!(err, UidError::TooWide { .. }));
        let text = (1u128 << 88).to_string();
        assert!(matches!(text.parse::<Uid>(), Err(UidError::TooWide { .. })));
        assert!(matches!(
            "999999999999999999999999999999999999999999".parse::<Uid>(),
            Err(UidError::TooWide { .. })
        ));
    }

    #[test]
    fn non_decimal_is_an_error() {
        for bad in ["", "-1", "0x12", " 12", "1e5"] {
            let err = bad.parse::<Uid>().unwrap_err();
            assert!(err.to_string().contains("not a decimal"), "{bad}: {err}");
        }
    }
}
