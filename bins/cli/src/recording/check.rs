//! `pitcrew replay --check FILE --run CMD`: runs a controller against a recording and says,
//! per output, whether it wrote what was recorded.
//!
//! Into the running suite (a router, the broker and the gamepad receiver; its devices must
//! all be emulated, as the played-back ones are), it plays every recorded device back
//! (`pitcrew emulate --from FILE`, whose `write` events are what the devices received),
//! starts CMD, replays the control input (enables included: the suite is emulated), and
//! compares, per output (`UID.param`), the values written with the recorded DEV_WRITEs:
//! each sequence without consecutive repeats (within `--tolerance`) and without the safe
//! values that precede the first driven one (a device connecting to a disabled robot is
//! driven safe, whether or not the recording started early enough to hold that). The
//! first difference is reported with its recording time and both values; exit status 1
//! when any output differs.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use pitcrew::config::Config;
use pitcrew_catalog::Catalog;

use super::channels;
use super::info::start_ns;
use super::read;
use super::replay::{play, ReplayArgs};

/// How long after the last datagram writes still count (the link loss that follows and
/// its safe values).
const SETTLE: Duration = Duration::from_millis(500);
/// How long the played-back devices get to connect.
const CONNECT_PATIENCE: Duration = Duration::from_secs(10);
/// How long the controller gets to start before the control input begins.
const CONTROLLER_START: Duration = Duration::from_millis(500);

/// Per output (`UID.param`), the values written in order, with their recording time.
type Writes = BTreeMap<String, Vec<(Duration, f64)>>;

fn number(v: &serde_json::Value) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_bool().map(|b| f64::from(u8::from(b))))
}

/// The safe value of `key`'s param (`UID.param`), if it has one.
fn safe(catalog: &Catalog, types: &BTreeMap<String, String>, key: &str) -> Option<f64> {
    let (uid, param) = key.split_once('.')?;
    let ty = catalog.get(types.get(uid)?)?;
    number(&ty.param(param)?.safe()?.to_json())
}

/// `values` without consecutive repeats and without the leading safe ones.
fn normal(values: &[(Duration, f64)], safe: Option<f64>, tolerance: f64) -> Vec<(Duration, f64)> {
    let mut out: Vec<(Duration, f64)> = Vec::new();
    for (t, v) in values {
        if out.is_empty() && safe.is_some_and(|s| (s - v).abs() <= tolerance) {
            continue;
        }
        if out
            .last()
            .is_none_or(|(_, last)| (last - v).abs() > tolerance)
        {
            out.push((*t, *v));
        }
    }
    out
}

/// Where `got` first differs from `want`, as a sentence; `None` when they agree.
fn divergence(want: &[(Duration, f64)], got: &[(Duration, f64)], tolerance: f64) -> Option<String> {
    for i in 0..want.len().max(got.len()) {
        match (want.get(i), got.get(i)) {
            (Some((t, w)), Some((_, g))) if (w - g).abs() > tolerance => {
                return Some(format!(
                    "first differs at t={:.3} s (value {}): recorded {w}, written {g}",
                    t.as_secs_f64(),
                    i + 1
                ))
            }
            (Some((t, w)), None) => {
                return Some(format!(
                    "first differs at t={:.3} s (value {}): recorded {w}, nothing written",
                    t.as_secs_f64(),
                    i + 1
                ))
            }
            (None, Some((t, g))) => {
                return Some(format!(
                    "first differs at t={:.3} s (value {}): nothing recorded, written {g}",
                    t.as_secs_f64(),
                    i + 1
                ))
            }
            _ => {}
        }
    }
    None
}

/// Kills a child's process group (it was started as a group leader), then reaps it.
fn stop(mut child: Child, signal: i32) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on the process group our own child leads; no memory is involved.
        unsafe { libc::kill(-pid, signal) };
    }
    let _ = child.wait();
}

