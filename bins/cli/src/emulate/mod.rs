//! `pitcrew emulate TYPE[:UID][:JSON]... --tcp ADDR`: virtual Smart Devices speaking the
//! device side of the Smart Device Protocol to a broker, one connection per device.
//!
//! Every event a device sees (connected, write, disable, error, closed) is printed on stdout
//! as one JSON line, so tests and people can watch what reached the "hardware". Fault modes
//! (`--silent`, `--garbage`, `--vanish-after`, `--slow-ms`) exercise the broker's defences.

mod device;
pub mod playback;
mod pty;
pub mod sim;

use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use pitcrew::config::Config;
use pitcrew_catalog::{Catalog, DeviceType, Uid, Value};

pub use device::Faults;

/// Arguments of `pitcrew emulate`.
#[derive(Debug, Args)]
pub struct EmulateArgs {
    /// Devices to emulate: `TYPE[:UID][:JSON-INITIAL-VALUES]`, e.g. `limit-switch`,
    /// `polar-bear:56668397794435742564352`, `battery:{"v_batt":11.1}`.
    #[arg(required_unless_present_any = ["from", "sim"])]
    pub devices: Vec<String>,
    /// Play back every device of a recording (`pitcrew record`) with its UID, type and
    /// recorded values at the recorded times, instead of DEVICES.
    #[arg(long, value_name = "FILE", conflicts_with = "devices")]
    pub from: Option<std::path::PathBuf>,
    /// Emulate the devices of a simulated robot (a robot description such as
    /// examples/sim/robot.yaml) backed by its physics, stepped at 1 kHz in real time, instead
    /// of DEVICES; `pitcrew sim` looks at it and moves it.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["devices", "from"])]
    pub sim: Option<std::path::PathBuf>,
    /// Connect to the broker's virtual-device listener (tcp://HOST:PORT).
    #[arg(long, default_value = "tcp://127.0.0.1:6004")]
    pub tcp: String,
    /// Instead of TCP, create one pseudo-terminal per device, linked as DIR/ttyEMU<n> (point
    /// the broker's --serial-glob at DIR/ttyEMU*).
    #[arg(long, value_name = "DIR")]
    pub pty: Option<std::path::PathBuf>,
    /// Load mode: stream subscribed values every N ms (1..=1000) whatever interval the
    /// broker requests, instead of clamping it to 40..=250 ms like firmware.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub stream_interval_ms: Option<u16>,
    /// Fault: connect but never send anything.
    #[arg(long, help_heading = "Fault modes")]
    pub silent: bool,
    /// Fault: send garbage bytes and malformed frames instead of answering.
    #[arg(long, help_heading = "Fault modes")]
    pub garbage: bool,
    /// Fault: vanish mid-frame (half a frame, then close) after this many seconds.
    #[arg(long, value_name = "SECONDS", help_heading = "Fault modes", allow_hyphen_values = true,
          value_parser = pitcrew::options::parse_positive_duration)]
    pub vanish_after: Option<Duration>,
    /// Fault: answer every request this many milliseconds late.
    #[arg(long, value_name = "N", help_heading = "Fault modes")]
    pub slow_ms: Option<u64>,
}

/// One device to emulate, parsed from `TYPE[:UID][:JSON]`.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    /// Its catalog type.
    pub ty: Arc<DeviceType>,
    /// Its UID.
    pub uid: Uid,
    /// Initial values by param name.
    pub initial: Vec<(String, Value)>,
    /// Recorded values to send at their times (`--from`), instead of streaming.
    pub script: Option<Arc<playback::Script>>,
    /// The simulated robot whose physics gives the values (`--sim`).
    pub world: Option<sim::Shared>,
}

/// A random 64-bit number from the standard library's per-process random hasher keys.
fn random_u64(salt: u64) -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(salt);
    h.write_u32(std::process::id());
    h.finish()
}

/// Parses `TYPE[:UID][:JSON]`.
///
/// # Errors
/// Unknown type, not a Smart Device, bad UID (or one of another type), bad JSON or values.
pub fn parse_spec(catalog: &Catalog, text: &str, index: u64) -> anyhow::Result<DeviceSpec> {
    let (type_name, rest) = text.split_once(':').unwrap_or((text, ""));
    let (uid_text, json_text) = if rest.starts_with('{') {
        ("", rest)
    } else {
        rest.split_once(':').unwrap_or((rest, ""))
    };
    let ty = catalog
        .get(type_name)
        .with_context(|| format!("unknown device type {type_name:?}"))?;
    let Some(device_id) = ty.device_id() else {
        bail!("{type_name} is not a Smart Device type (it has no device_id)");
    };
    let uid = if uid_text.is_empty() {
        Uid::new(device_id, 0, random_u64(index))
    } else {
        let uid: Uid = uid_text
            .parse()
            .with_context(|| format!("bad UID {uid_text:?}"))?;
        if uid.device_id() != device_id {
            bail!(
                "UID {uid} has device id {}, not {device_id} ({type_name})",
                uid.device_id()
            );
        }
        uid
    };
    let mut initial = Vec::new();
    if !json_text.is_empty() {
        let json: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json_text)
            .with_context(|| format!("initial values of {type_name} are not a JSON object"))?;
        for (name, v) in json {
            let param = ty
                .param(&name)
                .with_context(|| format!("{type_name} has no param {name:?}"))?;
            let scalar = param
                .scalar()
                .with_context(|| format!("param {name:?} is an array"))?;
            let value = Value::from_json(&v, scalar).with_context(|| format!("param {name:?}"))?;
            initial.push((name, value));
        }
    }
    Ok(DeviceSpec {
        ty: Arc::clone(ty),
        uid,
        initial,
        script: None,
        world: None,
    })
}

