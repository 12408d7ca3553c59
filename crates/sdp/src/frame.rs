//! Frames on a byte stream: a COBS-encoded packet followed by one `0x00` delimiter.
//!
//! [`encode`] turns a [`Packet`] into a frame. [`FrameDecoder`] is the receiving side: it is
//! fed chunks of whatever size the serial port or socket delivers and yields each frame as a
//! validated [`Packet`] or as a [`FrameError`] that maps to the protocol's [`ErrorCode`]. It
//! owns a fixed buffer of [`MAX_FRAME_LEN`] bytes and never grows: a run longer than that
//! without a delimiter is reported once as BUFFER_OVERFLOW and discarded up to the next
//! `0x00`, where decoding resynchronises.

use thiserror::Error;

use crate::cobs::{self, CobsError};
use crate::packet::{Packet, PacketError, MAX_PACKET_LEN, PACKET_OVERHEAD};
use crate::ErrorCode;

/// The frame delimiter; COBS guarantees it never occurs inside a frame.
pub const DELIMITER: u8 = 0x00;

/// The longest encoded frame, without its delimiter: 260 bytes for a 258-byte packet.
///
/// The spec counts the delimiter too ("261 bytes"); a run of more than this many non-zero
/// bytes cannot be a valid frame and triggers BUFFER_OVERFLOW.
pub const MAX_FRAME_LEN: usize = cobs::max_encoded_len(MAX_PACKET_LEN);

/// Appends `packet` as a frame (COBS bytes then `0x00`) to `out`.
///
/// Appending lets the sender reuse one buffer for every frame, so sending does not allocate.
pub fn encode(packet: &Packet, out: &mut Vec<u8>) {
    cobs::encode(packet.as_bytes(), out);
    out.push(DELIMITER);
}

/// Why a frame on the stream did not yield a packet.
///
/// Each variant maps to the ERROR code to answer with ([`FrameError::error_code`]); the
/// connection stays usable after any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    /// More than [`MAX_FRAME_LEN`] bytes arrived without a delimiter. Reported once per
    /// over-long frame, as soon as the bound is crossed; the rest of the frame is discarded.
    #[error(
        "frame exceeded {MAX_FRAME_LEN} encoded bytes without a 0x00 delimiter; \
         discarding input up to the next delimiter"
    )]
    Overflow,
    /// The frame is not valid COBS (cut short or corrupted on the line).
    #[error("frame is not valid COBS: {0}")]
    Cobs(#[from] CobsError),
    /// The frame decoded, but not to a valid packet (length or checksum).
    #[error("frame does not hold a valid packet: {0}")]
    Packet(#[from] PacketError),
}

impl FrameError {
    /// The ERROR code the receiver answers this frame with.
    #[must_use]
    pub const fn error_code(&self) -> ErrorCode {
        match self {
            FrameError::Overflow => ErrorCode::BufferOverflow,
            FrameError::Cobs(_) => ErrorCode::UnexpectedDelimiter,
            FrameError::Packet(error) => error.error_code(),
        }
    }
}

/// Streaming frame decoder with a fixed memory bound.
///
/// Feed it bytes with [`FrameDecoder::decode`] (a chunk at a time) or
/// [`FrameDecoder::push_byte`]; chunk boundaries do not matter. Empty frames (two delimiters
/// in a row) are ignored. Keep one decoder per connection and [`reset`](Self::reset) it when
/// the connection is re-established.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    /// Encoded bytes of the frame being received; only `buf[..len]` is meaningful.
    buf: [u8; MAX_FRAME_LEN],
    /// Number of bytes buffered; always `<= MAX_FRAME_LEN`.
    len: usize,
    /// True after an overflow, until the next delimiter.
    discarding: bool,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new()
    }
}

impl FrameDecoder {
    /// A decoder waiting for the start of a frame.
    #[must_use]
    pub const fn new() -> FrameDecoder {
        FrameDecoder {
            buf: [0; MAX_FRAME_LEN],
            len: 0,
            discarding: false,
        }
    }

    /// Decodes the frames completed by `input`, lazily, one per iterator item.
    ///
    /// Bytes of an unfinished frame stay buffered for the next call. Drain the iterator:
    /// input it has not reached when dropped is not consumed (see [`Frames::remaining`]).
    pub fn decode<'d, 'i>(&'d mut self, input: &'i [u8]) -> Frames<'d, 'i> {
        Frames {
            decoder: self,
            input,
        }
    }

