//! [`RobotStatus`]: one complete reading of the robot state, and its wire form — the map
//! that the `robot-service.state` RPC returns, that the broker multicasts as
//! `[2, "robot_state", [status]]` beside the device updates, and that the gamepad receiver
//! sends back to each driver station. Times on the wire are ages and time left in
//! milliseconds, so no reader needs the robot's clock.

use std::time::Duration;

use serde_json::json;

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

    /// The wire form at `now_ns`; `link_seen_ns` is when the enabling link was last heard.
    pub fn to_json(&self, now_ns: u64, link_seen_ns: Option<u64>) -> serde_json::Value {
        let ms = |d: Duration| d.as_millis() as u64;
        let age_ms = |t: u64| ms(Duration::from_nanos(now_ns.saturating_sub(t)));
        let matched = self.phase.map(|p| {
            json!({
                "phase": p.name(),
                "phase_left_ms": self.phase_left(now_ns).map(ms),
                "left_ms": self.match_left(now_ns).map(ms),
            })
        });
        json!({
            "state": self.state.name(),
            "mode": self.mode.name(),
            "enabled": self.enabled(),
            "estopped": self.estopped(),
            "since_ms": age_ms(self.since_ns),
            "since_unix_ms": self.since_unix_ms,
            "transitions": self.transitions,
            "link": (!self.link.is_empty()).then_some(self.link.as_str()),
            "link_age_ms": link_seen_ns.filter(|_| !self.link.is_empty()).map(age_ms),
            "reason": self.reason,
            "match": matched,
            "control_timeout_ms": ms(self.control_timeout),
            "output_lease_ms": ms(self.output_lease),
        })
    }
}

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A robot-state datagram `[2, "robot_state", [status]]` with `status` in wire form.
pub fn datagram(status: &serde_json::Value) -> Vec<u8> {
    let v = json!([2, STATE_METHOD, [status]]);
    crate::codec::encode(&crate::codec::from_json(&v))
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
        assert_eq!(j["state"], "teleop");
        assert_eq!(j["enabled"], true);
        assert_eq!(j["since_ms"], 1000);
        assert_eq!(j["link_age_ms"], 10);
        assert_eq!(j["match"]["phase_left_ms"], 1000);
        assert_eq!(j["control_timeout_ms"], 100);
        let back = parse_datagram(&datagram(&j)).unwrap();
        assert_eq!(back, j);
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
