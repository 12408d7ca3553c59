//! Reading MessagePack in place, for hot paths that only check a message and read a few
//! of its parts: the log forwarder checks every record it forwards, and building a
//! [`Value`] tree for that costs an allocation per string, array and map.
//!
//! [`check`] accepts exactly the bytes [`super::decode`] accepts (one complete value, the
//! same nesting budget, no trailing bytes) without allocating; a [`Cursor`] then walks the
//! checked bytes, and a [`RawValue`] is one encoded value, borrowed, that can be read as a
//! string or an unsigned integer the way [`Value::as_str`] and [`Value::as_u64`] read it,
//! or decoded into a [`Value`] when one is really needed.

use rmp::Marker;

use super::{DecodeError, Value, MAX_DEPTH};

/// Checks that `bytes` are exactly one MessagePack value that [`super::decode`] would
/// accept, without building it.
///
/// # Errors
/// [`DecodeError`] when [`super::decode`] would fail: the bytes end inside a value, nest
/// deeper than [`MAX_DEPTH`] allows, or carry trailing bytes.
pub fn check(bytes: &[u8]) -> Result<(), DecodeError> {
    let mut rest = bytes;
    skip(&mut rest, budget(MAX_DEPTH))?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing(rest.len()));
    }
    Ok(())
}

/// The nesting budget `rmpv` starts from for `max_depth`.
fn budget(max_depth: usize) -> u16 {
    u16::try_from(max_depth).unwrap_or(u16::MAX)
}

/// One encoded MessagePack value, borrowed from the bytes it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawValue<'a>(&'a [u8]);

impl<'a> RawValue<'a> {
    /// The encoded bytes.
    pub fn bytes(self) -> &'a [u8] {
        self.0
    }

    /// The string, when the value is a string holding valid UTF-8 (as [`Value::as_str`]).
    pub fn as_str(self) -> Option<&'a str> {
        let mut rd = self.0;
        let len = match read_marker(&mut rd).ok()? {
            Marker::FixStr(n) => usize::from(n),
            Marker::Str8 => usize::from(read_u8(&mut rd).ok()?),
            Marker::Str16 => usize::from(read_u16(&mut rd).ok()?),
            Marker::Str32 => usize::try_from(read_u32(&mut rd).ok()?).ok()?,
            _ => return None,
        };
        std::str::from_utf8(rd.get(..len)?).ok()
    }

    /// The integer, when the value is a non-negative integer, however it is encoded (as
    /// [`Value::as_u64`]: never a float).
    pub fn as_u64(self) -> Option<u64> {
        let mut rd = self.0;
        match read_marker(&mut rd).ok()? {
            Marker::FixPos(n) => Some(u64::from(n)),
            Marker::U8 => read_u8(&mut rd).ok().map(u64::from),
            Marker::U16 => read_u16(&mut rd).ok().map(u64::from),
            Marker::U32 => read_u32(&mut rd).ok().map(u64::from),
            Marker::U64 => read_u64(&mut rd).ok(),
            Marker::I8 => read_u8(&mut rd)
                .ok()
                .and_then(|b| u64::try_from(b as i8).ok()),
            Marker::I16 => read_u16(&mut rd)
                .ok()
                .and_then(|b| u64::try_from(b as i16).ok()),
            Marker::I32 => read_u32(&mut rd)
                .ok()
                .and_then(|b| u64::try_from(b as i32).ok()),
            Marker::I64 => read_u64(&mut rd)
                .ok()
                .and_then(|b| u64::try_from(b as i64).ok()),
            _ => None,
        }
    }

    /// The value as a [`Value`] (allocates: for answers, not for checks).
    ///
    /// # Errors
    /// When the bytes were not checked and are not one value.
    pub fn decode(self) -> Result<Value, DecodeError> {
        super::decode(self.0)
    }
}

