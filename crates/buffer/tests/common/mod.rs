//! Shared test helpers: a unique namespace per test (no global locks), a test catalog, and
//! a guard that removes the namespace's segments.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pitcrew_buffer::{Buffer, BufferError, SegmentKey};
use pitcrew_catalog::{Catalog, DeviceType, Uid};

/// A small Smart Device type exercising every access rule.
pub const TEST_CATALOG: &str = "\
pair:
  device_id: 200
  params:
    - {name: a, type: int64, writeable: true}
    - {name: b, type: int64, writeable: true}
    - {name: flag, type: bool, writeable: true}
    - {name: level, type: float, readable: false, writeable: true, lower: -1, upper: 1, safe: 0}
    - {name: count, type: uint8, writeable: true, lower: 0, upper: 100}
    - {name: sensed, type: float}
    - {name: stamp, type: uint64, readable: false, writeable: true}
    - {name: w0, type: uint32, readable: false, writeable: true}
    - {name: w1, type: uint32, readable: false, writeable: true}
";

/// The test type.
pub fn pair_type() -> Arc<DeviceType> {
    let cat = Catalog::from_yaml_str(TEST_CATALOG, "test-catalog").expect("test catalog");
    Arc::clone(cat.get("pair").expect("pair type"))
}

/// The UID used for the test device.
pub fn pair_key() -> SegmentKey {
    SegmentKey::Uid(Uid::new(200, 3, 0xDEAD_BEEF))
}

/// A namespace unique to this process and call, so tests run in parallel.
pub fn unique_namespace(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}_{}_{tag}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes the namespace's segments when dropped.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = pitcrew_buffer::remove_namespace(&self.0);
    }
}

/// Opens the test buffer, retrying while the owner (another process) creates it.
pub fn open_when_ready(ns: &str, timeout: Duration) -> Buffer {
    let start = Instant::now();
    loop {
        match Buffer::open(ns, pair_type(), pair_key()) {
            Ok(b) => return b,
            Err(BufferError::NotFound { .. } | BufferError::NotInitialised { .. })
                if start.elapsed() < timeout =>
            {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(e) => panic!("open failed: {e}"),
        }
    }
}

/// Monotonic ns, comparable across processes.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
