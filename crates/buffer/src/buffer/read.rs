//! The consumer's read path: typed, [`Value`] and raw reads of single params, and several
//! scalars from one consistent version of a block.
//!
//! Each read checks validity and the param's read (or, for desired values, write) slot,
//! then copies out of one seqlock version; [`Buffer::get`] is the hot path and allocates
//! nothing.

use pitcrew_catalog::{Param, Scalar, Value};

use super::{wrong, Buffer};
use crate::error::BufferError;
use crate::seqlock::{self, Block};

impl Buffer {
    #[inline]
    fn typed<T: Scalar>(&self, p: &Param, block: &Block<'_>, off: usize) -> Result<T, BufferError> {
        let Some(st) = p.scalar().filter(|s| T::matches(*s)) else {
            let found = std::any::type_name::<T>();
            return Err(self.value_err(p, wrong(p, found)));
        };
        let mut b = [0u8; 8];
        let w = p.storage_width();
        // SAFETY: `off + w` lies inside one block copy (layout).
        block.read(|copy| unsafe { seqlock::load(copy.add(off), &mut b[..w]) });
        let v = Value::from_le_bytes(st, &b[..w]).map_err(|e| self.value_err(p, e))?;
        T::from_value(v).ok_or_else(|| self.value_err(p, wrong(p, std::any::type_name::<T>())))
    }

    /// Reads a readable (sensed) param as `T` (`f32` for float/double params).
    ///
    /// # Errors
    /// Invalid buffer, unknown or non-readable param, or `T` not matching its type.
    #[inline]
    pub fn get<T: Scalar>(&self, param: &str) -> Result<T, BufferError> {
        self.usable()?;
        let (p, off) = self.read_slot(param)?;
        self.typed(p, &self.read_block(), off)
    }

    /// Reads a readable scalar param as a [`Value`].
    ///
    /// # Errors
    /// As [`Buffer::get`]; array params are refused (use [`Buffer::get_raw`]).
    pub fn get_value(&self, param: &str) -> Result<Value, BufferError> {
        let v = self.read_values(&[param])?;
        v.into_iter()
            .next()
            .ok_or_else(|| BufferError::UnknownParam {
                name: self.name.clone(),
                type_name: self.ty.name().to_owned(),
                param: param.to_owned(),
            })
    }

    /// Reads several readable scalar params from one consistent version of the block.
    ///
    /// # Errors
    /// As [`Buffer::get_value`], for the first failing param.
    pub fn read_values(&self, params: &[&str]) -> Result<Vec<Value>, BufferError> {
        self.usable()?;
        self.values_from(params, false)
    }

    /// Reads the desired (write-block) value of writeable params, from one version.
    ///
    /// # Errors
    /// Invalid buffer, unknown or non-writeable params, arrays.
    pub fn desired_values(&self, params: &[&str]) -> Result<Vec<Value>, BufferError> {
        self.usable()?;
        self.values_from(params, true)
    }

    fn values_from(&self, params: &[&str], desired: bool) -> Result<Vec<Value>, BufferError> {
        let mut at = Vec::with_capacity(params.len());
        for name in params {
            let (p, off) = if desired {
                self.write_slot(name)?
            } else {
                self.read_slot(name)?
            };
            let st = p
                .scalar()
                .ok_or_else(|| self.value_err(p, wrong(p, "scalar")))?;
            at.push((p, st, off));
        }
        let block = if desired {
            self.write_block()
        } else {
            self.read_block()
        };
        let raw = block.read(|copy| {
            at.iter()
                .map(|(p, _, off)| {
                    let mut b = [0u8; 8];
                    // SAFETY: slot inside one copy.
                    unsafe { seqlock::load(copy.add(*off), &mut b[..p.storage_width()]) };
                    b
                })
                .collect::<Vec<_>>()
        });
        at.iter()
            .zip(raw)
            .map(|((p, st, _), b)| {
                Value::from_le_bytes(*st, &b[..p.storage_width()]).map_err(|e| self.value_err(p, e))
            })
            .collect()
    }

    /// Reads the raw little-endian bytes of a readable param (arrays such as `send_buf`).
    ///
    /// # Errors
    /// Invalid buffer, unknown or non-readable param.
    pub fn get_raw(&self, param: &str) -> Result<Vec<u8>, BufferError> {
        self.usable()?;
        let (p, off) = self.read_slot(param)?;
        let mut out = vec![0u8; p.storage_width()];
        // SAFETY: slot inside one copy.
        self.read_block()
            .read(|copy| unsafe { seqlock::load(copy.add(off), &mut out) });
        Ok(out)
    }
}
