//! Every option value checked up front (issue 12, item 5), with the real binaries: each
//! duration option of every binary at 0 (where 0 makes no sense) and negative, and each
//! unusable ipc directory (a file, a missing directory, a non-writable one, an immutable
//! one), is a usage error: exit status 2 and one line on stderr naming the option, before
//! anything binds or creates shared memory. So is a bad number given to a benchmark.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pitcrew_e2e::supervisor::{Instance, Supervisor};
use pitcrew_e2e::{bin, wait_child};

/// A usage error is found before anything starts; a process still running after this long
/// started (and is killed).
const AT_ONCE: Duration = Duration::from_secs(10);

fn run(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    if wait_child(&mut child, AT_ONCE).is_none() {
        let _ = child.kill();
    }
    child.wait_with_output().expect("the output")
}

/// Checks exit status 2 and one stderr line naming `option`.
fn assert_usage_error(what: &str, out: &Output, option: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: not one line: {stderr}");
    assert!(
        lines[0].contains(option),
        "{what}: does not name {option}: {stderr}"
    );
}

/// The instance's shared options with `--ipc-dir` replaced by `dir`.
fn shared_args_in(inst: &Instance, dir: &Path) -> Vec<String> {
    let mut args = inst.shared_args();
    if let Some(i) = args.iter().position(|a| a == "--ipc-dir") {
        args[i + 1] = dir.display().to_string();
    }
    args
}

#[test]
fn every_duration_option_at_zero_or_negative_is_a_one_line_usage_error() {
    let inst = Instance::new("durations");
    let broker = inst.broker_args();
    let none: &[&str] = &[];
    // (binary, arguments before the option, the option, whether 0 is refused too).
    let mut cases: Vec<(&str, Vec<String>, &str, bool)> = Vec::new();
    let daemons: [(&str, &[&str]); 5] = [
        ("pitcrew-router", none),
        ("pitcrew-logfwd", none),
        ("pitcrew-devices", none),
        ("pitcrew-gamepad", &["receive"]),
        ("pitcrew", &["devices"]),
    ];
    for (binary, before) in daemons {
        for option in ["--update-interval", "--control-timeout", "--call-timeout"] {
            let mut args: Vec<String> = before.iter().map(|s| (*s).to_owned()).collect();
            if binary == "pitcrew-devices" {
                args.extend(broker.iter().cloned());
            }
            cases.push((binary, args, option, true));
        }
    }
    for option in [
        "--ping-interval",
        "--discovery-timeout",
        "--liveness-timeout",
        "--write-stall",
        "--full-interval",
        "--serial-rescan",
    ] {
        cases.push(("pitcrew-devices", broker.clone(), option, true));
    }
    // 0 turns output leases off.
    cases.push(("pitcrew-devices", broker.clone(), "--output-lease", false));
    let cli = |args: &[&str]| args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    cases.push((
        "pitcrew",
        cli(&["call", "router", "ping"]),
        "--timeout",
        true,
    ));
    cases.push((
        "pitcrew",
        cli(&["run", "/nonexistent.py"]),
        "--period",
        true,
    ));
    cases.push((
        "pitcrew",
        cli(&["run", "/nonexistent.py"]),
        "--timeout",
        true,
    ));
    // A match may skip a period (0 s), not have a negative one.
    for option in ["--auto", "--gap", "--teleop"] {
        cases.push(("pitcrew", cli(&["match"]), option, false));
    }
    cases.push((
        "pitcrew",
        cli(&["emulate", "koala-bear", "--tcp", &inst.virtual_addr()]),
        "--vanish-after",
        true,
    ));

    for (binary, before, option, zero_is_bad) in &cases {
        let values: &[&str] = if *zero_is_bad {
            &["0", "0ms", "-1s", "-0.5"]
        } else {
            &["-1s", "-0.5"]
        };
        for value in values {
            let mut cmd = Command::new(bin(binary));
            cmd.args(before)
                .args(inst.shared_args())
                .args([option, value]);
            let out = run(cmd);
            assert_usage_error(&format!("{binary} {option} {value}"), &out, option);
        }
    }
    assert_eq!(inst.segments(), Vec::<String>::new(), "something started");
    eprintln!("{} duration options checked at 0 and negative", cases.len());
}

/// Makes `dir` immutable for the life of the value (`chattr +i`); `None` where the file
/// system or the container does not allow it.
struct Immutable(PathBuf);

