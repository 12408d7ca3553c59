//! Every test vector of `smart-device-protocol.md`, checked byte for byte in both directions.
//!
//! Each row is an example: the message, its raw packet (where the spec lists one) and its COBS
//! frame as written in the spec. Encoding the message must give exactly those bytes, and
//! decoding the frame (plus its `00` delimiter) must give exactly that message.

use pitcrew_sdp::frame::{self, FrameDecoder, FrameError};
use pitcrew_sdp::{
    ErrorCode, Message, PacketError, ParamData, ParamWidths, ScalarType, Uid, Value,
};

/// Bytes written the way the spec writes them: `"04 11 04 07"`.
fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|byte| u8::from_str_radix(byte, 16).expect("hex byte"))
        .collect()
}

const TRUE: &[u8] = &[0x01];
const FALSE: &[u8] = &[0x00];
const DEADBEEF: &[u8] = &0xDEAD_BEEF_u32.to_le_bytes();
const F0_5: &[u8] = &0.5_f32.to_le_bytes();
const F_MINUS_0_123: &[u8] = &(-0.123_f32).to_le_bytes();
const F0_123: &[u8] = &0.123_f32.to_le_bytes();
const F0_456: &[u8] = &0.456_f32.to_le_bytes();
const FF_253: &[u8] = &[0xFF; 253];

