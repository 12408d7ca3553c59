//! [`Latch`]: the broker's emergency-stop state.
//!
//! An emergency stop is a latch, not a pulse: once the `estop` RPC has run, no consumer
//! write reaches a device any more (a controller that keeps writing `duty_cycle` would
//! otherwise restart a motor the next millisecond). The latch stays engaged until the
//! broker process restarts; there is deliberately no RPC to release it, because releasing
//! an emergency stop must be a deliberate act at the robot (restarting the suite), not a
//! call any client on the network can make.
//!
//! Sessions consult [`Latch::is_engaged`] each time they take a buffer's pending writes,
//! and discard what they took. With `--exit-on-estop` the broker also stops, exiting with
//! [`EXIT_ESTOP`](crate::EXIT_ESTOP), once the RPC has been answered ([`Latch::answered`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use pitcrew_catalog::{DeviceType, Param};
use pitcrew_sdp::Message;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::registry::{Command, Registry};

/// How long the `estop` RPC waits for every session to report its DEV_DISABLE written to
/// the line. Writing a few bytes to a socket or a tty takes microseconds; the bound only
/// keeps a session stuck on a full serial buffer from delaying the answer (and, with
/// `--exit-on-estop`, the broker's exit) for the others.
pub const CONFIRM_DEADLINE: Duration = Duration::from_millis(250);

/// The emergency-stop latch, shared by the RPC service and every session.
#[derive(Debug, Default)]
pub struct Latch {
    engaged: AtomicBool,
    /// The file recording the stop across broker restarts ([`Latch::with_marker`]).
    marker: Option<PathBuf>,
    /// When it was first engaged (wall clock, for `list_devices` and `status`).
    since: OnceLock<SystemTime>,
    /// Consumer writes discarded because of the latch, all devices together.
    discarded: AtomicU64,
    /// Fires once an `estop` RPC has done its work and its reply is on its way.
    answered: CancellationToken,
}

impl Latch {
    /// A released latch.
    pub fn new() -> Latch {
        Latch::default()
    }

    /// A latch recorded in `marker` (`Config::estop_marker`): engaging it writes the file,
    /// and a latch whose file already exists starts engaged, so that a broker restarted
    /// after an emergency stop (a crash during the stop, a supervisor or a person starting
    /// it again) keeps every device disabled until the file is removed (`pitcrew clean`).
    pub fn with_marker(marker: PathBuf) -> Latch {
        let earlier = marker.exists();
        let latch = Latch {
            marker: Some(marker),
            ..Latch::default()
        };
        if earlier {
            latch.engaged.store(true, Ordering::SeqCst);
            let _ = latch.since.set(SystemTime::now());
        }
        latch
    }

    /// Engages the latch (idempotent). Returns `true` the first time.
    pub fn engage(&self) -> bool {
        let first = !self.engaged.swap(true, Ordering::SeqCst);
        if first {
            let _ = self.since.set(SystemTime::now());
        }
        if let Some(marker) = &self.marker {
            let record = format!("emergency stop by pid {}\n", std::process::id());
            if let Err(e) = std::fs::write(marker, record) {
                tracing::error!(marker = %marker.display(), error = %e,
                    "cannot record the emergency stop: a restarted broker would not be latched");
            }
        }
        first
    }

    /// Whether an emergency stop happened since the broker started.
    pub fn is_engaged(&self) -> bool {
        self.engaged.load(Ordering::SeqCst)
    }

    /// When the latch was engaged, if it was.
    pub fn since(&self) -> Option<SystemTime> {
        self.since.get().copied()
    }

    /// Counts one discarded consumer write.
    pub fn count_discarded(&self) {
        self.discarded.fetch_add(1, Ordering::Relaxed);
    }

    /// Consumer writes discarded so far (all devices).
    pub fn discarded(&self) -> u64 {
        self.discarded.load(Ordering::Relaxed)
    }

    /// Marks an `estop` RPC as done: every session was told, the reply is being sent.
    pub fn mark_answered(&self) {
        self.answered.cancel();
    }

    /// Resolves once an `estop` RPC has been answered (never, if none is).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn answered(&self) {
        self.answered.cancelled().await;
    }
}

/// Appends DEV_DISABLE and the DEV_WRITE(s) of every output's safe value of `ty` to
/// `out`; returns the message count.
pub fn frames(ty: &DeviceType, out: &mut Vec<u8>) -> u64 {
    let count = u64::from(Message::DevDisable.encode_frame(out).is_ok());
    count + crate::lease::safe_frames(ty, ty.output_mask(), out)
}

