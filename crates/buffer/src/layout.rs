//! The byte layout of a segment: the header (identity, validity, control block, two block
//! headers) followed by two copies of the read block and two copies of the write block.
//!
//! ```text
//! 0                 HEADER_LEN           +2·read_len            +2·write_len
//! | Header (+control)| read copy 0 | read copy 1 | write copy 0 | write copy 1 |
//! ```
//!
//! Params are placed at their natural alignment (arrays at 8) so that a scalar get is one
//! aligned atomic load. Every value is little-endian at its storage width. Any change to this
//! file that moves bytes must bump [`LAYOUT_VERSION`].

use std::sync::atomic::{AtomicU32, AtomicU64};

use pitcrew_catalog::DeviceType;

use crate::error::BufferError;

/// "PITCRWB\x01" little-endian: identifies a pitcrew buffer.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"PITCRWB\x01");

/// Bumped whenever the byte layout changes; consumers refuse other versions.
pub const LAYOUT_VERSION: u32 = 3;

/// The most params a buffer can hold: the `read`/`write`/`update` bitmaps are 64-bit.
pub const MAX_BUFFER_PARAMS: usize = 64;

/// Bytes reserved for the type name in the header.
pub(crate) const TYPE_NAME_CAP: usize = 64;

/// Bytes reserved for the namespace in the header.
pub(crate) const NAMESPACE_CAP: usize = 32;

/// Per-block seqlock state, on its own cache line so that read-block readers are not
/// disturbed by write-block traffic.
#[repr(C, align(64))]
pub(crate) struct BlockHeader {
    /// Pid of the process holding the writer lock, 0 when free.
    pub lock: AtomicU32,
    pub _pad: u32,
    /// Number of publishes; copy `seq & 1` is the current one.
    pub seq: AtomicU64,
    /// Locks taken over from dead holders (diagnostics).
    pub recoveries: AtomicU64,
}

/// The segment header, including the control block. `repr(C)` so that every process
/// (and every build of this layout version) agrees on offsets.
#[repr(C)]
pub(crate) struct Header {
    /// [`MAGIC`], stored last (Release) by the creator once everything else is written.
    pub magic: AtomicU64,
    pub version: u32,
    pub header_len: u32,
    pub fingerprint: u64,
    pub total_len: u64,
    pub read_len: u64,
    pub write_len: u64,
    /// Pid of the owner; 0 once the owner released or a successor reset the segment.
    pub owner_pid: AtomicU32,
    /// 1 while the device is connected.
    pub valid: AtomicU32,
    /// 1 once a new owner replaced this segment (the mapping is dead).
    pub superseded: AtomicU32,
    /// 1 when `key` is a UID, 0 when it is an index.
    pub key_is_uid: u32,
    /// The UID or index (low 88 bits used).
    pub key: [u64; 2],
    pub param_count: u32,
    pub type_name_len: u32,
    pub type_name: [u8; TYPE_NAME_CAP],
    pub namespace_len: u32,
    pub _pad0: u32,
    pub namespace: [u8; NAMESPACE_CAP],
    pub created_ns: u64,
    // ---- control block ----
    /// Futex word bumped by consumer writes, read requests and subscription changes.
    pub change: AtomicU32,
    /// Owners blocked in `wait_for_change`; writers skip FUTEX_WAKE when it is 0.
    pub waiters: AtomicU32,
    /// Params written by consumers, not yet sent (DEV_WRITE).
    pub write_bits: AtomicU64,
    /// Params whose fresh reading was requested (DEV_READ).
    pub read_bits: AtomicU64,
    /// Params updated by the owner, not yet published.
    pub update_bits: AtomicU64,
    /// Subscription: params bitmap in the low 32 bits, interval in ms in the high 32.
    pub subscription: AtomicU64,
    /// 1 when a consumer changed the subscription and the owner has not taken it.
    pub sub_dirty: AtomicU32,
    /// Pid of the consumer whose write set `write_bits` last (layout version 3): the
    /// broker watches that process, so the outputs of a controller that dies go safe at
    /// once instead of at the end of their lease.
    pub last_writer: AtomicU32,
    /// Monotonic ns of the last consumer write.
    pub last_write_ns: AtomicU64,
    /// Monotonic ns of the last owner update.
    pub last_update_ns: AtomicU64,
    /// Messages sent to the device (counted by the owner).
    pub msgs_to_device: AtomicU64,
    /// Messages received from the device (counted by the owner).
    pub msgs_from_device: AtomicU64,
    /// Futex word bumped by every owner store and validity change (consumers wait on it).
    pub updated: AtomicU32,
    /// Consumers blocked in `wait_for_update`; the owner skips FUTEX_WAKE when it is 0.
    pub update_waiters: AtomicU32,
    pub read_block: BlockHeader,
    pub write_block: BlockHeader,
}

