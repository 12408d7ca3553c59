//! The real `pitcrew-dashboard` on its own (with a router, so `dashboard-service.stats`
//! answers) for the tests of its limits, and raw HTTP clients that talk to it the way a
//! hostile one would: from chosen loopback addresses (all of 127/8 is this machine, so one
//! test can be several clients), a byte at a time, or as fast as it can.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pitcrew_e2e::supervisor::Instance;
use pitcrew_e2e::{bin, wait_for_service, Proc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// How long the dashboard may take to answer its first stats call (a debug build on a
/// loaded machine).
pub const START_PATIENCE: Duration = Duration::from_secs(30);
/// How long one answer may take to arrive.
pub const ANSWER_PATIENCE: Duration = Duration::from_secs(10);

/// A router and a dashboard in an instance of their own; both killed on drop.
pub struct Alone {
    pub inst: Instance,
    pub dashboard: Proc,
    _router: Proc,
    log: PathBuf,
}

impl Alone {
    /// Starts a router and a dashboard with `extra` options, serving on loopback, and
    /// waits until `dashboard-service` answers.
    pub async fn start(tag: &str, extra: &[&str]) -> Alone {
        let inst = Instance::new(tag);
        let spawn = |name: &str, extra: &[&str]| {
            let log = PathBuf::from(format!("/tmp/{}-{name}.log", inst.name()));
            let stderr = std::fs::File::create(&log).expect("can create a log file in /tmp");
            let child = Command::new(bin(name))
                .args(inst.shared_args())
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
            (Proc::from_child(child, name), log)
        };
        let (router, _) = spawn("pitcrew-router", &[]);
        let addr = inst.dashboard_addr();
        let mut args = vec![
            "--dashboard-addr",
            addr.as_str(),
            "--update-interface",
            "127.0.0.1",
        ];
        args.extend_from_slice(extra);
        let (dashboard, log) = spawn("pitcrew-dashboard", &args);
        wait_for_service(&inst.client(), "dashboard-service", START_PATIENCE)
            .await
            .expect("dashboard-service answers");
        Alone {
            inst,
            dashboard,
            _router: router,
            log,
        }
    }

    /// Where the page is served.
    pub fn addr(&self) -> SocketAddr {
        self.inst
            .dashboard_addr()
            .parse()
            .expect("the dashboard's address parses")
    }

    /// `dashboard-service.stats`.
    pub async fn stats(&self) -> serde_json::Value {
        pitcrew::codec::to_json(
            &self
                .inst
                .client()
                .call("dashboard-service", "stats", vec![])
                .await
                .expect("dashboard-service.stats answers"),
        )
    }

    /// Waits until `field` of the stats is `want`; returns the stats.
    pub async fn wait_stat(&self, field: &str, want: u64) -> serde_json::Value {
        let deadline = Instant::now() + ANSWER_PATIENCE;
        loop {
            let stats = self.stats().await;
            if stats[field].as_u64() == Some(want) {
                return stats;
            }
            assert!(
                Instant::now() < deadline,
                "{field} never became {want}: {stats}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The dashboard's resident memory now (VmRSS, kB).
    pub fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.dashboard.pid()))
            .expect("the dashboard runs");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse().ok())
            .expect("/proc/PID/status has VmRSS")
    }

    /// The dashboard's log lines (its stderr, JSON) at WARN.
    pub fn warnings(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["level"] == "WARN")
            .collect()
    }
}

/// A TCP connection to `to` from the loopback address `from`.
pub async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a TCP socket");
    socket
        .bind(SocketAddr::from((from, 0)))
        .unwrap_or_else(|e| panic!("cannot bind {from}: {e}"));
    tokio::time::timeout(ANSWER_PATIENCE, socket.connect(to))
        .await
        .expect("the connection is taken in time")
        .expect("the dashboard takes connections")
}

/// An HTTP answer's status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Reads one answer: its head, and its body when it says how long it is (a `101` has
/// none: the WebSocket's frames follow). `None` when the connection closed first.
pub async fn read_answer(stream: &mut TcpStream) -> Option<Answer> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(ANSWER_PATIENCE, stream.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            Ok(_) => return None,
            Err(_) => panic!("no answer in {ANSWER_PATIENCE:?}"),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    tokio::time::timeout(ANSWER_PATIENCE, stream.read_exact(&mut body))
        .await
        .ok()?
        .ok()?;
    Some(Answer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The request a page makes to open its feed (`path` carries the token).
pub fn feed_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nhost: dashboard\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
    )
}

/// Sends `request` on `stream` and reads the answer.
pub async fn ask(stream: &mut TcpStream, request: &str) -> Option<Answer> {
    stream.write_all(request.as_bytes()).await.ok()?;
    read_answer(stream).await
}

/// Opens a page's feed from `from`: the connection (upgraded on `101`) and the answer.
pub async fn open_feed(from: Ipv4Addr, to: SocketAddr, path: &str) -> (TcpStream, Answer) {
    let mut stream = connect_from(from, to).await;
    let answer = ask(&mut stream, &feed_request(path))
        .await
        .expect("the feed answers");
    (stream, answer)
}