/// A running simulation: its clock and its `sim` service, stopped when dropped.
struct Simulation {
    _clock: sim::Clock,
    service: tokio::task::JoinHandle<()>,
    stop: tokio_util::sync::CancellationToken,
}

impl Simulation {
    /// Starts the clock and the service of `world`, and gives every device the world.
    fn start(world: sim::Shared, config: &Config) -> anyhow::Result<Simulation> {
        let clock = sim::Clock::start(world.clone())?;
        let service = sim::service(&world);
        let backend = config.backend_connect();
        let stop = tokio_util::sync::CancellationToken::new();
        let token = stop.clone();
        let service = tokio::spawn(async move {
            if let Err(e) = service.serve(&backend, token).await {
                tracing::warn!(error = %e, "the sim service stopped");
            }
        });
        Ok(Simulation {
            _clock: clock,
            service,
            stop,
        })
    }
}

impl Drop for Simulation {
    fn drop(&mut self) {
        self.stop.cancel();
        self.service.abort();
    }
}

/// Prints one event line on stdout (JSON), flushed at once.
pub fn event(uid: Uid, event: &str, extra: serde_json::Value) {
    let mut line = serde_json::json!({ "uid": uid.to_string(), "event": event });
    if let (Some(obj), serde_json::Value::Object(more)) = (line.as_object_mut(), extra) {
        obj.extend(more);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

impl EmulateArgs {
    /// Runs every device until its connection ends.
    ///
    /// # Errors
    /// A bad device spec or address.
    pub async fn run(self, config: &Config) -> anyhow::Result<()> {
        let catalog = &config.catalog;
        let mut simulation = None;
        let specs = match (&self.from, &self.sim) {
            (Some(file), _) => playback::devices(file, catalog)?,
            (None, Some(file)) => {
                let (world, specs) = sim::load(file, catalog)?;
                simulation = Some(Simulation::start(world, config)?);
                specs
            }
            (None, None) => self
                .devices
                .iter()
                .zip(0u64..)
                .map(|(text, i)| parse_spec(catalog, text, i))
                .collect::<anyhow::Result<Vec<_>>>()?,
        };
        let addr = self
            .tcp
            .strip_prefix("tcp://")
            .unwrap_or(&self.tcp)
            .to_owned();
        let faults = Faults {
            silent: self.silent,
            garbage: self.garbage,
            vanish_after: self.vanish_after,
            slow: self.slow_ms.map(Duration::from_millis),
            stream_interval: self
                .stream_interval_ms
                .map(|ms| Duration::from_millis(u64::from(ms))),
        };
        let mut tasks = tokio::task::JoinSet::new();
        for (i, spec) in specs.into_iter().enumerate() {
            match &self.pty {
                Some(dir) => {
                    let pty = pty::Pty::open(dir, i).with_context(|| {
                        format!("cannot create a pseudo-terminal in {}", dir.display())
                    })?;
                    event(
                        spec.uid,
                        "pty",
                        serde_json::json!({ "path": pty.link().display().to_string() }),
                    );
                    tasks.spawn(device::run_pty(spec, pty, faults));
                }
                None => {
                    tasks.spawn(device::run_tcp(spec, addr.clone(), faults));
                }
            }
        }
        let mut failed = 0;
        let _simulation = simulation;
        while let Some(done) = tasks.join_next().await {
            if !matches!(done, Ok(Ok(()))) {
                failed += 1;
            }
        }
        if failed > 0 {
            bail!("{failed} emulated device(s) failed");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let c = Catalog::embedded();
        let s = parse_spec(c, "polar-bear", 0).unwrap();
        assert_eq!(s.uid.device_id(), 12);
        let s = parse_spec(c, r#"limit-switch:{"switch1":true}"#, 0).unwrap();
        assert_eq!(s.initial.len(), 1);
        let uid = Uid::new(0, 0, 7).to_string();
        let s = parse_spec(c, &format!(r#"limit-switch:{uid}:{{"switch0":true}}"#), 0).unwrap();
        assert_eq!(s.uid.to_string(), uid);
        assert!(parse_spec(c, "gamepad", 0).is_err());
        assert!(parse_spec(c, &format!("polar-bear:{uid}"), 0).is_err());
        assert!(parse_spec(c, "limit-switch:{\"nope\":1}", 0).is_err());
    }

    /// `pitcrew emulate`'s options alone, to parse them without the global CLI.
    #[derive(Debug, clap::Parser)]
    struct Cmd {
        #[command(flatten)]
        args: EmulateArgs,
    }

    fn parse(args: &[&str]) -> Result<EmulateArgs, clap::Error> {
        use clap::Parser;
        Cmd::try_parse_from(std::iter::once("emulate").chain(args.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn stream_interval_parses_in_range() {
        assert_eq!(parse(&["polar-bear"]).unwrap().stream_interval_ms, None);
        let a = parse(&["polar-bear", "--stream-interval-ms", "1"]).unwrap();
        assert_eq!(a.stream_interval_ms, Some(1));
        let a = parse(&["polar-bear", "--stream-interval-ms", "1000"]).unwrap();
        assert_eq!(a.stream_interval_ms, Some(1000));
        assert!(parse(&["polar-bear", "--stream-interval-ms", "0"]).is_err());
        assert!(parse(&["polar-bear", "--stream-interval-ms", "1001"]).is_err());
    }
}
