//! Test harness for end-to-end tests: starts the real binaries in a namespace of their own
//! (ipc paths under /tmp named after it), kills them for real, and cleans up.
//!
//! Every test makes its own [`Namespace`], so tests run in parallel without sharing ports,
//! sockets or shared-memory names, and without global locks.

pub mod bench;
pub mod device;
pub mod floor;
pub mod process;
pub mod recording;
pub mod simulated;
pub mod station;
pub mod supervised;
pub mod supervisor;
pub mod tmux;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use pitcrew::rpc::{Client, RpcError};

/// The directory holding the workspace's built binaries (`target/debug` or
/// `target/release`), found from the running test executable (`.../deps/<test>`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let deps = exe.parent().expect("the test executable is in a directory");
    if deps.ends_with("deps") {
        deps.parent().expect("deps has a parent").to_path_buf()
    } else {
        deps.to_path_buf()
    }
}

/// The path of a workspace binary, which must have been built (`cargo build --workspace`,
/// done by `scripts/test`).
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace` (scripts/test does) before the tests",
        path.display()
    );
    path
}

/// A unique instance name and the endpoints derived from it.
pub struct Namespace {
    /// e.g. `t4242-3-router`.
    pub name: String,
}

impl Namespace {
    /// A fresh namespace; `tag` makes it readable in `ls /tmp`.
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag: String = tag
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect();
        Self {
            name: format!("t{}-{n}-{tag}", std::process::id()),
        }
    }

    /// The router frontend (clients) address.
    pub fn frontend(&self) -> String {
        format!("ipc:///tmp/{}-rpc.sock", self.name)
    }

    /// The router backend (services) address.
    pub fn backend(&self) -> String {
        format!("ipc:///tmp/{}-srv.sock", self.name)
    }

    /// The shared options that keep a binary inside this namespace.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--namespace".into(),
            self.name.clone(),
            // Explicit, so a PITCREW_IPC_DIR in the environment cannot move the files this
            // namespace cleans up (and `ipc_file` names) away from /tmp.
            "--ipc-dir".into(),
            "/tmp".into(),
            "--router-frontend".into(),
            self.frontend(),
            "--router-backend".into(),
            self.backend(),
            "--log-frontend".into(),
            format!("ipc:///tmp/{}-logpub.sock", self.name),
            "--log-backend".into(),
            format!("ipc:///tmp/{}-log.sock", self.name),
            "--log-format".into(),
            "json".into(),
        ]
    }

    /// Starts binary `name` in this namespace with `extra` arguments. Its stderr goes to
    /// `/tmp/<namespace>-<name>.log` for post-mortems.
    pub fn spawn(&self, name: &str, extra: &[&str]) -> Proc {
        self.spawn_with_env(name, extra, &[])
    }

    /// A `pitcrew` CLI command in this namespace (not started).
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("pitcrew"));
        cmd.args(self.args()).args(args).stdin(Stdio::null());
        cmd
    }

    /// The path of a file of this namespace in the ipc directory (`/tmp`), e.g.
    /// `ns.ipc_file("tap-gamepad.sock")`: what a process that stopped cleanly must not leave.
    pub fn ipc_file(&self, suffix: &str) -> PathBuf {
        PathBuf::from(format!("/tmp/{}-{suffix}", self.name))
    }

    /// An RPC client connected to this namespace's router.
    pub fn client(&self) -> Client {
        Client::connect(&self.frontend(), "test", Duration::from_secs(5))
            .expect("a client can be created")
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir("/tmp") {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(&format!("{}-", self.name)) && !name.ends_with(".log") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// A running binary; killed with SIGKILL when dropped, so a failing test leaves nothing.
pub struct Proc {
    child: Child,
    /// The binary's name.
    pub name: String,
}

impl Proc {
    /// Takes over a child started otherwise (killed when dropped, as the others).
    pub fn from_child(child: Child, name: &str) -> Proc {
        Proc {
            child,
            name: name.to_owned(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) and waits up to `timeout` for the exit.
    pub fn signal_and_wait(&mut self, signal: i32, timeout: Duration) -> Option<ExitStatus> {
        let pid = i32::try_from(self.child.id()).expect("pid fits i32");
        // SAFETY: kill(2) with a pid we started and have not reaped; no memory involved.
        unsafe {
            libc::kill(pid, signal);
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Calls `service.ping` until it answers or `timeout` passes.
///
/// # Errors
/// The last error when the service never answered.
pub async fn wait_for_service(
    client: &Client,
    service: &str,
    timeout: Duration,
) -> Result<(), RpcError> {
    let deadline = Instant::now() + timeout;
    loop {
        let res = client
            .call_with_timeout(service, "ping", vec![], Duration::from_millis(200))
            .await;
        match res {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Starts a router and the given test services (`<app>-service` for each app) and waits
/// until all answer.
pub async fn router_with_services(
    ns: &Namespace,
    apps: &[&str],
    extra: &[&str],
) -> (Proc, Vec<Proc>, Client) {
    let router = ns.spawn("pitcrew-router", &[]);
    let services: Vec<Proc> = apps
        .iter()
        .map(|app| {
            let mut args = vec!["--app", app];
            args.extend_from_slice(extra);
            ns.spawn("pitcrew-testsvc", &args)
        })
        .collect();
    let client = ns.client();
    wait_for_service(&client, "router", Duration::from_secs(10))
        .await
        .expect("router answers");
    for app in apps {
        wait_for_service(&client, &format!("{app}-service"), Duration::from_secs(10))
            .await
            .expect("service answers");
    }
    (router, services, client)
}

impl Namespace {
    /// Like [`Namespace::spawn`], with extra environment variables for the process (e.g.
    /// `GILRS_DISABLE_UDEV` to take the input subsystem away from the gamepad sender).
    pub fn spawn_with_env(&self, name: &str, extra: &[&str], env: &[(&str, &str)]) -> Proc {
        self.spawn_exe(&bin(name), extra, env)
    }

    /// Like [`Namespace::spawn_with_env`], for the executable at `exe` (a benchmark
    /// comparing two builds in one run starts the other build's binaries).
    pub fn spawn_exe(&self, exe: &Path, extra: &[&str], env: &[(&str, &str)]) -> Proc {
        let name = exe
            .file_name()
            .map_or_else(|| "process".into(), |n| n.to_string_lossy());
        let log = std::fs::File::create(format!("/tmp/{}-{name}.log", self.name))
            .expect("can create a log file in /tmp");
        let child = Command::new(exe)
            .args(self.args())
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            child,
            name: name.into_owned(),
        }
    }
}

/// Runs `cmd` (a `Command`, or a `&mut` to one being built) to its end and returns its
/// output; fails the test with the command's stderr when it exits unsuccessfully.
pub fn run_ok(mut cmd: impl std::borrow::BorrowMut<Command>) -> std::process::Output {
    let cmd = cmd.borrow_mut();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`. Unlike
