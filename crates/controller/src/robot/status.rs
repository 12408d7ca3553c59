//! [`RobotStatus`]: one complete reading of the robot state, and its wire form — the map
//! that the `robot-service.state` RPC returns, that the broker multicasts as
//! `[2, "robot_state", [status]]` beside the device updates, and that the gamepad receiver
//! sends back to each driver station. Times on the wire are ages and time left in
//! milliseconds, so no reader needs the robot's clock.

use std::time::Duration;

use super::{monotonic_ns, MatchPhase, Mode, State};

/// The notification method of a robot-state datagram (multicast and driver-station reply).
pub const STATE_METHOD: &str = "robot_state";

/// A complete reading of the robot state (robot-state.md rule 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotStatus {
    /// The state.
    pub state: State,
    /// The mode it runs in, or last ran or was asked for (shown while disabled).
    pub mode: Mode,
    /// `CLOCK_MONOTONIC` ns of the last transition.
    pub since_ns: u64,
    /// Wall clock (Unix ms) of the last transition.
    pub since_unix_ms: u64,
    /// Transitions since the broker started.
    pub transitions: u32,
    /// The driver link the robot is enabled through (empty when none).
    pub link: String,
    /// Why the robot was last disabled or stopped (empty before any disable).
    pub reason: String,
    /// The current phase of a running match.
    pub phase: Option<MatchPhase>,
    /// `CLOCK_MONOTONIC` ns when the current phase ends (0 without a match).
    pub phase_end_ns: u64,
    /// `CLOCK_MONOTONIC` ns when the whole match ends (0 without a match).
    pub match_end_ns: u64,
    /// How long a driver link may be silent before it is lost.
    pub control_timeout: Duration,
    /// The default output lease.
    pub output_lease: Duration,
}

impl RobotStatus {
    /// The state of a broker that just started: disabled, with `reason`.
    pub fn initial(reason: &str, control_timeout: Duration, output_lease: Duration) -> Self {
        RobotStatus {
            state: State::Disabled,
            mode: Mode::Teleop,
            since_ns: monotonic_ns(),
            since_unix_ms: unix_ms(),
            transitions: 0,
            link: String::new(),
            reason: reason.to_owned(),
            phase: None,
            phase_end_ns: 0,
            match_end_ns: 0,
            control_timeout,
            output_lease,
        }
    }

    /// What a reader assumes when no broker publishes a state: disabled.
    pub fn no_broker() -> Self {
        RobotStatus::initial(
            "the device broker is not running",
            Duration::ZERO,
            Duration::ZERO,
        )
    }

    /// Whether controllers drive the outputs now.
    pub fn enabled(&self) -> bool {
        self.state.is_enabled()
    }

    /// Whether the emergency stop is latched.
    pub fn estopped(&self) -> bool {
        self.state == State::Estopped
    }

    /// Time left in the current match phase, if a match runs.
    pub fn phase_left(&self, now_ns: u64) -> Option<Duration> {
        self.phase
            .map(|_| Duration::from_nanos(self.phase_end_ns.saturating_sub(now_ns)))
    }

    /// Time left in the whole match, if one runs.
    pub fn match_left(&self, now_ns: u64) -> Option<Duration> {
        self.phase
            .map(|_| Duration::from_nanos(self.match_end_ns.saturating_sub(now_ns)))
    }

    /// The wire form at `now_ns` as JSON (the `state` RPC's answer); `link_seen_ns` is when
    /// the enabling link was last heard. It is the decoding of the map the datagram
    /// carries (one writer for both), so the two forms cannot drift apart.
    pub fn to_json(&self, now_ns: u64, link_seen_ns: Option<u64>) -> serde_json::Value {
        let mut w = Writer(Vec::with_capacity(256));
        self.write_map(&mut w, now_ns, link_seen_ns);
        crate::codec::decode(&w.0).map_or(serde_json::Value::Null, |v| crate::codec::to_json(&v))
    }

    /// The robot-state datagram `[2, "robot_state", [status]]` at `now_ns`: what the broker
    /// multicasts and the gamepad receiver answers each driver station with. Written
    /// straight to MessagePack, with no value tree: the receiver builds one per datagram.
    pub fn datagram(&self, now_ns: u64, link_seen_ns: Option<u64>) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(256));
        w.array(3);
        w.uint(2);
        w.str(STATE_METHOD);
        w.array(1);
        self.write_map(&mut w, now_ns, link_seen_ns);
        w.0
    }

    /// The status map, the one definition of its fields. Times are ages and time left in
    /// milliseconds; `link` and `link_age_ms` are nil without an enabling link, `match`
    /// nil without a match.
    fn write_map(&self, w: &mut Writer, now_ns: u64, link_seen_ns: Option<u64>) {
        let ms = |d: Duration| d.as_millis() as u64;
        let age_ms = |t: u64| ms(Duration::from_nanos(now_ns.saturating_sub(t)));
        let link = (!self.link.is_empty()).then_some(self.link.as_str());
        w.map(13);
        w.key("state").str(self.state.name());
        w.key("mode").str(self.mode.name());
        w.key("enabled").bool(self.enabled());
        w.key("estopped").bool(self.estopped());
        w.key("since_ms").uint(age_ms(self.since_ns));
        w.key("since_unix_ms").uint(self.since_unix_ms);
        w.key("transitions").uint(u64::from(self.transitions));
        w.key("link");
        match link {
            Some(l) => w.str(l),
            None => w.nil(),
        }
        w.key("link_age_ms");
        match link_seen_ns.filter(|_| link.is_some()) {
            Some(t) => w.uint(age_ms(t)),
            None => w.nil(),
        }
        w.key("reason").str(&self.reason);
        w.key("match");
        match self.phase {
            Some(p) => {
                w.map(3);
                w.key("phase").str(p.name());
                w.key("phase_left_ms");
                w.uint(self.phase_left(now_ns).map_or(0, ms));
                w.key("left_ms");
                w.uint(self.match_left(now_ns).map_or(0, ms));
            }
            None => w.nil(),
        }
        w.key("control_timeout_ms").uint(ms(self.control_timeout));
        w.key("output_lease_ms").uint(ms(self.output_lease));
    }
}

