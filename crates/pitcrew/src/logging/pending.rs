//! An event between the caller's thread and the publisher's: what [`super::layer`] queues
//! and [`super::publisher`] encodes (kept apart so that neither imports the other back).

use std::sync::Arc;
use std::time::SystemTime;

use tracing::Metadata;

use crate::codec::Value;

/// Named field values, in the order recorded.
pub(crate) type Fields = Vec<(&'static str, Value)>;

/// An event as queued for the publisher thread.
pub(crate) struct Pending {
    /// When it happened.
    pub(crate) time: SystemTime,
    /// Level, target and callsite.
    pub(crate) meta: &'static Metadata<'static>,
    /// The `message` field, if any.
    pub(crate) message: Option<String>,
    /// The event's other fields.
    pub(crate) fields: Fields,
    /// The fields of the spans the event is in, outermost first.
    pub(crate) spans: Vec<Arc<Fields>>,
}