/// Walks MessagePack bytes one value at a time, without copying.
///
/// Meant for bytes that passed [`check`]; on others it fails with an error instead of
/// reading past the end, and never nests deeper than [`MAX_DEPTH`] allows.
#[derive(Debug, Clone, Copy)]
pub struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// When the next value is an array, enters it and returns its length (its elements
    /// come next); otherwise `None`, and the cursor does not move.
    pub fn array_len(&mut self) -> Option<usize> {
        let mut rd = self.rest;
        let len = match read_marker(&mut rd).ok()? {
            Marker::FixArray(n) => usize::from(n),
            Marker::Array16 => usize::from(read_u16(&mut rd).ok()?),
            Marker::Array32 => usize::try_from(read_u32(&mut rd).ok()?).ok()?,
            _ => return None,
        };
        self.rest = rd;
        Some(len)
    }

    /// When the next value is a map, enters it and returns its number of entries (its
    /// keys and values come next, alternating); otherwise `None`, and the cursor does not
    /// move.
    pub fn map_len(&mut self) -> Option<usize> {
        let mut rd = self.rest;
        let len = match read_marker(&mut rd).ok()? {
            Marker::FixMap(n) => usize::from(n),
            Marker::Map16 => usize::from(read_u16(&mut rd).ok()?),
            Marker::Map32 => usize::try_from(read_u32(&mut rd).ok()?).ok()?,
            _ => return None,
        };
        self.rest = rd;
        Some(len)
    }

    /// Reads the next whole value (a container with everything in it).
    ///
    /// # Errors
    /// When the bytes end inside the value or it nests too deeply (unchecked bytes).
    pub fn value(&mut self) -> Result<RawValue<'a>, DecodeError> {
        let start = self.rest;
        skip(&mut self.rest, budget(MAX_DEPTH))?;
        let len = start.len() - self.rest.len();
        Ok(RawValue(&start[..len]))
    }
}

fn eof() -> DecodeError {
    DecodeError::Invalid("the bytes end inside a value".to_owned())
}

fn too_deep() -> DecodeError {
    DecodeError::Invalid(format!("nested deeper than {MAX_DEPTH} levels"))
}

fn take<'a>(rd: &mut &'a [u8], n: usize) -> Result<&'a [u8], DecodeError> {
    if rd.len() < n {
        return Err(eof());
    }
    let (head, tail) = rd.split_at(n);
    *rd = tail;
    Ok(head)
}

fn read_marker(rd: &mut &[u8]) -> Result<Marker, DecodeError> {
    take(rd, 1).map(|b| Marker::from_u8(b[0]))
}

fn read_u8(rd: &mut &[u8]) -> Result<u8, DecodeError> {
    take(rd, 1).map(|b| b[0])
}

fn read_u16(rd: &mut &[u8]) -> Result<u16, DecodeError> {
    let mut a = [0; 2];
    a.copy_from_slice(take(rd, 2)?);
    Ok(u16::from_be_bytes(a))
}

fn read_u32(rd: &mut &[u8]) -> Result<u32, DecodeError> {
    let mut a = [0; 4];
    a.copy_from_slice(take(rd, 4)?);
    Ok(u32::from_be_bytes(a))
}

fn read_u64(rd: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut a = [0; 8];
    a.copy_from_slice(take(rd, 8)?);
    Ok(u64::from_be_bytes(a))
}

fn len32(rd: &mut &[u8]) -> Result<usize, DecodeError> {
    usize::try_from(read_u32(rd)?).map_err(|_| eof())
}

/// Spends one unit of the nesting budget, failing when none is left (`rmpv`'s
/// `decrement_depth`).
fn spend(depth: u16) -> Result<u16, DecodeError> {
    depth.checked_sub(1).ok_or_else(too_deep)
}