impl Immutable {
    fn new(dir: PathBuf) -> Option<Immutable> {
        std::fs::create_dir_all(&dir).ok()?;
        let ok = Command::new("chattr")
            .args(["+i"])
            .arg(&dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Immutable(dir))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn an_unusable_ipc_dir_is_a_one_line_usage_error_before_anything_binds() {
    let inst = Instance::new("ipcdir");
    let plain = inst.ipc_dir.join("plain-file");
    std::fs::write(&plain, "").expect("a plain file");
    let missing = inst.ipc_dir.join("missing");
    let mut dirs: Vec<(&str, PathBuf)> = vec![("a file", plain), ("a missing dir", missing)];
    // Root may write anywhere a mode allows nothing, but not into sysfs.
    let read_only = inst.ipc_dir.join("read-only");
    std::fs::create_dir_all(&read_only).expect("a directory");
    std::fs::set_permissions(
        &read_only,
        std::os::unix::fs::PermissionsExt::from_mode(0o555),
    )
    .expect("chmod");
    let is_root = running_as_root();
    dirs.push((
        "a non-writable dir",
        if is_root {
            PathBuf::from("/sys")
        } else {
            read_only
        },
    ));
    let immutable = Immutable::new(PathBuf::from(format!("/tmp/{}-immutable", inst.name())));
    match &immutable {
        Some(dir) => dirs.push(("an immutable dir", dir.0.clone())),
        None => eprintln!("chattr +i is not allowed here: the immutable case is skipped"),
    }

    for (case, dir) in &dirs {
        let shared = shared_args_in(&inst, dir);
        let daemons: [(&str, Vec<String>); 4] = [
            ("pitcrew-router", vec![]),
            ("pitcrew-logfwd", vec![]),
            ("pitcrew-devices", inst.broker_args()),
            ("pitcrew-gamepad", vec!["receive".to_owned()]),
        ];
        for (binary, before) in daemons {
            let mut cmd = Command::new(bin(binary));
            cmd.args(&before).args(&shared);
            let out = run(cmd);
            assert_usage_error(&format!("{binary} with {case}"), &out, "--ipc-dir");
            // --check-options (which the supervisor runs first) says so too.
            let mut cmd = Command::new(bin(binary));
            cmd.args(&before).args(&shared).arg("--check-options");
            let out = run(cmd);
            assert_usage_error(
                &format!("{binary} --check-options with {case}"),
                &out,
                "--ipc-dir",
            );
        }
        let mut supervise = Command::new("bash");
        supervise
            .arg(Supervisor::script())
            .arg("--")
            .args(&shared)
            .args(inst.broker_args())
            .env("PITCREW_BIN_DIR", pitcrew_e2e::bin_dir());
        let out = run(supervise);
        assert_usage_error(&format!("supervise with {case}"), &out, "--ipc-dir");
        // Nothing was bound or created: the ports are free, no shared memory exists.
        std::net::TcpListener::bind(("127.0.0.1", inst.router_port))
            .expect("the router port was never bound");
        std::net::UdpSocket::bind(inst.control_addr()).expect("the control port is free");
        assert_eq!(inst.segments(), Vec::<String>::new(), "{case}: segments");
    }
    // The CLI too, for what it can check (it does not need to write the directory).
    let file = &dirs[0].1;
    let mut cmd = Command::new(bin("pitcrew"));
    cmd.args(shared_args_in(&inst, file)).args(["estop"]);
    assert_usage_error("pitcrew estop with a file", &run(cmd), "--ipc-dir");
}

#[test]
fn an_unreadable_catalog_is_a_one_line_usage_error() {
    let inst = Instance::new("catalog");
    let bad = inst.ipc_dir.join("bad.yaml");
    std::fs::write(&bad, "koala-bear: [not, a, type]\n").expect("a file");
    let missing = inst.ipc_dir.join("missing.yaml");
    // 20 MB (sparse: it costs no disk) is refused before it is read, not parsed into
    // hundreds of megabytes in every process.
    let huge = inst.ipc_dir.join("huge.yaml");
    std::fs::File::create(&huge)
        .and_then(|f| f.set_len(20_000_000))
        .expect("a sparse file");
    for file in [&bad, &missing, &huge] {
        for (binary, before) in [
            ("pitcrew-devices", inst.broker_args()),
            ("pitcrew-gamepad", vec!["receive".to_owned()]),
            ("pitcrew", vec!["devices".to_owned()]),
        ] {
            let mut cmd = Command::new(bin(binary));
            cmd.args(before)
                .args(inst.shared_args())
                .arg("--catalog")
                .arg(file);
            let out = run(cmd);
            assert_usage_error(
                &format!("{binary} --catalog {}", file.display()),
                &out,
                "--catalog",
            );
        }
    }
    assert_eq!(inst.segments(), Vec::<String>::new());
}

/// The benchmarks are run by hand with a number or two; a mistyped one must not become a
/// ten-minute run with the default instead.
#[test]
fn a_bad_benchmark_option_value_is_a_one_line_usage_error() {
    for (binary, args, named) in [
        ("pitcrew-e2ebench", &["--changes", "abc"][..], "--changes"),
        ("pitcrew-e2ebench", &["--changes", "0"], "--changes"),
        ("pitcrew-e2ebench", &["--devices", "0"], "--devices"),
        ("pitcrew-e2ebench", &["--devices", "300"], "--devices"),
        ("pitcrew-e2ebench", &["--compare"], "--compare"),
        (
            "pitcrew-e2ebench",
            &["--compare", "/nonexistent"],
            "--compare",
        ),
        (
            "pitcrew-e2ebench",
            &["--devices", "8", "--no-python"],
            "--devices",
        ),
        ("pitcrew-bench", &["scale", "rcp"], "rcp"),
        ("pitcrew-devbench", &["latncy"], "latncy"),
        ("pitcrew-devbench", &["latency", "cpu"], "one benchmark"),
    ] {
        let mut cmd = Command::new(bin(binary));
        cmd.args(args);
        assert_usage_error(&format!("{binary} {args:?}"), &run(cmd), named);
    }
}

/// Whether the tests run as root (by the owner of /proc/self).
fn running_as_root() -> bool {
    std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").expect("/proc/self")) == 0
}
