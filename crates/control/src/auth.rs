//! Authenticated control datagrams: the envelope that says a datagram comes from a holder
//! of the team (or field) key, now, and only once (robot-state.md, "Who may drive").
//!
//! A sealed datagram is the control datagram of [`super`] wrapped as
//!
//! ```text
//! "PCA1" | key u8 | session u64 | counter u64 | challenge u64 | datagram | tag[16]
//! ```
//!
//! (integers big-endian; `key` 0 = team, 1 = field; `tag` is HMAC-SHA256 of everything before
//! it under the key's control subkey, truncated to 16 bytes). What each field defends:
//!
//! * **tag**: forgery. Without the key no datagram is accepted.
//! * **session + counter**: replay and reordering. A sender draws a random session when it
//!   starts and counts from 1; the robot applies a counter only if it is above the last one
//!   applied for that session. A new session is accepted at once, and nothing one session
//!   sends can block another: no single packet locks out the real driver.
//! * **challenge**: delay. The robot answers every authentic datagram with its current
//!   challenge, a random number it draws every [`CHALLENGE_PERIOD`] and forgets
//!   [`FRESH_WINDOW`] after drawing it; a sender echoes the latest one it received. A datagram whose challenge
//!   the robot does not hold is stale — captured and sent later, held back by someone in the
//!   middle, or recorded before the suite restarted (challenges are new in every process) —
//!   and changes nothing; it is answered with the current challenge only, which is smaller
//!   than what it answers, so the robot cannot be used to amplify traffic. A datagram is
//!   therefore at most [`FRESH_WINDOW`] (400 ms) old when it is applied.
//!
//! Answers to a station are sealed too (`"PCR1"`, the reply subkey), carry the session and
//! counter they answer, and are accepted by the station only for its own session.
//!
//! The MAC is RustCrypto's `hmac` over `sha2` (audited, constant-time verification); no
//! primitive is written here.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::MAX_DATAGRAM_BYTES;
use crate::key::{Key, KeyError, KeyKind, Keys, Purpose};

type HmacSha256 = Hmac<Sha256>;

/// First bytes of a sealed control datagram.
pub const SEALED_MAGIC: [u8; 4] = *b"PCA1";
/// First bytes of a sealed answer.
pub const REPLY_MAGIC: [u8; 4] = *b"PCR1";
/// Bytes of the truncated tag.
pub const TAG_BYTES: usize = 16;
/// Bytes before the payload: magic, key, session, counter, challenge.
const HEADER_BYTES: usize = 4 + 1 + 8 + 8 + 8;
/// What sealing adds to a datagram.
pub const OVERHEAD: usize = HEADER_BYTES + TAG_BYTES;
/// The largest control datagram that can be sealed within [`MAX_DATAGRAM_BYTES`].
pub const MAX_PAYLOAD: usize = MAX_DATAGRAM_BYTES - OVERHEAD;
/// How often the robot draws a new challenge (when it answers a datagram).
pub const CHALLENGE_PERIOD: Duration = Duration::from_millis(50);
/// How long a challenge stays valid after it was drawn: the bound on a datagram's age. The
/// README's "Who may drive", which spec/wire.md makes normative for challenges, says
/// 400 ms: a station's challenge is at most a [`CHALLENGE_PERIOD`] and a round trip old
/// when it seals with it, so this leaves 350 ms for the round trip over a congested event
/// network, more than the control timeout (100 ms) lets a driver link go without a
/// datagram anyway; a longer window would only give a delaying attacker more time.
pub const FRESH_WINDOW: Duration = Duration::from_millis(400);
/// How many sender sessions the robot remembers (a robot has one or two stations; the bound
/// keeps memory fixed whatever a key holder does).
pub const MAX_SESSIONS: usize = 64;

/// Whether `bytes` claim to be a sealed control datagram (the receiver's first test).
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(&SEALED_MAGIC)
}

fn key_byte(kind: KeyKind) -> u8 {
    match kind {
        KeyKind::Team => 0,
        KeyKind::Field => 1,
    }
}

fn kind_of(byte: u8) -> Option<KeyKind> {
    match byte {
        0 => Some(KeyKind::Team),
        1 => Some(KeyKind::Field),
        _ => None,
    }
}

