//! The pitcrew application crate: what every pitcrew binary and every controller shares.
//!
//! * [`options`]: the shared command-line options and their resolved form ([`config`]);
//! * [`app`]: runtime, logging, signals and ordered shutdown for a daemon's `main`;
//! * [`instance`]: the namespace lock that keeps a daemon to one instance per namespace;
//! * [`rpc`]: MessagePack-RPC client and services over the router;
//! * [`endpoint`]: the ZeroMQ sockets behind all of it (the only module that uses libzmq);
//! * re-exported from the crates below it, so a daemon needs one import path: the controller
//!   API of `pitcrew-controller` ([`robot`], [`gamepad`], [`device`], [`codec`],
//!   [`realtime`]) and the control link of `pitcrew-control` ([`control`], the datagram
//!   every driver station sends and its sealing, and [`key`], the team key);
//! * [`tap`]: the bounded, non-blocking event tap a process offers to recorders.
#![warn(missing_docs)]

pub mod app;
pub mod config;
mod doorbell;
pub mod endpoint;
pub mod instance;
pub mod logging;
pub mod options;
pub mod rpc;
pub mod signals;
pub mod tap;
pub mod updates;

pub use pitcrew_control::{self as control, key};
pub use pitcrew_controller::{codec, device, gamepad, realtime, robot};
