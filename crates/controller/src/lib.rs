//! The controller API: what a team's controller needs to read the robot and drive it, and
//! nothing else — no ZeroMQ, no command line, no cryptography — so a controller that reads
//! a gamepad and writes a motor compiles and links only this, the buffers and the catalog.
//!
//! * [`robot`]: the robot state (mode, enabled, estopped, the match phase), its
//!   shared-memory segments and [`robot::Robot`], the controller's reader with a wait;
//! * [`gamepad`]: buttons, axes and the gamepad reader;
//! * [`device`]: a Smart Device by UID, read and written through its shared-memory buffer;
//! * [`codec`]: the one place that knows the MessagePack serializer (robot status
//!   datagrams here; RPC, logs and the control datagram in the crates above);
//! * [`realtime`]: raising a control thread's scheduling priority.
//!
//! The application crate (`pitcrew`) re-exports these modules under the same names, so
//! daemons write `pitcrew::robot` and a bare controller `pitcrew_controller::robot`.
#![warn(missing_docs)]

pub mod codec;
pub mod device;
pub mod gamepad;
pub mod realtime;
pub mod robot;
