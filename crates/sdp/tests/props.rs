//! Property tests: the decoder against 100 000 randomized inputs, and encode → decode
//! round trips for arbitrary valid messages.
//!
//! Case counts are set explicitly so the total is known (see each test's doc): 40 000
//! arbitrary streams + 20 000 streams with long runs + 30 000 message round trips + 10 000
//! noisy resynchronisations = 100 000 decoder inputs, plus 5 000 split checks. To stay fast in
//! debug builds, proptest picks a seed, a length and a shape (and shrinks the length), and the
//! bytes are expanded from the seed with SplitMix64 instead of being drawn one by one.

use pitcrew_sdp::frame::{self, FrameDecoder, FrameError, MAX_FRAME_LEN};
use pitcrew_sdp::packet::MAX_PAYLOAD_LEN;
use pitcrew_sdp::{ErrorCode, Message, Packet, ParamData, ParamWidths, Uid};
use proptest::prelude::*;
use proptest::test_runner::RngAlgorithm;

/// Deterministic byte source: SplitMix64.
struct Bytes(u64);

impl Bytes {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    /// `len` bytes where roughly one in `zero_one_in` is a delimiter (0 = uniform bytes).
    fn stream(&mut self, len: usize, zero_one_in: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                let r = self.next_u64();
                if zero_one_in > 0 && r % zero_one_in == 0 {
                    0
                } else {
                    (r >> 8) as u8
                }
            })
            .collect()
    }

    /// Cuts `input` into chunks of 1..=max_chunk bytes.
    fn chunks<'a>(&mut self, input: &'a [u8], max_chunk: usize) -> Vec<&'a [u8]> {
        let mut chunks = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let take = 1 + (self.next_u64() as usize % max_chunk).min(rest.len() - 1);
            let (chunk, tail) = rest.split_at(take);
            chunks.push(chunk);
            rest = tail;
        }
        chunks
    }
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // ChaCha is very slow in debug builds; XorShift keeps 100 000 cases to seconds.
        rng_algorithm: RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    }
}

/// Feeds `chunks`, checking the memory bound after each, and returns every outcome.
fn feed(decoder: &mut FrameDecoder, chunks: &[&[u8]]) -> Vec<Result<Packet, FrameError>> {
    let mut outcomes = Vec::new();
    for chunk in chunks {
        outcomes.extend(decoder.decode(chunk));
        assert!(decoder.buffered_len() <= MAX_FRAME_LEN);
    }
    outcomes
}

/// A receiver with a mix of slot widths, to push decoded packets through `Message`.
fn mixed_widths() -> ParamWidths {
    ParamWidths::from_slots([
        Some(1),
        Some(4),
        Some(2),
        Some(8),
        None,
        Some(4),
        Some(1),
        Some(253),
        Some(4),
        None,
        Some(1),
        Some(16),
        Some(4),
        Some(4),
        Some(2),
        Some(1),
    ])
    .expect("valid widths")
}

