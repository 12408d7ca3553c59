//! The two shared-memory segments of the robot state, built on the device buffers (same
//! seqlock, same futex wake-ups, same owner/consumer rules; `pitcrew buffers` lists them):
//!
//! * `/<ns>-robot-state-0`, owned by the device broker: one [`RobotStatus`] record. A store
//!   happens only on a transition, so a controller blocked in
//!   [`Robot::wait_for_change`](super::Robot::wait_for_change) wakes exactly when the state
//!   changes.
//! * `/<ns>-driver-links-0`, owned by the gamepad receiver: [`LINK_SLOTS`] slots, one per
//!   driver station heard, each with the station's last request and when its last valid
//!   datagram arrived. The broker watches it to decide whether a link is live.
//!
//! Their types are built in (not in the user's catalog, which cannot break them), and each
//! segment is one record stored and read whole ([`Owner::set_raw`] /
//! [`Buffer::sensed_raw`]). The buffer layout version and the type fingerprint version
//! them; the README lists the fields.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pitcrew_buffer::{Buffer, BufferError, Owner, SegmentKey};
use pitcrew_catalog::{Catalog, DeviceType};

use super::{MatchPhase, Mode, RobotStatus, State, StationRequest};

/// Driver stations the receiver tracks at once (a gamepad sender, a dashboard and a field
/// controller, plus one spare); a further station takes the slot heard from least recently.
pub const LINK_SLOTS: usize = 4;
/// Bytes of a link's name (a datagram's `source`, at most 64 bytes).
pub const LINK_NAME_LEN: usize = 64;
/// Bytes of the disable reason kept in the state (longer reasons are cut at a char).
pub const REASON_LEN: usize = 128;

/// Type name of the broker's state segment.
pub const STATE_TYPE: &str = "robot-state";
/// Type name of the receiver's link segment.
pub const LINKS_TYPE: &str = "driver-links";

const STATE_YAML: &str = "robot-state:
  params:
    - {name: state, type: uint8}
    - {name: mode, type: uint8}
    - {name: since_ns, type: uint64}
    - {name: since_unix_ms, type: uint64}
    - {name: transitions, type: uint32}
    - {name: link, type: 'uint8[64]'}
    - {name: reason, type: 'uint8[128]'}
    - {name: match_phase, type: uint8}
    - {name: phase_end_ns, type: uint64}
    - {name: match_end_ns, type: uint64}
    - {name: control_timeout_ms, type: uint32}
    - {name: output_lease_ms, type: uint32}
";

/// Params of one link slot, in order (slot `i`'s params have ids `7i..7i+7`).
const SLOT_PARAMS: [(&str, &str); 7] = [
    ("source", "'uint8[64]'"),
    ("seen_ns", "uint64"),
    ("seq", "uint64"),
    ("mode", "uint8"),
    ("enable", "bool"),
    ("enable_id", "uint32"),
    ("estop", "bool"),
];

/// Bytes of one slot record: 64 + 8 + 8 + 1 + 1 + 4 + 1.
const SLOT_LEN: usize = LINK_NAME_LEN + 8 + 8 + 1 + 1 + 4 + 1;
/// Bytes of the state record: 1 + 1 + 8 + 8 + 4 + 64 + 128 + 1 + 8 + 8 + 4 + 4.
const STATE_LEN: usize = 1 + 1 + 8 + 8 + 4 + LINK_NAME_LEN + REASON_LEN + 1 + 8 + 8 + 4 + 4;

fn built_in(yaml: &str, name: &str) -> Arc<DeviceType> {
    // Invariant: the text is a constant of this module, loaded by its tests; it cannot fail
    // at run time, whatever the user's catalog or input.
    let catalog = Catalog::from_yaml_str(yaml, "built-in robot segments")
        .unwrap_or_else(|e| unreachable!("the built-in segment types load: {e}"));
    match catalog.get(name) {
        Some(ty) => Arc::clone(ty),
        None => unreachable!("the built-in type {name} is defined"),
    }
}

/// The built-in type of the state segment.
pub fn state_type() -> &'static Arc<DeviceType> {
    static TYPE: OnceLock<Arc<DeviceType>> = OnceLock::new();
    TYPE.get_or_init(|| built_in(STATE_YAML, STATE_TYPE))
}

