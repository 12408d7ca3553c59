//! Who may use the suite's TCP endpoints (README, "Threat model"), with the real router and
//! log forwarder holding a team key: a client without the key, or with another one, reaches
//! nothing; one with the team key reaches everything; one with the field key reaches only
//! match phases and the emergency stop; ipc stays open to local processes. Without a key,
//! TCP binds to loopback only.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pitcrew::key::KeyKind;
use pitcrew_e2e::{bin, wait_for_service, Namespace, Proc};

fn free_port() -> u16 {
    pitcrew_e2e::supervisor::free_tcp_port()
}

/// A key file in a private temporary directory.
fn key_file(dir: &Path, name: &str, kind: KeyKind, team: Option<&Path>) -> PathBuf {
    let path = dir.join(name);
    let mut cmd = Command::new(bin("pitcrew"));
    if let Some(team) = team {
        cmd.arg("--key-file").arg(team);
    }
    cmd.args(["key", "new"]).arg(&path);
    if kind == KeyKind::Field {
        cmd.arg("--field");
    }
    pitcrew_e2e::run_ok(cmd);
    path
}

/// A router whose frontend is TCP (with the team key) and ipc, and a test service.
struct Rig {
    ns: Namespace,
    tcp: String,
    team: PathBuf,
    field: PathBuf,
    dir: tempfile::TempDir,
    _router: Proc,
    _service: Proc,
}

impl Rig {
    async fn start(tag: &str) -> Rig {
        let ns = Namespace::new(tag);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let team = key_file(dir.path(), "team.key", KeyKind::Team, None);
        let field = key_file(dir.path(), "field.key", KeyKind::Field, Some(&team));
        let tcp = format!("tcp://127.0.0.1:{}", free_port());
        let team_arg = team.to_str().expect("a UTF-8 path").to_owned();
        let field_arg = field.to_str().expect("a UTF-8 path").to_owned();
        let router = ns.spawn(
            "pitcrew-router",
            &[
                "--router-frontend",
                &tcp,
                "--key-file",
                &team_arg,
                "--field-key-file",
                &field_arg,
            ],
        );
        let service = ns.spawn("pitcrew-testsvc", &["--app", "py"]);
        let client = ns.client();
        wait_for_service(&client, "py-service", Duration::from_secs(10))
            .await
            .expect("the service answers over ipc");
        Rig {
            ns,
            tcp,
            team,
            field,
            dir,
            _router: router,
            _service: service,
        }
    }