/// Runs the check (see the module doc).
///
/// # Errors
/// When the suite is not an emulated one, a process cannot start, or an output differs.
pub async fn run(args: &ReplayArgs, cmd: &str, config: &Config) -> anyhow::Result<()> {
    let rec = read::read(&args.file)?;
    let items = args.control_input(&rec)?;
    let target = args.target(config)?;
    let (first, last) = (items[0].at, items[items.len() - 1].at);
    let (types, want) = recorded_writes(&rec, first, last + SETTLE);
    ensure_emulated(config).await?;
    let wanted_uids: Vec<String> = types.keys().cloned().collect();
    // A previous check's devices must be gone: the broker refuses a UID still connected.
    if !wait_for_devices(config, &wanted_uids, |n| n == 0).await? {
        bail!("the recorded devices are already connected to this suite");
    }
    let exe = std::env::current_exe().context("cannot find the pitcrew executable")?;
    let player = Player::start(&exe, args, config)?;
    if !wait_for_devices(config, &wanted_uids, |n| n == wanted_uids.len()).await? {
        player.kill();
        bail!(
            "the played-back devices did not all connect to {} within {CONNECT_PATIENCE:?}",
            args.devices
        );
    }
    let controller = start_controller(cmd, &exe, config)?;
    tokio::time::sleep(CONTROLLER_START).await;
    eprintln!(
        "pitcrew: checking {cmd:?} against {}: {} datagrams ({:.1} s), {} recorded outputs",
        args.file.display(),
        items.len(),
        (last - first).as_secs_f64(),
        want.len()
    );
    let started = Instant::now();
    let skip = player.events.len();
    let speed = args.speed;
    // The check's suite inherits this environment, team key included.
    let key = config.keys.team.clone();
    let played =
        tokio::task::spawn_blocking(move || play(&items, target, speed, false, true, key.as_ref()))
            .await;
    tokio::time::sleep(SETTLE).await;
    stop(controller, libc::SIGTERM);
    let events = player.kill();
    played.context("the replay thread failed")??;
    // Arrival times mapped onto the recording's clock (the replay starts with its lead-in).
    let replay_start = started + super::replay::LEAD_IN_TIME;
    let events = events.snapshot();
    let got = received_writes(
        events.get(skip..).unwrap_or_default(),
        replay_start,
        first,
        speed,
    );
    // The safe values are those of the catalog the emulator and the broker were given.
    report(&want, &got, &types, &config.catalog, args.tolerance)
}

/// What the recording says the devices were written, from its DEV_WRITE channel: the type
/// of every device written to at any time (each is played back), and the values per
/// output written between `from` and `until` (the replayed span and its settling time).
fn recorded_writes(
    rec: &read::Recording,
    from: Duration,
    until: Duration,
) -> (BTreeMap<String, String>, Writes) {
    let origin = start_ns(rec);
    let mut types = BTreeMap::new();
    let mut want: Writes = BTreeMap::new();
    for m in rec.on(channels::DEVICES_WRITE) {
        let at = Duration::from_nanos(m.log_time.saturating_sub(origin));
        let json: serde_json::Value = serde_json::from_slice(&m.data).unwrap_or_default();
        let Some(uid) = json["uid"].as_str() else {
            continue;
        };
        types.insert(
            uid.to_owned(),
            json["type"].as_str().unwrap_or("").to_owned(),
        );
        if at < from || at > until {
            continue;
        }
        add_values(&mut want, uid, at, &json["values"]);
    }
    (types, want)
}

/// The controller's writes as the played-back devices received them: the `write` events
/// of `pitcrew emulate`, each arrival mapped onto the recording's clock: `replay_start` is
/// when the replay sent the datagram recorded at `first`, and `speed` the replay's speed.
fn received_writes(
    events: &[(Instant, serde_json::Value)],
    replay_start: Instant,
    first: Duration,
    speed: f64,
) -> Writes {
    let mut got: Writes = BTreeMap::new();
    for (at, e) in events {
        if e["event"] != "write" {
            continue;
        }
        let Some(uid) = e["uid"].as_str() else {
            continue;
        };
        let t = first + at.saturating_duration_since(replay_start).mul_f64(speed);
        add_values(&mut got, uid, t, &e["values"]);
    }
    got
}