/// The built-in type of the link segment.
pub fn links_type() -> &'static Arc<DeviceType> {
    static TYPE: OnceLock<Arc<DeviceType>> = OnceLock::new();
    TYPE.get_or_init(|| {
        let mut yaml = format!("{LINKS_TYPE}:\n  params:\n");
        for i in 0..LINK_SLOTS {
            for (name, ty) in SLOT_PARAMS {
                yaml.push_str(&format!("    - {{name: l{i}_{name}, type: {ty}}}\n"));
            }
        }
        built_in(&yaml, LINKS_TYPE)
    })
}

/// Every param of a type (the whole record).
fn all_bits(ty: &DeviceType) -> u64 {
    ty.readable_mask()
}

/// The bits of slot `i`.
fn slot_bits(i: usize) -> u64 {
    let n = SLOT_PARAMS.len();
    ((1u64 << n) - 1) << (n * i)
}

/// Little-endian field writer over a record.
struct Put(Vec<u8>);

impl Put {
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn text(&mut self, s: &str, len: usize) {
        let cut = truncate(s, len);
        self.0.extend_from_slice(cut.as_bytes());
        self.0.resize(self.0.len() + len - cut.len(), 0);
    }
}

/// Little-endian field reader over a record (short records read as zeros: callers check
/// the length once).
struct Take<'a>(&'a [u8]);

impl Take<'_> {
    fn n<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let (head, rest) = self.0.split_at(N.min(self.0.len()));
        out[..head.len()].copy_from_slice(head);
        self.0 = rest;
        out
    }
    fn u8(&mut self) -> u8 {
        self.n::<1>()[0]
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.n())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.n())
    }
    fn text(&mut self, len: usize) -> String {
        let (head, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        let end = head.iter().position(|b| *b == 0).unwrap_or(head.len());
        String::from_utf8_lossy(&head[..end]).into_owned()
    }
}