/// Skips one value, spending the nesting budget exactly as `rmpv`'s `read_value` does (one
/// unit per value, one more per array, map, string or binary body, two more per extension
/// body), so that [`check`] and [`super::decode`] accept the same bytes.
fn skip(rd: &mut &[u8], depth: u16) -> Result<(), DecodeError> {
    let depth = spend(depth)?;
    match read_marker(rd)? {
        Marker::Null
        | Marker::True
        | Marker::False
        | Marker::FixPos(_)
        | Marker::FixNeg(_)
        | Marker::Reserved => Ok(()),
        Marker::U8 | Marker::I8 => take(rd, 1).map(drop),
        Marker::U16 | Marker::I16 => take(rd, 2).map(drop),
        Marker::U32 | Marker::I32 | Marker::F32 => take(rd, 4).map(drop),
        Marker::U64 | Marker::I64 | Marker::F64 => take(rd, 8).map(drop),
        Marker::FixStr(n) => skip_str(rd, usize::from(n), depth),
        Marker::Str8 => {
            let n = usize::from(read_u8(rd)?);
            skip_str(rd, n, depth)
        }
        Marker::Str16 => {
            let n = usize::from(read_u16(rd)?);
            skip_str(rd, n, depth)
        }
        Marker::Str32 => {
            let n = len32(rd)?;
            skip_str(rd, n, depth)
        }
        Marker::Bin8 => {
            let n = usize::from(read_u8(rd)?);
            skip_bin(rd, n, depth)
        }
        Marker::Bin16 => {
            let n = usize::from(read_u16(rd)?);
            skip_bin(rd, n, depth)
        }
        Marker::Bin32 => {
            let n = len32(rd)?;
            skip_bin(rd, n, depth)
        }
        Marker::FixArray(n) => skip_items(rd, usize::from(n), depth),
        Marker::Array16 => {
            let n = usize::from(read_u16(rd)?);
            skip_items(rd, n, depth)
        }
        Marker::Array32 => {
            let n = len32(rd)?;
            skip_items(rd, n, depth)
        }
        Marker::FixMap(n) => skip_items(rd, 2 * usize::from(n), depth),
        Marker::Map16 => {
            let n = usize::from(read_u16(rd)?);
            skip_items(rd, 2 * n, depth)
        }
        Marker::Map32 => {
            let n = len32(rd)?;
            skip_items(rd, n.saturating_mul(2), depth)
        }
        Marker::FixExt1 => skip_ext(rd, 1, depth),
        Marker::FixExt2 => skip_ext(rd, 2, depth),
        Marker::FixExt4 => skip_ext(rd, 4, depth),
        Marker::FixExt8 => skip_ext(rd, 8, depth),
        Marker::FixExt16 => skip_ext(rd, 16, depth),
        Marker::Ext8 => {
            let n = usize::from(read_u8(rd)?);
            skip_ext(rd, n, depth)
        }
        Marker::Ext16 => {
            let n = usize::from(read_u16(rd)?);
            skip_ext(rd, n, depth)
        }
        Marker::Ext32 => {
            let n = len32(rd)?;
            skip_ext(rd, n, depth)
        }
    }
}

/// `rmpv`'s `read_str_data`: one unit, then a binary body. Invalid UTF-8 is accepted, as
/// `rmpv` keeps it (and [`Value::as_str`] then says `None`).
fn skip_str(rd: &mut &[u8], n: usize, depth: u16) -> Result<(), DecodeError> {
    skip_bin(rd, n, spend(depth)?)
}

/// `rmpv`'s `read_bin_data`: one unit, then `n` bytes.
fn skip_bin(rd: &mut &[u8], n: usize, depth: u16) -> Result<(), DecodeError> {
    spend(depth)?;
    take(rd, n).map(drop)
}

/// `rmpv`'s `read_ext_body`: one unit, the type byte, then a binary body.
fn skip_ext(rd: &mut &[u8], n: usize, depth: u16) -> Result<(), DecodeError> {
    let depth = spend(depth)?;
    read_u8(rd)?;
    skip_bin(rd, n, depth)
}