proptest! {
    #![proptest_config(config(40_000))]

    /// 40 000 cases: arbitrary byte streams in arbitrary chunks never panic, buffered memory
    /// stays within the bound, and every yielded packet is valid and converts without panic.
    #[test]
    fn arbitrary_streams_never_panic(
        seed: u64,
        len in 0usize..700,
        zero_one_in in prop_oneof![Just(0u64), 2u64..8, 8u64..300],
        max_chunk in 1usize..80,
    ) {
        let mut rng = Bytes(seed);
        let input = rng.stream(len, zero_one_in);
        let chunks = rng.chunks(&input, max_chunk);
        let mut decoder = FrameDecoder::new();
        let widths = mixed_widths();
        for outcome in feed(&mut decoder, &chunks) {
            match outcome {
                Ok(packet) => {
                    prop_assert!(Packet::decode(packet.as_bytes()).is_ok());
                    if let Ok(message) = Message::from_packet(&packet, &widths) {
                        prop_assert_eq!(message.to_packet(), Ok(packet.clone()));
                    }
                }
                Err(error) => {
                    let _ = error.error_code();
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config(20_000))]

    /// 20 000 cases: streams of long runs between delimiters. Each run (complete or not)
    /// longer than MAX_FRAME_LEN reports BUFFER_OVERFLOW exactly once; every other non-empty
    /// complete run yields exactly one outcome.
    #[test]
    fn long_runs_overflow_exactly_once(
        seed: u64,
        runs in proptest::collection::vec(0usize..600, 1..6),
        max_chunk in 1usize..300,
    ) {
        let mut rng = Bytes(seed);
        let mut input = Vec::new();
        for (i, &run) in runs.iter().enumerate() {
            input.extend((0..run).map(|_| rng.byte().max(1)));
            if i + 1 < runs.len() {
                input.push(0);
            }
        }
        let complete = &runs[..runs.len() - 1];
        let expected_overflows = runs.iter().filter(|&&r| r > MAX_FRAME_LEN).count();
        let expected_frames = complete.iter().filter(|&&r| (1..=MAX_FRAME_LEN).contains(&r)).count();
        let chunks = rng.chunks(&input, max_chunk);
        let outcomes = feed(&mut FrameDecoder::new(), &chunks);
        let overflows = outcomes.iter().filter(|o| **o == Err(FrameError::Overflow)).count();
        prop_assert_eq!(overflows, expected_overflows);
        prop_assert_eq!(outcomes.len() - overflows, expected_frames);
    }
}

/// The owned parts of an arbitrary message; DEV_WRITE/DEV_DATA values are built in the test.
#[derive(Debug, Clone)]
enum Shape {
    Ping,
    DevDisable,
    SubReq(u16, u16),
    SubRes(u16, u16, u16, u8, u64),
    DevRead(u16),
    DevWrite,
    DevData,
    HbReq(u8),
    HbRes(u8),
    Error(usize),
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Ping),
        Just(Shape::DevDisable),
        any::<(u16, u16)>().prop_map(|(p, i)| Shape::SubReq(p, i)),
        any::<(u16, u16, u16, u8, u64)>().prop_map(|(p, i, d, y, r)| Shape::SubRes(p, i, d, y, r)),
        any::<u16>().prop_map(Shape::DevRead),
        Just(Shape::DevWrite),
        Just(Shape::DevData),
        any::<u8>().prop_map(Shape::HbReq),
        any::<u8>().prop_map(Shape::HbRes),
        (0usize..ErrorCode::ALL.len()).prop_map(Shape::Error),
    ]
}

/// Slot widths from `seed`: each id has no slot, a scalar width, or (rarely) a wide array.
fn random_widths(rng: &mut Bytes) -> ParamWidths {
    let mut widths = ParamWidths::new();
    for id in 0..16 {
        let width = match rng.next_u64() % 10 {
            0..=2 => continue,
            3..=8 => [1, 2, 4, 8][rng.next_u64() as usize % 4],
            _ => 1 + (rng.next_u64() % 253) as u8,
        };
        widths.set(id, width).expect("valid width");
    }
    widths
}

/// A value set naming some of the ids `widths` has slots for, with bytes from `pool`.
fn random_values<'a>(rng: &mut Bytes, widths: &ParamWidths, pool: &'a [u8]) -> ParamData<'a> {
    let mut data = ParamData::new();
    for id in 0..16 {
        if let Some(width) = widths.width(id) {
            if rng.next_u64() % 2 == 0 {
                let start = rng.next_u64() as usize % (pool.len() - 253);
                data.insert(id, &pool[start..start + usize::from(width)])
                    .expect("valid");
            }
        }
    }
    data
}

