//! Who sent a datagram: sealed with a key this robot holds, fresh and new (the
//! [`Verifier`]), or without a team key unsealed from loopback; which sender session each
//! source name speaks for; and the answers to authentic datagrams.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use pitcrew::control::auth::{self, AuthRejection, Opened};
use pitcrew::key::KeyKind;

use super::State;

/// How many replaced sessions are remembered, so that a replaced sender session cannot
/// come back (robot-state.md: a new session is taken at once, the old one never again).
const RETIRED_SESSIONS: usize = 64;
/// How many peers are remembered to log an unauthenticated datagram once each.
const MAX_LOGGED_PEERS: usize = 256;

/// Which sender session each source name speaks for.
#[derive(Debug, Default)]
pub(super) struct SourceSessions {
    current: HashMap<String, (KeyKind, u64)>,
    retired: VecDeque<(KeyKind, u64)>,
}

impl SourceSessions {
    /// Whether `session` may speak for `source` now; a new session replaces the old one.
    pub(super) fn admit(&mut self, source: &str, session: (KeyKind, u64)) -> bool {
        if self.retired.contains(&session) {
            return false;
        }
        if let Some(old) = self.current.insert(source.to_owned(), session) {
            if old != session {
                if self.retired.len() >= RETIRED_SESSIONS {
                    self.retired.pop_front();
                }
                self.retired.push_back(old);
                tracing::info!(source = %source, "a new session of the driver station replaced its previous one");
            }
        } else if self.current.len() > crate::sources::MAX_SOURCES {
            self.current.retain(|name, _| name == source);
        }
        true
    }
}

impl State {
    /// Checks where a datagram comes from: sealed with a key this robot holds, fresh and
    /// new; or, without a team key, unsealed from loopback. `Err` carries the answer to a
    /// refused but authentic datagram (its sender's next challenge).
    pub(super) fn authenticate<'a>(
        &mut self,
        bytes: &'a [u8],
        peer: SocketAddr,
        now: Instant,
    ) -> Result<Authentic<'a>, Option<Vec<u8>>> {
        let Some(verifier) = self.verifier.as_mut() else {
            let loopback = match peer.ip() {
                std::net::IpAddr::V4(ip) => ip.is_loopback(),
                std::net::IpAddr::V6(ip) => {
                    ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
                }
            };
            if loopback && !auth::is_sealed(bytes) {
                return Ok((bytes, None));
            }
            self.counters.unauthenticated += 1;
            self.refused_by_auth(bytes, peer, AuthRejection::Unauthenticated);
            self.log_refused(
                peer,
                AuthRejection::Unauthenticated,
                "no team key here: only unsealed datagrams from this machine are taken",
            );
            return Err(None);
        };
        match verifier.open(bytes, now) {
            Ok(opened) => Ok((opened.payload, Some(SealedFrom::of(&opened)))),
            Err(refused) => {
                self.refused_by_auth(bytes, peer, refused.why);
                match refused.why {
                    AuthRejection::Stale => self.counters.stale += 1,
                    AuthRejection::Replayed { .. } => self.counters.replayed += 1,
                    why @ AuthRejection::Unauthenticated => {
                        self.counters.unauthenticated += 1;
                        self.log_refused(
                            peer,
                            why,
                            "the robot has a team key: seal datagrams with it (--key-file)",
                        );
                    }
                    why => {
                        self.counters.forged += 1;
                        self.log_refused(peer, why, "check that the sender holds this robot's key");
                    }
                }
                Err(refused.answer)
            }
        }
    }

    /// Offers a datagram refused for who sent it (or when) to the recording tap: an attack
    /// or a misconfigured laptop is part of a match's record.
    fn refused_by_auth(&self, bytes: &[u8], peer: SocketAddr, why: AuthRejection) {
        self.offer_with(bytes, peer, || (why.kind(), why.to_string()));
    }

    /// Logs a datagram refused for who sent it, once per peer address.
    fn log_refused(&mut self, peer: SocketAddr, why: AuthRejection, hint: &str) {
        if self.unauthenticated_peers.len() < MAX_LOGGED_PEERS
            && self.unauthenticated_peers.insert(peer.ip())
        {
            tracing::warn!(peer = %peer, kind = why.kind(), "dropped a control datagram: {why}; {hint} (further ones from this address are counted, not logged)");
        }
    }

    /// The sealed answer to an authentic datagram: `payload` (a robot-state datagram or
    /// nothing) and the current challenge.
    pub(super) fn answer(&mut self, to: &SealedFrom, now: Instant, payload: &[u8]) -> Vec<u8> {
        match self.verifier.as_mut() {
            Some(v) => v.answer_to(&to.opened(), now, payload),
            None => Vec::new(),
        }
    }
}

/// A datagram fit to parse: its control datagram, and its envelope when it was sealed.
pub(super) type Authentic<'a> = (&'a [u8], Option<SealedFrom>);

/// The envelope of an authentic datagram, kept past the borrow of its bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct SealedFrom {
    pub(super) kind: KeyKind,
    pub(super) session: u64,
    pub(super) counter: u64,
}

impl SealedFrom {
    pub(super) fn of(o: &Opened<'_>) -> SealedFrom {
        SealedFrom {
            kind: o.kind,
            session: o.session,
            counter: o.counter,
        }
    }

    fn opened(&self) -> Opened<'static> {
        Opened {
            kind: self.kind,
            session: self.session,
            counter: self.counter,
            payload: &[],
        }
    }
}
