//! Smart Device Protocol (SDP) codec for pitcrew.
//!
//! This crate turns bytes on a serial line (or the TCP stream of a virtual Smart Device) into
//! validated, typed messages and back. It does no I/O, never allocates on the decode path and
//! never panics on input bytes, so it can be fuzzed and used on the joystick → motor latency
//! path. The layers follow the wire, bottom up:
//!
//! * [`cobs`] — Consistent Overhead Byte Stuffing of one packet;
//! * [`frame`] — frames on a byte stream: [`frame::encode`] and the streaming
//!   [`frame::FrameDecoder`] with its hard memory bound;
//! * [`packet`] — the raw `[type][len][payload][checksum]` [`Packet`];
//! * [`message`] — the typed [`Message`] enum and [`MessageType`];
//! * [`error_code`] — the protocol's [`ErrorCode`]s, which every decode error maps to;
//! * [`params`] — parameter value sets carried by DEV_WRITE/DEV_DATA ([`ParamData`],
//!   [`ParamWidths`]) and their deterministic splitting;
//! * [`value`] — the value model of every param ([`ScalarType`], [`Value`], [`LeBytes`],
//!   [`Scalar`], [`ValueError`]), shared by the catalog, the buffers, the CLI and the emulator
//!   (its JSON form behind the `json` feature);
//! * [`uid`] — the 88-bit device [`Uid`].
//!
//! The normative description is `shared/spec/smart-device-protocol.md`.
//!
//! # Example
//!
//! ```
//! use pitcrew_sdp::{frame, FrameDecoder, Message, ParamWidths};
//!
//! let mut wire = Vec::new();
//! frame::encode(&Message::HbReq(0x80).to_packet()?, &mut wire);
//! assert_eq!(wire, [0x05, 0x17, 0x01, 0x80, 0x96, 0x00]);
//!
//! let mut decoder = FrameDecoder::new();
//! let widths = ParamWidths::new();
//! for result in decoder.decode(&wire) {
//!     let packet = result?;
//!     assert_eq!(Message::from_packet(&packet, &widths)?, Message::HbReq(0x80));
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod cobs;
pub mod error_code;
pub mod frame;
pub mod message;
pub mod packet;
pub mod params;
pub mod uid;
pub mod value;

pub use error_code::ErrorCode;
pub use frame::{FrameDecoder, FrameError};
pub use message::{Message, MessageError, MessageType};
pub use packet::{Packet, PacketError};
pub use params::{ParamData, ParamError, ParamWidths};
pub use uid::{Uid, UidError};
pub use value::{LeBytes, Scalar, ScalarType, Value, ValueError};
