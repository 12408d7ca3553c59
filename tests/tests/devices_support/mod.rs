//! Helpers for the device broker tests: a router plus `pitcrew-devices` on a free TCP port,
//! `pitcrew emulate` processes whose JSON event lines are collected (with the instant each
//! was seen) for assertions, and an in-process multicast listener ([`updates`]).

#![allow(dead_code)]

pub mod updates;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pitcrew::codec::{to_json, Value};
use pitcrew::robot::Mode;
use pitcrew::rpc::Client;
use pitcrew_e2e::supervisor::{enable_robot, ControlSender};
use pitcrew_e2e::{bin, wait_for_service, Namespace, Proc};

/// Generous patience for anything that should happen "soon" on a loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// A free TCP port on 127.0.0.1 (bound, then released for the broker).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The multicast group of device updates in the tests (each test has its own port).
pub const GROUP: &str = "239.255.77.1";

/// A free UDP port.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

/// A router, a device broker, a gamepad receiver and a driver station in `ns`, the robot
/// enabled in teleop with output leases off (these tests are about the device path; the
/// robot-state tests are tests/robot.rs).
pub struct Broker {
    /// The driver station keeping the robot enabled (dropped first), and the gamepad
    /// receiver passing its link to the broker; `None` from [`Broker::start_bare`].
    pub station: Option<(ControlSender, Proc)>,
    /// The namespace, for cleanup.
    pub namespace: String,
    /// UDP port of the update multicast group [`GROUP`].
    pub update_port: u16,
    pub router: Proc,
    pub devices: Proc,
    pub port: u16,
    pub client: Client,
}

impl Broker {
    /// Starts everything, waits until `device-service` answers and the robot is enabled.
    pub async fn start(ns: &Namespace, extra: &[&str]) -> Broker {
        let control_port = free_udp_port();
        let control_addr = format!("udp://127.0.0.1:{control_port}");
        let receiver = ns.spawn(
            "pitcrew-gamepad",
            &["receive", "--control-addr", &control_addr],
        );
        let mut broker = Broker::start_bare(ns, extra).await;
        let station = ControlSender::start(([127, 0, 0, 1], control_port).into());
        enable_robot(&broker.client, &station, Mode::Teleop, PATIENCE).await;
        broker.station = Some((station, receiver));
        broker
    }

    /// Only the router and the broker (the robot stays disabled until a test's own
    /// receiver and driver station enable it).
    pub async fn start_bare(ns: &Namespace, extra: &[&str]) -> Broker {
        let router = ns.spawn("pitcrew-router", &[]);
        let port = free_port();
        let addr = format!("tcp://127.0.0.1:{port}");
        let update_port = free_udp_port();
        let update_addr = format!("udp://{GROUP}:{update_port}");
        let mut args = vec![
            "--virtual-addr",
            addr.as_str(),
            "--update-addr",
            update_addr.as_str(),
            "--update-interface",
            "127.0.0.1",
            // Never touch real serial ports from tests; tests that want ports add a glob.
            "--serial-glob",
            "",
        ];
        if !extra.contains(&"--output-lease") {
            args.extend_from_slice(&["--output-lease", "0"]);
        }
        args.extend_from_slice(extra);
        let devices = ns.spawn("pitcrew-devices", &args);
        let client = ns.client();
        wait_for_service(&client, "device-service", PATIENCE)
            .await
            .expect("device-service answers");
        Broker {
            station: None,
            namespace: ns.name.clone(),
            update_port,
            router,
            devices,
            port,
            client,
        }
    }

    /// `list_devices` as JSON.
    pub async fn list(&self) -> serde_json::Value {
        let v = self
            .client
            .call("device-service", "list_devices", vec![])
            .await
            .expect("list_devices");
        to_json(&v)
    }

    /// Waits until `uid` is listed with `valid == want`.
    pub async fn wait_valid(&self, uid: &str, want: bool) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let list = self.list().await;
            let found = list.as_array().into_iter().flatten().any(|d| {
                d["uid"] == serde_json::json!(uid) && d["valid"] == serde_json::json!(want)
            });
            if found {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{uid} never became valid={want}: {list}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The broker's `status` as JSON.
    pub async fn status(&self) -> serde_json::Value {
        self.call("status", vec![]).await
    }

    /// Calls a device-service method.
    pub async fn call(&self, method: &str, params: Vec<Value>) -> serde_json::Value {
        let v = self
            .client
            .call("device-service", method, params)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        to_json(&v)
    }
}

impl Drop for Broker {
    /// Stops the broker gracefully (it unlinks its buffers), then removes anything left.
    fn drop(&mut self) {
        if self.devices.is_running() {
            let _ = self
                .devices
                .signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
        }
        let _ = pitcrew_buffer::remove_namespace(&self.namespace);
    }
}

/// A running `pitcrew emulate` with its event lines and when each was read.
pub struct Emu {
    child: Child,
    events: Arc<Mutex<Vec<(Instant, serde_json::Value)>>>,
}

impl Emu {
    /// Starts `pitcrew watch --json` on the broker's update group.
    pub fn watch(ns: &Namespace, broker: &Broker) -> Emu {
        let addr = format!("udp://{GROUP}:{}", broker.update_port);
        Emu::spawn(
            ns,
            &format!("watch-{}", broker.update_port),
            &[
                "watch",
                "--json",
                "--interface",
                "127.0.0.1",
                "--update-addr",
                &addr,
            ],
        )
    }

