//! The robot state machine of robot-state.md, free of I/O: it takes the driver links as
//! the receiver reports them, commands (RPC, CLI) and the clock, and says what changed.
//! [`crate::robot::Gate`] runs it and carries the result to the devices.
//!
//! The rules it enforces, by number:
//! 2. It starts `disabled` (or `estopped`, when the latch is recorded).
//! 3. An enable needs a live driver link and binds to it; that link's silence for
//!    `control_timeout` disables the robot.
//! 4. After any disable, only an enable request issued after it enables again: a station's
//!    request counts when its `enable_id` differs from the last one seen from that station,
//!    and a station seen for the first time only sets that baseline.
//! 6. An emergency stop from any source latches.
//! 7. A match runs autonomous, a gap and teleop, each phase's enable bound to the link live
//!    at its start; rules 3–6 hold throughout.
//!
//! Every refused request says why ([`Refusal`]) and changes nothing.

use std::collections::HashMap;
use std::time::Duration;

use pitcrew::robot::segment::LinkSlot;
use pitcrew::robot::status::unix_ms;
use pitcrew::robot::{MatchPhase, Mode, RobotStatus, State};

/// Stations remembered for rule 4; past it the one heard from least recently is
/// forgotten (and is a first sighting again: a baseline, never an enable).
const MAX_STATIONS: usize = 64;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Estopped: nothing but a restart and `pitcrew clean` changes that.
    #[error(
        "the emergency stop is latched: restart the suite after `pitcrew clean` to release it"
    )]
    Estopped,
    /// Enable without a live driver link.
    #[error("no live driver link: a driver station must be sending (pitcrew-gamepad send, the dashboard)")]
    NoLink,
    /// An enable or a match while a match runs.
    #[error(
        "a match is running: the match controls the phases (stop it with `pitcrew match --stop`)"
    )]
    MatchRunning,
    /// Stop a match that does not run.
    #[error("no match is running")]
    NoMatch,
    /// A match with a phase of zero or absurd length.
    #[error("{0}")]
    BadMatch(String),
}

/// A running match: the phases' ends on the monotonic clock.
#[derive(Debug, Clone, Copy)]
struct Match {
    auto_end: u64,
    gap_end: u64,
    teleop_end: u64,
}

impl Match {
    fn phase(&self, now: u64) -> Option<(MatchPhase, u64)> {
        if now < self.auto_end {
            Some((MatchPhase::Autonomous, self.auto_end))
        } else if now < self.gap_end {
            Some((MatchPhase::Gap, self.gap_end))
        } else if now < self.teleop_end {
            Some((MatchPhase::Teleop, self.teleop_end))
        } else {
            None
        }
    }
}

/// Counters of the machine, for `status` and the dashboard.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    /// Transitions made.
    pub transitions: u64,
    /// Requests refused (RPC and driver stations).
    pub refused: u64,
    /// Driver-link losses that disabled the robot.
    pub link_losses: u64,
}

/// What a step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing changed.
    Same,
    /// A transition to this state (already applied to [`Machine::status`]).
    Changed(State),
}

/// The robot state and what it needs to decide.
#[derive(Debug)]
pub struct Machine {
    status: RobotStatus,
    /// Last `enable_id` and `enable` seen per station, and when (monotonic ns), for rule 4
    /// and for a station's disable (its `enable` falling).
    seen_ids: HashMap<String, (u32, bool, u64)>,
    /// Last datagram of each station (monotonic ns), for rule 3.
    link_seen: HashMap<String, u64>,
    matched: Option<Match>,
    counters: Counters,
}

impl Machine {
    /// A machine in `initial` (disabled, or estopped when the latch is recorded).
    pub fn new(initial: RobotStatus) -> Machine {
        Machine {
            status: initial,
            seen_ids: HashMap::new(),
            link_seen: HashMap::new(),
            matched: None,
            counters: Counters::default(),
        }
    }

