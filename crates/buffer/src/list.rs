//! Discovery and cleanup of a namespace's segments by scanning `/dev/shm/<namespace>-*`.
//!
//! Each candidate's header is checked (magic, layout version, stored namespace) so that a
//! namespace `rt` never lists or removes segments of `rt-sim`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::buffer::{header_key, header_namespace, header_type_name};
use crate::error::BufferError;
use crate::layout::{LAYOUT_VERSION, MAGIC};
use crate::name::{check_namespace, SegmentKey};
use crate::os;
use crate::owner::retire;
use crate::shm::{self, Mapping};

/// What `list` reports for one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The segment name, with its leading `/`.
    pub name: String,
    /// The peripheral type.
    pub type_name: String,
    /// UID or index.
    pub key: SegmentKey,
    /// The owner's valid flag.
    pub valid: bool,
    /// The owner's pid (0 once released).
    pub owner_pid: u32,
    /// Whether that pid is a running process (false means a stale segment).
    pub owner_alive: bool,
    /// Time since the owner last stored values, if ever.
    pub last_update_age: Option<Duration>,
    /// The layout fingerprint.
    pub fingerprint: u64,
}

fn inspect(name: &str, namespace: &str, map: &Mapping) -> Option<SegmentInfo> {
    let h = map.header();
    if h.magic.load(Ordering::Acquire) != MAGIC
        || h.version != LAYOUT_VERSION
        || header_namespace(h) != namespace
    {
        return None;
    }
    let owner_pid = h.owner_pid.load(Ordering::Acquire);
    let last = h.last_update_ns.load(Ordering::Relaxed);
    let now = os::coarse_ns();
    Some(SegmentInfo {
        name: name.to_owned(),
        type_name: header_type_name(h),
        key: header_key(h),
        valid: h.valid.load(Ordering::Acquire) == 1,
        owner_pid,
        owner_alive: owner_pid != 0 && os::pid_alive(owner_pid),
        last_update_age: (last != 0).then(|| Duration::from_nanos(now.saturating_sub(last))),
        fingerprint: h.fingerprint,
    })
}

/// Lists the pitcrew buffers of `namespace`, sorted by name. Segments that vanish or are
/// half-created during the scan are skipped.
///
/// # Errors
/// [`BufferError::BadNamespace`]; OS errors reading `/dev/shm`.
pub fn list(namespace: &str) -> Result<Vec<SegmentInfo>, BufferError> {
    check_namespace(namespace)?;
    let mut out = Vec::new();
    for name in shm::list_names(&format!("{namespace}-"))? {
        match shm::open_existing(&name, false) {
            Ok(map) => out.extend(inspect(&name, namespace, &map)),
            Err(BufferError::NotFound { .. } | BufferError::NotInitialised { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Resets the segments of `namespace` whose owner is dead (a crashed predecessor): marks
/// them released for anyone still mapping them and unlinks them. Returns their names.
/// An owner calls this on start.
///
/// # Errors
/// As [`list`], plus unlink failures.
pub fn reset_stale(namespace: &str) -> Result<Vec<String>, BufferError> {
    remove_where(namespace, |info| !info.owner_alive)
}

/// Removes every buffer of `namespace` (the supervisor's clean shutdown), live or not.
///
/// # Errors
/// As [`reset_stale`].
pub fn remove_namespace(namespace: &str) -> Result<Vec<String>, BufferError> {
    remove_where(namespace, |_| true)
}

fn remove_where(
    namespace: &str,
    pred: impl Fn(&SegmentInfo) -> bool,
) -> Result<Vec<String>, BufferError> {
    check_namespace(namespace)?;
    let mut removed = Vec::new();
    for name in shm::list_names(&format!("{namespace}-"))? {
        let map = match shm::open_existing(&name, true) {
            Ok(map) => map,
            Err(BufferError::NotFound { .. } | BufferError::NotInitialised { .. }) => continue,
            Err(e) => return Err(e),
        };
        if let Some(info) = inspect(&name, namespace, &map) {
            if pred(&info) {
                retire(&map);
                shm::unlink(&name)?;
                removed.push(name);
            }
        }
    }
    Ok(removed)
}
