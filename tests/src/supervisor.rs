//! Harness for the tests of `scripts/supervise`: an [`Instance`] (namespace, ipc directory
//! and every port of its own, so supervisors run side by side), the real script as a
//! [`Supervisor`], a gamepad [`ControlSender`] on the wire format of spec/wire.md, and
//! emulated Smart Devices ([`Emulator`]) whose event lines are timestamped on arrival.
//!
//! Everything here cleans up on `Drop`, also when a test fails: the supervisor and every
//! child it ever started are killed, and the namespace's segments and sockets removed.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pitcrew::robot::Mode;
use pitcrew::rpc::Client;

use crate::{bin, bin_dir, Namespace};

pub use crate::process::{kill, kill_group, running_in_groups};
pub use crate::station::{control_datagram, station_datagram, ControlSender};

/// The multicast group of device updates in these tests (each instance has its own port).
pub const UPDATE_GROUP: &str = "239.255.77.2";

/// A free TCP port on 127.0.0.1 (bound, then released for the process under test).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free TCP port")
}

/// A free UDP port on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port")
}

/// One robot's settings: a namespace, an ipc directory, and a port for every socket the
/// suite binds (router frontend, log frontend, control input, update multicast, virtual
/// Smart Devices).
pub struct Instance {
    /// The namespace (its `Drop` removes leftover files in /tmp).
    pub ns: Namespace,
    /// Where the default ipc sockets go (`--ipc-dir`).
    pub ipc_dir: PathBuf,
    /// Router frontend TCP port.
    pub router_port: u16,
    /// Log forwarder frontend TCP port.
    pub log_port: u16,
    /// Gamepad control UDP port.
    pub control_port: u16,
    /// Device update multicast port.
    pub update_port: u16,
    /// The broker's virtual-device TCP port.
    pub virtual_port: u16,
    /// The dashboard's HTTP port (on 127.0.0.1).
    pub dashboard_port: u16,
}

impl Instance {
    /// Fresh settings; `tag` makes the namespace readable.
    pub fn new(tag: &str) -> Instance {
        let ns = Namespace::new(tag);
        let ipc_dir = PathBuf::from(format!("/tmp/{}-ipc", ns.name));
        std::fs::create_dir_all(&ipc_dir).expect("can create the ipc directory");
        Instance {
            ns,
            ipc_dir,
            router_port: free_tcp_port(),
            log_port: free_tcp_port(),
            control_port: free_udp_port(),
            update_port: free_udp_port(),
            virtual_port: free_tcp_port(),
            dashboard_port: free_tcp_port(),
        }
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.ns.name
    }

    /// The router frontend over ipc, where this harness's clients connect.
    pub fn frontend(&self) -> String {
        format!("ipc://{}/{}-rpc.sock", self.ipc_dir.display(), self.ns.name)
    }

    /// The broker's virtual-device address.
    pub fn virtual_addr(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.virtual_port)
    }

    /// The broker's own options for this instance, as `supervise_args` gives them: its
    /// virtual-device address, updates on loopback, no serial ports.
    pub fn broker_args(&self) -> Vec<String> {
        [
            "--virtual-addr",
            &self.virtual_addr(),
            "--update-interface",
            "127.0.0.1",
            "--serial-glob",
            "",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// Where control datagrams go.
    pub fn control_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.control_port))
    }

    /// The shared options of this instance (every binary and the CLI take them). The
    /// router backend and log backend are left to their defaults under `--ipc-dir`.
    pub fn shared_args(&self) -> Vec<String> {
        [
            ("--namespace", self.ns.name.clone()),
            ("--ipc-dir", self.ipc_dir.display().to_string()),
            (
                "--router-frontend",
                format!("tcp://127.0.0.1:{},{}", self.router_port, self.frontend()),
            ),
            (
                "--log-frontend",
                format!("tcp://127.0.0.1:{}", self.log_port),
            ),
            (
                "--control-addr",
                format!("udp://127.0.0.1:{}", self.control_port),
            ),
            (
                "--update-addr",
                format!("udp://{UPDATE_GROUP}:{}", self.update_port),
            ),
            ("--log-format", "json".to_owned()),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_owned(), v])
        .collect()
    }

    /// The dashboard's address (`--dashboard-addr`).
    pub fn dashboard_addr(&self) -> String {
        format!("127.0.0.1:{}", self.dashboard_port)
    }

    /// What the supervisor gets after `--`: the shared options plus the broker's own
    /// (virtual-device address, loopback multicast, no serial ports) and the dashboard's
    /// address.
    pub fn supervise_args(&self) -> Vec<String> {
        let mut args = self.shared_args();
        args.extend(self.broker_args());
        args.extend(["--dashboard-addr".to_owned(), self.dashboard_addr()]);
        args
    }

    /// A `pitcrew` CLI command in this instance (not started).
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("pitcrew"));
        cmd.args(self.shared_args()).args(args).stdin(Stdio::null());
        cmd
    }

    /// An RPC client connected to this instance's router.
    pub fn client(&self) -> Client {
        Client::connect(&self.frontend(), "test", Duration::from_secs(5))
            .expect("a client can be created")
    }

    /// The names of the namespace's entries in /dev/shm (by prefix: test namespaces are
    /// unique, so no other instance shares it).
    pub fn segments(&self) -> Vec<String> {
        let prefix = format!("{}-", self.ns.name);
        std::fs::read_dir("/dev/shm")
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Where a supervisor of this instance records its sessions (beside, not in, the ipc
    /// directory, which tests expect to be empty after a stop).
    pub fn recordings(&self) -> PathBuf {
        PathBuf::from(format!("/tmp/{}-recordings", self.ns.name))
    }

    /// The entries left in the ipc directory.
    pub fn ipc_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(&self.ipc_dir)
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = pitcrew_buffer::remove_namespace(&self.ns.name);
        let _ = std::fs::remove_dir_all(&self.ipc_dir);
        let _ = std::fs::remove_dir_all(self.recordings());
    }
}

