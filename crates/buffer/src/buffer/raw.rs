//! Raw spans: the values of a params bitmap as one packed record (ascending id, storage
//! width), for segments read and written whole (the robot state) rather than by name.
//!
//! [`Buffer::spans`] maps the bitmap to slots once and is shared by the consumer's reads
//! here and the owner's [`Owner::set_raw`](crate::Owner::set_raw).

use super::Buffer;
use crate::error::BufferError;
use crate::seqlock;

impl Buffer {
    /// The sensed values of the params in `params` (ascending id, storage width) from one
    /// consistent version: the mirror of [`Owner::set_raw`](crate::Owner::set_raw), for
    /// segments read as one record (the robot state).
    ///
    /// # Errors
    /// [`BufferError::BadRaw`] when a bit names a param without a read slot; invalid buffer.
    pub fn sensed_raw(&self, params: u64) -> Result<Vec<u8>, BufferError> {
        self.raw_of(params, false)
    }

    /// The values of `params` (ascending id, storage width) from one version of the write
    /// block (`desired`) or the read block.
    pub(crate) fn raw_of(&self, params: u64, desired: bool) -> Result<Vec<u8>, BufferError> {
        self.usable()?;
        let total: usize = self.ty.params_in(params).map(|p| p.storage_width()).sum();
        let spans = self.spans(params, total, desired)?;
        let mut out = vec![0u8; total];
        let block = if desired {
            self.write_block()
        } else {
            self.read_block()
        };
        block.read(|copy| {
            for (off, start, width) in &spans {
                // SAFETY: slot inside one copy; destination range inside `out`.
                unsafe { seqlock::load(copy.add(*off), &mut out[*start..*start + *width]) };
            }
        });
        Ok(out)
    }

    /// `(slot offset, byte offset in the payload, width)` per set bit, checking that each
    /// bit names a param with a slot in the block and that widths add up to `len`.
    pub(crate) fn spans(
        &self,
        params: u64,
        len: usize,
        write: bool,
    ) -> Result<Vec<(usize, usize, usize)>, BufferError> {
        let bad = |reason: String| BufferError::BadRaw {
            name: self.name.clone(),
            reason,
        };
        let n = self.device_type().params().len();
        if n < 64 && params >> n != 0 {
            return Err(bad(format!(
                "bitmap {params:#x} names params beyond the {n} of the type"
            )));
        }
        let mut spans = Vec::new();
        let mut at = 0usize;
        for (i, slot) in self.layout.slots.iter().enumerate() {
            if params & (1u64 << i) == 0 {
                continue;
            }
            let off = if write { slot.write } else { slot.read };
            let off = off.ok_or_else(|| {
                bad(format!(
                    "param {i} has no {} slot",
                    if write { "write" } else { "read" }
                ))
            })?;
            spans.push((off, at, slot.width));
            at += slot.width;
        }
        if at != len {
            return Err(bad(format!("the bitmap needs {at} value bytes, got {len}")));
        }
        Ok(spans)
    }
}
