//! The robot state, held and enforced here alone (robot-state.md rule 1).
//!
//! * [`machine`]: the rules, as a state machine without I/O;
//! * [`Gate`]: runs it — publishes every transition to the `robot-state` segment, logs it
//!   once with its reason, and tells every device session what its outputs may do
//!   ([`Outputs`], on a watch channel the sessions select on);
//! * [`links`]: the thread that watches the gamepad receiver's `driver-links` segment and
//!   the clock (link expiry, match phases) and steps the machine;
//! * [`service`]: `robot-service` RPC (`state`, `enable`, `disable`, `estop`,
//!   `start_match`, `stop_match`).

pub mod links;
pub mod machine;
pub mod service;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use pitcrew::robot::segment::StateOwner;
use pitcrew::robot::{monotonic_ns, Mode, RobotStatus, State};
use tokio::sync::watch;

use crate::estop::{self, Latch};
use crate::registry::Registry;
use crate::tap::{BrokerEvent, BrokerTap};
use machine::{Machine, Refusal, Step};

pub use crate::policy::Outputs;

/// The broker's robot state and the channels it acts through.
#[derive(Debug)]
pub struct Gate {
    machine: Mutex<Machine>,
    segment: StateOwner,
    outputs: watch::Sender<Outputs>,
    latch: Arc<Latch>,
    registry: Arc<Registry>,
    runtime: tokio::runtime::Handle,
    tap: BrokerTap,
}