/// JSON lines read from a process's stdout, each with the instant it arrived.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<(Instant, serde_json::Value)>>>);

impl Events {
    /// Reads `from` line by line on a thread of its own until it closes; lines that are
    /// not JSON are dropped.
    fn collect(&self, from: impl Read + Send + 'static) -> JoinHandle<()> {
        let sink = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines() {
                let Ok(line) = line else { break };
                let now = Instant::now();
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    sink.lock().push((now, v));
                }
            }
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Instant, serde_json::Value)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every event so far.
    pub fn all(&self) -> Vec<(Instant, serde_json::Value)> {
        self.lock().clone()
    }

    /// The events matching `pred`.
    pub fn matching(
        &self,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<(Instant, serde_json::Value)> {
        self.lock()
            .iter()
            .filter(|(_, e)| pred(e))
            .cloned()
            .collect()
    }

    /// Waits up to `timeout` for an event matching `pred` that arrived at or after
    /// `since`; returns its arrival instant.
    pub fn wait_for(
        &self,
        since: Instant,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .lock()
                .iter()
                .find(|(t, e)| *t >= since && pred(e))
                .map(|(t, _)| *t);
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Whether `event` is a `write` to `uid` carrying `param == value`.
pub fn is_write(event: &serde_json::Value, uid: &str, param: &str, value: f64) -> bool {
    event["uid"] == uid
        && event["event"] == "write"
        && event["values"][param].as_f64() == Some(value)
}

/// `pitcrew emulate DEVICES --tcp ADDR` run by the test, started again whenever it exits
/// (a device that stays plugged in while the broker restarts: a TCP device's process ends
/// with its connection), until dropped.
pub struct Emulator {
    /// Every event line of every run.
    pub events: Events,
    /// (stop requested, pid of the current run).
    state: Arc<Mutex<(bool, u32)>>,
    thread: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Starts the devices (`TYPE:UID` specs) against `inst`'s virtual-device address.
    pub fn start(inst: &Instance, devices: &[String]) -> Emulator {
        let events = Events::default();
        let state = Arc::new(Mutex::new((false, 0u32)));
        let mut cmd = inst.cli(&["emulate"]);
        cmd.args(devices)
            .args(["--tcp", &inst.virtual_addr()])
            .stdout(Stdio::piped());
        let log_path = format!("/tmp/{}-emulate.log", inst.name());
        let (sink, shared) = (events.clone(), Arc::clone(&state));
        let thread = std::thread::spawn(move || loop {
            let mut child = {
                let mut state = shared.lock().unwrap_or_else(|e| e.into_inner());
                if state.0 {
                    return;
                }
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log_path)
                    .expect("can open the emulator's log");
                let child = cmd.stderr(log).spawn().expect("pitcrew emulate starts");
                state.1 = child.id();
                child
            };
            if let Some(out) = child.stdout.take() {
                let _ = sink.collect(out).join();
            }
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(50));
        });
        Emulator {
            events,
            state,
            thread: Some(thread),
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.0 = true;
            kill(state.1, libc::SIGKILL);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `scripts/supervise` running one [`Instance`], its stderr in
/// `/tmp/<namespace>-supervise.log` and its stdout (the children's, e.g. `--emulate`'s
/// event lines) collected as [`Events`].
pub struct Supervisor {
    child: Child,
    log: PathBuf,
    /// JSON lines on the supervisor's stdout.
    pub stdout: Events,
}

/// How long the suite may take to start on a loaded machine (debug builds, parallel tests).
const START_PATIENCE: Duration = Duration::from_secs(60);

impl Supervisor {
    /// The script, from this package's directory.
    pub fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/supervise")
    }

    /// Starts `scripts/supervise FLAGS... -- <instance options>` with the test build's
    /// binaries, in a process group of its own, and waits until it reports the suite
    /// running.
    pub fn start(inst: &Instance, flags: &[&str]) -> Supervisor {
        Supervisor::start_with_env(inst, flags, &[])
    }

    /// As [`Supervisor::start`], with `env` (`PITCREW_*` variables) added to the
    /// supervisor's environment, which every child inherits.
    pub fn start_with_env(inst: &Instance, flags: &[&str], env: &[(&str, &str)]) -> Supervisor {
        let log = PathBuf::from(format!("/tmp/{}-supervise.log", inst.name()));
        let stderr = std::fs::File::create(&log).expect("can create the supervisor's log");
        let mut child = Command::new("bash")
            .arg(Self::script())
            .args(flags)
            .arg("--")
            .args(inst.supervise_args())
            .env("PITCREW_BIN_DIR", bin_dir())
            // Sessions are recorded by default: into the instance's own directory, which
            // its `Drop` removes.
            .env("PITCREW_RECORD_DIR", inst.recordings())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .expect("scripts/supervise starts");
        let stdout = Events::default();
        if let Some(out) = child.stdout.take() {
            stdout.collect(out);
        }
        let mut sup = Supervisor { child, log, stdout };
        sup.wait_log("the suite running", START_PATIENCE, |l| {
            l.contains("supervise: suite running")
        });
        sup
    }

    /// The supervisor's pid (also its process group).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The supervisor's lines of its log (the children's JSON log lines left out).
    pub fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" supervise: ") || l.starts_with("removed "))
            .map(str::to_owned)
            .collect()
    }

    /// Waits until a log line satisfies `pred`; panics naming `what`, with the log, after
    /// `timeout` or when the supervisor exited.
    pub fn wait_log(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log_lines().iter().any(|l| pred(l)) {
                return;
            }
            let exited = matches!(self.child.try_wait(), Ok(Some(_)));
            assert!(
                !exited && Instant::now() < deadline,
                "no {what} (supervisor exited: {exited}); log:\n{}",
                self.log_lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every (name, pid) the supervisor started, in order, from its `started NAME (pid N)`
    /// lines.
    pub fn started(&self) -> Vec<(String, u32)> {
        self.log_lines()
            .iter()
            .filter_map(|l| {
                let rest = l.split(" supervise: started ").nth(1)?;
                let (name, pid) = rest.split_once(" (pid ")?;
                Some((name.to_owned(), pid.trim_end_matches(')').parse().ok()?))
            })
            .collect()
    }

    /// The current pid of child `name`.
    pub fn pid_of(&self, name: &str) -> Option<u32> {
        self.started()
            .into_iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p)
    }

    /// Sends `signal` to the supervisor only (not its children).
    pub fn signal(&self, signal: i32) {
        kill(self.pid(), signal);
    }

    /// Waits up to `timeout` for the supervisor to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        crate::wait_child(&mut self.child, timeout)
    }

    /// Processes still running from the supervisor's process group or any child's (each
    /// child runs in a group of its own).
    pub fn leftovers(&self) -> Vec<(u32, String)> {
        let mut groups: Vec<u32> = self.started().into_iter().map(|(_, p)| p).collect();
        groups.push(self.pid());
        running_in_groups(&groups)
    }
}