/// A MessagePack writer into memory. Writing to a `Vec` cannot fail, so the `rmp` results
/// (which carry only I/O errors of the sink) are dropped here, in one place.
struct Writer(Vec<u8>);

impl Writer {
    fn key(&mut self, k: &str) -> &mut Self {
        self.str(k);
        self
    }
    fn str(&mut self, s: &str) {
        let _ = rmp::encode::write_str(&mut self.0, s);
    }
    fn uint(&mut self, n: u64) {
        let _ = rmp::encode::write_uint(&mut self.0, n);
    }
    fn bool(&mut self, b: bool) {
        let _ = rmp::encode::write_bool(&mut self.0, b);
    }
    fn nil(&mut self) {
        let _ = rmp::encode::write_nil(&mut self.0);
    }
    fn map(&mut self, len: u32) {
        let _ = rmp::encode::write_map_len(&mut self.0, len);
    }
    fn array(&mut self, len: u32) {
        let _ = rmp::encode::write_array_len(&mut self.0, len);
    }
}

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The status map of a robot-state datagram, or `None` for anything else (a listener of
/// the update group also receives device updates; a sender may get junk).
pub fn parse_datagram(bytes: &[u8]) -> Option<serde_json::Value> {
    let v = crate::codec::to_json(&crate::codec::decode(bytes).ok()?);
    let top = v.as_array()?;
    match top.as_slice() {
        [code, method, params]
            if code.as_u64() == Some(2) && method.as_str() == Some(STATE_METHOD) =>
        {
            let status = params.as_array()?.first()?;
            status.get("state")?.as_str().and_then(State::from_name)?;
            Some(status.clone())
        }
        _ => None,
    }
}

/// One line for a terminal: `teleop via laptop-7 (link 12 ms) · match teleop 93 s left`,
/// or `disabled: driver link lost`.
pub fn one_line(status: &serde_json::Value) -> String {
    let state = status["state"].as_str().unwrap_or("unknown");
    let mut line = state.to_owned();
    if let Some(link) = status["link"].as_str() {
        line.push_str(&format!(" via {link}"));
        if let Some(age) = status["link_age_ms"].as_u64() {
            line.push_str(&format!(" (link {age} ms)"));
        }
    } else if state == "disabled" {
        line.push_str(&format!(
            " ({})",
            status["mode"].as_str().unwrap_or("teleop")
        ));
    }
    if !status["enabled"].as_bool().unwrap_or(false) {
        if let Some(reason) = status["reason"].as_str().filter(|r| !r.is_empty()) {
            line.push_str(&format!(": {reason}"));
        }
    }
    if let Some(m) = status["match"].as_object() {
        let phase = m.get("phase").and_then(|p| p.as_str()).unwrap_or("?");
        let left = m
            .get("left_ms")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let phase_left = m
            .get("phase_left_ms")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        line.push_str(&format!(
            " · match {phase} {:.1} s left ({:.1} s in all)",
            phase_left as f64 / 1000.0,
            left as f64 / 1000.0
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_wire_form_carries_ages_and_time_left() {
        let mut s = RobotStatus::initial("start", Duration::from_millis(100), Duration::ZERO);
        s.since_ns = 1_000_000_000;
        s.state = State::Teleop;
        s.link = "laptop".into();
        s.phase = Some(MatchPhase::Teleop);
        s.phase_end_ns = 3_000_000_000;
        s.match_end_ns = 3_000_000_000;
        let j = s.to_json(2_000_000_000, Some(1_990_000_000));
        assert_eq!(
            j,
            json!({
                "state": "teleop",
                "mode": "teleop",
                "enabled": true,
                "estopped": false,
                "since_ms": 1000,
                "since_unix_ms": s.since_unix_ms,
                "transitions": 0,
                "link": "laptop",
                "link_age_ms": 10,
                "reason": "start",
                "match": {"phase": "teleop", "phase_left_ms": 1000, "left_ms": 1000},
                "control_timeout_ms": 100,
                "output_lease_ms": 0,
            })
        );
        let back = parse_datagram(&s.datagram(2_000_000_000, Some(1_990_000_000))).unwrap();
        assert_eq!(back, j, "the datagram carries the same map");
        let idle = RobotStatus::initial("boot", Duration::ZERO, Duration::ZERO);
        let j = idle.to_json(monotonic_ns(), Some(1));
        assert_eq!(
            (&j["link"], &j["link_age_ms"], &j["match"]),
            (&json!(null), &json!(null), &json!(null)),
            "no link, no age, no match"
        );
        assert!(
            one_line(&back).starts_with("teleop via laptop (link 10 ms) · match teleop 1.0 s left")
        );
        assert!(parse_datagram(b"junk").is_none());
        let other = crate::codec::encode(&crate::codec::from_json(&json!([2, "update", [{}]])));
        assert!(parse_datagram(&other).is_none());
    }

    #[test]
    fn a_disabled_line_says_why() {
        let s = RobotStatus::initial("driver link lost", Duration::ZERO, Duration::ZERO);
        let line = one_line(&s.to_json(monotonic_ns(), None));
        assert_eq!(line, "disabled (teleop): driver link lost");
    }
}