    /// The current state.
    pub fn status(&self) -> &RobotStatus {
        &self.status
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// When the enabling link was last heard (for its age on the wire).
    pub fn link_seen(&self) -> Option<u64> {
        self.link_seen.get(&self.status.link).copied()
    }

    fn live(&self, source: &str, now: u64) -> bool {
        let timeout = self.status.control_timeout.as_nanos() as u64;
        self.link_seen
            .get(source)
            .is_some_and(|seen| now.saturating_sub(*seen) < timeout)
    }

    /// The most recently heard live link.
    fn freshest_live(&self, now: u64) -> Option<String> {
        self.link_seen
            .iter()
            .filter(|(name, _)| self.live(name, now))
            .max_by_key(|(_, seen)| **seen)
            .map(|(name, _)| name.clone())
    }

    /// When the machine must be stepped again even if nothing arrives: the enabling link's
    /// expiry or the end of the current match phase.
    pub fn next_deadline(&self) -> Option<u64> {
        let link = self
            .status
            .state
            .is_enabled()
            .then(|| self.link_seen())
            .flatten()
            .map(|seen| seen + self.status.control_timeout.as_nanos() as u64);
        let phase = self.status.phase.map(|_| self.status.phase_end_ns);
        [link, phase].into_iter().flatten().min()
    }

    fn go(
        &mut self,
        state: State,
        mode: Option<Mode>,
        link: &str,
        reason: String,
        now: u64,
    ) -> Step {
        if state == State::Estopped && self.status.state == State::Estopped {
            return Step::Same;
        }
        let s = &mut self.status;
        s.state = state;
        if let Some(m) = mode {
            s.mode = m;
        }
        s.link = if state.is_enabled() {
            link.to_owned()
        } else {
            String::new()
        };
        s.reason = reason;
        s.since_ns = now;
        s.since_unix_ms = unix_ms();
        s.transitions = s.transitions.wrapping_add(1);
        self.counters.transitions += 1;
        Step::Changed(state)
    }

    fn refuse(&mut self, why: Refusal) -> Result<Step, Refusal> {
        self.counters.refused += 1;
        Err(why)
    }

    /// The driver links as the receiver reports them now (`alive`: its segment is there and
    /// its owner runs). Returns what changed and the requests it refused (to be logged).
    pub fn on_links(
        &mut self,
        links: &[LinkSlot],
        alive: bool,
        now: u64,
    ) -> (Step, Vec<(String, Refusal)>) {
        let mut step = Step::Same;
        let mut refused = Vec::new();
        for link in links {
            let fresh = self
                .link_seen
                .get(&link.source)
                .is_none_or(|t| link.seen_ns > *t);
            if alive && fresh {
                self.link_seen.insert(link.source.clone(), link.seen_ns);
            }
            let previous = self.remember(
                &link.source,
                link.request.enable_id,
                link.request.enable,
                now,
            );
            if !alive || !self.live(&link.source, now) {
                continue;
            }
            let r = &link.request;
            if r.estop {
                let why = format!("emergency stop from driver station {}", link.source);
                if let Step::Changed(s) = self.estop(why, now) {
                    step = Step::Changed(s);
                }
                continue;
            }
            let is_new = previous.is_some_and(|(id, _)| id != r.enable_id);
            let fell = previous.is_some_and(|(_, was)| was) && !r.enable;
            if r.enable && is_new {
                match self.enable_via(r.mode, &link.source, now) {
                    Ok(Step::Changed(s)) => step = Step::Changed(s),
                    Ok(Step::Same) => {}
                    Err(why) => refused.push((link.source.clone(), why)),
                }
            } else if fell && self.status.state.is_enabled() && self.status.link == link.source {
                let why = format!("disabled by driver station {}", link.source);
                step = self.go(State::Disabled, None, "", why, now);
            }
        }
        self.forget_stale();
        if let Step::Changed(s) = self.on_tick(now) {
            step = Step::Changed(s);
        }
        (step, refused)
    }

    /// Records `id` and `enable` as the last request of `source`; returns the one before
    /// (`None` at first sight: a baseline, not a request).
    fn remember(&mut self, source: &str, id: u32, enable: bool, now: u64) -> Option<(u32, bool)> {
        if !self.seen_ids.contains_key(source) && self.seen_ids.len() >= MAX_STATIONS {
            if let Some(oldest) = self
                .seen_ids
                .iter()
                .min_by_key(|(_, (_, _, t))| *t)
                .map(|(k, _)| k.clone())
            {
                self.seen_ids.remove(&oldest);
            }
        }
        self.seen_ids
            .insert(source.to_owned(), (id, enable, now))
            .map(|(previous, was, _)| (previous, was))
    }

    fn forget_stale(&mut self) {
        if self.link_seen.len() > MAX_STATIONS {
            if let Some(oldest) = self
                .link_seen
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
            {
                self.link_seen.remove(&oldest);
            }
        }
    }

    /// The clock moved: a lost enabling link disables, a match moves to its next phase.
    pub fn on_tick(&mut self, now: u64) -> Step {
        let mut step = Step::Same;
        if self.status.state.is_enabled() && !self.live(&self.status.link.clone(), now) {
            let silent = self.link_seen().map_or(0, |t| {
                Duration::from_nanos(now.saturating_sub(t)).as_millis()
            });
            let why = format!(
                "driver link {} lost (silent for {silent} ms)",
                self.status.link
            );
            self.counters.link_losses += 1;
            step = self.go(State::Disabled, None, "", why, now);
        }
        if let Some(m) = self.matched {
            let was = self.status.phase;
            match m.phase(now) {
                Some((phase, end)) if Some(phase) != was => {
                    self.status.phase = Some(phase);
                    self.status.phase_end_ns = end;
                    if let Step::Changed(s) = self.enter_phase(phase, now) {
                        step = Step::Changed(s);
                    }
                }
                Some(_) => {}
                None => {
                    self.matched = None;
                    self.status.phase = None;
                    self.status.phase_end_ns = 0;
                    self.status.match_end_ns = 0;
                    if self.status.state != State::Estopped {
                        step = self.go(State::Disabled, None, "", "match over".into(), now);
                    }
                }
            }
        }
        step
    }

    fn enter_phase(&mut self, phase: MatchPhase, now: u64) -> Step {
        if self.status.state == State::Estopped {
            return Step::Same;
        }
        let mode = match phase {
            MatchPhase::Gap => {
                return self.go(
                    State::Disabled,
                    None,
                    "",
                    "autonomous period over".into(),
                    now,
                )
            }
            MatchPhase::Autonomous => Mode::Autonomous,
            MatchPhase::Teleop => Mode::Teleop,
        };
        match self.freshest_live(now) {
            Some(link) => self.go(
                State::enabled_in(mode),
                Some(mode),
                &link,
                String::new(),
                now,
            ),
            None => {
                let why = format!(
                    "no live driver link at the start of the match's {} period",
                    mode
                );
                self.go(State::Disabled, Some(mode), "", why, now)
            }
        }
    }

    fn enable_via(&mut self, mode: Mode, link: &str, now: u64) -> Result<Step, Refusal> {
        if self.status.state == State::Estopped {
            return self.refuse(Refusal::Estopped);
        }
        if self.matched.is_some() {
            return self.refuse(Refusal::MatchRunning);
        }
        if self.status.state == State::enabled_in(mode) && self.status.link == link {
            return Ok(Step::Same);
        }
        Ok(self.go(
            State::enabled_in(mode),
            Some(mode),
            link,
            String::new(),
            now,
        ))
    }

    /// An enable by RPC or CLI: binds to the live link heard most recently (rule 3).
    ///
    /// # Errors
    /// [`Refusal`] without a live link, while estopped or during a match.
    pub fn enable(&mut self, mode: Mode, now: u64) -> Result<Step, Refusal> {
        match self.freshest_live(now) {
            Some(link) => self.enable_via(mode, &link, now),
            None if self.status.state == State::Estopped => self.refuse(Refusal::Estopped),
            None => self.refuse(Refusal::NoLink),
        }
    }

    /// A disable (RPC, CLI, dashboard). Disabling a disabled robot changes nothing; during a
    /// match it disables for the rest of the phase.
    ///
    /// # Errors
    /// [`Refusal::Estopped`] while the emergency stop is latched.
    pub fn disable(&mut self, reason: &str, now: u64) -> Result<Step, Refusal> {
        match self.status.state {
            State::Estopped => self.refuse(Refusal::Estopped),
            State::Disabled => Ok(Step::Same),
            _ => Ok(self.go(State::Disabled, None, "", reason.to_owned(), now)),
        }
    }

    /// An emergency stop from any source (rule 6). Idempotent.
    pub fn estop(&mut self, reason: String, now: u64) -> Step {
        self.matched = None;
        self.status.phase = None;
        self.status.phase_end_ns = 0;
        self.status.match_end_ns = 0;
        self.go(State::Estopped, None, "", reason, now)
    }

    /// Starts a match: autonomous for `auto`, disabled for `gap`, teleop for `teleop`.
    ///
    /// # Errors
    /// [`Refusal`] without a live link, while estopped, during a match, or for phase
    /// lengths that are zero (autonomous and teleop) or over an hour.
    pub fn start_match(
        &mut self,
        auto: Duration,
        gap: Duration,
        teleop: Duration,
        now: u64,
    ) -> Result<Step, Refusal> {
        let hour = Duration::from_secs(3600);
        if auto.is_zero() && teleop.is_zero() || [auto, gap, teleop].iter().any(|d| *d > hour) {
            return self.refuse(Refusal::BadMatch(
                "a match needs an autonomous or teleop period, each at most an hour".into(),
            ));
        }
        if self.status.state == State::Estopped {
            return self.refuse(Refusal::Estopped);
        }
        if self.matched.is_some() {
            return self.refuse(Refusal::MatchRunning);
        }
        if self.freshest_live(now).is_none() {
            return self.refuse(Refusal::NoLink);
        }
        let ns = |d: Duration| d.as_nanos() as u64;
        let m = Match {
            auto_end: now + ns(auto),
            gap_end: now + ns(auto) + ns(gap),
            teleop_end: now + ns(auto) + ns(gap) + ns(teleop),
        };
        self.matched = Some(m);
        self.status.match_end_ns = m.teleop_end;
        self.status.phase = None;
        let step = self.on_tick(now);
        // Phases of zero length were skipped; make sure the state is published either way.
        Ok(match step {
            Step::Same => self.go(
                self.status.state,
                None,
                &self.status.link.clone(),
                String::new(),
                now,
            ),
            s => s,
        })
    }

    /// Stops a running match; the robot is disabled.
    ///
    /// # Errors
    /// [`Refusal::NoMatch`] when none runs.
    pub fn stop_match(&mut self, now: u64) -> Result<Step, Refusal> {
        if self.matched.take().is_none() {
            return self.refuse(Refusal::NoMatch);
        }
        self.status.phase = None;
        self.status.phase_end_ns = 0;
        self.status.match_end_ns = 0;
        if self.status.state == State::Estopped {
            return Ok(Step::Same);
        }
        Ok(self.go(State::Disabled, None, "", "match stopped".into(), now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitcrew::control::StationRequest;

    const MS: u64 = 1_000_000;

    fn machine() -> Machine {
        Machine::new(RobotStatus::initial(
            "start",
            Duration::from_millis(100),
            Duration::from_millis(100),
        ))
    }

    fn link(source: &str, seen: u64, mode: Mode, enable: bool, id: u32) -> LinkSlot {
        LinkSlot {
            source: source.into(),
            seen_ns: seen,
            seq: seen,
            request: StationRequest {
                mode,
                enable,
                enable_id: id,
                estop: false,
            },
        }
    }

    fn state(m: &Machine) -> State {
        m.status().state
    }

    #[test]
    fn a_station_enables_on_a_new_press_and_its_silence_disables() {
        let mut m = machine();
        let t = 1_000 * MS;
        m.on_links(&[link("ds", t, Mode::Teleop, false, 0)], true, t);
        assert_eq!(state(&m), State::Disabled);
        m.on_links(
            &[link("ds", t + 20 * MS, Mode::Teleop, true, 1)],
            true,
            t + 20 * MS,
        );
        assert_eq!(state(&m), State::Teleop);
        assert_eq!(m.status().link, "ds");
        assert_eq!(m.next_deadline(), Some(t + 120 * MS));
        assert_eq!(m.on_tick(t + 119 * MS), Step::Same);
        assert_eq!(m.on_tick(t + 120 * MS), Step::Changed(State::Disabled));
        assert!(
            m.status().reason.contains("driver link ds lost"),
            "{}",
            m.status().reason
        );
        // Packets resume with the same request: no re-enable (rule 4).
        m.on_links(
            &[link("ds", t + 500 * MS, Mode::Teleop, true, 1)],
            true,
            t + 500 * MS,
        );
        assert_eq!(state(&m), State::Disabled);
        // A fresh press does.
        m.on_links(
            &[link("ds", t + 520 * MS, Mode::Teleop, true, 2)],
            true,
            t + 520 * MS,
        );
        assert_eq!(state(&m), State::Teleop);
        // The station asks to disable.
        m.on_links(
            &[link("ds", t + 540 * MS, Mode::Teleop, false, 2)],
            true,
            t + 540 * MS,
        );
        assert_eq!(state(&m), State::Disabled);
        assert_eq!(m.counters().link_losses, 1);
    }

    #[test]
    fn a_station_first_seen_asking_for_enable_sets_a_baseline_only() {
        let mut m = machine();
        m.on_links(&[link("ds", 10 * MS, Mode::Teleop, true, 7)], true, 10 * MS);
        assert_eq!(
            state(&m),
            State::Disabled,
            "rule 2: a restart does not resume"
        );
        let (_, refused) = m.on_links(
            &[link("ds", 30 * MS, Mode::Autonomous, true, 8)],
            true,
            30 * MS,
        );
        assert!(refused.is_empty());
        assert_eq!(state(&m), State::Autonomous);
    }

    #[test]
    fn a_dead_receiver_or_a_stale_slot_is_no_link() {
        let mut m = machine();
        m.on_links(
            &[link("ds", 10 * MS, Mode::Teleop, false, 0)],
            true,
            10 * MS,
        );
        m.on_links(
            &[link("ds", 20 * MS, Mode::Teleop, true, 1)],
            false,
            20 * MS,
        );
        assert_eq!(state(&m), State::Disabled, "receiver gone");
        assert_eq!(m.enable(Mode::Teleop, 500 * MS), Err(Refusal::NoLink));
        assert_eq!(m.counters().refused, 1);
    }

    #[test]
    fn rpc_enable_binds_to_the_live_link_and_is_refused_without_one() {
        let mut m = machine();
        assert_eq!(m.enable(Mode::Teleop, 5 * MS), Err(Refusal::NoLink));
        m.on_links(
            &[
                link("a", 10 * MS, Mode::Teleop, false, 0),
                link("b", 12 * MS, Mode::Teleop, false, 0),
            ],
            true,
            12 * MS,
        );
        assert_eq!(
            m.enable(Mode::Autonomous, 13 * MS),
            Ok(Step::Changed(State::Autonomous))
        );
        assert_eq!(m.status().link, "b", "the freshest live link");
        assert_eq!(
            m.disable("by RPC", 14 * MS),
            Ok(Step::Changed(State::Disabled))
        );
        assert_eq!(m.disable("again", 15 * MS), Ok(Step::Same));
    }

    #[test]
    fn an_estop_latches_and_refuses_everything_after() {
        let mut m = machine();
        m.on_links(
            &[link("ds", 10 * MS, Mode::Teleop, false, 0)],
            true,
            10 * MS,
        );
        let mut stop = link("ds", 20 * MS, Mode::Teleop, false, 0);
        stop.request.estop = true;
        let (step, _) = m.on_links(&[stop], true, 20 * MS);
        assert_eq!(step, Step::Changed(State::Estopped));
        assert_eq!(m.estop("again".into(), 21 * MS), Step::Same);
        assert_eq!(m.enable(Mode::Teleop, 22 * MS), Err(Refusal::Estopped));
        assert_eq!(m.disable("x", 22 * MS), Err(Refusal::Estopped));
        assert_eq!(
            m.start_match(
                Duration::from_secs(1),
                Duration::ZERO,
                Duration::from_secs(1),
                22 * MS
            ),
            Err(Refusal::Estopped)
        );
        let (_, refused) = m.on_links(&[link("ds", 30 * MS, Mode::Teleop, true, 1)], true, 30 * MS);
        assert_eq!(refused, [("ds".to_owned(), Refusal::Estopped)]);
        assert_eq!(state(&m), State::Estopped);
    }

    #[test]
    fn a_match_runs_its_phases_on_the_live_link() {
        let mut m = machine();
        let t = 10 * MS;
        m.on_links(&[link("ds", t, Mode::Teleop, false, 0)], true, t);
        let s = Duration::from_millis;
        assert_eq!(
            m.start_match(s(0), s(0), s(0), t),
            Err(Refusal::BadMatch(
                "a match needs an autonomous or teleop period, each at most an hour".into()
            ))
        );
        assert_eq!(
            m.start_match(s(300), s(100), s(200), t),
            Ok(Step::Changed(State::Autonomous))
        );
        assert_eq!(m.status().phase, Some(MatchPhase::Autonomous));
        assert_eq!(m.enable(Mode::Teleop, t + MS), Err(Refusal::MatchRunning));
        // The link keeps talking through the match.
        let mut now = t;
        let mut states = vec![];
        while now < t + 700 * MS {
            now += 20 * MS;
            m.on_links(&[link("ds", now, Mode::Teleop, false, 0)], true, now);
            if states.last() != Some(&(state(&m), m.status().phase)) {
                states.push((state(&m), m.status().phase));
            }
        }
        assert_eq!(
            states,
            [
                (State::Autonomous, Some(MatchPhase::Autonomous)),
                (State::Disabled, Some(MatchPhase::Gap)),
                (State::Teleop, Some(MatchPhase::Teleop)),
                (State::Disabled, None),
            ]
        );
        assert_eq!(m.status().reason, "match over");
        assert_eq!(m.stop_match(now), Err(Refusal::NoMatch));
    }
}
