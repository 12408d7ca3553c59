//! What the authentication tests share: a team key in a file, a keyed gamepad receiver
//! with a broker, and a station of the test's own that seals, answers and keeps what it
//! sent (for replays).

#![allow(dead_code)] // each test binary uses a part

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::devices_support::{self, Broker};
use pitcrew::control::auth::Sealer;
use pitcrew::control::StationRequest;
use pitcrew::gamepad::Gamepad;
use pitcrew::key::{Key, KeyKind};
use pitcrew::robot::Mode;
use pitcrew_e2e::supervisor::station_datagram;
use pitcrew_e2e::{Namespace, Proc};

/// A team key in a private file, removed with the test.
pub struct KeyFile {
    pub key: Key,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl KeyFile {
    pub fn new(kind: KeyKind) -> KeyFile {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("team.key");
        let key = Key::generate(kind).expect("a key");
        key.write_new(&path).expect("the key file is written");
        KeyFile {
            key,
            path,
            _dir: dir,
        }
    }

    pub fn path(&self) -> &str {
        self.path.to_str().expect("a UTF-8 path")
    }
}

/// A keyed gamepad receiver and a bare broker.
pub struct Rig {
    pub receiver: Proc,
    pub control: SocketAddr,
    pub broker: Broker,
    pub key: KeyFile,
    pub ns: Namespace,
}

impl Rig {
    pub async fn start(tag: &str) -> Rig {
        Rig::start_with(tag, &[]).await
    }

    /// As [`Rig::start`], with extra options for the receiver.
    pub async fn start_with(tag: &str, receiver_options: &[&str]) -> Rig {
        let ns = Namespace::new(tag);
        let key = KeyFile::new(KeyKind::Team);
        let control = SocketAddr::from(([127, 0, 0, 1], devices_support::free_udp_port()));
        let receiver = spawn_receiver(&ns, control, &key, receiver_options);
        let broker = Broker::start_bare(&ns, &[]).await;
        Rig {
            receiver,
            control,
            broker,
            key,
            ns,
        }
    }

    pub async fn counters(&self) -> serde_json::Value {
        let status = self.broker.call_service("gamepad-service", "status").await;
        status["counters"].clone()
    }

    pub fn left_y(&self) -> f32 {
        Gamepad::open(&self.ns.name, 0)
            .and_then(|g| g.joystick_left_y())
            .unwrap_or(f32::NAN)
    }

    /// The real driver: a sealed station named `driver` that enables the robot in teleop
    /// and holds the left stick at 0.25, returned once the stick is on gamepad 0.
    pub async fn driver(&self) -> pitcrew_e2e::supervisor::ControlSender {
        let driver =
            pitcrew_e2e::supervisor::ControlSender::sealed(self.control, "driver", &self.key.key);
        driver.set(0.25, 0.0, 0);
        pitcrew_e2e::supervisor::enable_robot(
            &self.broker.client,
            &driver,
            Mode::Teleop,
            devices_support::PATIENCE,
        )
        .await;
        let deadline = Instant::now() + devices_support::PATIENCE;
        while self.left_y() != 0.25 {
            assert!(
                Instant::now() < deadline,
                "the driver's stick never arrived"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        driver
    }
}

pub fn spawn_receiver(ns: &Namespace, control: SocketAddr, key: &KeyFile, extra: &[&str]) -> Proc {
    let addr = format!("udp://{control}");
    let mut args = vec!["receive", "--control-addr", &addr, "--key-file", key.path()];
    args.extend_from_slice(extra);
    ns.spawn("pitcrew-gamepad", &args)
}

pub fn request(enable_id: u32) -> StationRequest {
    StationRequest {
        mode: Mode::Teleop,
        enable: true,
        enable_id,
        estop: false,
    }
}

/// A station of the test's own, for datagrams it then replays or alters: it seals with
/// `key`, takes the robot's challenge from its answers, and keeps every datagram it sent.
pub struct Station {
    socket: UdpSocket,
    sealer: Sealer,
    to: SocketAddr,
    seq: u64,
    pub sent: Vec<(Instant, Vec<u8>)>,
}

impl Station {
    pub fn new(key: &Key, to: SocketAddr) -> Station {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("a read timeout");
        Station {
            socket,
            sealer: Sealer::new(key).expect("a session"),
            to,
            seq: 0,
            sent: Vec::new(),
        }
    }

    /// Seals and sends one datagram (ly, enable request), then reads the answers.
    pub fn send(&mut self, ly: f32, ask: Option<StationRequest>, source: &str) -> Vec<u8> {
        self.seq += 1;
        let datagram = station_datagram((ly, 0.0, 0), self.seq, 0, source, ask);
        let sealed = self.sealer.seal(&datagram);
        self.socket.send_to(&sealed, self.to).expect("sent");
        self.sent.push((Instant::now(), sealed.clone()));
        let mut buf = [0u8; 1500];
        while let Ok(n) = self.socket.recv(&mut buf) {
            self.sealer.open_answer(&buf[..n]);
        }
        sealed
    }
}

pub fn send_raw(bytes: &[u8], to: SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    socket.send_to(bytes, to).expect("sent");
}

/// RPC helpers of the broker used here.
pub trait CallService {
    /// `METHOD` of `SERVICE` with no parameters, as JSON.
    async fn call_service(&self, service: &str, method: &str) -> serde_json::Value;
}

impl CallService for Broker {
    /// `METHOD` of `SERVICE` with no parameters, as JSON.
    async fn call_service(&self, service: &str, method: &str) -> serde_json::Value {
        self.client
            .call(service, method, vec![])
            .await
            .map(|v| pitcrew::codec::to_json(&v))
            .unwrap_or(serde_json::Value::Null)
    }
}

/// `pitcrew record` on the rig's taps, and what its file says about refused datagrams.
pub struct Recorder {
    proc: Proc,
    dir: tempfile::TempDir,
}

impl Recorder {
    /// Starts a recorder and waits until the gamepad receiver's tap has it listening.
    pub async fn start(rig: &Rig) -> Recorder {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("session.mcap");
        let proc = rig.ns.spawn(
            "pitcrew",
            &["record", "-o", file.to_str().expect("a UTF-8 path")],
        );
        let deadline = Instant::now() + devices_support::PATIENCE;
        while rig.broker.call_service("gamepad-service", "status").await["tap"]["listening"] != true
        {
            assert!(
                Instant::now() < deadline,
                "the receiver's tap never saw the recorder"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Recorder { proc, dir }
    }

    /// Stops the recorder (SIGINT) and counts the file's `/control/refused` messages by
    /// kind, through `pitcrew recording export --csv`.
    pub fn refused_by_kind(mut self, ns: &Namespace) -> std::collections::BTreeMap<String, u64> {
        let status = self
            .proc
            .signal_and_wait(libc::SIGINT, devices_support::PATIENCE);
        assert!(
            status.is_some_and(|s| s.success()),
            "pitcrew record: {status:?}"
        );
        let file = self.dir.path().join("session.mcap");
        let tables =
            pitcrew_e2e::recording::export_tables(ns.cli(&[]), &file, &self.dir.path().join("csv"));
        let mut counts = std::collections::BTreeMap::new();
        for row in tables.get("control_refused").into_iter().flatten() {
            let kind = row.get("kind").cloned().unwrap_or_else(|| "?".into());
            *counts.entry(kind).or_default() += 1;
        }
        counts
    }
}