fn mac_for(key: &Key, purpose: Purpose) -> HmacSha256 {
    // HMAC takes keys of any length; 32 bytes is never refused.
    match HmacSha256::new_from_slice(&key.derive(purpose)) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts a 32-byte key"),
    }
}

/// The fields of a sealed message, after its tag was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Envelope<'a> {
    kind: KeyKind,
    session: u64,
    counter: u64,
    challenge: u64,
    payload: &'a [u8],
}

fn be_u64(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(s) = bytes.get(at..at + 8) {
        b.copy_from_slice(s);
    }
    u64::from_be_bytes(b)
}

fn seal_with(mac: &HmacSha256, magic: [u8; 4], e: &Envelope<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(OVERHEAD + e.payload.len());
    out.extend_from_slice(&magic);
    out.push(key_byte(e.kind));
    out.extend_from_slice(&e.session.to_be_bytes());
    out.extend_from_slice(&e.counter.to_be_bytes());
    out.extend_from_slice(&e.challenge.to_be_bytes());
    out.extend_from_slice(e.payload);
    let mut m = mac.clone();
    m.update(&out);
    let tag = m.finalize().into_bytes();
    out.extend_from_slice(&tag[..TAG_BYTES]);
    out
}

/// Checks the framing of `bytes` and returns its key kind, before the tag is checked.
fn frame(bytes: &[u8], magic: [u8; 4]) -> Result<KeyKind, AuthRejection> {
    if !bytes.starts_with(&magic) {
        return Err(AuthRejection::Unauthenticated);
    }
    if bytes.len() < OVERHEAD || bytes.len() > MAX_DATAGRAM_BYTES {
        return Err(AuthRejection::Truncated(bytes.len()));
    }
    kind_of(bytes[4]).ok_or(AuthRejection::UnknownKey(bytes[4]))
}

/// Checks the tag of framed `bytes` with `mac` and splits them.
fn open_with<'a>(mac: &HmacSha256, bytes: &'a [u8]) -> Result<Envelope<'a>, AuthRejection> {
    let (body, tag) = bytes.split_at(bytes.len() - TAG_BYTES);
    let mut m = mac.clone();
    m.update(body);
    m.verify_truncated_left(tag)
        .map_err(|_| AuthRejection::BadTag)?;
    Ok(Envelope {
        kind: kind_of(body[4]).unwrap_or(KeyKind::Team),
        session: be_u64(body, 5),
        counter: be_u64(body, 13),
        challenge: be_u64(body, 21),
        payload: &body[HEADER_BYTES..],
    })
}

/// Why a datagram was not accepted as authentic, fresh and new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthRejection {
    /// Not sealed (where a key is required), or sealed where no key is configured.
    #[error("not authenticated with this robot's key")]
    Unauthenticated,
    /// Too short to hold a tag, or too long.
    #[error("sealed datagram of {0} bytes is truncated or too long")]
    Truncated(usize),
    /// A key id this robot does not hold.
    #[error("sealed with key id {0}, which this robot does not hold")]
    UnknownKey(u8),
    /// The tag does not match: forged, damaged, or sealed with another key.
    #[error("forged or damaged: the tag does not match the key")]
    BadTag,
    /// Authentic, but its challenge is not one the robot holds: sent later than it was
    /// made, made before the suite restarted, or the first of a new session.
    #[error("stale: its challenge is not a recent one of this robot")]
    Stale,
    /// Authentic, but its counter is not above the last one applied in its session.
    #[error("replayed or reordered: counter {counter} is not above {last} in its session")]
    Replayed {
        /// The datagram's counter.
        counter: u64,
        /// The last counter applied in its session.
        last: u64,
    },
}

impl AuthRejection {
    /// A short name of the kind, for counters and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::Truncated(_) | Self::UnknownKey(_) | Self::BadTag => "forged",
            Self::Stale => "stale",
            Self::Replayed { .. } => "replayed",
        }
    }
}

/// The sending side: seals a station's datagrams and opens the robot's answers.
#[derive(Clone)]
pub struct Sealer {
    kind: KeyKind,
    control: HmacSha256,
    reply: HmacSha256,
    session: u64,
    counter: u64,
    challenge: u64,
    answered: u64,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("kind", &self.kind)
            .field("session", &self.session)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

/// What an authentic answer of the robot carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer<'a> {
    /// The counter of the datagram it answers.
    pub counter: u64,
    /// The robot-state datagram (spec/wire.md), empty when the answer only gives a
    /// challenge.
    pub payload: &'a [u8],
}

