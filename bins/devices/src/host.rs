//! [`Host`]: the host's end of one device connection, the side that writes to the device
//! (spec: the broker is the host). Every phase of a session sends through it: it frames
//! messages, writes them on the connection's [`Line`], offers what left to the recording
//! tap once the device is identified, and answers a bad frame with ERROR, counting it and
//! logging the first one of the connection (a device sending garbage at 1 kHz must not
//! flood the log).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pitcrew_catalog::{DeviceType, Uid};
use pitcrew_sdp::{ErrorCode, Message};

use crate::line::Line;
use crate::tap::{BrokerEvent, BrokerTap};

/// The writing side of one connection plus the bookkeeping every phase of its session
/// needs.
#[derive(Debug)]
pub struct Host {
    line: Arc<Line>,
    /// The frame being written (reused: no allocation per message).
    out: Vec<u8>,
    /// The serial port or TCP peer (logs, recordings).
    port: String,
    /// Whether a bad frame was logged at warn already (later ones go to debug).
    warned: bool,
    /// Decode errors of every connection, this one's included.
    decode_errors: Arc<AtomicU64>,
    tap: BrokerTap,
    /// The identified device, once attached (what the tap names).
    device: Option<(Uid, Arc<DeviceType>)>,
}

impl Host {
    /// The host's end of a connection on `port` that writes on `line`, counting bad
    /// frames in `decode_errors` and offering what it sends to `tap`.
    pub fn new(
        line: Arc<Line>,
        port: String,
        decode_errors: Arc<AtomicU64>,
        tap: BrokerTap,
    ) -> Host {
        Host {
            line,
            out: Vec::with_capacity(pitcrew_sdp::frame::MAX_FRAME_LEN + 1),
            port,
            warned: false,
            decode_errors,
            tap,
            device: None,
        }
    }

    /// The connection's line.
    pub fn line(&self) -> &Arc<Line> {
        &self.line
    }

    /// The serial port or TCP peer.
    pub fn port(&self) -> &str {
        &self.port
    }

    /// The recording tap.
    pub fn tap(&self) -> &BrokerTap {
        &self.tap
    }

    /// The connection presented `uid`, a device of type `ty`: from now on what is sent is
    /// offered to the tap, named so.
    pub fn identified(&mut self, uid: Uid, ty: Arc<DeviceType>) {
        self.device = Some((uid, ty));
    }

    /// Writes a lone frame delimiter. A serial device keeps what it read of the previous
    /// session: a frame that session's broker was cut off in the middle of would swallow
    /// our first PING. A lone delimiter ends it (an empty frame is ignored by the
    /// protocol), so it costs nothing.
    ///
    /// # Errors
    /// When the line fails.
    pub async fn end_partial_frame(&self) -> std::io::Result<()> {
        self.line.write_all(&[pitcrew_sdp::frame::DELIMITER]).await
    }

    /// Encodes and sends one message.
    ///
    /// # Errors
    /// When the message cannot be encoded or the line fails.
    pub async fn send(&mut self, msg: &Message<'_>) -> std::io::Result<()> {
        self.encode(msg)?;
        self.line.write_all(&self.out).await?;
        self.offer_sent(None);
        Ok(())
    }

    /// Sends DEV_DISABLE: tried even on a line that failed ([`Line::write_safety`]).
    ///
    /// # Errors
    /// When the line fails (or failed before and takes nothing).
    pub async fn send_disable(&mut self) -> std::io::Result<()> {
        self.encode(&Message::DevDisable)?;
        self.line.write_safety(&self.out).await?;
        self.offer_sent(None);
        Ok(())
    }

    fn encode(&mut self, msg: &Message<'_>) -> std::io::Result<()> {
        self.out.clear();
        msg.encode_frame(&mut self.out)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    }

    /// Sends safe values, already framed: tried even on a line that failed.
    ///
    /// # Errors
    /// When the line fails (or failed before and takes nothing).
    pub async fn send_safe_frames(&mut self, frames: &[u8]) -> std::io::Result<()> {
        self.line.write_safety(frames).await?;
        self.offer_sent(Some(frames));
        Ok(())
    }

    /// Offers what is being sent (`frames`, or the message just encoded) to the tap.
    fn offer_sent(&self, frames: Option<&[u8]>) {
        if let Some((uid, ty)) = &self.device {
            let frames = frames.unwrap_or(&self.out);
            self.tap.offer_with(|| BrokerEvent::sent(*uid, ty, frames));
        }
    }

    /// Offers the identified device's connect (`end` None) or disconnect to the tap.
    pub fn offer_connection(&self, end: Option<&'static str>) {
        if let Some((uid, ty)) = &self.device {
            self.tap.offer_with(|| BrokerEvent::Connection {
                t_ns: pitcrew::robot::monotonic_ns(),
                uid: *uid,
                ty: Arc::clone(ty),
                port: self.port.clone(),
                end,
            });
        }
    }

    /// Answers a bad frame with ERROR(code), counts it (in `counter` too, the device's own
    /// counter once it is identified), logs the first one of the session.
    ///
    /// # Errors
    /// When the ERROR cannot be sent.
    pub async fn reject(
        &mut self,
        code: ErrorCode,
        what: &(dyn std::fmt::Display + Sync),
        counter: Option<&AtomicU64>,
    ) -> std::io::Result<()> {
        self.decode_errors.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = counter {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if self.warned {
            tracing::debug!(port = %self.port, error = %what, "bad frame from device");
        } else {
            self.warned = true;
            tracing::warn!(port = %self.port, error = %what, "bad frame from device (further ones logged at debug)");
        }
        self.send(&Message::Error(code)).await
    }
}
