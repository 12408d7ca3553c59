//! What the recorder's sources hand its writer: one message on a channel, and the counts of
//! what could not be handed over. Its own module so that every source (the taps, the log
//! forwarder, the simulation's pose) and the writer share it without importing each other.

use std::sync::atomic::AtomicU64;

/// One message for the writer.
pub(super) struct Incoming {
    /// Its channel's index in [`super::channels::ALL`].
    pub(super) channel: usize,
    /// CLOCK_MONOTONIC ns.
    pub(super) log_time: u64,
    /// The JSON message.
    pub(super) data: Vec<u8>,
}

/// Counters shared by the sources and the writer.
#[derive(Default)]
pub(super) struct Counters {
    /// Messages a full queue dropped.
    pub(super) dropped: AtomicU64,
    /// Messages that could not be understood.
    pub(super) malformed: AtomicU64,
}
