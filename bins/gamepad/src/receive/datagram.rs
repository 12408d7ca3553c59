//! One control datagram, from its bytes to the gamepad buffers and the driver link: the
//! steps [`State::on_datagram`] takes in order, each dropping, counting and recording
//! (the tap) what it refuses.
//!
//! It runs once per datagram on the receive thread, under the state lock, so it sits on the
//! joystick's latency path: the steps borrow what they need and add no allocation of their
//! own.

use std::net::SocketAddr;
use std::time::Instant;

use pitcrew::control::{self, ControlMessage, Meta, PadInput, Rejection, StationRequest};
use pitcrew::key::KeyKind;
use pitcrew::robot::segment::LinkSlot;
use pitcrew::robot::{monotonic_ns, RobotStatus};

use super::auth::SealedFrom;
use super::State;
use crate::sources::{SeqVerdict, LOG_INTERVAL};
use crate::tap::ControlEvent;
use crate::watchdog::Feed;

/// Whether a station other than `source` holds the enable: then only its datagrams move
/// the gamepads among the driver stations', as a driver expects (a second laptop with the
/// team key, started by mistake or by a teammate, must not take the sticks). With nobody
/// holding it (disabled, no broker) every station's gamepads are applied, as before.
/// Datagrams without driver-station fields are no station (a gamepad on the robot itself,
/// a PiE-style sender, beside a dashboard page that enabled): they move gamepads as before.
fn driven_by_another(status: &RobotStatus, source: &str) -> bool {
    status.state.is_enabled() && !status.link.is_empty() && status.link != source
}

/// The robot-state datagram answering `link`: the state as the broker publishes it, with
/// the age of the enabling link when it is this one.
fn reply(status: &RobotStatus, link: &LinkSlot) -> Vec<u8> {
    let seen = (status.link == link.source).then_some(link.seen_ns);
    status.datagram(monotonic_ns(), seen)
}

impl State {
    /// Validates and applies one datagram from `peer`; returns the answer to send: the
    /// robot state for a driver station, and with a key the challenge for every authentic
    /// datagram (auth module docs).
    ///
    /// The steps, in order: who sent it (`authenticate`), what it says
    /// ([`control::parse`]), whether it is newer than its source's last
    /// (`admit_in_order`), whether its gamepads may move (`station_status`), the gamepad
    /// buffers (`apply_pads`), the bookkeeping of an applied datagram (`note_applied`),
    /// then a driver station's requests passed to the broker (`pass_link`).
    pub fn on_datagram(&mut self, bytes: &[u8], peer: SocketAddr, now: Instant) -> Option<Vec<u8>> {
        self.counters.received += 1;
        let (payload, sealed) = match self.authenticate(bytes, peer, now) {
            Ok(opened) => opened,
            Err(answer) => return answer,
        };
        let mut msg = match control::parse(payload) {
            Ok(msg) => msg,
            Err(r) => {
                self.offer(payload, peer, Some((r.kind(), r.to_string())));
                self.reject(&peer.to_string(), &r, peer, now, false);
                return sealed.map(|o| self.answer(&o, now, &[]));
            }
        };
        let source = match &msg.meta {
            Some(m) => m.source.clone(),
            None => peer.to_string(),
        };
        if !self.admit_in_order(&mut msg, &source, sealed.as_ref(), payload, peer, now) {
            return None;
        }
        let (robot, ignored) = self.station_status(&mut msg, &source);
        if !self.apply_pads(&msg.gamepads, &source, payload, peer, now) {
            return sealed.map(|o| self.answer(&o, now, &[]));
        }
        self.note_applied(payload, peer, &source, !ignored, now);
        let Some((meta, request)) = msg.meta.and_then(|m| m.station.map(|r| (m, r))) else {
            return sealed.map(|o| self.answer(&o, now, &[]));
        };
        Some(self.pass_link(meta, request, sealed, robot, now))
    }

    /// Whether a datagram comes after its source's last applied one; when not, it is
    /// counted, offered to the tap and dropped (`false`). The session counter orders a
    /// sealed sender's datagrams: its name may move to a new session (a restarted station)
    /// but never back. An unsealed sender is ordered by its `seq`. A datagram sealed with
    /// the field key is cut down to what that key may do: stop the robot (no gamepads, no
    /// enable).
    fn admit_in_order(
        &mut self,
        msg: &mut ControlMessage,
        source: &str,
        sealed: Option<&SealedFrom>,
        payload: &[u8],
        peer: SocketAddr,
        now: Instant,
    ) -> bool {
        let Some(o) = sealed else {
            let seq = msg.meta.as_ref().map(|m| m.seq);
            if self.sources.check_seq(source, seq, now) == SeqVerdict::Stale {
                self.counters.reordered += 1;
                self.offer_with(payload, peer, || {
                    (
                        "reordered",
                        "not newer than the last applied from its source".into(),
                    )
                });
                return false;
            }
            return true;
        };
        if !self.sessions.admit(source, (o.kind, o.session)) {
            self.counters.superseded += 1;
            self.offer_with(payload, peer, || {
                ("superseded", "from an older session of its source".into())
            });
            return false;
        }
        self.sources.check_seq(source, None, now);
        if o.kind == KeyKind::Field {
            // The field key stops the robot and nothing else.
            self.counters.field += 1;
            msg.gamepads.clear();
            if let Some(ds) = msg.meta.as_mut().and_then(|m| m.station.as_mut()) {
                ds.enable = false;
            }
        }
        true
    }

