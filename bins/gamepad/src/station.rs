//! The sender as a driver station: what it asks of the robot ([`Station`]: mode, enable,
//! emergency stop, carried in every datagram's `meta.ds`), the robot's answers (its state,
//! as the receiver reports it), and, on a terminal, the keys and status line of a driver
//! station ([`keys`]).
//!
//! An enable is an *event*: each press bumps `enable_id`, and the robot enables only on an
//! id it has not seen from this station since its last disable (robot-state.md rule 4), so
//! a station that kept asking across a link loss does not re-enable the robot by itself.
//! `--enable` presses it once, as soon as the robot has answered (the link is up).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pitcrew::control::StationRequest;
use pitcrew::robot::Mode;

/// A link is "up" for `--enable` once the robot answered within this long.
pub const LINK_UP_WITHIN: Duration = Duration::from_millis(500);

/// What the station asks; shared by the key thread and the send loop.
#[derive(Debug)]
pub struct Station {
    mode: AtomicU8,
    enable: AtomicBool,
    enable_id: AtomicU32,
    estop: AtomicBool,
    /// `--enable`: press enable once the link is up.
    enable_when_up: AtomicBool,
    /// The robot's last answer and when it came.
    last_report: Mutex<Option<(Instant, serde_json::Value)>>,
}

impl Station {
    /// A station asking for `mode`, not enabled; with `enable_when_up` it presses enable once
    /// the robot first answers.
    pub fn new(mode: Mode, enable_when_up: bool) -> Station {
        Station {
            mode: AtomicU8::new(mode.code()),
            enable: AtomicBool::new(false),
            enable_id: AtomicU32::new(0),
            estop: AtomicBool::new(false),
            enable_when_up: AtomicBool::new(enable_when_up),
            last_report: Mutex::new(None),
        }
    }

    /// The request to put in the next datagram.
    pub fn request(&self) -> StationRequest {
        StationRequest {
            mode: Mode::from_code(self.mode.load(Ordering::Acquire)).unwrap_or(Mode::Teleop),
            enable: self.enable.load(Ordering::Acquire),
            enable_id: self.enable_id.load(Ordering::Acquire),
            estop: self.estop.load(Ordering::Acquire),
        }
    }

    /// A new enable request in the current mode (the driver pressed enable).
    pub fn press_enable(&self) {
        self.enable_id.fetch_add(1, Ordering::AcqRel);
        self.enable.store(true, Ordering::Release);
    }

    /// Asks for the robot to be disabled.
    pub fn disable(&self) {
        self.enable.store(false, Ordering::Release);
    }

    /// Chooses the mode of the next enable; a change of mode disables first, as a driver
    /// station does, so a robot never switches mode while it moves.
    pub fn choose(&self, mode: Mode) {
        if self.mode.swap(mode.code(), Ordering::AcqRel) != mode.code() {
            self.disable();
        }
    }

    /// Emergency stop: set in every datagram from now on.
    pub fn estop(&self) {
        self.estop.store(true, Ordering::Release);
    }

    /// Records an answer of the robot; presses enable if `--enable` is still pending.
    pub fn on_report(&self, report: serde_json::Value, now: Instant) {
        if let Ok(mut last) = self.last_report.lock() {
            *last = Some((now, report));
        }
        if self.enable_when_up.swap(false, Ordering::AcqRel) {
            tracing::info!("the robot answers: asking for the enable (--enable)");
            self.press_enable();
        }
    }

    /// The robot's last answer, if it came within [`LINK_UP_WITHIN`].
    pub fn report(&self, now: Instant) -> Option<serde_json::Value> {
        let last = self.last_report.lock().ok()?;
        last.as_ref()
            .filter(|(at, _)| now.duration_since(*at) < LINK_UP_WITHIN)
            .map(|(_, r)| r.clone())
    }
}

/// The status line: the robot's state as it reports it, or that it does not answer.
pub fn status_line(station: &Station, now: Instant) -> String {
    let ask = station.request();
    let robot = match station.report(now) {
        Some(r) => pitcrew::robot::status::one_line(&r),
        None => "no answer from the robot".to_owned(),
    };
    let estop = if ask.estop { " E-STOP SENT ·" } else { "" };
    format!(
        "robot: {robot} ·{estop} asking {} {} · keys: e enable, Enter disable, a/t mode, space E-STOP, q quit",
        ask.mode,
        if ask.enable { "enabled" } else { "disabled" },
    )
}

/// The driver-station keys on a terminal: the terminal in raw mode while they run, restored
/// on drop (also when the sender ends on a signal or an error).
pub mod keys {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

    use super::{status_line, Station};
    use pitcrew::robot::Mode;

    /// How often the key thread redraws the status line and checks the stop flag.
    const TICK: Duration = Duration::from_millis(200);

    /// Restores the terminal when dropped.
    struct RawMode;

    impl Drop for RawMode {
        fn drop(&mut self) {
            let _ = crossterm::terminal::disable_raw_mode();
            eprint!("\r\n");
        }
    }

    /// Reads keys until `stop` is set (q or Ctrl-C set it too), updating `station`, and
    /// redraws the status line on stderr.
    ///
    /// # Errors
    /// When the terminal cannot be put in raw mode.
    pub fn run(station: &Station, stop: &Arc<AtomicBool>) -> std::io::Result<()> {
        crossterm::terminal::enable_raw_mode()?;
        let _raw = RawMode;
        while !stop.load(Ordering::Acquire) {
            if event::poll(TICK)? {
                if let Event::Key(k) = event::read()? {
                    if k.kind != KeyEventKind::Press {
                        continue;
                    }
                    let ctrl_c =
                        k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c');
                    match k.code {
                        _ if ctrl_c => stop.store(true, Ordering::Release),
                        KeyCode::Char('q') => stop.store(true, Ordering::Release),
                        KeyCode::Enter => station.disable(),
                        KeyCode::Char(' ') => station.estop(),
                        KeyCode::Char('e') => station.press_enable(),
                        KeyCode::Char('a') => station.choose(Mode::Autonomous),
                        KeyCode::Char('t') => station.choose(Mode::Teleop),
                        _ => {}
                    }
                }
            }
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K{}", status_line(station, Instant::now()));
            let _ = err.flush();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_enable_press_is_a_new_request_and_a_mode_change_disables() {
        let s = Station::new(Mode::Teleop, false);
        assert_eq!(
            s.request(),
            StationRequest {
                mode: Mode::Teleop,
                enable: false,
                enable_id: 0,
                estop: false
            }
        );
        s.press_enable();
        s.press_enable();
        assert_eq!((s.request().enable, s.request().enable_id), (true, 2));
        s.choose(Mode::Teleop);
        assert!(s.request().enable, "same mode: still enabled");
        s.choose(Mode::Autonomous);
        assert!(!s.request().enable && s.request().mode == Mode::Autonomous);
        s.estop();
        assert!(s.request().estop);
    }

    #[test]
    fn enable_flag_presses_once_when_the_robot_first_answers() {
        let s = Station::new(Mode::Autonomous, true);
        let t = Instant::now();
        assert!(s.report(t).is_none());
        assert!(status_line(&s, t).contains("no answer from the robot"));
        s.on_report(
            serde_json::json!({"state": "disabled", "mode": "autonomous"}),
            t,
        );
        s.on_report(
            serde_json::json!({"state": "autonomous", "enabled": true}),
            t,
        );
        assert_eq!(s.request().enable_id, 1, "pressed once");
        assert!(s.report(t).is_some());
        assert!(
            s.report(t + LINK_UP_WITHIN).is_none(),
            "an old answer is no link"
        );
    }
}
