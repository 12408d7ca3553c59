//! Consistent Overhead Byte Stuffing (COBS) of one packet, without the frame delimiter.
//!
//! COBS removes every `0x00` from a packet so that `0x00` can delimit frames on the byte
//! stream ([`crate::frame`] adds and strips the delimiter). The encoder writes the compact
//! form the spec's test vectors use: a final full group (code `0xFF`) that ends exactly at the
//! end of the data is *not* followed by an empty `0x01` group. The decoder accepts both that
//! form and the form with the trailing `0x01` that many C implementations emit, since both
//! decode to the same bytes.

use thiserror::Error;

/// The largest COBS code: a group of 254 non-zero bytes with no implied zero after it.
const FULL_GROUP_CODE: u8 = 0xFF;

/// Why a COBS-encoded frame could not be decoded.
///
/// All variants mean the frame was corrupted or cut short on the line; the protocol answers
/// them with UNEXPECTED_DELIMITER.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CobsError {
    /// A `0x00` inside the encoded bytes; only the delimiter may be zero.
    #[error(
        "COBS data contains a 0x00 byte at offset {offset}; 0x00 is reserved for the frame \
         delimiter, so the frame is corrupt"
    )]
    ZeroByte {
        /// Offset of the zero byte within the encoded frame.
        offset: usize,
    },
    /// A code byte promised more bytes than the frame holds.
    #[error(
        "COBS code 0x{code:02X} at offset {offset} promises {promised} data bytes but only \
         {available} remain before the delimiter; the frame was cut short or corrupted"
    )]
    Truncated {
        /// The offending code byte.
        code: u8,
        /// Offset of the code byte within the encoded frame.
        offset: usize,
        /// Data bytes the code promised.
        promised: usize,
        /// Data bytes actually left in the frame.
        available: usize,
    },
    /// The decoded bytes do not fit the caller's output buffer.
    #[error("COBS frame decodes to more than {capacity} bytes, longer than any valid packet")]
    OutputTooLong {
        /// Size of the output buffer that was exceeded.
        capacity: usize,
    },
}

/// Upper bound on the encoded length of `len` bytes (without the delimiter).
///
/// Use it to size buffers: one code byte per started group of 254 bytes, plus one.
#[must_use]
pub const fn max_encoded_len(len: usize) -> usize {
    len + len / 254 + 1
}

/// Appends the COBS encoding of `src` to `out` (no delimiter).
///
/// Appending lets the caller reuse one `Vec` for every frame it sends, so steady-state
/// encoding does not allocate.
pub fn encode(src: &[u8], out: &mut Vec<u8>) {
    out.reserve(max_encoded_len(src.len()));
    let mut code_index = out.len();
    out.push(0); // placeholder for the first group's code
    let mut code: u8 = 1;
    for (index, &byte) in src.iter().enumerate() {
        if byte == 0 {
            set_code(out, code_index, code);
            code_index = out.len();
            out.push(0);
            code = 1;
            continue;
        }
        out.push(byte);
        code += 1;
        if code == FULL_GROUP_CODE {
            set_code(out, code_index, code);
            code = 1;
            if index + 1 == src.len() {
                // Compact form: no empty group after a full group that ends the data.
                return;
            }
            code_index = out.len();
            out.push(0);
        }
    }
    set_code(out, code_index, code);
}

/// Writes a group's code into its placeholder.
fn set_code(out: &mut [u8], index: usize, code: u8) {
    // `index` always names a placeholder pushed earlier in `encode`, so the slot exists.
    if let Some(slot) = out.get_mut(index) {
        *slot = code;
    }
}

