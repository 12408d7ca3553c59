//! MessagePack-RPC over ZeroMQ: messages, typed parameters, the client and services.

mod client;
mod message;
mod params;
mod registration;
mod service;

pub use client::Client;
pub use message::{
    type_name, BadMessage, ErrorCode, Message, Notification, Request, Response, RpcError,
    MAX_PAYLOAD_BYTES,
};
pub use params::{FromParams, FromValue};
pub use service::{
    Service, ServiceStats, DEFAULT_HANDLER_TIMEOUT, DEFAULT_WORKERS, DRAIN_DEADLINE,
    QUEUE_PER_WORKER,
};
