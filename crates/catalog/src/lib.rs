//! The pitcrew device catalog: which peripheral types exist, their params and access rules,
//! loaded from YAML (`catalog/devices.yaml`) and validated once.
//!
//! Layers, bottom up: `yaml` text → line-numbered tree; `schema` tree →
//! validated [`DeviceType`]s; [`Catalog`] lookups. A param's declared type is a
//! [`ParamType`] (a scalar or a fixed array) with its [`Bounds`].
//!
//! The value model shared by everything that reads or writes a param (shared-memory
//! buffers, the CLI, RPC) is `pitcrew_sdp::value`, re-exported here: [`ScalarType`],
//! [`Value`], [`LeBytes`], [`Scalar`] and [`ValueError`]. So is the 88-bit UID of the Smart
//! Device Protocol ([`Uid`]).

mod bounds;
mod catalog;
mod device;
mod error;
mod param_type;
mod schema;
pub mod yaml;

pub use bounds::{Bounds, Clamp};
pub use catalog::{Catalog, EMBEDDED_ORIGIN, EMBEDDED_YAML, MAX_CATALOG_BYTES};
pub use device::{mask_of, Access, DeviceType, Param, MAX_SMART_PARAMS, MAX_SMART_PARAM_WIDTH};
pub use error::{LoadError, LoadErrorKind};
pub use param_type::ParamType;
pub use pitcrew_sdp::value::{LeBytes, Scalar, ScalarType, Value, ValueError};
pub use pitcrew_sdp::{Uid, UidError};