    /// For a driver station's datagram, the robot state, read once here because its reply
    /// needs it anyway (other datagrams pay nothing for it), and whether its gamepads were
    /// dropped (`true`) because another station holds the enable: a second station (the
    /// same key, another name) does not take the enabling driver's sticks, while its
    /// requests (an estop) still go through.
    fn station_status(
        &mut self,
        msg: &mut ControlMessage,
        source: &str,
    ) -> (Option<RobotStatus>, bool) {
        if msg.meta.as_ref().and_then(|m| m.station.as_ref()).is_none() {
            return (None, false);
        }
        let status = self.robot.status();
        let held_back = !msg.gamepads.is_empty() && driven_by_another(&status, source);
        if held_back {
            self.counters.not_enabling += 1;
            self.sources.ignored(source);
            msg.gamepads.clear();
        }
        (Some(status), held_back)
    }

    /// Writes the datagram's gamepads to their buffers; `false` when the datagram is
    /// refused (a stick off the unit circle once merged), counted and offered like any
    /// datagram out of range. A buffer that cannot be written does not refuse it: the
    /// driver station's requests must still reach the broker, so the failure is counted
    /// and logged at most once per [`LOG_INTERVAL`].
    fn apply_pads(
        &mut self,
        gamepads: &[(u32, PadInput)],
        source: &str,
        payload: &[u8],
        peer: SocketAddr,
        now: Instant,
    ) -> bool {
        match self.pads.apply(gamepads, now) {
            Ok(skipped) => self.counters.buffer_errors += skipped as u64,
            Err(crate::pads::ApplyError::OffCircle(i)) => {
                let r = Rejection::OutOfRange(format!("gamepad {i}: stick off the unit circle"));
                self.offer(payload, peer, Some((r.kind(), r.to_string())));
                self.reject(source, &r, peer, now, true);
                return false;
            }
            Err(e) => {
                self.counters.buffer_errors += 1;
                let due = self
                    .buffer_error_logged
                    .is_none_or(|t| now.saturating_duration_since(t) >= LOG_INTERVAL);
                if due {
                    self.buffer_error_logged = Some(now);
                    tracing::error!(error = %e, buffer_errors = self.counters.buffer_errors, "cannot write a gamepad buffer (logged at most once a minute; counted in `pitcrew gamepads`)");
                }
            }
        }
        true
    }

    /// The bookkeeping of an applied datagram: counted, its sender noted for the flood
    /// guard (at most a batch of them), offered to the tap as applied, and the watchdog fed
    /// unless its gamepads were held back (`feeds` false): a station that does not hold
    /// the enable must not keep the watchdog from tripping when the enabling one goes
    /// silent.
    fn note_applied(
        &mut self,
        payload: &[u8],
        peer: SocketAddr,
        source: &str,
        feeds: bool,
        now: Instant,
    ) {
        self.counters.applied += 1;
        if self.applied_peers.len() < crate::batch::BATCH {
            self.applied_peers.push(peer);
        }
        self.offer(payload, peer, None);
        if feeds && self.watchdog.feed(now) == Feed::Recovered {
            tracing::info!(source = %source, "control restored");
        }
    }

    /// Passes a driver station's requests to the broker (its slot in the `driver-links`
    /// segment, stamped with the time it arrived: how the broker knows the link is live)
    /// and returns the answer: the robot state as the broker publishes it (`robot`, if
    /// already read), sealed when the datagram was.
    fn pass_link(
        &mut self,
        meta: Meta,
        request: StationRequest,
        sealed: Option<SealedFrom>,
        robot: Option<RobotStatus>,
        now: Instant,
    ) -> Vec<u8> {
        self.counters.station += 1;
        let link = LinkSlot {
            source: meta.source,
            seen_ns: monotonic_ns(),
            seq: sealed.as_ref().map_or(meta.seq, |o| o.counter),
            request,
        };
        if let Err(e) = self.links.store(&link) {
            self.counters.link_errors += 1;
            tracing::error!(error = %e, source = %link.source, "cannot pass the driver link to the broker");
        }
        let status = robot.unwrap_or_else(|| self.robot.status());
        let state = reply(&status, &link);
        match sealed {
            Some(o) => self.answer(&o, now, &state),
            None => state,
        }
    }

    /// Offers a datagram to the recording tap (applied when `refused` is `None`).
    fn offer(&self, bytes: &[u8], peer: SocketAddr, refused: Option<(&'static str, String)>) {
        self.config.tap.offer_with(|| ControlEvent {
            t_ns: monotonic_ns(),
            peer,
            bytes: bytes
                .get(..control::MAX_DATAGRAM_BYTES)
                .unwrap_or(bytes)
                .to_vec(),
            refused,
        });
    }

    /// Offers a refused datagram, building the reason only while a recorder listens.
    pub(super) fn offer_with(
        &self,
        bytes: &[u8],
        peer: SocketAddr,
        why: impl FnOnce() -> (&'static str, String),
    ) {
        if self.config.tap.listening() {
            self.offer(bytes, peer, Some(why()));
        }
    }

    /// Counts a datagram refused for what it says, and logs it as its source's rate limit
    /// allows (`counted`: whether it counts against that source).
    fn reject(
        &mut self,
        source: &str,
        r: &Rejection,
        peer: SocketAddr,
        now: Instant,
        counted: bool,
    ) {
        match r {
            Rejection::Oversized(_) => self.counters.oversized += 1,
            Rejection::Malformed(_) => self.counters.malformed += 1,
            Rejection::OutOfRange(_) => self.counters.out_of_range += 1,
        }
        if let Some(n) = self.sources.reject(source, now, counted) {
            tracing::warn!(
                source = %source,
                peer = %peer,
                kind = r.kind(),
                dropped_since_last_report = n,
                "dropped a control datagram: {r}"
            );
        }
    }
}