/// A DEV_WRITE/DEV_DATA value set from `(param id, value bytes)` pairs.
fn values(pairs: &[(u8, &'static [u8])]) -> ParamData<'static> {
    let mut data = ParamData::new();
    for &(id, bytes) in pairs {
        data.insert(id, bytes).expect("valid param");
    }
    data
}

/// A receiver whose slots are exactly as wide as the values in `message`.
fn matching_widths(message: &Message<'_>) -> ParamWidths {
    let mut widths = ParamWidths::new();
    if let Message::DevWrite(data) | Message::DevData(data) = message {
        for (id, bytes) in data.iter() {
            widths.set(id, bytes.len() as u8).expect("valid width");
        }
    }
    widths
}

/// One row of a spec table.
struct Vector {
    name: &'static str,
    message: Message<'static>,
    raw: Option<Vec<u8>>,
    frame: Vec<u8>,
}

fn v(name: &'static str, message: Message<'static>, raw: Option<&str>, frame: &str) -> Vector {
    Vector {
        name,
        message,
        raw: raw.map(hex),
        frame: hex(frame),
    }
}

fn generic_table() -> Vec<Vector> {
    use Message::*;
    let mut table = vec![
        v("PING", Ping, Some("10 00 10"), "02 10 02 10"),
        v("DEV_DISABLE", DevDisable, Some("16 00 16"), "02 16 02 16"),
        v(
            "SUB_REQ(0x0007, 0 ms)",
            SubReq {
                params: 0x0007,
                interval_ms: 0,
            },
            Some("11 04 07 00 00 00 12"),
            "04 11 04 07 01 01 02 12",
        ),
        v(
            "SUB_REQ(0x0002, 1000 ms)",
            SubReq {
                params: 0x0002,
                interval_ms: 1000,
            },
            Some("11 04 02 00 e8 03 fc"),
            "04 11 04 02 04 e8 03 fc",
        ),
        v(
            "SUB_REQ(0, 0) (unsubscribe)",
            SubReq {
                params: 0,
                interval_ms: 0,
            },
            Some("11 04 00 00 00 00 15"),
            "03 11 04 01 01 01 02 15",
        ),
        v(
            "DEV_READ(0x0005)",
            DevRead { params: 0x0005 },
            Some("13 02 05 00 14"),
            "04 13 02 05 02 14",
        ),
        v(
            "DEV_WRITE(0x0002, bool true)",
            DevWrite(values(&[(1, TRUE)])),
            Some("14 03 02 00 01 14"),
            "04 14 03 02 03 01 14",
        ),
        v(
            "DEV_WRITE(0x0005, bool 1, u32 0xDEADBEEF)",
            DevWrite(values(&[(0, TRUE), (2, DEADBEEF)])),
            Some("14 07 05 00 01 ef be ad de 35"),
            "04 14 07 05 07 01 ef be ad de 35",
        ),
        v(
            "DEV_WRITE(bit 4, f32 0.5)",
            DevWrite(values(&[(4, F0_5)])),
            Some("14 06 10 00 00 00 00 3f 3d"),
            "04 14 06 10 01 01 01 03 3f 3d",
        ),
        v(
            "DEV_DATA(bit 1, f32 -0.123)",
            DevData(values(&[(1, F_MINUS_0_123)])),
            None,
            "04 15 06 02 06 6d e7 fb bd dd",
        ),
        v(
            "DEV_DATA(bit 2, u32 0xDEADBEEF)",
            DevData(values(&[(2, DEADBEEF)])),
            None,
            "04 15 06 04 06 ef be ad de 35",
        ),
        v(
            "DEV_DATA(0x0007; false, true, true)",
            DevData(values(&[(0, FALSE), (1, TRUE), (2, TRUE)])),
            None,
            "04 15 05 07 01 04 01 01 17",
        ),
        v(
            "DEV_DATA(0x0000) (empty)",
            DevData(ParamData::new()),
            None,
            "03 15 02 01 02 17",
        ),
        v(
            "HB_REQ(0x80)",
            HbReq(0x80),
            Some("17 01 80 96"),
            "05 17 01 80 96",
        ),
        v("HB_RES(0x80)", HbRes(0x80), None, "05 18 01 80 99"),
        v("HB_REQ(0x00)", HbReq(0x00), None, "03 17 01 02 16"),
        v("HB_REQ(0xFF)", HbReq(0xFF), None, "05 17 01 ff e9"),
        v(
            "ERROR(0xFD)",
            Error(ErrorCode::UnexpectedDelimiter),
            None,
            "05 ff 01 fd 03",
        ),
        v(
            "ERROR(0xFF)",
            Error(ErrorCode::GenericError),
            None,
            "05 ff 01 ff 01",
        ),
        v(
            "SUB_RES(0, 0 ms, dev 0, year 1, random all ones)",
            SubRes {
                params: 0,
                interval_ms: 0,
                uid: Uid::new(0, 1, u64::MAX),
            },
            None,
            "03 12 0f 01 01 01 01 01 0b 01 ff ff ff ff ff ff ff ff 1c",
        ),
        v(
            "SUB_RES(0x0001, 20 ms, dev 0, year 0x0F, random 0xDEADBEEF)",
            SubRes {
                params: 0x0001,
                interval_ms: 20,
                uid: Uid::new(0, 0x0F, 0xDEAD_BEEF),
            },
            Some("12 0f 01 00 14 00 00 00 0f ef be ad de 00 00 00 00 25"),
            "04 12 0f 01 02 14 01 01 06 0f ef be ad de 01 01 01 02 25",
        ),
    ];
    // The longest packet: `14 ff 08 00` + 253×`ff` + `1c`; frame `04 14 ff 08` + 254×`ff` + `1c`.
    let ff = |n| vec!["ff"; n].join(" ");
    table.push(v(
        "DEV_WRITE(bit 3, 253 × 0xFF) (longest packet)",
        DevWrite(values(&[(3, FF_253)])),
        Some(&format!("14 ff 08 00 {} 1c", ff(253))),
        &format!("04 14 ff 08 {} 1c", ff(254)),
    ));
    table
}

/// The shipped `polar-bear` type: device id 0x0C, 14 float params (4 bytes each).
fn polar_bear_widths() -> ParamWidths {
    let mut widths = ParamWidths::new();
    for id in 0..14 {
        widths
            .set(
                id,
                u8::try_from(ScalarType::Float.storage_width()).expect("4 bytes"),
            )
            .expect("valid width");
    }
    widths
}

fn polar_bear_table() -> Vec<Vector> {
    use Message::*;
    let uid = Uid::from_u128(0x0C << 72).expect("88-bit UID");
    vec![
        v(
            "SUB_REQ(0x0001, 123 ms)",
            SubReq {
                params: 0x0001,
                interval_ms: 123,
            },
            None,
            "04 11 04 01 02 7b 02 6f",
        ),
        v(
            "SUB_RES(0x0001, 123 ms, UID 0x0C << 72)",
            SubRes {
                params: 0x0001,
                interval_ms: 123,
                uid,
            },
            None,
            "04 12 0f 01 02 7b 02 0c 01 01 01 01 01 01 01 01 01 02 6b",
        ),
        v(
            "DEV_READ(0x0001)",
            DevRead { params: 0x0001 },
            None,
            "04 13 02 01 02 10",
        ),
        v(
            "DEV_WRITE(duty_cycle = 0.123)",
            DevWrite(values(&[(0, F0_123)])),
            None,
            "04 14 06 01 06 6d e7 fb 3d 5f",
        ),
        v(
            "DEV_DATA(duty_cycle = 0.456)",
            DevData(values(&[(0, F0_456)])),
            None,
            "04 15 06 01 06 d5 78 e9 3e 68",
        ),
        v("HB_RES(0xFF)", HbRes(0xFF), None, "05 18 01 ff e6"),
    ]
}

/// Encodes `vector.message` and checks the raw packet and the frame byte for byte.
fn assert_encodes(vector: &Vector) {
    let packet = vector.message.to_packet().expect(vector.name);
    if let Some(raw) = &vector.raw {
        assert_eq!(packet.as_bytes(), &raw[..], "{}: raw packet", vector.name);
    }
    let mut wire = Vec::new();
    frame::encode(&packet, &mut wire);
    let mut expected = vector.frame.clone();
    expected.push(0x00);
    assert_eq!(wire, expected, "{}: frame", vector.name);
}

/// Decodes `vector.frame` + delimiter and checks it yields exactly `vector.message`.
fn assert_decodes(vector: &Vector, widths: &ParamWidths) {
    let mut wire = vector.frame.clone();
    wire.push(0x00);
    let mut decoder = FrameDecoder::new();
    let packets: Vec<_> = decoder.decode(&wire).collect();
    let [Ok(packet)] = &packets[..] else {
        panic!("{}: expected one packet, got {packets:?}", vector.name);
    };
    if let Some(raw) = &vector.raw {
        assert_eq!(packet.as_bytes(), &raw[..], "{}: raw packet", vector.name);
    }
    let message = Message::from_packet(packet, widths).expect(vector.name);
    assert_eq!(message, vector.message, "{}", vector.name);
}

#[test]
fn spec_vectors_encode_exactly() {
    for vector in generic_table().iter().chain(&polar_bear_table()) {
        assert_encodes(vector);
    }
}

#[test]
fn spec_vectors_decode_exactly() {
    for vector in &generic_table() {
        assert_decodes(vector, &matching_widths(&vector.message));
    }
    let polar_bear = polar_bear_widths();
    for vector in &polar_bear_table() {
        assert_decodes(vector, &polar_bear);
    }
}

#[test]
fn spec_values_read_back_as_the_numbers_in_the_table() {
    let f32_of = |bytes| Value::from_le_bytes(ScalarType::Float, bytes).expect("f32");
    assert_eq!(f32_of(F0_123), Value::F32(0.123));
    assert_eq!(f32_of(F0_456), Value::F32(0.456));
    assert_eq!(f32_of(F_MINUS_0_123), Value::F32(-0.123));
    assert_eq!(f32_of(&hex("00 00 00 3f")), Value::F32(0.5));
    assert_eq!(
        Value::from_le_bytes(ScalarType::Uint32, &hex("ef be ad de")),
        Ok(Value::U32(0xDEAD_BEEF))
    );
    let uid = Uid::from_u128(0x0C << 72).expect("88-bit UID");
    assert_eq!((uid.device_id(), uid.year(), uid.random()), (0x0C, 0, 0));
}

#[test]
fn longest_frame_with_trailing_empty_group_decodes_too() {
    // A C-style COBS encoder ends the 254-byte group with an extra `01`; accept it as well.
    let vector = generic_table().pop().expect("longest packet row");
    let mut frame = vector.frame.clone();
    frame.extend_from_slice(&[0x01, 0x00]);
    let mut decoder = FrameDecoder::new();
    let packets: Vec<_> = decoder.decode(&frame).collect();
    assert_eq!(packets.len(), 1);
    let packet = packets[0].as_ref().expect("valid");
    assert_eq!(Some(packet.as_bytes().to_vec()), vector.raw);
}

/// Runs `frame` (delimiter appended) through a fresh decoder and returns its one error.
fn decode_error(frame: &[u8]) -> FrameError {
    let mut wire = frame.to_vec();
    wire.push(0x00);
    let mut decoder = FrameDecoder::new();
    let outcomes: Vec<_> = decoder.decode(&wire).collect();
    match &outcomes[..] {
        [Err(error)] => *error,
        other => panic!("{frame:02x?}: expected one error, got {other:?}"),
    }
}

#[test]
fn spec_decoder_failure_cases() {
    let table = [
        // decodes to 2 bytes
        ("02 10 01", ErrorCode::UnexpectedDelimiter),
        // promise more bytes than exist
        ("ff", ErrorCode::UnexpectedDelimiter),
        ("ff ff ff", ErrorCode::UnexpectedDelimiter),
        // SUB_REQ(0x0002, 1000 ms) with payload byte e8 flipped to e9
        ("04 11 04 02 04 e9 03 fc", ErrorCode::BadChecksum),
    ];
    for (frame, code) in table {
        assert_eq!(decode_error(&hex(frame)).error_code(), code, "{frame}");
    }
    assert_eq!(
        decode_error(&hex("02 10 01")),
        FrameError::Packet(PacketError::TooShort { actual: 2 })
    );
}

#[test]
fn any_flipped_payload_byte_is_bad_checksum() {
    for vector in generic_table().iter().chain(&polar_bear_table()) {
        let packet = vector.message.to_packet().expect(vector.name);
        for index in 2..packet.as_bytes().len() - 1 {
            for flip in [0x01, 0x80, 0xFF] {
                let mut raw = packet.as_bytes().to_vec();
                raw[index] ^= flip;
                let mut cobs = Vec::new();
                pitcrew_sdp::cobs::encode(&raw, &mut cobs);
                let error = decode_error(&cobs);
                assert!(
                    matches!(error, FrameError::Packet(PacketError::BadChecksum { .. })),
                    "{}: byte {index} ^ {flip:#04x}: {error:?}",
                    vector.name
                );
                assert_eq!(error.error_code(), ErrorCode::BadChecksum);
            }
        }
    }
}

#[test]
fn spec_value_sets_are_rejected_by_mismatched_receivers() {
    let wire = hex("04 14 07 05 07 01 ef be ad de 35 00");
    let mut decoder = FrameDecoder::new();
    let packet = decoder
        .decode(&wire)
        .next()
        .expect("frame")
        .expect("valid packet");
    // Param 2 is a bool on this receiver: 4 value bytes too many.
    let mut narrow = ParamWidths::new();
    narrow
        .set(0, 1)
        .and_then(|()| narrow.set(2, 1))
        .expect("valid widths");
    assert!(Message::from_packet(&packet, &narrow).is_err());
    // No slot for param 2 at all.
    let mut missing = ParamWidths::new();
    missing.set(0, 1).expect("valid width");
    let error = Message::from_packet(&packet, &missing).expect_err("no slot");
    assert_eq!(error.error_code(), ErrorCode::GenericError);
}
