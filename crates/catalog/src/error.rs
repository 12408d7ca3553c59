//! Catalog loading errors. Every rejection names the file, the line and the offending key
//! (as a path such as `yogi-bear.params[9].lower`), so a typo is found without a debugger.

use std::path::PathBuf;

/// Why a catalog did not load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{}: cannot read the catalog", file.display())]
    Io {
        /// The catalog file.
        file: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than any catalog has reason to be ([`crate::MAX_CATALOG_BYTES`]):
    /// refused before it is read, since every process of the suite loads it and a parsed
    /// catalog takes about 25 times its text in memory.
    #[error("{}: the catalog is {size} bytes, more than the {max} a catalog may have (the shipped one is under 10 000)", file.display())]
    TooLarge {
        /// The catalog file.
        file: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The text is not valid YAML.
    #[error("{file}:{line}: YAML syntax error: {message}")]
    Syntax {
        /// The catalog file (or `<embedded>` origin).
        file: String,
        /// 1-based line.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// The YAML is well-formed but breaks a catalog rule.
    #[error("{file}:{line}: key `{key}`: {kind}")]
    Invalid {
        /// The catalog file (or `<embedded>` origin).
        file: String,
        /// 1-based line of the offending key.
        line: usize,
        /// Path of the offending key, e.g. `yogi-bear.params[9].lower`.
        key: String,
        /// Which rule was broken.
        kind: LoadErrorKind,
    },
}

impl LoadError {
    /// The 1-based line, when the error has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            LoadError::Io { .. } | LoadError::TooLarge { .. } => None,
            LoadError::Syntax { line, .. } | LoadError::Invalid { line, .. } => Some(*line),
        }
    }

    /// The offending key path, for rule violations.
    pub fn key(&self) -> Option<&str> {
        match self {
            LoadError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The broken rule, for rule violations (lets tests and tools match on it).
    pub fn kind(&self) -> Option<&LoadErrorKind> {
        match self {
            LoadError::Invalid { kind, .. } => Some(kind),
            _ => None,
        }
    }
}

/// The catalog rules of the spec, one variant per rejection.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadErrorKind {
    /// A key the schema does not know.
    #[error("unknown key (expected one of: {expected})")]
    UnknownKey {
        /// The keys allowed at this place.
        expected: &'static str,
    },
    /// The same key twice in one mapping.
    #[error("key given twice (first on line {first_line})")]
    DuplicateKey {
        /// Line of the first occurrence.
        first_line: usize,
    },
    /// A required key is absent.
    #[error("missing required key `{missing}`")]
    MissingKey {
        /// The absent key.
        missing: &'static str,
    },
    /// A value of the wrong YAML shape or kind.
    #[error("expected {expected}, found {found}")]
    Expected {
        /// What the schema wants.
        expected: &'static str,
        /// What the file has.
        found: String,
    },
    /// A type name that is not kebab-case.
    #[error("type name `{name}` is not kebab-case (lowercase letters, digits, single dashes)")]
    BadTypeName {
        /// The name.
        name: String,
    },
    /// A param name that is not an identifier.
    #[error("param name `{name}` is not an identifier (letters, digits, `_`)")]
    BadParamName {
        /// The name.
        name: String,
    },
    /// A storage type outside the spec's list.
    #[error(
        "unknown type `{ty}` (expected bool, int8, uint8, int16, uint16, int32, uint32, \
         int64, uint64, float, double, or a fixed array such as uint8[4096])"
    )]
    UnknownType {
        /// The type text.
        ty: String,
    },
    /// Two types with the same name.
    #[error("duplicate type name `{name}` (first defined on line {first_line})")]
    DuplicateTypeName {
        /// The name.
        name: String,
        /// Line of the first definition.
        first_line: usize,
    },
    /// Two Smart Device types with the same device id.
    #[error("duplicate device id {id} (already used by `{other}` on line {first_line})")]
    DuplicateDeviceId {
        /// The id.
        id: u16,
        /// The type that has it first.
        other: String,
        /// Line of that type's `device_id`.
        first_line: usize,
    },
    /// Two params of one type with the same name.
    #[error("duplicate param name `{name}` (first on line {first_line})")]
    DuplicateParamName {
        /// The name.
        name: String,
        /// Line of the first param with it.
        first_line: usize,
    },
    /// A Smart Device type with more params than a 16-bit bitmap can name.
    #[error("a Smart Device type has at most {max} params, this one has {count}")]
    TooManyParams {
        /// Params given.
        count: usize,
        /// The limit (16).
        max: usize,
    },
    /// A Smart Device param that cannot fit in one DEV_WRITE/DEV_DATA.
    #[error("a Smart Device param is at most {max} bytes wide, `{ty}` is {width} bytes")]
    ParamTooWide {
        /// The type text.
        ty: String,
        /// Its storage width (`None` when it overflows).
        width: String,
        /// The limit (253).
        max: usize,
    },
    /// An array type whose size does not fit in memory at all.
    #[error("`{ty}` is larger than this machine can address; use smaller dimensions")]
    ParamSizeOverflow {
        /// The type text.
        ty: String,
    },
    /// `lower` > `upper`.
    #[error("lower bound {lower} is above upper bound {upper}")]
    LowerAboveUpper {
        /// The lower bound.
        lower: f64,
        /// The upper bound.
        upper: f64,
    },
    /// A bound that the type cannot represent.
    #[error("bound {bound} is outside the range of {ty}")]
    BoundOutOfRange {
        /// The bound.
        bound: f64,
        /// The param's type.
        ty: String,
    },
    /// Bounds on a bool or array param.
    #[error("bounds apply to numeric scalar params only, not to `{ty}`")]
    BoundsNotNumeric {
        /// The param's type.
        ty: String,
    },
    /// A param with no slot in either block.
    #[error("a param must be readable or writeable (or both)")]
    NoAccess,
    /// A `safe` value that cannot be stored or written.
    #[error("invalid safe value: {reason}")]
    BadSafe {
        /// Why.
        reason: String,
    },
    /// A `lease` on a param that is not an output.
    #[error("invalid lease: {reason}")]
    BadLease {
        /// Why.
        reason: &'static str,
    },
    /// An interval that is negative, not finite, or too long for the wire.
    #[error("interval {value} s is not valid ({reason})")]
    BadInterval {
        /// The value in seconds.
        value: f64,
        /// Why.
        reason: &'static str,
    },
}