/// wall-clock figures, this does not depend on what else the machine is doing.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the parenthesised command name: state is field 3; utime 14, stime 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(14) + ticks(15)) / hz
}

impl Proc {
    /// Waits up to `timeout` for the process to exit by itself (without signalling it), and
    /// returns its status; `None` if it is still running.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_child(&mut self.child, timeout)
    }
}

/// Where a test writes a picture the README shows (`docs/NAME`: the dashboard's screenshot,
/// `pitcrew watch`'s screen). A test run leaves the source tree as it was, so the picture
/// goes to the target dir unless `PITCREW_UPDATE_SCREENSHOT=1` asks to refresh the README's.
pub fn doc_picture(name: &str) -> PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = if std::env::var_os("PITCREW_UPDATE_SCREENSHOT").is_some() {
        root.join("docs")
    } else {
        root.join("target")
    };
    // Made if missing (a CARGO_TARGET_DIR elsewhere leaves no `target` here).
    let _ = std::fs::create_dir_all(&dir);
    dir.join(name)
}

/// The pass/fail bound a test puts on a timing requirement: five times the requirement. A
/// test proves the behaviour (the estop disables, the path comes back) and fails when the
/// bound is missed by a wide margin, but a 2-core CI machine loaded by parallel tests does
/// not fail it for a scheduling hiccup; the requirement itself is measured by a benchmark
/// against its target (`scripts/bench`, README "Benchmarks").
pub fn bound(requirement: std::time::Duration) -> std::time::Duration {
    requirement * 5
}

/// Sorts latency samples and returns their p50 and p99 (NaN when there are none): the one
/// definition of the percentiles every benchmark of the suite reports.
pub fn p50_p99(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples.get(i).copied().unwrap_or(f64::NAN)
    };
    (at(0.5), at(0.99))
}

/// Waits up to `timeout` for `child` to exit by itself; its status, or `None` if it still
/// runs.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
