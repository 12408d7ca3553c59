//! Buffer errors. Each names the segment (which contains the device UID or index), and the
//! param where one is involved, so a log line is enough to find the device.

use pitcrew_catalog::ValueError;

/// Why a buffer operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// The namespace cannot form a segment name.
    #[error("invalid namespace `{namespace}`: {reason}")]
    BadNamespace {
        /// The namespace.
        namespace: String,
        /// Why.
        reason: &'static str,
    },
    /// A system call failed.
    #[error("shared memory `{name}`: {op} failed: {source}")]
    Os {
        /// The segment name.
        name: String,
        /// The failed call.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No segment of that name exists.
    #[error("buffer `{name}` does not exist (is its owner running?)")]
    NotFound {
        /// The segment name.
        name: String,
    },
    /// The segment exists but its owner has not finished creating it.
    #[error("buffer `{name}` is not initialised yet")]
    NotInitialised {
        /// The segment name.
        name: String,
    },
    /// The segment is not a pitcrew buffer, or of another layout version.
    #[error("`{name}` is not a pitcrew buffer of layout version {expected} ({detail})")]
    Foreign {
        /// The segment name.
        name: String,
        /// This build's layout version.
        expected: u32,
        /// What was found instead.
        detail: String,
    },
    /// The segment holds another peripheral type.
    #[error("buffer `{name}` holds type `{found}`, not `{expected}`")]
    TypeMismatch {
        /// The segment name.
        name: String,
        /// The type asked for.
        expected: String,
        /// The type in the segment.
        found: String,
    },
    /// The owner's catalog lays the type out differently from ours.
    #[error(
        "buffer `{name}`: catalog mismatch for type `{type_name}`: the segment's layout \
         fingerprint is {found:#018x} but this process's catalog gives {expected:#018x}; \
         load the same catalog as the owner"
    )]
    FingerprintMismatch {
        /// The segment name.
        name: String,
        /// The type.
        type_name: String,
        /// Our fingerprint.
        expected: u64,
        /// The segment's fingerprint.
        found: u64,
    },
    /// Another live process owns the segment.
    #[error("buffer `{name}` is already owned by live process {pid}")]
    AlreadyOwned {
        /// The segment name.
        name: String,
        /// The owner.
        pid: u32,
    },
    /// The owner marked the buffer invalid (device disconnected).
    #[error("buffer `{name}` is invalid (its device is disconnected)")]
    Invalid {
        /// The segment name.
        name: String,
    },
    /// The owner released this segment, or a new owner replaced it; the mapping is dead.
    #[error("buffer `{name}` was released or replaced by its owner; open it again")]
    Superseded {
        /// The segment name.
        name: String,
    },
    /// No param of that name.
    #[error("buffer `{name}`: `{param}` is not a param of type `{type_name}`")]
    UnknownParam {
        /// The segment name.
        name: String,
        /// The type.
        type_name: String,
        /// The asked-for name.
        param: String,
    },
    /// Reading a param that has no read-block slot.
    #[error("buffer `{name}`: param `{param}` is not readable")]
    NotReadable {
        /// The segment name.
        name: String,
        /// The param.
        param: String,
    },
    /// Writing a param that has no write-block slot.
    #[error("buffer `{name}`: param `{param}` is not writeable")]
    NotWriteable {
        /// The segment name.
        name: String,
        /// The param.
        param: String,
    },
    /// A value refused by the param's type (wrong kind, out of range, NaN).
    #[error("buffer `{name}`: param `{param}`: {source}")]
    Value {
        /// The segment name.
        name: String,
        /// The param.
        param: String,
        /// The value error.
        #[source]
        source: ValueError,
    },
    /// The type cannot be laid out in a buffer.
    #[error("type `{type_name}` cannot be a buffer: {reason}")]
    Unsupported {
        /// The type.
        type_name: String,
        /// Why.
        reason: String,
    },
    /// A live process held a block lock for too long (stopped or starved).
    #[error("buffer `{name}`: the {block} block is locked by live process {pid} for over {ms} ms")]
    Busy {
        /// The segment name.
        name: String,
        /// `read` or `write`.
        block: &'static str,
        /// The lock holder.
        pid: u32,
        /// How long we waited.
        ms: u64,
    },
    /// Raw DEV_DATA bytes that do not match the bitmap.
    #[error("buffer `{name}`: raw data refused: {reason}")]
    BadRaw {
        /// The segment name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The catalog has no type for the UID's device id.
    #[error("UID {uid}: no type with device id {device_id} in the catalog")]
    UnknownDevice {
        /// The UID (decimal).
        uid: String,
        /// Its device id.
        device_id: u16,
    },
    /// The catalog has no type of that name.
    #[error("type `{type_name}` is not in the catalog")]
    UnknownType {
        /// The type name.
        type_name: String,
    },
}
