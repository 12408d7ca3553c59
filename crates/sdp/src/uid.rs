//! The 88-bit Smart Device UID.
//!
//! A UID is `device_id: u16 | year: u8 | random: u64`, as the integer
//! `device_id << 72 | year << 64 | random`. On the serial line it is the last 11 bytes of
//! SUB_RES (each field little-endian); everywhere else (RPC, JSON, multicast, logs,
//! shared-memory names) it is a **decimal string**, because it does not fit the integer types
//! of many clients. A value with bits above 88 is an error, never truncated.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Number of significant bits in a UID.
pub const UID_BITS: u32 = 88;

/// Bytes of a UID on the wire (device_id, year, random).
pub const UID_WIRE_LEN: usize = 11;

/// Why a number or string is not a UID.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UidError {
    /// The value has bits set above bit 88.
    #[error(
        "UID {value} has bits set above bit {UID_BITS}; a UID is device_id (16 bits) | \
         year (8 bits) | random (64 bits)"
    )]
    TooWide {
        /// The rejected value.
        value: u128,
    },
    /// The string is not a plain decimal number.
    #[error("UID {input:?} is not a decimal number; a UID is written as decimal digits only")]
    NotDecimal {
        /// The rejected text.
        input: String,
    },
    /// The string is a decimal number too large for any UID.
    #[error("UID {input:?} is larger than any {UID_BITS}-bit UID")]
    TooLarge {
        /// The rejected text.
        input: String,
    },
}

/// A Smart Device's unique id, announced in SUB_RES.
///
/// Always holds at most 88 significant bits; build one with [`Uid::new`],
/// [`Uid::from_u128`], [`Uid::from_wire_bytes`] or by parsing its decimal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Uid(u128);

impl Uid {
    /// Composes a UID from its fields.
    #[must_use]
    pub const fn new(device_id: u16, year: u8, random: u64) -> Uid {
        Uid((device_id as u128) << 72 | (year as u128) << 64 | random as u128)
    }

    /// Wraps an integer UID.
    ///
    /// # Errors
    ///
    /// [`UidError::TooWide`] if any bit above bit 88 is set.
    pub const fn from_u128(value: u128) -> Result<Uid, UidError> {
        if value >> UID_BITS != 0 {
            return Err(UidError::TooWide { value });
        }
        Ok(Uid(value))
    }

    /// The UID as an integer (`device_id << 72 | year << 64 | random`).
    #[must_use]
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// The device type id (the catalog's `device_id`).
    #[must_use]
    pub const fn device_id(self) -> u16 {
        (self.0 >> 72) as u16
    }

    /// The season the board was flashed in; 0 is spring 2016.
    #[must_use]
    pub const fn year(self) -> u8 {
        (self.0 >> 64) as u8
    }

    /// The random part that makes boards of one type and year distinct.
    #[must_use]
    pub const fn random(self) -> u64 {
        self.0 as u64
    }

    /// The 11 bytes SUB_RES carries: device_id (LE), year, random (LE).
    #[must_use]
    pub fn to_wire_bytes(self) -> [u8; UID_WIRE_LEN] {
        let mut bytes = [0u8; UID_WIRE_LEN];
        bytes[..2].copy_from_slice(&self.device_id().to_le_bytes());
        bytes[2] = self.year();
        bytes[3..].copy_from_slice(&self.random().to_le_bytes());
        bytes
    }

    /// Reads the 11 bytes SUB_RES carries; every byte pattern is a valid UID.
    #[must_use]
    pub fn from_wire_bytes(bytes: [u8; UID_WIRE_LEN]) -> Uid {
        let [d0, d1, year, r @ ..] = bytes;
        Uid::new(u16::from_le_bytes([d0, d1]), year, u64::from_le_bytes(r))
    }
}

impl fmt::Display for Uid {
    /// The decimal string used everywhere outside the serial line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Uid {
    type Err = UidError;

    /// Parses the decimal string form: ASCII digits only (no sign, spaces or `0x`).
    fn from_str(text: &str) -> Result<Uid, UidError> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(UidError::NotDecimal {
                input: text.to_owned(),
            });
        }
        let too_large = || UidError::TooLarge {
            input: text.to_owned(),
        };
        let value = text.parse::<u128>().map_err(|_| too_large())?;
        Uid::from_u128(value).map_err(|_| too_large())
    }
}

impl TryFrom<u128> for Uid {
    type Error = UidError;

    fn try_from(value: u128) -> Result<Uid, UidError> {
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
    use proptest::prelude::*;

    #[test]
    fn polar_bear_uid_matches_its_shared_memory_name() {
        // catalog-and-buffers.md: `/rt-polar-bear-56668397794435742564352`.
        let uid = Uid::new(0x0C, 0, 0);
        assert_eq!(uid.as_u128(), 0x0C << 72);
        assert_eq!(uid.to_string(), "56668397794435742564352");
        assert_eq!("56668397794435742564352".parse(), Ok(uid));
    }

    #[test]
    fn fields_round_trip() {
        let uid = Uid::new(0xBEEF, 0x0F, 0xDEAD_BEEF_0123_4567);
        assert_eq!(uid.device_id(), 0xBEEF);
        assert_eq!(uid.year(), 0x0F);
        assert_eq!(uid.random(), 0xDEAD_BEEF_0123_4567);
        assert_eq!(Uid::from_wire_bytes(uid.to_wire_bytes()), uid);
        assert_eq!(
            Uid::new(0x0102, 0x03, 0x0B0A_0908_0706_0504).to_wire_bytes(),
            [2, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11]
        );
    }

    #[test]
    fn largest_uid_is_accepted_and_one_more_bit_is_not() {
        let max = (1u128 << 88) - 1;
        assert_eq!(
            Uid::from_u128(max),
            Ok(Uid::new(u16::MAX, u8::MAX, u64::MAX))
        );
        assert_eq!(
            Uid::from_u128(1 << 88),
            Err(UidError::TooWide { value: 1 << 88 })
        );
        assert_eq!(
            "309485009821345068724781056".parse::<Uid>(), // 2^88
            Err(UidError::TooLarge {
                input: "309485009821345068724781056".into()
            })
        );
        assert!(matches!(
            "999999999999999999999999999999999999999999".parse::<Uid>(),
            Err(UidError::TooLarge { .. })
        ));
    }

    #[test]
    fn only_plain_decimal_strings_parse() {
        for text in ["", "+1", "-1", " 1", "1 ", "0x10", "1e3", "١"] {
            assert_eq!(
                text.parse::<Uid>(),
                Err(UidError::NotDecimal { input: text.into() }),
                "{text:?}"
            );
        }
        assert_eq!("0".parse(), Ok(Uid::default()));
        assert_eq!("007".parse(), Ok(Uid::new(0, 0, 7)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]

        /// 5 000 cases: fields, wire bytes and decimal text all round-trip.
        #[test]
        fn round_trips(device_id: u16, year: u8, random: u64) {
            let uid = Uid::new(device_id, year, random);
            prop_assert_eq!((uid.device_id(), uid.year(), uid.random()), (device_id, year, random));
            prop_assert_eq!(Uid::from_wire_bytes(uid.to_wire_bytes()), uid);
            prop_assert_eq!(uid.to_string().parse::<Uid>(), Ok(uid));
            prop_assert_eq!(Uid::from_u128(uid.as_u128()), Ok(uid));
        }
    }
}