impl Sealer {
    /// A new session sealed with `key`.
    ///
    /// # Errors
    /// When the operating system gives no random session number.
    pub fn new(key: &Key) -> Result<Sealer, KeyError> {
        let mut session = [0u8; 8];
        getrandom::fill(&mut session).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Sealer {
            kind: key.kind(),
            control: mac_for(key, Purpose::ControlMac),
            reply: mac_for(key, Purpose::ReplyMac),
            session: u64::from_be_bytes(session),
            counter: 0,
            challenge: 0,
            answered: 0,
        })
    }

    /// The session number (random, per sender start).
    pub fn session(&self) -> u64 {
        self.session
    }

    /// Whether the robot has given this session a challenge yet: until then its datagrams
    /// are answered but not applied.
    pub fn has_challenge(&self) -> bool {
        self.challenge != 0
    }

    /// Seals one control datagram (as [`super::encode`] made it), with the next counter.
    pub fn seal(&mut self, datagram: &[u8]) -> Vec<u8> {
        self.counter += 1;
        seal_with(
            &self.control,
            SEALED_MAGIC,
            &Envelope {
                kind: self.kind,
                session: self.session,
                counter: self.counter,
                challenge: self.challenge,
                payload: datagram,
            },
        )
    }

    /// Opens an answer of the robot: `None` unless it is authentic, for this session, and
    /// not older than an answer already taken. Takes its challenge for the next datagrams.
    pub fn open_answer<'a>(&mut self, bytes: &'a [u8]) -> Option<Answer<'a>> {
        frame(bytes, REPLY_MAGIC).ok().filter(|k| *k == self.kind)?;
        let e = open_with(&self.reply, bytes).ok()?;
        if e.session != self.session || e.counter < self.answered || e.counter > self.counter {
            return None;
        }
        self.answered = e.counter;
        if e.challenge != 0 {
            self.challenge = e.challenge;
        }
        Some(Answer {
            counter: e.counter,
            payload: e.payload,
        })
    }
}

/// What the robot knows of one sender session.
#[derive(Debug, Clone, Copy)]
struct Session {
    last: u64,
    seen: Instant,
}

/// A datagram that passed every check: authentic, fresh, new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened<'a> {
    /// Which key sealed it: what it may do.
    pub kind: KeyKind,
    /// Its sender session.
    pub session: u64,
    /// Its counter.
    pub counter: u64,
    /// The control datagram inside.
    pub payload: &'a [u8],
}

/// An authentic datagram that must not be applied, with the answer it still gets (the
/// current challenge), so that its sender can become fresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Why.
    pub why: AuthRejection,
    /// The sealed challenge-only answer, when the datagram was authentic.
    pub answer: Option<Vec<u8>>,
}

/// The receiving side: checks sealed datagrams and seals the answers.
pub struct Verifier {
    keys: [(KeyKind, Option<(HmacSha256, HmacSha256)>); 2],
    /// Recent challenges, newest last, with when each was drawn.
    challenges: VecDeque<(u64, Instant)>,
    sessions: HashMap<(KeyKind, u64), Session>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for the configured keys; `None` when no key is configured.
    pub fn new(keys: &Keys) -> Option<Verifier> {
        let macs = |k: Option<&Key>| {
            k.map(|k| {
                (
                    mac_for(k, Purpose::ControlMac),
                    mac_for(k, Purpose::ReplyMac),
                )
            })
        };
        keys.required().then(|| Verifier {
            keys: [
                (KeyKind::Team, macs(keys.team.as_ref())),
                (KeyKind::Field, macs(keys.field.as_ref())),
            ],
            challenges: VecDeque::new(),
            sessions: HashMap::new(),
        })
    }