    /// Feeds one byte; returns the outcome when it completes (or overflows) a frame.
    pub fn push_byte(&mut self, byte: u8) -> Option<Result<Packet, FrameError>> {
        if byte == DELIMITER {
            let was_discarding = std::mem::take(&mut self.discarding);
            let len = std::mem::take(&mut self.len);
            if was_discarding || len == 0 {
                return None;
            }
            return Some(decode_frame(self.buf.get(..len).unwrap_or_default()));
        }
        if self.discarding {
            return None;
        }
        match self.buf.get_mut(self.len) {
            Some(slot) => {
                *slot = byte;
                self.len += 1;
                None
            }
            None => {
                self.len = 0;
                self.discarding = true;
                Some(Err(FrameError::Overflow))
            }
        }
    }

    /// Number of bytes currently buffered; never more than [`MAX_FRAME_LEN`].
    #[must_use]
    pub fn buffered_len(&self) -> usize {
        self.len
    }

    /// True while an over-long frame is being discarded up to the next delimiter.
    #[must_use]
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    /// Forgets any partial frame, e.g. after the connection was re-opened.
    pub fn reset(&mut self) {
        self.len = 0;
        self.discarding = false;
    }
}

/// COBS-decodes and validates one complete frame (delimiter already stripped).
fn decode_frame(frame: &[u8]) -> Result<Packet, FrameError> {
    let mut raw = [0u8; MAX_PACKET_LEN];
    let len = cobs::decode(frame, &mut raw).map_err(|error| match error {
        // Decoding past the largest packet is a length problem, not a COBS one. A frame of
        // at most MAX_FRAME_LEN bytes decodes to at most MAX_PACKET_LEN + 1 bytes.
        CobsError::OutputTooLong { .. } => FrameError::Packet(PacketError::LengthMismatch {
            declared: raw[1],
            expected: PACKET_OVERHEAD + usize::from(raw[1]),
            actual: MAX_PACKET_LEN + 1,
        }),
        other => FrameError::Cobs(other),
    })?;
    Ok(Packet::decode(raw.get(..len).unwrap_or_default())?)
}

/// Iterator over the frames completed by one input chunk; see [`FrameDecoder::decode`].
#[derive(Debug)]
pub struct Frames<'d, 'i> {
    /// The decoder that keeps state across chunks.
    decoder: &'d mut FrameDecoder,
    /// Input not yet fed to the decoder.
    input: &'i [u8],
}

impl<'i> Frames<'_, 'i> {
    /// The part of the chunk not yet consumed.
    #[must_use]
    pub fn remaining(&self) -> &'i [u8] {
        self.input
    }
}