/// Decodes the COBS bytes `src` (without the delimiter) into `out`, returning the length.
///
/// Decoding into a caller-owned buffer keeps the receive path allocation-free.
///
/// # Errors
///
/// [`CobsError`] if `src` holds a zero byte, a code promises more bytes than remain, or the
/// decoded bytes do not fit `out`.
pub fn decode(src: &[u8], out: &mut [u8]) -> Result<usize, CobsError> {
    let mut read = 0;
    let mut written = 0;
    while let Some(&code) = src.get(read) {
        if code == 0 {
            return Err(CobsError::ZeroByte { offset: read });
        }
        let promised = usize::from(code) - 1;
        let data = src
            .get(read + 1..read + 1 + promised)
            .ok_or(CobsError::Truncated {
                code,
                offset: read,
                promised,
                available: src.len() - read - 1,
            })?;
        if let Some(zero) = data.iter().position(|&b| b == 0) {
            return Err(CobsError::ZeroByte {
                offset: read + 1 + zero,
            });
        }
        let too_long = CobsError::OutputTooLong {
            capacity: out.len(),
        };
        out.get_mut(written..written + promised)
            .ok_or(too_long)?
            .copy_from_slice(data);
        written += promised;
        read += 1 + promised;
        if code != FULL_GROUP_CODE && read < src.len() {
            *out.get_mut(written).ok_or(too_long)? = 0;
            written += 1;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encoded(src: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(src, &mut out);
        out
    }

    fn decoded(src: &[u8]) -> Result<Vec<u8>, CobsError> {
        let mut out = [0u8; 1024];
        let len = decode(src, &mut out)?;
        Ok(out[..len].to_vec())
    }

    #[test]
    fn textbook_examples() {
        let table: &[(&[u8], &[u8])] = &[
            (&[], &[0x01]),
            (&[0x00], &[0x01, 0x01]),
            (&[0x00, 0x00], &[0x01, 0x01, 0x01]),
            (&[0x11, 0x22, 0x00, 0x33], &[0x03, 0x11, 0x22, 0x02, 0x33]),
            (&[0x11, 0x22, 0x33, 0x44], &[0x05, 0x11, 0x22, 0x33, 0x44]),
            (&[0x11, 0x00, 0x00, 0x00], &[0x02, 0x11, 0x01, 0x01, 0x01]),
        ];
        for (raw, cobs) in table {
            assert_eq!(encoded(raw), *cobs, "encode {raw:02x?}");
            assert_eq!(decoded(cobs).as_deref(), Ok(*raw), "decode {cobs:02x?}");
        }
    }

    #[test]
    fn full_group_at_end_has_no_trailing_empty_group() {
        let raw = [0x42u8; 254];
        let cobs = encoded(&raw);
        assert_eq!(cobs.len(), 255);
        assert_eq!(cobs[0], 0xFF);
        // Both the compact form and the form with a trailing 0x01 decode to the same bytes.
        assert_eq!(decoded(&cobs).as_deref(), Ok(&raw[..]));
        let mut with_trailer = cobs.clone();
        with_trailer.push(0x01);
        assert_eq!(decoded(&with_trailer).as_deref(), Ok(&raw[..]));
    }

    #[test]
    fn full_group_followed_by_more_data() {
        let mut raw = vec![0x42u8; 254];
        raw.extend_from_slice(&[0x00, 0x07]);
        let cobs = encoded(&raw);
        assert_eq!(&cobs[255..], &[0x01, 0x02, 0x07]);
        assert_eq!(decoded(&cobs), Ok(raw));
    }

    #[test]
    fn corrupt_inputs_are_errors() {
        assert_eq!(
            decoded(&[0xFF]),
            Err(CobsError::Truncated {
                code: 0xFF,
                offset: 0,
                promised: 254,
                available: 0
            })
        );
        assert!(matches!(
            decoded(&[0x03, 0x11]),
            Err(CobsError::Truncated { .. })
        ));
        assert_eq!(
            decoded(&[0x02, 0x00]),
            Err(CobsError::ZeroByte { offset: 1 })
        );
        assert_eq!(decoded(&[0x00]), Err(CobsError::ZeroByte { offset: 0 }));
    }

    #[test]
    fn output_bound_is_enforced() {
        let mut out = [0u8; 2];
        assert_eq!(
            decode(&[0x04, 1, 2, 3], &mut out),
            Err(CobsError::OutputTooLong { capacity: 2 })
        );
        assert_eq!(
            decode(&[0x03, 1, 2, 0x01], &mut out),
            Err(CobsError::OutputTooLong { capacity: 2 })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 1_000,
            rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
            ..ProptestConfig::default()
        })]

        /// 1 000 cases (the bulk runs in tests/props.rs): any bytes survive encode → decode and the encoding has no zero.
        #[test]
        fn round_trip(raw in proptest::collection::vec(
            prop_oneof![1 => Just(0u8), 60 => 1..=255u8], 0..600)
        ) {
            let cobs = encoded(&raw);
            prop_assert!(!cobs.contains(&0));
            prop_assert!(cobs.len() <= max_encoded_len(raw.len()));
            prop_assert_eq!(decoded(&cobs), Ok(raw));
        }
    }
}
