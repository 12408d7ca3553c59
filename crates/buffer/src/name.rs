//! Segment names: `/<namespace>-<type>-<uid or index>`.
//!
//! The namespace is a global option so that tests and several simulated robots can run side
//! by side; it is also stored in each segment's header so that `rt` never claims segments of
//! a namespace such as `rt-sim`.

use std::fmt;

use pitcrew_catalog::Uid;

use crate::error::BufferError;

/// Longest namespace, so that names stay well under `NAME_MAX` and fit the header field.
pub const MAX_NAMESPACE_LEN: usize = 32;

/// What tells two buffers of one type apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentKey {
    /// A Smart Device, by UID.
    Uid(Uid),
    /// A plain peripheral (gamepad, field), by index.
    Index(u32),
}

impl fmt::Display for SegmentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentKey::Uid(u) => write!(f, "{u}"),
            SegmentKey::Index(i) => write!(f, "{i}"),
        }
    }
}

/// Checks a namespace: 1..=32 of `[A-Za-z0-9_-]`.
///
/// # Errors
/// [`BufferError::BadNamespace`].
pub fn check_namespace(namespace: &str) -> Result<(), BufferError> {
    let reason = if namespace.is_empty() {
        Some("it is empty")
    } else if namespace.len() > MAX_NAMESPACE_LEN {
        Some("it is longer than 32 bytes")
    } else if !namespace
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Some("only letters, digits, `_` and `-` are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(BufferError::BadNamespace {
            namespace: namespace.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// The POSIX shm name, with its leading `/`.
///
/// # Errors
/// [`BufferError::BadNamespace`].
pub fn segment_name(
    namespace: &str,
    type_name: &str,
    key: SegmentKey,
) -> Result<String, BufferError> {
    check_namespace(namespace)?;
    Ok(format!("/{namespace}-{type_name}-{key}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec() {
        let uid = Uid::new(12, 0, 0);
        assert_eq!(
            segment_name("rt", "polar-bear", SegmentKey::Uid(uid)).unwrap(),
            "/rt-polar-bear-56668397794435742564352"
        );
        assert_eq!(
            segment_name("rt", "gamepad", SegmentKey::Index(0)).unwrap(),
            "/rt-gamepad-0"
        );
        assert!(segment_name("a/b", "gamepad", SegmentKey::Index(0)).is_err());
        assert!(segment_name("", "gamepad", SegmentKey::Index(0)).is_err());
    }
}
