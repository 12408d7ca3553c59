//! `pitcrew-robotbench`: the robot state's safety timings, on the real binaries as the
//! supervisor runs them (router, `pitcrew-devices` and `pitcrew-gamepad receive` at
//! `--realtime 10`; `--normal` runs them as normal threads), with one device of each of the
//! 11 shipped Smart Device types played by this process on real pseudo-terminals, every
//! time taken when the bytes are read on the device's side of the line:
//!
//! * `link_loss_safe_ms`: the driver station's last datagram → the safe DEV_WRITE of the
//!   koala-bear's `duty_cycle_a` (50 losses; target: max ≤ 110);
//! * `controller_stall_safe_ms`: SIGSTOP of a writing `pitcrew-teleop` → its safe DEV_WRITE
//!   (20 stalls; target: max ≤ lease + 15 = 115);
//! * `estop_all_devices_ms`: the `estop` RPC sent → DEV_DISABLE read on all 11 terminals
//!   (10 stops, the broker restarted after each; target: max ≤ 50).
//!
//! Prints a line per figure on stderr and a JSON line each on stdout.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use pitcrew::robot::Mode;
use pitcrew_catalog::{Catalog, Uid};
use pitcrew_e2e::device::{pty, serve};
use pitcrew_e2e::supervisor::{enable_robot, ControlSender};
use pitcrew_e2e::{bin, p50_p99, Namespace, Proc};
use pitcrew_sdp::{FrameDecoder, Message};

const LINK_LOSSES: usize = 50;
const STALLS: usize = 20;
const ESTOPS: usize = 10;
/// Generous wait for anything that must happen; only a broken path waits this long.
const PATIENCE: Duration = Duration::from_secs(20);

/// What a played device saw, with the instant it was read.
#[derive(Debug, Clone, Copy)]
enum Seen {
    /// A DEV_WRITE of param 0 (the koala-bear's `duty_cycle_a`) with its bits.
    Write(usize, u32),
    /// A DEV_DISABLE.
    Disable(usize),
}

/// The 11 devices on terminals in `dir`; events go to `tx`. Returns their UIDs and the
/// terminals' slave sides (kept open so a broker restart does not close the line).
fn play_devices(
    dir: &std::path::Path,
    tx: &mpsc::Sender<(Seen, Instant)>,
) -> anyhow::Result<(Vec<Uid>, Vec<std::os::fd::OwnedFd>)> {
    let mut uids = Vec::new();
    let mut slaves = Vec::new();
    let smart: Vec<u16> = Catalog::embedded()
        .types()
        .filter_map(|t| t.device_id())
        .collect();
    for (i, id) in smart.into_iter().enumerate() {
        let (mut master, slave) = pty(&dir.join(format!("ttyRB{i}")))?;
        let uid = Uid::new(id, 0, 9000 + i as u64);
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = serve(&mut master, &mut FrameDecoder::new(), uid, |m| {
                let now = Instant::now();
                match m {
                    Message::DevWrite(data) => {
                        if let Some(&[a, b, c, d]) = data.get(0) {
                            let _ =
                                tx.send((Seen::Write(i, u32::from_le_bytes([a, b, c, d])), now));
                        }
                    }
                    Message::DevDisable => {
                        let _ = tx.send((Seen::Disable(i), now));
                    }
                    _ => {}
                }
                false
            });
        });
        uids.push(uid);
        slaves.push(slave);
    }
    Ok((uids, slaves))
}

/// Waits for the first event matching `pred`, dropping the others; its instant.
fn wait_for(
    rx: &mpsc::Receiver<(Seen, Instant)>,
    what: &str,
    pred: impl Fn(&Seen) -> bool,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((seen, at)) if pred(&seen) => return Ok(at),
            Ok(_) => {}
            Err(_) => bail!("no {what} within {PATIENCE:?}"),
        }
    }
}

fn drain(rx: &mpsc::Receiver<(Seen, Instant)>) {
    while rx.try_recv().is_ok() {}
}

fn report(name: &str, samples: &mut [f64], target: &str) {
    let max = samples.iter().copied().fold(0.0f64, f64::max);
    let n = samples.len();
    let (p50, p99) = p50_p99(samples);
    eprintln!(
        "{name:<24}p50 {p50:>7.1}   p99 {p99:>7.1}   max {max:>7.1}   n {n}   target {target}"
    );
    println!(
        "{{\"bench\":\"{name}\",\"p50\":{p50:.1},\"p99\":{p99:.1},\"max\":{max:.1},\"n\":{n}}}"
    );
}