    /// `pitcrew call` over the TCP frontend only, with `key` options.
    fn call_over_tcp(&self, key: &[&str], call: &[&str]) -> Output {
        Command::new(bin("pitcrew"))
            .args(["--namespace", &self.ns.name, "--router-frontend", &self.tcp])
            .args(key)
            .args(["call", "--timeout", "1s"])
            .args(call)
            .stdin(Stdio::null())
            .output()
            .expect("pitcrew runs")
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}, stdout {:?}, stderr {:?}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn over_tcp_only_the_team_key_reaches_everything_and_the_field_key_only_match_and_estop() {
    let rig = Rig::start("curve").await;
    let team = rig.team.to_str().unwrap();
    let field = rig.field.to_str().unwrap();

    // No key, and another team's key: nothing answers (the CURVE handshake fails).
    let out = rig.call_over_tcp(&[], &["py-service", "add", "2", "40"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("timeout"),
        "{}",
        text(&out)
    );
    let stranger = key_file(rig.dir.path(), "other.key", KeyKind::Team, None);
    let out = rig.call_over_tcp(
        &["--key-file", stranger.to_str().unwrap()],
        &["router", "ping"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // The team key: everything.
    let out = rig.call_over_tcp(&["--key-file", team], &["py-service", "add", "2", "40"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");

    // The field key: robot-service's match phases and estop pass the router (nobody serves
    // them here, so they come back unreachable); anything else is forbidden.
    let out = rig.call_over_tcp(
        &["--field-key-file", field],
        &["py-service", "add", "2", "40"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("forbidden"),
        "{}",
        text(&out)
    );
    let out = rig.call_over_tcp(&["--field-key-file", field], &["robot-service", "estop"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unreachable"),
        "{}",
        text(&out)
    );
    let out = rig.call_over_tcp(
        &["--field-key-file", field],
        &["robot-service", "enable", "\"teleop\""],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("forbidden"),
        "{}",
        text(&out)
    );
    // Nor the router's own calls: who is connected is the team's to know.
    for call in [&["router", "ping"][..], &["router", "list_peers"][..]] {
        let out = rig.call_over_tcp(&["--field-key-file", field], call);
        assert_eq!(out.status.code(), Some(1), "{call:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("forbidden"),
            "{call:?}: {}",
            text(&out)
        );
    }

    // Local processes keep the ipc frontend without a key.
    let out = rig
        .ns
        .cli(&["call", "py-service", "add", "1", "1"])
        .output()
        .expect("pitcrew runs");
    assert!(out.status.success(), "{}", text(&out));

    // The Python example, with the CURVE keys `pitcrew key show --curve` prints.
    let curve = Command::new(bin("pitcrew"))
        .args(["key", "show", "--curve", team])
        .output()
        .expect("pitcrew runs");
    let keys = rig.dir.path().join("client.curve");
    std::fs::write(&keys, &curve.stdout).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python_client.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([
            "--endpoint",
            &rig.tcp,
            "--curve-keys",
            keys.to_str().unwrap(),
        ])
        .args(["py-service", "add", "20", "22"])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    let out = Command::new("python3")
        .arg(&script)
        .args(["--endpoint", &rig.tcp, "--timeout", "1"])
        .args(["py-service", "add", "20", "22"])
        .output()
        .expect("python3 runs");
    assert_eq!(
        out.status.code(),
        Some(1),
        "without the keys: {}",
        text(&out)
    );
}

#[tokio::test]
async fn the_log_forwarder_serves_tcp_subscribers_only_with_the_team_key() {
    let ns = Namespace::new("curvelogs");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let team_path = key_file(dir.path(), "team.key", KeyKind::Team, None);
    let field = key_file(dir.path(), "field.key", KeyKind::Field, Some(&team_path));
    let (team, field) = (team_path.to_str().unwrap(), field.to_str().unwrap());
    let tcp = format!("tcp://127.0.0.1:{}", free_port());
    let _router = ns.spawn("pitcrew-router", &[]);
    let _logfwd = ns.spawn(
        "pitcrew-logfwd",
        &[
            "--log-frontend",
            &tcp,
            "--key-file",
            team,
            "--field-key-file",
            field,
        ],
    );
    let follow = |key: &[&str]| {
        Command::new(bin("pitcrew"))
            .args([
                "--namespace",
                &ns.name,
                "--log-frontend",
                &tcp,
                "--router-frontend",
            ])
            .arg(ns.frontend())
            .args(key)
            .args(["logs", "--follow", "--json", "--app", "spam"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("pitcrew runs")
    };
    let with_key = follow(&["--key-file", team]);
    let without = follow(&[]);
    let with_field_key = follow(&["--field-key-file", field]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    // A publisher on the (ipc) backend.
    let mut spam = ns.spawn("pitcrew-logspam", &["--count", "50"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while spam.is_running() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lines = |mut child: std::process::Child| {
        let _ = child.kill();
        let out = child.wait_with_output().expect("output");
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let (got, none) = (lines(with_key), lines(without));
    assert!(got > 0, "the key holder got the records");
    assert_eq!(none, 0, "a subscriber without the key got {none} records");
    let field_got = lines(with_field_key);
    assert_eq!(field_got, 0, "the field key got {field_got} records");
}

#[test]
fn without_a_key_tcp_binds_loopback_only() {
    let ns = Namespace::new("curveloop");
    let port = free_port();
    let mut router = ns.spawn(
        "pitcrew-router",
        &["--router-frontend", &format!("tcp://*:{port}")],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the router never listened on loopback"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let listening = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let wildcard = format!("00000000:{port:04X}");
    assert!(
        !listening.contains(&wildcard),
        "bound on all interfaces without a key"
    );
    router.kill9();
    // An address other machines reach, without a key: refused at start.
    let out = Command::new(bin("pitcrew-router"))
        .args(ns.args())
        .args(["--router-frontend", &format!("tcp://192.0.2.7:{port}")])
        .stdin(Stdio::null())
        .output()
        .expect("the router runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs the team key"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn strangers_knocking_over_tcp_are_counted_but_logged_a_few_times_only() {
    let rig = Rig::start("curveknock").await;
    let team = pitcrew::key::Key::load(&rig.team, KeyKind::Team).expect("the team key");
    let server = pitcrew::endpoint::curve::CurvePair::server(&team).expect("CURVE");
    // 2 000 connections of strangers (a refused client does not retry: each is new), in
    // batches of 100, with keys of their own.
    let context = zmq::Context::new();
    let keys: Vec<_> = (0..10)
        .map(|_| {
            let key = pitcrew::key::Key::generate(KeyKind::Team).expect("a key");
            pitcrew::endpoint::curve::CurvePair::client(&key).expect("CURVE")
        })
        .collect();
    for batch in 0..20 {
        let mut strangers = Vec::new();
        for i in 0..100 {
            let pair = &keys[(batch + i) % keys.len()];
            let socket = context.socket(zmq::DEALER).expect("a socket");
            socket.set_curve_serverkey(&server.public).unwrap();
            socket.set_curve_publickey(&pair.public).unwrap();
            socket.set_curve_secretkey(&pair.secret).unwrap();
            socket.set_linger(0).unwrap();
            socket.connect(&rig.tcp).unwrap();
            strangers.push(socket);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = rig
        .ns
        .cli(&["call", "router", "stats"])
        .output()
        .expect("pitcrew runs");
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).expect("stats as JSON");
    let refused = stats["refused_connections"].as_u64().unwrap_or(0);
    // Sockets dropped before their handshake make no request: how many do depends on the
    // load of the machine, so the bound is generous.
    assert!(refused >= 200, "refusals counted: {stats}");
    let log = std::fs::read_to_string(format!("/tmp/{}-pitcrew-router.log", rig.ns.name))
        .expect("the router's log");
    let lines = log.lines().filter(|l| l.contains("refused")).count();
    assert!(
        (1..=10).contains(&lines),
        "{refused} refusals took {lines} log lines"
    );
}