impl Iterator for Frames<'_, '_> {
    type Item = Result<Packet, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        while let Some((&byte, rest)) = self.input.split_first() {
            self.input = rest;
            if let Some(outcome) = self.decoder.push_byte(byte) {
                return Some(outcome);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PING_FRAME: [u8; 5] = [0x02, 0x10, 0x02, 0x10, 0x00];
    const HB_FRAME: [u8; 6] = [0x05, 0x17, 0x01, 0x80, 0x96, 0x00];

    fn ping() -> Packet {
        Packet::new(0x10, &[]).expect("fits")
    }

    fn hb_req() -> Packet {
        Packet::new(0x17, &[0x80]).expect("fits")
    }

    /// Feeds `chunks` in order and collects every outcome.
    fn run(decoder: &mut FrameDecoder, chunks: &[&[u8]]) -> Vec<Result<Packet, FrameError>> {
        chunks
            .iter()
            .flat_map(|chunk| decoder.decode(chunk).collect::<Vec<_>>())
            .collect()
    }

    #[test]
    fn encode_appends_cobs_and_delimiter() {
        let mut out = vec![0xAA];
        encode(&ping(), &mut out);
        encode(&hb_req(), &mut out);
        assert_eq!(out[0], 0xAA);
        assert_eq!(&out[1..6], &PING_FRAME);
        assert_eq!(&out[6..], &HB_FRAME);
    }

    #[test]
    fn max_frame_len_matches_spec() {
        assert_eq!(MAX_FRAME_LEN, 260);
    }

    #[test]
    fn frames_split_at_every_boundary() {
        let stream = [&PING_FRAME[..], &HB_FRAME[..]].concat();
        for cut in 0..=stream.len() {
            let mut decoder = FrameDecoder::new();
            let (a, b) = stream.split_at(cut);
            assert_eq!(
                run(&mut decoder, &[a, b]),
                vec![Ok(ping()), Ok(hb_req())],
                "cut at {cut}"
            );
            assert_eq!(decoder.buffered_len(), 0);
        }
    }

    #[test]
    fn byte_at_a_time() {
        let stream = [&HB_FRAME[..], &PING_FRAME[..]].concat();
        let mut decoder = FrameDecoder::new();
        let outcomes: Vec<_> = stream
            .iter()
            .filter_map(|&b| decoder.push_byte(b))
            .collect();
        assert_eq!(outcomes, vec![Ok(hb_req()), Ok(ping())]);
    }

    #[test]
    fn empty_frames_are_ignored() {
        let mut decoder = FrameDecoder::new();
        let stream = [&[0x00, 0x00][..], &PING_FRAME, &[0x00, 0x00, 0x00]].concat();
        assert_eq!(run(&mut decoder, &[&stream]), vec![Ok(ping())]);
    }

    #[test]
    fn garbage_then_good_frame_resynchronises() {
        let mut decoder = FrameDecoder::new();
        let stream = [&[0x07, 0x33, 0x99, 0x00][..], &PING_FRAME].concat();
        let outcomes = run(&mut decoder, &[&stream]);
        assert_eq!(outcomes.len(), 2);
        let error = outcomes[0].clone().expect_err("garbage");
        assert_eq!(error.error_code(), ErrorCode::UnexpectedDelimiter);
        assert_eq!(outcomes[1], Ok(ping()));
    }

    #[test]
    fn overlong_run_reports_overflow_once_then_recovers() {
        let mut decoder = FrameDecoder::new();
        let junk = vec![0x5A; 3 * MAX_FRAME_LEN];
        let mut outcomes = Vec::new();
        for chunk in junk.chunks(7) {
            outcomes.extend(decoder.decode(chunk));
            assert!(decoder.buffered_len() <= MAX_FRAME_LEN);
        }
        assert_eq!(outcomes, vec![Err(FrameError::Overflow)]);
        assert!(decoder.is_discarding());
        assert_eq!(run(&mut decoder, &[&[0x00], &PING_FRAME]), vec![Ok(ping())]);
        assert_eq!(FrameError::Overflow.error_code(), ErrorCode::BufferOverflow);
    }

    #[test]
    fn overflow_boundary() {
        // 260 non-zero bytes still fit (and fail as COBS); the 261st overflows.
        let mut decoder = FrameDecoder::new();
        let fits = [vec![0x5A; MAX_FRAME_LEN], vec![0x00]].concat();
        let outcomes = run(&mut decoder, &[&fits]);
        assert!(matches!(outcomes[..], [Err(FrameError::Cobs(_))]));
        let overflows = vec![0x5A; MAX_FRAME_LEN + 1];
        assert_eq!(
            run(&mut decoder, &[&overflows]),
            vec![Err(FrameError::Overflow)]
        );
    }

    #[test]
    fn frame_decoding_past_the_largest_packet_is_a_length_error() {
        // 260 encoded bytes of code 0x01 decode to 259 zeros, one more than any packet.
        let mut frame = vec![0x01; MAX_FRAME_LEN];
        frame.push(0x00);
        let mut decoder = FrameDecoder::new();
        let outcomes = run(&mut decoder, &[&frame]);
        assert!(matches!(
            outcomes[..],
            [Err(FrameError::Packet(PacketError::LengthMismatch { .. }))]
        ));
        assert_eq!(
            outcomes[0].clone().map(|_| ()).unwrap_err().error_code(),
            ErrorCode::UnexpectedDelimiter
        );
    }

    #[test]
    fn reset_drops_partial_frame() {
        let mut decoder = FrameDecoder::new();
        assert_eq!(run(&mut decoder, &[&PING_FRAME[..3]]), vec![]);
        assert_eq!(decoder.buffered_len(), 3);
        decoder.reset();
        assert_eq!(run(&mut decoder, &[&HB_FRAME]), vec![Ok(hb_req())]);
    }

    #[test]
    fn dropped_iterator_leaves_remaining_input() {
        let stream = [&PING_FRAME[..], &HB_FRAME[..]].concat();
        let mut decoder = FrameDecoder::new();
        let mut frames = decoder.decode(&stream);
        assert_eq!(frames.next(), Some(Ok(ping())));
        assert_eq!(frames.remaining(), &HB_FRAME);
    }
}