    fn macs(&self, kind: KeyKind) -> Option<&(HmacSha256, HmacSha256)> {
        self.keys
            .iter()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, m)| m.as_ref())
    }

    /// Forgets the challenges drawn more than [`FRESH_WINDOW`] before `now`.
    fn expire(&mut self, now: Instant) {
        while self
            .challenges
            .front()
            .is_some_and(|(_, drawn)| now.saturating_duration_since(*drawn) > FRESH_WINDOW)
        {
            self.challenges.pop_front();
        }
    }

    /// The challenge to hand out now, drawing a new one every [`CHALLENGE_PERIOD`].
    fn current_challenge(&mut self, now: Instant) -> u64 {
        self.expire(now);
        let due = self
            .challenges
            .back()
            .is_none_or(|(_, drawn)| now.saturating_duration_since(*drawn) >= CHALLENGE_PERIOD);
        if due {
            let mut bytes = [0u8; 8];
            // Without randomness no new challenge: the senders' ones expire, which stops
            // the robot (fail safe), and the next answer tries again.
            if getrandom::fill(&mut bytes).is_ok() {
                self.challenges
                    .push_back((u64::from_be_bytes(bytes).max(1), now));
            }
        }
        self.challenges.back().map_or(0, |(c, _)| *c)
    }

    fn is_fresh(&mut self, challenge: u64, now: Instant) -> bool {
        self.expire(now);
        challenge != 0 && self.challenges.iter().any(|(c, _)| *c == challenge)
    }

    /// Checks one sealed datagram received at `now`.
    ///
    /// # Errors
    /// A [`Refused`] with the reason and, when the datagram was authentic, the answer that
    /// gives its sender the current challenge.
    pub fn open<'a>(&mut self, bytes: &'a [u8], now: Instant) -> Result<Opened<'a>, Refused> {
        let refuse = |why| Refused { why, answer: None };
        let kind = frame(bytes, SEALED_MAGIC).map_err(refuse)?;
        let (control, _) = self
            .macs(kind)
            .ok_or(refuse(AuthRejection::UnknownKey(key_byte(kind))))?;
        let e = open_with(control, bytes).map_err(refuse)?;
        if !self.is_fresh(e.challenge, now) {
            return Err(Refused {
                why: AuthRejection::Stale,
                answer: Some(self.answer(&e, now, &[])),
            });
        }
        let key = (e.kind, e.session);
        if let Some(s) = self.sessions.get(&key) {
            if e.counter <= s.last {
                return Err(Refused {
                    why: AuthRejection::Replayed {
                        counter: e.counter,
                        last: s.last,
                    },
                    answer: None,
                });
            }
        } else if self.sessions.len() >= MAX_SESSIONS {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.seen)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.sessions.remove(&k);
            }
        }
        self.sessions.insert(
            key,
            Session {
                last: e.counter,
                seen: now,
            },
        );
        Ok(Opened {
            kind: e.kind,
            session: e.session,
            counter: e.counter,
            payload: e.payload,
        })
    }

    /// The sealed answer to `opened`: the robot-state datagram `payload` (or nothing) and
    /// the current challenge.
    pub fn answer_to(&mut self, opened: &Opened<'_>, now: Instant, payload: &[u8]) -> Vec<u8> {
        let e = Envelope {
            kind: opened.kind,
            session: opened.session,
            counter: opened.counter,
            challenge: 0,
            payload: opened.payload,
        };
        self.answer(&e, now, payload)
    }

    fn answer(&mut self, to: &Envelope<'_>, now: Instant, payload: &[u8]) -> Vec<u8> {
        let challenge = self.current_challenge(now);
        let Some((_, reply)) = self.macs(to.kind) else {
            return Vec::new();
        };
        seal_with(
            reply,
            REPLY_MAGIC,
            &Envelope {
                kind: to.kind,
                session: to.session,
                counter: to.counter,
                challenge,
                payload,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (Key, Keys) {
        let team = Key::from_bytes(KeyKind::Team, [1; 32]);
        let keys = Keys {
            team: Some(team.clone()),
            field: None,
        };
        (team, keys)
    }

    /// Runs a sealer until the verifier applies its datagrams, as a station's first
    /// exchange does: the first datagram is answered with a challenge only.
    fn handshake(sealer: &mut Sealer, verifier: &mut Verifier, now: Instant) {
        let first = sealer.seal(b"hello");
        let refused = verifier.open(&first, now).unwrap_err();
        assert_eq!(refused.why, AuthRejection::Stale);
        let answer = refused.answer.unwrap();
        assert!(
            answer.len() < first.len(),
            "never larger than what it answers"
        );
        assert!(sealer.open_answer(&answer).is_some());
        assert!(sealer.has_challenge());
    }

    #[test]
    fn a_station_is_applied_once_it_echoes_a_challenge_and_each_datagram_once() {
        let (team, keys) = keys();
        let mut verifier = Verifier::new(&keys).unwrap();
        let mut sealer = Sealer::new(&team).unwrap();
        let t = Instant::now();
        handshake(&mut sealer, &mut verifier, t);
        let d = sealer.seal(b"drive");
        let opened = verifier.open(&d, t).unwrap();
        assert_eq!((opened.payload, opened.counter), (&b"drive"[..], 2));
        let again = verifier.open(&d, t).unwrap_err();
        assert_eq!(
            again.why,
            AuthRejection::Replayed {
                counter: 2,
                last: 2
            }
        );
        let answer = verifier.answer_to(&opened, t, b"state");
        assert_eq!(sealer.open_answer(&answer).unwrap().payload, b"state");
    }

    #[test]
    fn forged_damaged_and_foreign_datagrams_are_refused_without_an_answer() {
        let (team, keys) = keys();
        let mut verifier = Verifier::new(&keys).unwrap();
        let t = Instant::now();
        let other = Key::from_bytes(KeyKind::Team, [2; 32]);
        let mut stranger = Sealer::new(&other).unwrap();
        let r = verifier.open(&stranger.seal(b"x"), t).unwrap_err();
        assert_eq!((r.why, r.answer), (AuthRejection::BadTag, None));
        let mut sealer = Sealer::new(&team).unwrap();
        let mut d = sealer.seal(b"x");
        d[HEADER_BYTES] ^= 1;
        assert_eq!(verifier.open(&d, t).unwrap_err().why, AuthRejection::BadTag);
        let field = Key::from_bytes(KeyKind::Field, [3; 32]);
        let d = Sealer::new(&field).unwrap().seal(b"x");
        let r = verifier.open(&d, t);
        assert_eq!(r.unwrap_err().why, AuthRejection::UnknownKey(1));
        assert_eq!(
            verifier.open(b"junk", t).unwrap_err().why,
            AuthRejection::Unauthenticated
        );
        assert_eq!(
            verifier.open(b"PCA1\0", t).unwrap_err().why,
            AuthRejection::Truncated(5)
        );
    }

    #[test]
    fn a_datagram_held_back_past_the_window_is_stale_and_a_restart_forgets_every_challenge() {
        let (team, keys) = keys();
        let mut verifier = Verifier::new(&keys).unwrap();
        let mut sealer = Sealer::new(&team).unwrap();
        let t = Instant::now();
        handshake(&mut sealer, &mut verifier, t);
        let held = sealer.seal(b"held");
        assert!(verifier.open(&sealer.seal(b"x"), t + FRESH_WINDOW).is_ok());
        // Even when nobody spoke since: a challenge expires after the window.
        let late = t + FRESH_WINDOW + Duration::from_millis(1);
        assert_eq!(
            verifier.open(&held, late).unwrap_err().why,
            AuthRejection::Stale
        );
        let fresh = sealer.seal(b"fresh");
        let mut restarted = Verifier::new(&keys).unwrap();
        assert_eq!(
            restarted.open(&fresh, t).unwrap_err().why,
            AuthRejection::Stale
        );
    }

    #[test]
    fn a_new_session_is_accepted_at_once_and_the_old_one_goes_on_separately() {
        let (team, keys) = keys();
        let mut verifier = Verifier::new(&keys).unwrap();
        let t = Instant::now();
        let mut old = Sealer::new(&team).unwrap();
        handshake(&mut old, &mut verifier, t);
        for _ in 0..5 {
            verifier.open(&old.seal(b"a"), t).unwrap();
        }
        let mut new = Sealer::new(&team).unwrap();
        handshake(&mut new, &mut verifier, t);
        assert_eq!(verifier.open(&new.seal(b"b"), t).unwrap().counter, 2);
        // An answer of another session is not taken.
        let d = old.seal(b"a");
        let opened = verifier.open(&d, t).unwrap();
        let answer = verifier.answer_to(&opened, t, b"s");
        assert!(new.open_answer(&answer).is_none());
    }
}
