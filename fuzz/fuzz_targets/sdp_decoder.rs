//! Fuzzes the receive path: arbitrary bytes, in arbitrary chunks, through the streaming
//! `FrameDecoder`, then every decoded packet (and the whole input as one packet) through
//! `Message::from_packet`. Nothing may panic, buffered memory must stay bounded, and every
//! message that decodes must re-encode to the same packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pitcrew_sdp::frame::{FrameDecoder, MAX_FRAME_LEN};
use pitcrew_sdp::{Message, Packet, ParamWidths};

fuzz_target!(|data: &[u8]| {
    // First byte: chunk size; next 16 bytes: receiver slot widths (0 or > 253 = no slot).
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let (slots, stream) = rest.split_at(rest.len().min(16));
    let mut widths = ParamWidths::new();
    for (id, &width) in (0u8..).zip(slots) {
        let _ = widths.set(id, width);
    }

    let mut decoder = FrameDecoder::new();
    for piece in stream.chunks(usize::from(chunk).max(1)) {
        for outcome in decoder.decode(piece) {
            match outcome {
                Ok(packet) => check(&packet, &widths),
                Err(error) => {
                    let _ = error.error_code();
                }
            }
        }
        assert!(decoder.buffered_len() <= MAX_FRAME_LEN);
    }

    if let Ok(packet) = Packet::decode(stream) {
        check(&packet, &widths);
    }
});

/// A packet that decodes to a message must re-encode to itself.
fn check(packet: &Packet, widths: &ParamWidths) {
    match Message::from_packet(packet, widths) {
        Ok(message) => assert_eq!(message.to_packet().as_ref(), Ok(packet)),
        Err(error) => {
            let _ = error.error_code();
        }
    }
}