impl Drop for Supervisor {
    /// A graceful stop if it still runs, then SIGKILL to anything left.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal(libc::SIGTERM);
            if self.wait_exit(Duration::from_secs(10)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        for (_, pid) in self.started() {
            kill_group(pid, libc::SIGKILL);
        }
    }
}

/// What a [`ControlSender`] sends.
/// The robot state through `robot-service.state`, as JSON (`null` when unreachable).
pub async fn robot_state(client: &Client) -> serde_json::Value {
    client
        .call("robot-service", "state", vec![])
        .await
        .map(|v| pitcrew::codec::to_json(&v))
        .unwrap_or(serde_json::Value::Null)
}

/// Presses enable on `station` until the robot reports `mode` (a first press may only set
/// the broker's baseline for a station it had not seen yet, rule 4); returns the state.
///
/// # Panics
/// When the robot is not enabled within `patience`.
pub async fn enable_robot(
    client: &Client,
    station: &ControlSender,
    mode: Mode,
    patience: Duration,
) -> serde_json::Value {
    let deadline = Instant::now() + patience;
    loop {
        station.enable(mode);
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let state = robot_state(client).await;
            if state["state"] == mode.name() {
                return state;
            }
        }
        let state = robot_state(client).await;
        assert!(
            Instant::now() < deadline,
            "the robot never enabled in {mode}: {state}"
        );
    }
}

/// Waits until the robot reports `state` (a name); returns the state.
///
/// # Panics
/// When it does not within `patience`.
pub async fn wait_state(client: &Client, state: &str, patience: Duration) -> serde_json::Value {
    let deadline = Instant::now() + patience;
    loop {
        let now = robot_state(client).await;
        if now["state"] == state {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the robot never became {state}: {now}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