/// `s` cut to at most `len` bytes at a char boundary.
fn truncate(s: &str, len: usize) -> &str {
    let mut end = s.len().min(len);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn ms32(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// The state record's bytes.
pub fn encode_status(s: &RobotStatus) -> Vec<u8> {
    let mut p = Put(Vec::with_capacity(STATE_LEN));
    p.bytes(&[s.state.code(), s.mode.code()]);
    p.bytes(&s.since_ns.to_le_bytes());
    p.bytes(&s.since_unix_ms.to_le_bytes());
    p.bytes(&s.transitions.to_le_bytes());
    p.text(&s.link, LINK_NAME_LEN);
    p.text(&s.reason, REASON_LEN);
    p.bytes(&[s.phase.map_or(0, MatchPhase::code)]);
    p.bytes(&s.phase_end_ns.to_le_bytes());
    p.bytes(&s.match_end_ns.to_le_bytes());
    p.bytes(&ms32(s.control_timeout).to_le_bytes());
    p.bytes(&ms32(s.output_lease).to_le_bytes());
    p.0
}

/// The status of a state record.
pub fn decode_status(bytes: &[u8]) -> RobotStatus {
    let mut t = Take(bytes);
    RobotStatus {
        state: State::from_code(t.u8()),
        mode: Mode::from_code(t.u8()).unwrap_or(Mode::Teleop),
        since_ns: t.u64(),
        since_unix_ms: t.u64(),
        transitions: t.u32(),
        link: t.text(LINK_NAME_LEN),
        reason: t.text(REASON_LEN),
        phase: MatchPhase::from_code(t.u8()),
        phase_end_ns: t.u64(),
        match_end_ns: t.u64(),
        control_timeout: Duration::from_millis(u64::from(t.u32())),
        output_lease: Duration::from_millis(u64::from(t.u32())),
    }
}

/// The broker's side of the state segment.
#[derive(Debug)]
pub struct StateOwner {
    owner: Owner,
}

impl StateOwner {
    /// Creates (or takes over from a dead predecessor) `/<ns>-robot-state-0` and publishes
    /// `initial`.
    ///
    /// # Errors
    /// When the segment cannot be created or written.
    pub fn create(namespace: &str, initial: &RobotStatus) -> Result<StateOwner, BufferError> {
        let owner = Owner::create(namespace, Arc::clone(state_type()), SegmentKey::Index(0))?;
        owner.set_valid(true)?;
        let s = StateOwner { owner };
        s.publish(initial)?;
        Ok(s)
    }

    /// Stores `status` as one version, waking every blocked reader.
    ///
    /// # Errors
    /// When the segment refuses the store (it was superseded).
    pub fn publish(&self, status: &RobotStatus) -> Result<(), BufferError> {
        self.owner
            .set_raw(all_bits(state_type()), &encode_status(status))
    }
}

/// One driver station as the receiver last heard it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSlot {
    /// The station's `source` name.
    pub source: String,
    /// `CLOCK_MONOTONIC` ns of its last valid datagram (0: empty slot).
    pub seen_ns: u64,
    /// That datagram's `seq`.
    pub seq: u64,
    /// What it asks of the robot.
    pub request: StationRequest,
}

impl LinkSlot {
    fn encode(&self) -> Vec<u8> {
        let mut p = Put(Vec::with_capacity(SLOT_LEN));
        p.text(&self.source, LINK_NAME_LEN);
        p.bytes(&self.seen_ns.to_le_bytes());
        p.bytes(&self.seq.to_le_bytes());
        let r = &self.request;
        p.bytes(&[r.mode.code(), u8::from(r.enable)]);
        p.bytes(&r.enable_id.to_le_bytes());
        p.bytes(&[u8::from(r.estop)]);
        p.0
    }

    fn decode(t: &mut Take<'_>) -> LinkSlot {
        LinkSlot {
            source: t.text(LINK_NAME_LEN),
            seen_ns: t.u64(),
            seq: t.u64(),
            request: StationRequest {
                mode: Mode::from_code(t.u8()).unwrap_or(Mode::Teleop),
                enable: t.u8() == 1,
                enable_id: t.u32(),
                estop: t.u8() == 1,
            },
        }
    }
}

/// The receiver's side of the link segment.
#[derive(Debug)]
pub struct LinksOwner {
    owner: Owner,
    slots: [Option<(String, u64)>; LINK_SLOTS],
}

impl LinksOwner {
    /// Creates `/<ns>-driver-links-0` with every slot empty.
    ///
    /// # Errors
    /// When the segment cannot be created.
    pub fn create(namespace: &str) -> Result<LinksOwner, BufferError> {
        let owner = Owner::create(namespace, Arc::clone(links_type()), SegmentKey::Index(0))?;
        owner.set_valid(true)?;
        Ok(LinksOwner {
            owner,
            slots: Default::default(),
        })
    }

    /// Stores `link` in its station's slot (a new station takes an empty slot, or the one
    /// heard from least recently), as one version.
    ///
    /// # Errors
    /// When the segment refuses the store.
    pub fn store(&mut self, link: &LinkSlot) -> Result<(), BufferError> {
        let i = self
            .slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|(name, _)| *name == link.source))
            .or_else(|| self.slots.iter().position(Option::is_none))
            .unwrap_or_else(|| {
                (0..LINK_SLOTS)
                    .min_by_key(|i| self.slots[*i].as_ref().map_or(0, |(_, t)| *t))
                    .unwrap_or(0)
            });
        self.owner.set_raw(slot_bits(i), &link.encode())?;
        self.slots[i] = Some((link.source.clone(), link.seen_ns));
        Ok(())
    }

    /// The segment's name.
    pub fn name(&self) -> &str {
        self.owner.name()
    }
}

/// The occupied slots of a link segment's record.
pub fn decode_links(bytes: &[u8]) -> Vec<LinkSlot> {
    let mut t = Take(bytes);
    (0..LINK_SLOTS)
        .map(|_| LinkSlot::decode(&mut t))
        .filter(|l| l.seen_ns != 0)
        .collect()
}

/// Opens the state segment of `namespace` as a consumer.
///
/// # Errors
/// As [`Buffer::open`] (`NotFound` while no broker has started).
pub fn open_state(namespace: &str) -> Result<Buffer, BufferError> {
    Buffer::open(namespace, Arc::clone(state_type()), SegmentKey::Index(0))
}

