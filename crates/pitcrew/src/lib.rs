//! The pitcrew application crate: what every pitcrew binary and every controller shares.
//!
//! * [`options`]: the shared command-line options and their resolved form ([`config`]);
//! * [`app`]: runtime, logging, signals and ordered shutdown for a daemon's `main`;
//! * [`instance`]: the namespace lock that keeps a daemon to one instance per namespace;
//! * [`rpc`]: MessagePack-RPC client and services over the router;
//! * [`endpoint`]: the ZeroMQ sockets behind all of it (the only module that uses libzmq);
//! * [`codec`]: the one place that knows the MessagePack serializer;
//! * for controllers: [`robot`] (the robot state and its wait), [`gamepad`] (buttons, axes,
//!   the gamepad reader), [`device`] (a Smart Device by UID), and [`control`], the control
//!   datagram every driver station sends;
//! * [`tap`]: the bounded, non-blocking event tap a process offers to recorders.
#![warn(missing_docs)]

pub mod app;
pub mod codec;
pub mod config;
pub mod control;
pub mod device;
mod doorbell;
pub mod endpoint;
pub mod gamepad;
pub mod instance;
pub mod key;
pub mod logging;
pub mod options;
pub mod realtime;
pub mod robot;
pub mod rpc;
pub mod signals;
pub mod tap;
pub mod updates;
