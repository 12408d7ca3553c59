//! POSIX shared-memory device buffers: one segment per connected peripheral, created by its
//! owner (device broker, gamepad bridge) and opened by any number of consumers.
//!
//! Layers, bottom up: `os` calls and `shm` objects; `layout` (header, control
//! block, blocks); `seqlock` (consistent, crash-safe blocks); [`Buffer`] (consumer
//! operations) and [`Owner`] (owner operations); [`list`]/[`reset_stale`] (discovery and
//! cleanup). Typed accessors for controllers (gamepads, devices, the robot state) live in
//! the application crate, `pitcrew`.

mod buffer;
mod error;
mod layout;
mod list;
mod name;
mod os;
mod owner;
mod seqlock;
mod shm;

pub use buffer::{Buffer, Stats, Subscription, WriteOutcome};
pub use error::BufferError;
pub use layout::{LAYOUT_VERSION, MAX_BUFFER_PARAMS};
pub use list::{list, remove_namespace, reset_stale, SegmentInfo};
pub use name::{check_namespace, segment_name, SegmentKey, MAX_NAMESPACE_LEN};
pub use owner::Owner;