    /// Starts `pitcrew emulate DEVICES... --tcp tcp://127.0.0.1:PORT EXTRA...`.
    pub fn start(ns: &Namespace, port: u16, devices: &[&str], extra: &[&str]) -> Emu {
        let tcp = format!("tcp://127.0.0.1:{port}");
        let mut args = vec!["emulate"];
        args.extend_from_slice(devices);
        args.extend_from_slice(&["--tcp", &tcp]);
        args.extend_from_slice(extra);
        Emu::spawn(ns, &format!("emulate-{port}"), &args)
    }

    /// Starts `pitcrew emulate DEVICES... --pty DIR EXTRA...`: one pseudo-terminal per
    /// device, linked as `DIR/ttyEMU<n>`.
    pub fn start_pty(
        ns: &Namespace,
        dir: &std::path::Path,
        devices: &[&str],
        extra: &[&str],
    ) -> Emu {
        let dir_arg = dir.display().to_string();
        let mut args = vec!["emulate"];
        args.extend_from_slice(devices);
        args.extend_from_slice(&["--pty", &dir_arg]);
        args.extend_from_slice(extra);
        let tag = dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        Emu::spawn(ns, &format!("emulate-pty-{tag}"), &args)
    }

    /// Starts `pitcrew ARGS` collecting its JSON stdout lines.
    fn spawn(ns: &Namespace, tag: &str, args: &[&str]) -> Emu {
        let log = std::fs::File::create(format!("/tmp/{}-{tag}.log", ns.name)).expect("log file");
        let mut child = Command::new(bin("pitcrew"))
            .args(ns.args())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("pitcrew emulate starts");
        let events = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let sink = Arc::clone(&events);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    sink.lock().unwrap().push((Instant::now(), v));
                }
            }
        });
        Emu { child, events }
    }

    /// All events so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// When the first event matching `pred` was read, if one was.
    pub fn first_seen(&self, pred: impl Fn(&serde_json::Value) -> bool) -> Option<Instant> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .find(|(_, e)| pred(e))
            .map(|(at, _)| *at)
    }

    /// Waits until `uid` has at least `n` events called `name`.
    pub async fn wait_count(&self, uid: &str, name: &str, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.count(uid, name) < n {
            assert!(
                Instant::now() < deadline,
                "fewer than {n} {name} of {uid}; events: {:?}",
                self.events()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many events of `uid` are called `name`.
    pub fn count(&self, uid: &str, name: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| e["uid"] == uid && e["event"] == name)
            .count()
    }

    /// Waits for an event matching `pred`; panics with the events seen after [`PATIENCE`].
    pub async fn wait_for(
        &self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no {what}; events: {:?}",
                self.events()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for event `name` of `uid`.
    pub async fn wait_event(&self, uid: &str, name: &str) -> serde_json::Value {
        self.wait_for(&format!("{name} of {uid}"), |e| {
            e["uid"] == uid && e["event"] == name
        })
        .await
    }

    /// Waits for a `write` event of `uid` carrying `param == value`.
    pub async fn wait_write(&self, uid: &str, param: &str, value: serde_json::Value) {
        self.wait_for(&format!("write {param}={value} to {uid}"), |e| {
            e["uid"] == uid && e["event"] == "write" && e["values"][param] == value
        })
        .await;
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to [`PATIENCE`] for the process to exit by itself.
    pub fn wait_exit(&mut self) -> bool {
        pitcrew_e2e::wait_child(&mut self.child, PATIENCE).is_some()
    }
}

impl Drop for Emu {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A fresh directory for pseudo-terminal links, `/tmp/<namespace>-<tag>`, removed on drop.
pub struct PtyDir {
    /// Its path.
    pub path: std::path::PathBuf,
}

impl PtyDir {
    /// Creates it.
    pub fn new(ns: &Namespace, tag: &str) -> PtyDir {
        let path = std::env::temp_dir().join(format!("{}-{tag}", ns.name));
        std::fs::create_dir_all(&path).expect("a directory for pty links");
        PtyDir { path }
    }

    /// The broker's `--serial-glob` for the emulator's links in it.
    pub fn glob(&self) -> String {
        format!("{}/ttyEMU*", self.path.display())
    }

    /// The path of link `n`.
    pub fn link(&self, n: usize) -> String {
        format!("{}/ttyEMU{n}", self.path.display())
    }
}

impl Drop for PtyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The UID of device id `device_id` with random part `n`, as a decimal string.
pub fn uid(device_id: u16, n: u64) -> String {
    ((u128::from(device_id) << 72) | u128::from(n)).to_string()
}

/// The broker's segments of `namespace` still in /dev/shm (the harness's gamepad receiver,
/// still running, owns the gamepad and driver-link segments: those are not the broker's).
pub fn broker_segments_left(namespace: &str) -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{namespace}-")))
        .filter(|n| !n.contains("-gamepad-") && !n.contains("-driver-links-"))
        .collect()
}
