//! What comes from a device: [`FrameReader`], the reading half of a connection, which turns
//! the byte stream into frames, and [`unexpected`], the first check every frame gets
//! before it may touch any state (spec: a device never sends a host → device type).
//!
//! The reader's one decoder lives for the whole connection: a frame split across reads, or
//! across the end of discovery, is joined whole.

use pitcrew_sdp::message::Direction;
use pitcrew_sdp::{ErrorCode, FrameDecoder, FrameError, MessageType, Packet};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Read chunk size; the frame decoder bounds memory, this only sizes one `read`.
const READ_CHUNK: usize = 512;

/// One decoded frame, or why it did not decode (answered with ERROR by the session).
pub type Frame = Result<Packet, FrameError>;

/// The reading half of a device connection: reads chunks and keeps the frames they
/// complete until the session takes them ([`FrameReader::drain`]).
#[derive(Debug)]
pub struct FrameReader<R> {
    reader: R,
    decoder: FrameDecoder,
    buf: [u8; READ_CHUNK],
    frames: Vec<Frame>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads frames from `reader`.
    pub fn new(reader: R) -> Self {
        FrameReader {
            reader,
            decoder: FrameDecoder::new(),
            buf: [0u8; READ_CHUNK],
            frames: Vec::new(),
        }
    }

    /// Reads one chunk and decodes the frames it completes. Returns `false` at end of
    /// stream.
    ///
    /// # Errors
    /// When the read fails.
    ///
    /// # Cancel safety
    /// Cancel safe: only the `read` awaits, and decoding happens after it returned.
    pub async fn read(&mut self) -> std::io::Result<bool> {
        let n = self.reader.read(&mut self.buf).await?;
        if n == 0 {
            return Ok(false);
        }
        let chunk = self.buf.get(..n).unwrap_or_default();
        self.frames.extend(self.decoder.decode(chunk));
        Ok(true)
    }

    /// The frames read so far, oldest first. Whatever the caller does not take (it stopped
    /// early: the device identified itself, or the connection failed) is dropped with the
    /// iterator: a frame belongs to the turn of the loop that read it.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Frame> {
        self.frames.drain(..)
    }
}

/// `Some(INVALID_TYPE)` for a type byte a device must not send (host → device, or unknown).
pub fn unexpected(packet: &Packet) -> Option<ErrorCode> {
    match MessageType::from_byte(packet.msg_type()) {
        Some(t) if t.direction() != Direction::HostToDevice => None,
        _ => Some(ErrorCode::InvalidType),
    }
}