impl Gate {
    /// The gate of a broker that just started: disabled, or estopped when `latch` is
    /// engaged (a recorded stop), published to `/<ns>-robot-state-0`.
    ///
    /// # Errors
    /// When the state segment cannot be created.
    pub fn start(
        namespace: &str,
        control_timeout: Duration,
        output_lease: Duration,
        latch: Arc<Latch>,
        registry: Arc<Registry>,
        tap: BrokerTap,
    ) -> anyhow::Result<Arc<Gate>> {
        let mut initial =
            RobotStatus::initial("the device broker started", control_timeout, output_lease);
        if latch.is_engaged() {
            initial.state = State::Estopped;
            initial.reason =
                "an earlier emergency stop is latched (pitcrew clean releases it)".into();
        }
        let segment = StateOwner::create(namespace, &initial)
            .map_err(|e| anyhow::anyhow!("cannot create the robot-state segment: {e}"))?;
        let (outputs, _) = watch::channel(Outputs::of(initial.state));
        tracing::info!(state = initial.state.name(), "robot state");
        Ok(Arc::new(Gate {
            machine: Mutex::new(Machine::new(initial)),
            segment,
            outputs,
            latch,
            registry,
            runtime: tokio::runtime::Handle::current(),
            tap,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Machine> {
        // The machine is plain data, consistent after every step: keep going after a panic.
        self.machine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What outputs may do, for a device session.
    pub fn outputs(&self) -> watch::Receiver<Outputs> {
        self.outputs.subscribe()
    }

    /// The state now.
    pub fn status(&self) -> RobotStatus {
        self.lock().status().clone()
    }

    /// The state in wire form, as JSON (RPC, `status`).
    pub fn status_json(&self) -> serde_json::Value {
        let m = self.lock();
        m.status().to_json(monotonic_ns(), m.link_seen())
    }

    /// The state as a robot-state datagram (multicast beside the device updates).
    pub fn status_datagram(&self) -> Vec<u8> {
        let m = self.lock();
        m.status().datagram(monotonic_ns(), m.link_seen())
    }

    /// The machine's counters as JSON (for `status`).
    pub fn counters_json(&self) -> serde_json::Value {
        let c = self.lock().counters();
        serde_json::json!({
            "transitions": c.transitions,
            "refused": c.refused,
            "link_losses": c.link_losses,
        })
    }

    /// When the links thread must step the machine next.
    pub fn next_deadline(&self) -> Option<u64> {
        self.lock().next_deadline()
    }

    /// Acts on a step: publishes, logs and signals a transition; an emergency stop engages
    /// the latch at once and disables every device. Returns true for an emergency stop.
    fn apply(&self, m: &Machine, step: &Step) -> bool {
        let Step::Changed(state) = step else {
            return false;
        };
        let status = m.status();
        if *state == State::Estopped {
            // Before anything else: from here on no consumer write reaches a device.
            self.latch.engage();
        }
        // `send_replace`: the value must change even while no session listens.
        self.outputs.send_replace(Outputs::of(*state));
        if let Err(e) = self.segment.publish(status) {
            tracing::error!(error = %e, "cannot publish the robot state to shared memory");
        }
        self.tap.offer_with(|| BrokerEvent::State {
            t_ns: monotonic_ns(),
            status: Box::new(status.clone()),
        });
        let phase = status.phase.map(|p| p.name());
        match state {
            State::Estopped => {
                tracing::error!(state = state.name(), reason = %status.reason, "robot state: EMERGENCY STOP")
            }
            State::Disabled => {
                tracing::warn!(state = state.name(), reason = %status.reason, phase, "robot state")
            }
            _ => tracing::info!(state = state.name(), link = %status.link, phase, "robot state"),
        }
        *state == State::Estopped
    }

    /// Acts on a step taken under the lock, then, for an emergency stop, has every session
    /// send DEV_DISABLE (in a task, so the caller — the links thread — is not held up).
    fn finish(&self, m: MutexGuard<'_, Machine>, step: Step) {
        if self.apply(&m, &step) {
            drop(m);
            let (registry, latch) = (Arc::clone(&self.registry), Arc::clone(&self.latch));
            self.runtime.spawn(async move {
                estop::run(&registry, &latch).await;
                latch.mark_answered();
            });
        }
    }

    /// The driver links as the receiver reports them.
    pub fn on_links(&self, links: &[pitcrew::robot::segment::LinkSlot], alive: bool) {
        let mut m = self.lock();
        let (step, refused) = m.on_links(links, alive, monotonic_ns());
        for (source, why) in refused {
            tracing::warn!(source = %source, reason = %why, "driver station's enable refused");
        }
        self.finish(m, step);
    }

    /// An enable by RPC or CLI.
    ///
    /// # Errors
    /// The [`Refusal`], logged.
    pub fn enable(&self, mode: Mode) -> Result<(), Refusal> {
        let mut m = self.lock();
        let step = m.enable(mode, monotonic_ns()).inspect_err(|why| {
            tracing::warn!(mode = mode.name(), reason = %why, "enable refused");
        })?;
        self.finish(m, step);
        Ok(())
    }

    /// A disable by RPC or CLI, with the caller's reason.
    ///
    /// # Errors
    /// The [`Refusal`], logged.
    pub fn disable(&self, reason: &str) -> Result<(), Refusal> {
        let mut m = self.lock();
        let step = m.disable(reason, monotonic_ns()).inspect_err(|why| {
            tracing::warn!(reason = %why, "disable refused");
        })?;
        self.finish(m, step);
        Ok(())
    }

    /// Starts a match.
    ///
    /// # Errors
    /// The [`Refusal`], logged.
    pub fn start_match(
        &self,
        auto: Duration,
        gap: Duration,
        teleop: Duration,
    ) -> Result<(), Refusal> {
        let mut m = self.lock();
        let step = m
            .start_match(auto, gap, teleop, monotonic_ns())
            .inspect_err(|why| {
                tracing::warn!(reason = %why, "match refused");
            })?;
        tracing::info!(
            auto_s = auto.as_secs_f64(),
            gap_s = gap.as_secs_f64(),
            teleop_s = teleop.as_secs_f64(),
            "match started"
        );
        self.finish(m, step);
        Ok(())
    }

    /// Stops the match.
    ///
    /// # Errors
    /// The [`Refusal`], logged.
    pub fn stop_match(&self) -> Result<(), Refusal> {
        let mut m = self.lock();
        let step = m.stop_match(monotonic_ns()).inspect_err(|why| {
            tracing::warn!(reason = %why, "stop_match refused");
        })?;
        self.finish(m, step);
        Ok(())
    }

    /// The clock moved (link expiry, match phases).
    pub fn tick(&self) {
        let mut m = self.lock();
        let step = m.on_tick(monotonic_ns());
        self.finish(m, step);
    }

    /// Marks an `estop` RPC answered (with `--exit-on-estop` the broker then stops).
    pub fn mark_answered(&self) {
        self.latch.mark_answered();
    }

    /// An emergency stop from RPC or the CLI: latches, then waits until every session has
    /// put DEV_DISABLE on its line (at most [`estop::CONFIRM_DEADLINE`]). Returns the UIDs
    /// that confirmed.
    pub async fn estop(&self, source: &str) -> Vec<String> {
        {
            let mut m = self.lock();
            let step = m.estop(format!("emergency stop by {source}"), monotonic_ns());
            self.apply(&m, &step);
        }
        estop::run(&self.registry, &self.latch).await
    }
}