proptest! {
    #![proptest_config(config(30_000))]

    /// 30 000 cases: arbitrary valid messages (value sets split when too long) survive
    /// message → packet → frame → chunked decoder → packet → message unchanged.
    #[test]
    fn messages_round_trip_through_frames(shape in shape(), seed: u64, max_chunk in 1usize..40) {
        let mut rng = Bytes(seed);
        let pool = rng.stream(600, 5);
        let widths = random_widths(&mut rng);
        let data = random_values(&mut rng, &widths, &pool);
        let messages: Vec<Message<'_>> = match shape {
            Shape::Ping => vec![Message::Ping],
            Shape::DevDisable => vec![Message::DevDisable],
            Shape::SubReq(params, interval_ms) => vec![Message::SubReq { params, interval_ms }],
            Shape::SubRes(params, interval_ms, device_id, year, random) => vec![Message::SubRes {
                params,
                interval_ms,
                uid: Uid::new(device_id, year, random),
            }],
            Shape::DevRead(params) => vec![Message::DevRead { params }],
            Shape::DevWrite => data.split().map(Message::DevWrite).collect(),
            Shape::DevData => data.split().map(Message::DevData).collect(),
            Shape::HbReq(id) => vec![Message::HbReq(id)],
            Shape::HbRes(id) => vec![Message::HbRes(id)],
            Shape::Error(i) => vec![Message::Error(ErrorCode::ALL[i])],
        };
        let mut wire = Vec::new();
        for message in &messages {
            message.encode_frame(&mut wire).expect("every split part fits");
        }
        let chunks = rng.chunks(&wire, max_chunk);
        let packets = feed(&mut FrameDecoder::new(), &chunks);
        prop_assert_eq!(packets.len(), messages.len());
        for (packet, message) in packets.iter().zip(&messages) {
            let packet = packet.as_ref().expect("valid frame");
            prop_assert!(packet.payload().len() <= MAX_PAYLOAD_LEN);
            prop_assert_eq!(&Message::from_packet(packet, &widths).expect("valid"), message);
        }
    }
}

proptest! {
    #![proptest_config(config(10_000))]

    /// 10 000 cases: whatever garbage precedes it, a delimiter followed by a good frame is
    /// decoded, and it is the last outcome.
    #[test]
    fn garbage_then_good_frame_resynchronises(
        seed: u64,
        garbage_len in 0usize..900,
        zero_one_in in prop_oneof![Just(0u64), 2u64..400],
        id: u8,
        max_chunk in 1usize..64,
    ) {
        let mut rng = Bytes(seed);
        let mut wire = rng.stream(garbage_len, zero_one_in);
        wire.push(0);
        let good = Message::HbReq(id).to_packet().expect("fits");
        frame::encode(&good, &mut wire);
        let chunks = rng.chunks(&wire, max_chunk);
        let mut decoder = FrameDecoder::new();
        let outcomes = feed(&mut decoder, &chunks);
        prop_assert_eq!(outcomes.last(), Some(&Ok(good)));
        prop_assert_eq!(decoder.buffered_len(), 0);
    }
}

proptest! {
    #![proptest_config(config(5_000))]

    /// 5 000 cases: splitting is deterministic, every part fits one message, ids ascend across
    /// parts, and the parts reassemble to the original set.
    #[test]
    fn split_parts_fit_and_reassemble(seed: u64) {
        let mut rng = Bytes(seed);
        let pool = rng.stream(600, 0);
        let widths = random_widths(&mut rng);
        let data = random_values(&mut rng, &widths, &pool);
        let parts: Vec<_> = data.split().collect();
        prop_assert_eq!(&data.split().collect::<Vec<_>>(), &parts);
        prop_assert!(!parts.is_empty());
        let mut merged = ParamData::new();
        let mut last = None;
        for part in &parts {
            prop_assert!(part.payload_len() <= MAX_PAYLOAD_LEN);
            for (id, value) in part.iter() {
                prop_assert!(last < Some(id));
                last = Some(id);
                merged.insert(id, value).expect("valid");
            }
        }
        prop_assert_eq!(merged, data);
        if data.payload_len() <= MAX_PAYLOAD_LEN {
            prop_assert_eq!(parts, vec![data]);
        }
    }
}
