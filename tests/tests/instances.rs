//! One instance per namespace (issue 12, item 4), with the real binaries and the real
//! supervisor: a second router, log forwarder, device broker, gamepad receiver or
//! supervisor started in a live namespace is refused at once naming the pid that holds the
//! namespace, and touches nothing of the first, which keeps serving; a supervisor started
//! over the orphans of a SIGKILLed one refuses; a second broker reaching the live router
//! through another namespace is refused its service identity instead of taking it over.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pitcrew_e2e::supervisor::{kill_group, running_in_groups, Emulator, Instance, Supervisor};
use pitcrew_e2e::{bin, wait_child};

/// Generous bound for "at once" on a loaded 2-core machine (the target is well under 1 s).
const AT_ONCE: Duration = Duration::from_secs(10);
/// How long a second broker may take to learn that the router refuses its identity: the
/// registration's patience (heartbeat expiry + 2 s) and its first wait, times two.
const REFUSAL_BOUND: Duration = Duration::from_secs(20);

/// A koala-bear UID (device id 13).
fn koala_uid(n: u64) -> String {
    ((13u128 << 72) | u128::from(n)).to_string()
}

/// Runs `cmd` to its end, killing it after `timeout`; returns its output and how long it
/// ran.
fn run(mut cmd: Command, timeout: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    if wait_child(&mut child, timeout).is_none() {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("the output");
    (output, started.elapsed())
}

/// A suite with one emulated koala-bear, checked to serve it.
struct Live {
    sup: Supervisor,
    _emu: Emulator,
    koala: String,
    inst: Instance,
}

impl Live {
    fn start(tag: &str, koala: u64) -> Live {
        let inst = Instance::new(tag);
        let koala = koala_uid(koala);
        let emu = Emulator::start(&inst, &[format!("koala-bear:{koala}")]);
        let sup = Supervisor::start(&inst, &[]);
        let live = Live {
            sup,
            _emu: emu,
            koala,
            inst,
        };
        live.assert_serving("at start");
        live
    }

    /// `pitcrew devices` lists the koala-bear (within a generous bound: discovery).
    fn assert_serving(&self, when: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (out, _) = run(self.inst.cli(&["devices"]), AT_ONCE);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() && text.contains(&self.koala) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{when}: `pitcrew devices` does not list {} (status {:?}): {text}{}\n{}",
                self.koala,
                out.status,
                String::from_utf8_lossy(&out.stderr),
                self.sup.log_lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut files = self.inst.ipc_files();
        files.sort();
        files
    }
}

/// Checks a refusal: exit status 1, quickly, and one line on stderr naming `pid`.
fn assert_refused(what: &str, (out, took): (Output, Duration), pid: u32) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
    assert!(took < AT_ONCE, "{what} took {took:?} to refuse");
    assert_eq!(lines.len(), 1, "{what}: not one line: {stderr}");
    assert!(
        lines[0].contains(&format!("pid {pid}")),
        "{what}: the line does not name pid {pid}: {stderr}"
    );
    eprintln!("{what} refused after {took:?}: {}", lines[0]);
}

#[test]
fn a_second_daemon_or_supervisor_in_a_live_namespace_is_refused_naming_the_holder() {
    let live = Live::start("second", 0x5ec0);
    let inst = &live.inst;
    let before = live.files();
    let segments = inst.segments();
    let shared = inst.shared_args();

    let second = |binary: &str, extra: &[String]| {
        let mut cmd = Command::new(bin(binary));
        cmd.args(extra).args(&shared);
        run(cmd, AT_ONCE)
    };
    let receive = ["receive".to_owned()];
    for (name, binary, extra) in [
        ("router", "pitcrew-router", &[][..]),
        ("logfwd", "pitcrew-logfwd", &[][..]),
        ("devices", "pitcrew-devices", &inst.broker_args()[..]),
        ("gamepad", "pitcrew-gamepad", &receive[..]),
    ] {
        let pid = live.sup.pid_of(name).expect("the supervisor started it");
        assert_refused(&format!("a second {name}"), second(binary, extra), pid);
    }

    let mut cmd = Command::new("bash");
    cmd.arg(Supervisor::script())
        .arg("--")
        .args(inst.supervise_args())
        .env("PITCREW_BIN_DIR", pitcrew_e2e::bin_dir());
    assert_refused("a second supervisor", run(cmd, AT_ONCE), live.sup.pid());

    // Nothing of the first was touched: the same files and segments, every child the
    // first one started still running, and the suite still serves.
    assert_eq!(live.files(), before, "the ipc directory changed");
    assert_eq!(inst.segments(), segments, "the shared memory changed");
    assert!(
        !live.sup.log_lines().iter().any(|l| l.contains(" exited (")),
        "a child of the first suite exited:\n{}",
        live.sup.log_lines().join("\n")
    );
    live.assert_serving("after the second instances");
    let (out, _) = run(inst.cli(&["estop"]), AT_ONCE);
    assert!(
        out.status.success(),
        "`pitcrew estop` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_supervisor_over_the_orphans_of_a_sigkilled_one_refuses_naming_them() {
    let mut live = Live::start("orphans", 0x0a11);
    let children = live.sup.started();
    live.sup.signal(libc::SIGKILL);
    assert!(
        live.sup.wait_exit(AT_ONCE).is_some(),
        "the supervisor did not die"
    );
    let groups: Vec<u32> = children.iter().map(|(_, p)| *p).collect();
    assert_eq!(
        running_in_groups(&groups).len(),
        children.len(),
        "the orphans should still run: {children:?}"
    );

    let mut cmd = Command::new("bash");
    cmd.arg(Supervisor::script())
        .arg("--")
        .args(live.inst.supervise_args())
        .env("PITCREW_BIN_DIR", pitcrew_e2e::bin_dir());
    let (out, took) = run(cmd, AT_ONCE);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // The daemons hold the namespace's locks and are named; the session recorder and the
    // dashboard hold none (any number of them may read a suite), so they are not among them.
    for (name, pid) in children
        .iter()
        .filter(|(name, _)| name != "record" && name != "dashboard")
    {
        assert!(
            stderr.contains(&format!("{name} (pid {pid})")),
            "the refusal does not name {name} (pid {pid}): {stderr}"
        );
    }
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(took < AT_ONCE, "took {took:?}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // The orphans were left alone and still serve.
    live.assert_serving("after the refused supervisor");
    for pid in groups {
        kill_group(pid, libc::SIGKILL);
    }
}

#[test]
fn a_broker_reaching_the_router_from_another_namespace_is_refused_its_identity() {
    let live = Live::start("identity", 0x1d);
    let other = Instance::new("identity2");
    // Another namespace (so its own lock), but the live router's backend.
    let backend = format!(
        "ipc://{}/{}-srv.sock",
        live.inst.ipc_dir.display(),
        live.inst.name()
    );
    let mut cmd = Command::new(bin("pitcrew-devices"));
    cmd.args(other.shared_args())
        .args(["--router-backend", &backend])
        .args(other.broker_args());
    let (out, took) = run(cmd, REFUSAL_BOUND * 2);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(took < REFUSAL_BOUND, "took {took:?} to be refused");
    assert!(
        stderr.contains("already has a live `device-service`"),
        "{stderr}"
    );
    eprintln!("the second broker was refused after {took:?}");
    live.assert_serving("after the refused broker");
    let (out, _) = run(live.inst.cli(&["call", "device-service", "ping"]), AT_ONCE);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
