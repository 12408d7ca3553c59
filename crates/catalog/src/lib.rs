//! The pitcrew device catalog: which peripheral types exist, their params and access rules,
//! loaded from YAML (`catalog/devices.yaml`) and validated once, plus the value model shared
//! by everything that reads or writes a param (shared-memory buffers, the CLI, RPC).
//!
//! Layers, bottom up: `yaml` text → line-numbered tree; `schema` tree →
//! validated [`DeviceType`]s; [`Catalog`] lookups. [`value`] owns storage types and values.
//! The 88-bit UID is the Smart Device Protocol's ([`Uid`], re-exported from `pitcrew-sdp`).

mod bounds;
mod catalog;
mod device;
mod error;
mod schema;
pub mod value;
mod yaml;

pub use bounds::{Bounds, Clamp};
pub use catalog::{Catalog, EMBEDDED_ORIGIN, EMBEDDED_YAML};
pub use device::{Access, DeviceType, Param, MAX_SMART_PARAMS, MAX_SMART_PARAM_WIDTH};
pub use error::{LoadError, LoadErrorKind};
pub use pitcrew_sdp::{Uid, UidError};
pub use value::{LeBytes, ParamType, Scalar, ScalarType, Value, ValueError};
