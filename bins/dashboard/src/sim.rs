//! The field view's source: when a simulated robot runs (`pitcrew emulate --sim`, whose
//! `sim-service` answers), its field's layout and the robot's pose, offered to the feed.
//!
//! Nothing is polled while no page is open. With a page open, the dashboard asks for the
//! field once a second until a simulation answers; then it fetches the field once and the
//! pose at [`POSE_POLL`]. The field is fetched again when the pose stops answering (the
//! emulator stopped or restarted) or the simulation's clock runs backwards (a restart or
//! `pitcrew sim reset`), so a simulation of another robot or field shows as itself.
//!
//! What the service answers is checked ([`crate::sim_view`]) before it reaches a page; an
//! answer that is not a field or a pose is logged once and shown as no simulation.

use std::sync::atomic::Ordering;
use std::time::Duration;

use pitcrew::codec::to_json;
use pitcrew::rpc::Client;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::feed::{Event, Hub};
use crate::sim_view::{parse_state, Field, SimError};
use crate::sources::POLL_TIMEOUT;

/// Period of the pose poll while a page is open and a simulation answers: the update
/// stream's 20 Hz (the page draws at 10 Hz, so every drawing shows a fresh pose).
pub const POSE_POLL: Duration = Duration::from_millis(50);
/// Period of the look for a simulation while none answers, and of the check for an open
/// page while none is: a page shows a simulation that starts within about a second.
pub const SIM_PROBE: Duration = Duration::from_secs(1);
/// The service polled.
const SERVICE: &str = "sim-service";

async fn call(client: &Client, method: &'static str) -> Result<Value, SimError> {
    client
        .call_with_timeout(SERVICE, method, vec![], POLL_TIMEOUT)
        .await
        .map(|v| to_json(&v))
        .map_err(|e| SimError::NoAnswer {
            method,
            message: e.message,
        })
}

/// Follows the simulation until `shutdown`: see the module's documentation.
pub async fn watch(hub: Hub, client: Client, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut watch = Watch::default();
    loop {
        let started = tokio::time::Instant::now();
        let wait = watch.step(&hub, &client).await;
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep_until(started + wait) => {}
        }
    }
}

/// What the watch knows between its steps.
#[derive(Debug, Default)]
struct Watch {
    /// A simulation's field was fetched: its pose is polled.
    polling: bool,
    /// The feed shows a field (so that its loss is told once).
    shown: bool,
    /// The simulation's clock at the last pose.
    time: Option<f64>,
    /// A malformed answer was logged since the last good field.
    told_malformed: bool,
}

impl Watch {
    /// One poll; returns how long after its start the next one is due.
    async fn step(&mut self, hub: &Hub, client: &Client) -> Duration {
        if hub.stats.clients.load(Ordering::Relaxed) == 0 {
            // Nobody looking: nothing is polled. The field is fetched again when a page
            // opens, and the picture keeps the last one for it meanwhile.
            self.polling = false;
            return SIM_PROBE;
        }
        if !self.polling {
            return self.fetch_field(hub, client).await;
        }
        match call(client, "state").await.and_then(|a| parse_state(&a)) {
            Ok((time, _)) if self.time.is_some_and(|t| time < t) => {
                // A new simulation (restarted or reset): its field may be another.
                self.polling = false;
                Duration::ZERO
            }
            Ok((time, pose)) => {
                self.time = Some(time);
                hub.offer(Event::SimPose(pose));
                POSE_POLL
            }
            Err(SimError::NoAnswer { .. }) => {
                // Stopped, restarting or slow: the field is asked for again.
                self.polling = false;
                POSE_POLL
            }
            Err(e) => self.lost(hub, &e),
        }
    }

    /// Asks for the field; a simulation that answers is polled from the next step on.
    async fn fetch_field(&mut self, hub: &Hub, client: &Client) -> Duration {
        match call(client, "field").await.and_then(Field::parse) {
            Ok(field) => {
                if !self.shown {
                    tracing::info!(
                        width = field.size[0],
                        height = field.size[1],
                        "a simulated robot answers: the page shows its field"
                    );
                }
                self.polling = true;
                self.shown = true;
                self.time = None;
                self.told_malformed = false;
                hub.offer(Event::SimField(Some(field)));
                Duration::ZERO
            }
            Err(e) => self.lost(hub, &e),
        }
    }

    /// No simulation to show (`why`): the page is told once, and it is looked for again
    /// after [`SIM_PROBE`].
    fn lost(&mut self, hub: &Hub, why: &SimError) -> Duration {
        if matches!(why, SimError::Malformed { .. }) && !self.told_malformed {
            self.told_malformed = true;
            tracing::warn!(error = %why, "not showing the simulated robot");
        }
        if self.shown {
            if matches!(why, SimError::NoAnswer { .. }) {
                tracing::info!(error = %why, "the simulated robot is gone");
            }
            self.shown = false;
            hub.offer(Event::SimField(None));
        }
        self.polling = false;
        SIM_PROBE
    }
}