/// `rmpv`'s `read_array_data` and `read_map_data`: one unit, then `n` values (a map's
/// keys and values alike). Each value takes at least a byte, so a length larger than what
/// is left fails at the end of the bytes, not after `n` steps.
fn skip_items(rd: &mut &[u8], n: usize, depth: u16) -> Result<(), DecodeError> {
    let depth = spend(depth)?;
    for _ in 0..n {
        skip(rd, depth)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{decode, encode};
    use super::*;

    fn sample() -> Value {
        Value::Array(vec![
            Value::from(2),
            Value::from("info"),
            Value::Array(vec![Value::Map(vec![
                ("s".into(), "x".repeat(300).into()),
                ("n".into(), Value::from(u64::MAX)),
                ("neg".into(), Value::from(-70_000)),
                ("f".into(), Value::F32(0.5)),
                ("d".into(), Value::F64(-1.5)),
                ("b".into(), Value::Binary(vec![1; 70_000])),
                ("e".into(), Value::Ext(3, vec![9; 16])),
                ("e5".into(), Value::Ext(3, vec![9; 5])),
                ("nil".into(), Value::Nil),
                ("t".into(), Value::from(true)),
                (Value::from(7), Value::Array(vec![Value::Map(Vec::new())])),
            ])]),
        ])
    }

    /// A small deterministic generator, so the comparison below needs no dependency.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }
    }

    #[test]
    fn check_accepts_what_decode_accepts() {
        let good = encode(&sample());
        assert_eq!(check(&good), Ok(()));
        // Every truncation, every appended byte, and random corruptions of a short record
        // (which reach every marker) are judged alike.
        let mut cases: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
        cases.push([good.as_slice(), &[0xc0]].concat());
        let short = encode(&Value::Array(vec![
            Value::from(2),
            Value::from("info"),
            Value::Array(vec![Value::Map(vec![
                ("a".into(), "bc".into()),
                ("n".into(), Value::from(300)),
            ])]),
        ]));
        let mut rng = Lcg(1);
        for _ in 0..200_000 {
            let mut bytes = short.clone();
            for _ in 0..=rng.next() % 3 {
                let at = usize::try_from(rng.next()).unwrap() % bytes.len();
                bytes[at] = u8::try_from(rng.next() % 256).unwrap();
            }
            cases.push(bytes);
        }
        for bytes in cases {
            assert_eq!(
                check(&bytes).is_ok(),
                decode(&bytes).is_ok(),
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn the_nesting_budget_is_rmpvs() {
        // Arrays cost two units each: 15 nested arrays around a nil fit in 32, 16 do not;
        // a string costs three units, an extension four.
        for (inner, fits) in [
            (vec![0xc0], 15),
            (encode(&Value::from("s")), 14),
            (encode(&Value::Binary(vec![1])), 15),
            (encode(&Value::Ext(1, vec![1])), 14),
        ] {
            for levels in [fits, fits + 1] {
                let bytes = [vec![0x91; levels], inner.clone()].concat();
                assert_eq!(decode(&bytes).is_ok(), levels == fits, "{levels} {inner:?}");
                assert_eq!(check(&bytes).is_ok(), levels == fits, "{levels} {inner:?}");
            }
        }
        assert!(check(&[0x91; 100_000]).is_err());
        assert_eq!(check(&[0xc0, 0xc0]), Err(DecodeError::Trailing(1)));
        // 0xc1 (reserved) reads as nil in rmpv.
        assert_eq!(check(&[0xc1]), Ok(()));
    }

    #[test]
    fn a_cursor_reads_parts_like_value_does() {
        let value = sample();
        let bytes = encode(&value);
        let mut c = Cursor::new(&bytes);
        assert_eq!(c.map_len(), None);
        assert_eq!(c.array_len(), Some(3));
        assert_eq!(c.value().unwrap().as_u64(), Some(2));
        let level = c.value().unwrap();
        assert_eq!((level.as_str(), level.as_u64()), (Some("info"), None));
        assert_eq!(c.array_len(), Some(1));
        let record = c.value().unwrap();
        assert!(c.is_empty());
        assert_eq!(record.decode().unwrap(), value[2][0]);
        let mut m = Cursor::new(record.bytes());
        let entries = m.map_len().unwrap();
        for i in 0..entries {
            let (k, v) = (m.value().unwrap(), m.value().unwrap());
            let (key, want) = &value[2][0].as_map().unwrap()[i];
            assert_eq!(k.as_str(), key.as_str());
            assert_eq!(v.as_str(), want.as_str(), "{key}");
            assert_eq!(v.as_u64(), want.as_u64(), "{key}");
            assert_eq!(v.decode().as_ref(), Ok(want));
        }
        assert!(m.is_empty());
        for n in [
            0_i64,
            1,
            127,
            128,
            255,
            256,
            65_535,
            65_536,
            -1,
            -129,
            i64::MIN,
        ] {
            let raw = encode(&Value::from(n));
            assert_eq!(RawValue(&raw).as_u64(), Value::from(n).as_u64(), "{n}");
        }
        // Integers written with a signed marker still read as unsigned when non-negative.
        assert_eq!(RawValue(&[0xd0, 0x05]).as_u64(), Some(5));
        assert_eq!(RawValue(&[0xd3, 0, 0, 0, 0, 0, 0, 0, 9]).as_u64(), Some(9));
        assert_eq!(RawValue(&[0xa2, 0xff, 0xfe]).as_str(), None);
    }
}