/// Reads the state record of an open state segment, from one version.
///
/// # Errors
/// As [`Buffer::sensed_raw`].
pub fn read_status(buf: &Buffer) -> Result<RobotStatus, BufferError> {
    buf.sensed_raw(all_bits(state_type()))
        .map(|b| decode_status(&b))
}

/// Reads only the state of an open state segment (param 0, one byte): what a controller
/// asks every cycle, without decoding the texts of the whole record.
///
/// # Errors
/// As [`Buffer::sensed_raw`].
pub fn read_state(buf: &Buffer) -> Result<State, BufferError> {
    buf.sensed_raw(1)
        .map(|b| State::from_code(b.first().copied().unwrap_or(0)))
}

/// Opens the link segment of `namespace` as a consumer.
///
/// # Errors
/// As [`Buffer::open`] (`NotFound` while no receiver has started).
pub fn open_links(namespace: &str) -> Result<Buffer, BufferError> {
    Buffer::open(namespace, Arc::clone(links_type()), SegmentKey::Index(0))
}

/// Reads every occupied slot of an open link segment, from one version.
///
/// # Errors
/// As [`Buffer::sensed_raw`].
pub fn read_links(buf: &Buffer) -> Result<Vec<LinkSlot>, BufferError> {
    buf.sensed_raw(all_bits(links_type()))
        .map(|b| decode_links(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_types_load_and_their_records_have_the_documented_size() {
        let widths = |ty: &DeviceType| ty.params().iter().map(|p| p.storage_width()).sum();
        let state: usize = widths(state_type());
        assert_eq!(state, STATE_LEN);
        let links: usize = widths(links_type());
        assert_eq!(links, SLOT_LEN * LINK_SLOTS);
        assert_eq!(links_type().params().len(), SLOT_PARAMS.len() * LINK_SLOTS);
        assert_eq!(links_type().params()[7].name(), "l1_source");
    }

    #[test]
    fn the_state_alone_reads_as_in_the_whole_record() {
        let ns = format!("u{}-stateonly", std::process::id());
        let mut s = RobotStatus::initial("boot", Duration::ZERO, Duration::ZERO);
        let owner = StateOwner::create(&ns, &s).unwrap();
        let buf = open_state(&ns).unwrap();
        assert_eq!(read_state(&buf).unwrap(), State::Disabled);
        s.state = State::Autonomous;
        owner.publish(&s).unwrap();
        assert_eq!(read_state(&buf).unwrap(), State::Autonomous);
        assert_eq!(read_status(&buf).unwrap().state, State::Autonomous);
        drop((buf, owner));
        let _ = pitcrew_buffer::remove_namespace(&ns);
    }

    #[test]
    fn records_round_trip_and_long_texts_are_cut_at_a_char() {
        let mut s = RobotStatus::initial(
            "é".repeat(100).as_str(),
            Duration::from_millis(100),
            Duration::from_millis(250),
        );
        s.state = State::Autonomous;
        s.mode = Mode::Autonomous;
        s.link = "laptop-1".into();
        s.phase = Some(MatchPhase::Gap);
        s.phase_end_ns = 7;
        let bytes = encode_status(&s);
        assert_eq!(bytes.len(), STATE_LEN);
        let back = decode_status(&bytes);
        assert_eq!(back.reason.len(), REASON_LEN);
        assert_eq!(back.reason.chars().count(), 64);
        assert_eq!(
            RobotStatus {
                reason: back.reason.clone(),
                ..s
            },
            back
        );
        let slot = LinkSlot {
            source: "ds".into(),
            seen_ns: 5,
            seq: 9,
            request: StationRequest {
                mode: Mode::Teleop,
                enable: true,
                enable_id: 3,
                estop: false,
            },
        };
        let mut record = vec![0u8; SLOT_LEN * LINK_SLOTS];
        record[SLOT_LEN..2 * SLOT_LEN].copy_from_slice(&slot.encode());
        assert_eq!(decode_links(&record), [slot]);
    }
}