/// Header size rounded to a cache line; the read block starts here.
pub(crate) const HEADER_LEN: usize = round_up(std::mem::size_of::<Header>(), 64);

pub(crate) const fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// Where one param lives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    /// Offset within a read-block copy, if readable.
    pub read: Option<usize>,
    /// Offset within a write-block copy, if writeable.
    pub write: Option<usize>,
    /// Storage width in bytes.
    pub width: usize,
}

/// The computed layout of one type.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub slots: Vec<Slot>,
    /// Bytes per read-block copy (multiple of 64).
    pub read_len: usize,
    /// Bytes per write-block copy (multiple of 64).
    pub write_len: usize,
}

impl Layout {
    /// Lays `ty` out; deterministic, so owner and consumers agree given equal fingerprints.
    pub fn of(ty: &DeviceType) -> Result<Layout, BufferError> {
        let unsupported = |reason: String| BufferError::Unsupported {
            type_name: ty.name().to_owned(),
            reason,
        };
        if ty.params().len() > MAX_BUFFER_PARAMS {
            return Err(unsupported(format!(
                "it has {} params; a buffer holds at most {MAX_BUFFER_PARAMS}",
                ty.params().len()
            )));
        }
        if ty.name().len() > TYPE_NAME_CAP {
            return Err(unsupported(format!(
                "the name is longer than {TYPE_NAME_CAP} bytes"
            )));
        }
        let (mut r, mut w) = (0usize, 0usize);
        let mut slots = Vec::with_capacity(ty.params().len());
        for p in ty.params() {
            let width = p.storage_width();
            let align = if p.ty().is_scalar() { width } else { 8 };
            let place = |cursor: &mut usize| {
                let at = round_up(*cursor, align);
                *cursor = at + width;
                at
            };
            slots.push(Slot {
                read: p.readable().then(|| place(&mut r)),
                write: p.writeable().then(|| place(&mut w)),
                width,
            });
        }
        Ok(Layout {
            slots,
            read_len: round_up(r, 64),
            write_len: round_up(w, 64),
        })
    }

    /// Segment offset of read copy 0.
    pub fn read_offset(&self) -> usize {
        HEADER_LEN
    }

    /// Segment offset of write copy 0.
    pub fn write_offset(&self) -> usize {
        HEADER_LEN + 2 * self.read_len
    }

    /// Total segment size.
    pub fn total_len(&self) -> usize {
        self.write_offset() + 2 * self.write_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitcrew_catalog::Catalog;

    #[test]
    fn header_is_cache_line_aligned() {
        assert_eq!(std::mem::align_of::<Header>(), 64);
        assert_eq!(HEADER_LEN % 64, 0);
        assert_eq!(std::mem::offset_of!(Header, magic), 0);
    }

    #[test]
    fn params_are_naturally_aligned() {
        let koala = Catalog::embedded().get("koala-bear").unwrap().clone();
        let l = Layout::of(&koala).unwrap();
        for (s, p) in l.slots.iter().zip(koala.params()) {
            for off in [s.read, s.write].into_iter().flatten() {
                assert_eq!(off % s.width, 0, "{}", p.name());
            }
            assert_eq!(s.read.is_some(), p.readable());
            assert_eq!(s.write.is_some(), p.writeable());
        }
        let field = Catalog::embedded().get("field").unwrap().clone();
        let l = Layout::of(&field).unwrap();
        assert_eq!(l.slots[2].read, Some(8));
        assert_eq!(l.read_len, round_up(8 + 4096 + 4096, 64));
        assert_eq!(l.write_len, 0);
    }
}
