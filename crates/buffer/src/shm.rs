//! POSIX shared-memory objects: create, open, map, unlink, list.
//!
//! Why `libc` directly rather than the `shared_memory` crate named in the design: that crate
//! has had no release since 2022, prefixes/manages its own os ids and decides ownership
//! itself, while we need an exact `/name`, `O_CREAT | O_EXCL` followed by inspection of a
//! stale segment, `fstat` to map an existing object at its real size, and a mapping address
//! to hand to `futex(2)`. Those are five libc calls, each wrapped here with its SAFETY
//! argument; nothing else in the crate touches the OS object.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

use crate::error::BufferError;
use crate::layout::{Header, HEADER_LEN};

/// Where Linux exposes POSIX shared-memory objects (for listing).
pub(crate) const SHM_DIR: &str = "/dev/shm";

/// A shared mapping of a whole segment, unmapped on drop.
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; all concurrent access to it goes through
// atomics or the seqlock protocol, never through `&mut` references, so moving or sharing the
// handle between threads is as safe as between processes.
unsafe impl Send for Mapping {}
// SAFETY: see `Send`.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// The segment header. The mapping is at least `HEADER_LEN` bytes (checked when mapped)
    /// and page-aligned, so the cast is in bounds and aligned.
    pub fn header(&self) -> &Header {
        // SAFETY: in bounds and aligned (see above); `Header` is `repr(C)` of integers and
        // atomics, valid for any bit pattern; shared state is only mutated through atomics.
        unsafe { &*self.ptr.as_ptr().cast::<Header>() }
    }

    /// Base address (for block pointers computed from a validated layout).
    pub fn base(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Mapped length.
    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` came from a successful mmap and are unmapped exactly once;
        // no reference into the mapping outlives `self` (they all borrow it).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

fn os_err(name: &str, op: &'static str) -> BufferError {
    BufferError::Os {
        name: name.to_owned(),
        op,
        source: io::Error::last_os_error(),
    }
}

fn c_name(name: &str) -> Result<CString, BufferError> {
    CString::new(name).map_err(|_| BufferError::BadNamespace {
        namespace: name.to_owned(),
        reason: "it contains a NUL byte",
    })
}

fn map(fd: &OwnedFd, name: &str, len: usize, writable: bool) -> Result<Mapping, BufferError> {
    let prot = if writable {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_READ
    };
    // SAFETY: a fresh shared mapping of a valid fd; the kernel picks the address.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(os_err(name, "mmap"));
    }
    match NonNull::new(ptr.cast::<u8>()) {
        Some(ptr) => Ok(Mapping { ptr, len }),
        None => Err(os_err(name, "mmap")),
    }
}

/// Creates a new zero-filled segment of `len` bytes; `Ok(None)` if the name exists.
pub(crate) fn create_exclusive(name: &str, len: usize) -> Result<Option<Mapping>, BufferError> {
    let c = c_name(name)?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let raw = unsafe {
        libc::shm_open(
            c.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
            0o660,
        )
    };
    if raw < 0 {
        if io::Error::last_os_error().raw_os_error() == Some(libc::EEXIST) {
            return Ok(None);
        }
        return Err(os_err(name, "shm_open(O_CREAT|O_EXCL)"));
    }
    // SAFETY: `raw` is a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let size = libc::off_t::try_from(len).map_err(|_| BufferError::Unsupported {
        type_name: name.to_owned(),
        reason: "segment too large".into(),
    })?;
    // SAFETY: valid fd opened read-write.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), size) } != 0 {
        let err = os_err(name, "ftruncate");
        let _ = unlink(name);
        return Err(err);
    }
    map(&fd, name, len, true).map(Some)
}

/// Opens and maps an existing segment at its current size.
pub(crate) fn open_existing(name: &str, writable: bool) -> Result<Mapping, BufferError> {
    let c = c_name(name)?;
    let flags = if writable {
        libc::O_RDWR
    } else {
        libc::O_RDONLY
    };
    // SAFETY: `c` is a valid NUL-terminated string.
    let raw = unsafe { libc::shm_open(c.as_ptr(), flags, 0) };
    if raw < 0 {
        if io::Error::last_os_error().raw_os_error() == Some(libc::ENOENT) {
            return Err(BufferError::NotFound {
                name: name.to_owned(),
            });
        }
        return Err(os_err(name, "shm_open"));
    }
    // SAFETY: `raw` is a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: all-zero is a valid `stat`; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and a writable `stat`.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(os_err(name, "fstat"));
    }
    let len = usize::try_from(st.st_size).unwrap_or(0);
    if len < HEADER_LEN {
        return Err(BufferError::NotInitialised {
            name: name.to_owned(),
        });
    }
    map(&fd, name, len, writable)
}

/// Removes a segment name; existing mappings stay usable. A missing name is not an error.
pub(crate) fn unlink(name: &str) -> Result<(), BufferError> {
    let c = c_name(name)?;
    // SAFETY: `c` is a valid NUL-terminated string.
    if unsafe { libc::shm_unlink(c.as_ptr()) } != 0
        && io::Error::last_os_error().raw_os_error() != Some(libc::ENOENT)
    {
        return Err(os_err(name, "shm_unlink"));
    }
    Ok(())
}

/// Names (with leading `/`) of segments starting with `prefix`, sorted.
pub(crate) fn list_names(prefix: &str) -> Result<Vec<String>, BufferError> {
    let dir = std::fs::read_dir(SHM_DIR).map_err(|source| BufferError::Os {
        name: SHM_DIR.to_owned(),
        op: "read_dir",
        source,
    })?;
    let mut names: Vec<String> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .map(|n| format!("/{n}"))
        .collect();
    names.sort();
    Ok(names)
}