/// The names of the params of `bits`, comma separated (for log lines).
pub fn param_names(ty: &DeviceType, bits: u64) -> String {
    ty.params_in(bits)
        .map(Param::name)
        .collect::<Vec<_>>()
        .join(",")
}

/// The `estop` RPC: engages the latch (so no consumer write is forwarded from now on), has
/// every session send DEV_DISABLE and the safe values, and waits up to
/// [`CONFIRM_DEADLINE`] for them to be on the line. A device that is not reading (its
/// line stalled) is not waited for: its session tries DEV_DISABLE when it gets the line,
/// without waiting, and ends as the stall fails the line; the answer does not wait out the
/// stall. Returns the UIDs whose session confirmed; the others are logged (a session
/// disables its device at its next heartbeat tick when it sees the latch, and their writes
/// are discarded by the latch).
pub async fn run(registry: &Registry, latch: &Latch) -> Vec<String> {
    let first = latch.engage();
    let deadline = tokio::time::Instant::now() + CONFIRM_DEADLINE;
    let mut waiting = Vec::new();
    for uid in registry.connected() {
        let Some((tx, line)) = registry.link(uid) else {
            continue;
        };
        let (reply, rx) = oneshot::channel();
        if line.is_stalled() {
            let queued = tx.try_send(Command::Estop(reply)).is_ok();
            tracing::error!(%uid, queued, "estop: the device is not reading (its line is stalled): DEV_DISABLE is tried when its session gets the line; not waiting for it");
            continue;
        }
        // Waits for room in a full command queue rather than skipping the device; a session
        // that never makes room still disables its device at its next heartbeat tick, when
        // it sees the latch (`Active::serve`).
        match tokio::time::timeout_at(deadline, tx.send(Command::Estop(reply))).await {
            Ok(Ok(())) => waiting.push((uid, rx)),
            Ok(Err(_)) => tracing::warn!(%uid, "estop: the device disconnected before DEV_DISABLE"),
            Err(_) => tracing::error!(%uid, "estop: the device's session is not taking commands"),
        }
    }
    let mut done = Vec::with_capacity(waiting.len());
    for (uid, rx) in waiting {
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(())) => done.push(uid.to_string()),
            Ok(Err(_)) => tracing::warn!(%uid, "estop: the device disconnected before DEV_DISABLE"),
            Err(_) => {
                tracing::error!(%uid, deadline_ms = CONFIRM_DEADLINE.as_millis() as u64, "estop: DEV_DISABLE not confirmed in time")
            }
        }
    }
    tracing::warn!(
        devices = done.len(),
        first,
        "emergency stop: devices disabled; consumer writes are discarded until the broker restarts"
    );
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_stop_survives_a_restart_until_its_marker_is_removed() {
        let dir = std::env::temp_dir().join(format!("estop-marker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("ns-estop");
        assert!(!Latch::with_marker(marker.clone()).is_engaged());
        Latch::with_marker(marker.clone()).engage();
        assert!(marker.exists());
        let restarted = Latch::with_marker(marker.clone());
        assert!(restarted.is_engaged() && restarted.since().is_some());
        std::fs::remove_file(&marker).unwrap();
        assert!(!Latch::with_marker(marker).is_engaged());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_latch_engages_once_and_stays() {
        let latch = Latch::new();
        assert!(!latch.is_engaged());
        assert!(latch.since().is_none());
        assert!(latch.engage());
        let since = latch.since();
        assert!(!latch.engage());
        assert!(latch.is_engaged());
        assert_eq!(latch.since(), since);
        latch.count_discarded();
        assert_eq!(latch.discarded(), 1);
    }

    #[test]
    fn estop_frames_disable_first_then_write_the_safe_values() {
        let ty = pitcrew_catalog::Catalog::embedded()
            .get("polar-bear")
            .expect("shipped type");
        let mut out = Vec::new();
        assert_eq!(frames(ty, &mut out), 2);
        // DEV_DISABLE, then DEV_WRITE(duty_cycle = 0.0).
        let want = [
            0x02, 0x16, 0x02, 0x16, 0x00, 0x04, 0x14, 0x06, 0x01, 0x01, 0x01, 0x01, 0x01, 0x02,
            0x13, 0x00,
        ];
        assert_eq!(out, want);
        assert_eq!(param_names(ty, 0b1 | 1 << 13), "duty_cycle,deadband");
        let limit = pitcrew_catalog::Catalog::embedded()
            .get("limit-switch")
            .expect("shipped type");
        let mut out = Vec::new();
        assert_eq!(frames(limit, &mut out), 1, "DEV_DISABLE only");
    }

    #[tokio::test]
    async fn answered_resolves_after_mark() {
        let latch = Latch::new();
        latch.mark_answered();
        latch.answered().await;
    }
}