/// The koala-bear's index among the played devices.
fn koala(uids: &[Uid]) -> anyhow::Result<usize> {
    uids.iter()
        .position(|u| u.device_id() == 13)
        .context("no koala-bear among the shipped types")
}

struct Suite {
    ns: Namespace,
    broker_args: Vec<String>,
    realtime: Vec<String>,
    broker: Proc,
    _router: Proc,
    _receiver: Proc,
    station: ControlSender,
    client: pitcrew::rpc::Client,
}

impl Suite {
    fn start_broker(ns: &Namespace, args: &[String]) -> Proc {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ns.spawn("pitcrew-devices", &args)
    }

    async fn wait_devices(&self, n: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let list = self
                .client
                .call("device-service", "list_devices", vec![])
                .await
                .map(|v| pitcrew::codec::to_json(&v))
                .unwrap_or_default();
            let valid = list
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["valid"] == true)
                .count();
            if valid >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("only {valid} of {n} devices connected: {list}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn link_loss(
    s: &Suite,
    rx: &mpsc::Receiver<(Seen, Instant)>,
    koala: usize,
) -> anyhow::Result<Vec<f64>> {
    let half = 0.5f32.to_bits();
    let mut samples = Vec::with_capacity(LINK_LOSSES);
    // An in-process controller writing 0.5 every 10 ms.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (ns, stop) = (s.ns.name.clone(), std::sync::Arc::clone(&stop));
        let uid = Uid::new(13, 0, 9000 + koala as u64);
        std::thread::spawn(move || {
            let Ok(dev) = pitcrew::device::Device::open_uid(&ns, Catalog::embedded(), uid) else {
                return;
            };
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = dev.set("duty_cycle_a", 0.5f32);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    for _ in 0..LINK_LOSSES {
        s.station.resume();
        tokio::time::sleep(Duration::from_millis(60)).await;
        enable_robot(&s.client, &s.station, Mode::Teleop, PATIENCE).await;
        drain(rx);
        wait_for(
            rx,
            "a 0.5 write",
            |e| matches!(e, Seen::Write(i, b) if *i == koala && *b == half),
        )?;
        s.station.pause();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let last = s.station.last_sent().context("the station sent nothing")?;
        let safe = wait_for(
            rx,
            "a safe write",
            |e| matches!(e, Seen::Write(i, 0) if *i == koala),
        )?;
        samples.push(safe.saturating_duration_since(last).as_secs_f64() * 1e3);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = writer.join();
    s.station.resume();
    Ok(samples)
}

async fn stalls(
    s: &Suite,
    rx: &mpsc::Receiver<(Seen, Instant)>,
    koala: usize,
) -> anyhow::Result<Vec<f64>> {
    let real: Vec<&str> = s.realtime.iter().map(String::as_str).collect();
    let mut teleop = s.ns.spawn("pitcrew-teleop", &real);
    s.station.set(0.5, 0.5, 0);
    tokio::time::sleep(Duration::from_millis(60)).await;
    enable_robot(&s.client, &s.station, Mode::Teleop, PATIENCE).await;
    let half = 0.5f32.to_bits();
    let mut samples = Vec::with_capacity(STALLS);
    for _ in 0..STALLS {
        drain(rx);
        wait_for(
            rx,
            "the controller's 0.5",
            |e| matches!(e, Seen::Write(i, b) if *i == koala && *b == half),
        )?;
        // Somewhere within the controller's 20 ms period.
        tokio::time::sleep(Duration::from_millis(7)).await;
        let stopped = Instant::now();
        pitcrew_e2e::supervisor::kill(teleop.pid(), libc::SIGSTOP);
        let safe = wait_for(
            rx,
            "a safe write after SIGSTOP",
            |e| matches!(e, Seen::Write(i, 0) if *i == koala),
        )?;
        samples.push(safe.saturating_duration_since(stopped).as_secs_f64() * 1e3);
        pitcrew_e2e::supervisor::kill(teleop.pid(), libc::SIGCONT);
    }
    let _ = teleop.signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
    Ok(samples)
}

async fn estops(
    s: &mut Suite,
    rx: &mpsc::Receiver<(Seen, Instant)>,
    devices: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut samples = Vec::with_capacity(ESTOPS);
    let marker = std::path::PathBuf::from(format!("/tmp/{}-estop", s.ns.name));
    for _ in 0..ESTOPS {
        s.wait_devices(devices).await?;
        drain(rx);
        let sent = Instant::now();
        s.client
            .call_with_timeout("robot-service", "estop", vec![], PATIENCE)
            .await
            .context("estop")?;
        let mut disabled: Vec<Option<Instant>> = vec![None; devices];
        let deadline = Instant::now() + PATIENCE;
        while disabled.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((Seen::Disable(i), at)) => {
                    if let Some(slot) = disabled.get_mut(i).filter(|d| d.is_none()) {
                        *slot = Some(at);
                    }
                }
                Ok(_) => {}
                Err(_) => bail!(
                    "DEV_DISABLE reached only {:?} within {PATIENCE:?}",
                    disabled
                ),
            }
        }
        let last = disabled.into_iter().flatten().max().unwrap_or(sent);
        samples.push(last.saturating_duration_since(sent).as_secs_f64() * 1e3);
        // A person restarts the suite after `pitcrew clean`: here, the broker alone.
        let _ = s
            .broker
            .signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
        let _ = std::fs::remove_file(&marker);
        s.broker = Suite::start_broker(&s.ns, &s.broker_args);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(samples)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    if !bin("pitcrew-teleop").exists() {
        bail!("pitcrew-teleop is not built next to the suite (scripts/bench builds it)");
    }
    let normal = std::env::args().any(|a| a == "--normal");
    let realtime: Vec<String> = if normal {
        vec![]
    } else {
        vec!["--realtime".into(), "10".into()]
    };
    let ns = Namespace::new("robotbench");
    let dir = std::env::temp_dir().join(format!("{}-ptys", ns.name));
    std::fs::create_dir_all(&dir)?;
    let (tx, rx) = mpsc::channel();
    let (uids, _slaves) = play_devices(&dir, &tx)?;
    let koala = koala(&uids)?;
    let control_port = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let update_port = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let router = ns.spawn("pitcrew-router", &[]);
    let mut broker_args: Vec<String> = [
        "--virtual-addr",
        "tcp://127.0.0.1:0",
        "--serial-glob",
        &format!("{}/ttyRB*", dir.display()),
        "--serial-rescan",
        "100ms",
        "--update-interface",
        "127.0.0.1",
        "--update-addr",
        &format!("udp://239.255.77.4:{update_port}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    broker_args.extend(realtime.iter().cloned());
    let broker = Suite::start_broker(&ns, &broker_args);
    let control = format!("udp://127.0.0.1:{control_port}");
    let mut receiver_args = vec!["receive", "--control-addr", control.as_str()];
    receiver_args.extend(realtime.iter().map(String::as_str));
    let receiver = ns.spawn("pitcrew-gamepad", &receiver_args);
    let station = ControlSender::named(([127, 0, 0, 1], control_port).into(), "robotbench");
    let client = ns.client();
    pitcrew_e2e::wait_for_service(&client, "robot-service", PATIENCE)
        .await
        .context("robot-service answers")?;
    let mut suite = Suite {
        ns,
        broker_args,
        realtime,
        broker,
        _router: router,
        _receiver: receiver,
        station,
        client,
    };
    suite.wait_devices(uids.len()).await?;
    eprintln!(
        "# robot state: 11 devices on pseudo-terminals, {} threads",
        if normal { "normal" } else { "SCHED_FIFO 10" }
    );
    let mut loss = link_loss(&suite, &rx, koala).await?;
    report("link_loss_safe_ms", &mut loss, "max <= 110");
    let mut stall = stalls(&suite, &rx, koala).await?;
    report(
        "controller_stall_safe_ms",
        &mut stall,
        "max <= 115 (lease + 15)",
    );
    let mut stop = estops(&mut suite, &rx, uids.len()).await?;
    report("estop_all_devices_ms", &mut stop, "max <= 50");
    let _ = suite
        .broker
        .signal_and_wait(libc::SIGTERM, Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = pitcrew_buffer::remove_namespace(&suite.ns.name);
    Ok(())
}
