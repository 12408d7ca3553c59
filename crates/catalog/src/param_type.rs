//! [`ParamType`]: a param's declared type, a scalar of the value model or a fixed C-order
//! array of them. Arrays are a catalog concept (the buffers store them, the wire carries
//! only scalars), so this stays here while [`ScalarType`] and [`crate::Value`] come from
//! `pitcrew-sdp`.

use std::fmt;

use pitcrew_sdp::ScalarType;

/// A param's type: a scalar, or a fixed C-order array of scalars (`uint8[128][128][3]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParamType {
    element: ScalarType,
    dims: Vec<usize>,
}

impl ParamType {
    /// A scalar type.
    pub fn scalar(element: ScalarType) -> Self {
        ParamType {
            element,
            dims: Vec::new(),
        }
    }

    /// Parses `int16`, `uint8[4096]`, `uint8[128][128][3]`; `None` for anything else,
    /// including zero lengths and spaces.
    pub fn parse(text: &str) -> Option<Self> {
        let (base, mut rest) = match text.find('[') {
            Some(i) => (&text[..i], &text[i..]),
            None => (text, ""),
        };
        let element: ScalarType = base.parse().ok()?;
        let mut dims = Vec::new();
        while !rest.is_empty() {
            let inner = rest.strip_prefix('[')?;
            let close = inner.find(']')?;
            let digits = &inner[..close];
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: usize = digits.parse().ok()?;
            if n == 0 {
                return None;
            }
            dims.push(n);
            rest = &inner[close + 1..];
        }
        Some(ParamType { element, dims })
    }

    /// The element type (the type itself for a scalar).
    pub fn element(&self) -> ScalarType {
        self.element
    }

    /// Array lengths, outermost first; empty for a scalar.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// True for a scalar (no array lengths).
    #[inline]
    pub fn is_scalar(&self) -> bool {
        self.dims.is_empty()
    }

    /// The scalar type if this is not an array.
    #[inline]
    pub fn as_scalar(&self) -> Option<ScalarType> {
        self.is_scalar().then_some(self.element)
    }

    /// Total bytes at storage width; `None` on arithmetic overflow.
    pub fn storage_width(&self) -> Option<usize> {
        self.dims
            .iter()
            .try_fold(self.element.storage_width(), |acc, d| acc.checked_mul(*d))
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.element.name())?;
        for d in &self.dims {
            write!(f, "[{d}]")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_type_parsing() {
        let t = ParamType::parse("uint8[128][128][3]").unwrap();
        assert_eq!(t.dims(), &[128, 128, 3]);
        assert_eq!(t.storage_width(), Some(128 * 128 * 3));
        assert_eq!(t.to_string(), "uint8[128][128][3]");
        assert_eq!(ParamType::parse("double").unwrap().storage_width(), Some(4));
        for bad in [
            "",
            "int",
            "float64",
            "uint8[]",
            "uint8[0]",
            "uint8[4",
            "uint8[x]",
            "uint8 [4]",
        ] {
            assert!(ParamType::parse(bad).is_none(), "{bad}");
        }
    }
}