/// Adds each numeric value of `values` (`{param: value}`, as a DEV_WRITE is recorded and
/// as `pitcrew emulate` prints it) to its output `UID.param` in `writes`, at `at`.
fn add_values(writes: &mut Writes, uid: &str, at: Duration, values: &serde_json::Value) {
    for (param, v) in values.as_object().into_iter().flatten() {
        if let Some(v) = number(v) {
            writes
                .entry(format!("{uid}.{param}"))
                .or_default()
                .push((at, v));
        }
    }
}

/// Refuses a suite with real devices: the check must play back every recorded device
/// (the broker refuses a second connection with a UID), which only an emulated suite has
/// room for.
async fn ensure_emulated(config: &Config) -> anyhow::Result<()> {
    let devices = crate::devices::call(config, "list_devices", vec![])
        .await
        .context("--check needs a running suite (the device broker does not answer)")?;
    let listed = pitcrew::codec::to_json(&devices);
    if listed
        .as_array()
        .into_iter()
        .flatten()
        .any(|d| d["port"].as_str().is_some_and(|p| !p.starts_with("tcp://")))
    {
        bail!("--check runs only on an emulated suite, and this one has real devices");
    }
    Ok(())
}

/// Asks the broker every 50 ms how many of `uids` are connected and identified, until
/// `done` says that count is the one awaited; `false` when it is not after
/// [`CONNECT_PATIENCE`].
async fn wait_for_devices(
    config: &Config,
    uids: &[String],
    done: impl Fn(usize) -> bool,
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + CONNECT_PATIENCE;
    loop {
        if done(valid_count(config, uids).await?) {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What `pitcrew emulate` prints, one JSON event a line, each with when it arrived;
/// filled by a thread of its own as the lines come.
#[derive(Default)]
struct Events(Arc<Mutex<Vec<(Instant, serde_json::Value)>>>);

impl Events {
    /// How many events have arrived so far.
    fn len(&self) -> usize {
        self.0.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// The events that have arrived so far.
    fn snapshot(&self) -> Vec<(Instant, serde_json::Value)> {
        self.0.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// `pitcrew emulate --from FILE`: the recorded devices played back, and the events it
/// prints, whose `write` events are what the devices received.
struct Player {
    child: Child,
    events: Events,
}

impl Player {
    /// Starts the player in a process group of its own (see [`stop`]), on the catalog this
    /// suite was given, and a thread that collects its events.
    fn start(exe: &Path, args: &ReplayArgs, config: &Config) -> anyhow::Result<Player> {
        let mut emulate = Command::new(exe);
        if let Some(c) = &config.catalog_file {
            emulate.arg("--catalog").arg(c);
        }
        let mut child = emulate
            .args(["emulate", "--from"])
            .arg(&args.file)
            .args(["--tcp", &args.devices])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("cannot start pitcrew emulate --from")?;
        let events = Events::default();
        if let Some(out) = child.stdout.take() {
            let sink = Arc::clone(&events.0);
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Ok(v) = serde_json::from_str(&line) {
                        sink.lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push((Instant::now(), v));
                    }
                }
            });
        }
        Ok(Player { child, events })
    }

    /// Kills the player and reaps it (see [`stop`]); what it printed stays readable.
    fn kill(self) -> Events {
        stop(self.child, libc::SIGKILL);
        self.events
    }
}

/// Starts the controller, `sh -c CMD`, in a process group of its own (see [`stop`]), with
/// the suite's addresses in its environment and the directory of this `pitcrew` first on
/// its PATH, so that the command runs this build's binaries.
fn start_controller(cmd: &str, exe: &Path, config: &Config) -> anyhow::Result<Child> {
    let bin_dir = exe.parent().map(|p| p.to_owned()).unwrap_or_default();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("sh")
        .args(["-c", cmd])
        .env("PATH", path)
        .env("PITCREW_NAMESPACE", &config.namespace)
        .env("PITCREW_IPC_DIR", &config.ipc_dir)
        .env("PITCREW_ROUTER_FRONTEND", config.router_frontend.join(","))
        .env("PITCREW_ROUTER_BACKEND", config.router_backend.join(","))
        .env("PITCREW_LOG_BACKEND", config.log_backend.join(","))
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start the controller {cmd:?}"))
}

/// How many of `uids` the broker lists as connected and identified.
async fn valid_count(config: &Config, uids: &[String]) -> anyhow::Result<usize> {
    let list = crate::devices::call(config, "list_devices", vec![]).await?;
    let list = pitcrew::codec::to_json(&list);
    Ok(uids
        .iter()
        .filter(|uid| {
            list.as_array()
                .into_iter()
                .flatten()
                .any(|d| d["uid"] == uid.as_str() && d["valid"] == true)
        })
        .count())
}

/// Prints one line per output and a summary; an error when any differs.
fn report(
    want: &Writes,
    got: &Writes,
    types: &BTreeMap<String, String>,
    catalog: &Catalog,
    tolerance: f64,
) -> anyhow::Result<()> {
    let mut keys: Vec<&String> = want.keys().chain(got.keys()).collect();
    keys.sort();
    keys.dedup();
    let (mut same, mut differ) = (0, 0);
    for key in keys {
        let safe = safe(catalog, types, key);
        let w = normal(
            want.get(key).map_or(&[][..], Vec::as_slice),
            safe,
            tolerance,
        );
        let g = normal(got.get(key).map_or(&[][..], Vec::as_slice), safe, tolerance);
        match divergence(&w, &g, tolerance) {
            None => {
                same += 1;
                println!("{key}: same ({} values)", w.len());
            }
            Some(why) => {
                differ += 1;
                println!("{key}: DIFFERS: {why}");
            }
        }
    }
    println!("{same} outputs as recorded, {differ} differ");
    if differ > 0 {
        bail!("the controller's writes differ from the recording on {differ} output(s)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(v: &[f64]) -> Vec<(Duration, f64)> {
        v.iter()
            .enumerate()
            .map(|(i, v)| (Duration::from_millis(i as u64 * 10), *v))
            .collect()
    }

    #[test]
    fn leading_safe_values_are_those_of_the_configured_catalog() {
        // A team's catalog whose koala-bear rests at 0.25 rather than 0.
        let text = pitcrew_catalog::EMBEDDED_YAML.replacen(
            "{name: duty_cycle_a, type: float, writeable: true, lower: -1, upper: 1, safe: 0}",
            "{name: duty_cycle_a, type: float, writeable: true, lower: -1, upper: 1, safe: 0.25}",
            1,
        );
        assert_ne!(
            text,
            pitcrew_catalog::EMBEDDED_YAML,
            "the shipped line changed"
        );
        let team = Catalog::from_yaml_str(&text, "team.yaml").unwrap();
        let key = "61390764277305387782290.duty_cycle_a".to_owned();
        let types = BTreeMap::from([(
            "61390764277305387782290".to_owned(),
            "koala-bear".to_owned(),
        )]);
        // Recorded from a suite that held the output at its safe 0.25 first; the replayed
        // controller's writes start once it drives.
        let want = Writes::from([(key.clone(), at(&[0.25, 0.5, 0.25]))]);
        let got = Writes::from([(key, at(&[0.5, 0.25]))]);
        assert!(report(&want, &got, &types, &team, 0.001).is_ok());
        assert!(report(&want, &got, &types, Catalog::embedded(), 0.001).is_err());
    }

    #[test]
    fn sequences_compare_without_repeats_or_leading_safe_values() {
        let n = |v: &[f64]| normal(&at(v), Some(0.0), 0.001);
        assert_eq!(
            n(&[0.0, 0.0, 0.5, 0.5, 0.5004, 0.25, 0.0])
                .iter()
                .map(|p| p.1)
                .collect::<Vec<_>>(),
            [0.5, 0.25, 0.0]
        );
        let want = n(&[0.0, 0.5, 0.25, 0.0]);
        assert_eq!(divergence(&want, &n(&[0.5, 0.5, 0.25, 0.0]), 0.001), None);
        let why = divergence(&want, &n(&[0.5, 0.3, 0.0]), 0.001).unwrap();
        assert!(why.contains("recorded 0.25, written 0.3"), "{why}");
        let why = divergence(&want, &[], 0.001).unwrap();
        assert!(why.contains("nothing written"), "{why}");
    }
}
