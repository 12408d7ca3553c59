//! `pitcrew-bench`: the suite's benchmarks (not timed tests). Starts the real binaries in a
//! namespace of its own and prints a table on stderr and one JSON object per figure on
//! stdout, e.g. `{"bench":"router_rtt_us","p50":..,"p99":..}`.
//!
//!     pitcrew-bench rpc          # router_rtt_us, direct_rtt_us, router_throughput
//!     pitcrew-bench scale        # scale_rpc: latency and throughput over 1, 8, 64 clients
//!
//! `rpc` ends with the router's floors (`pitcrew_e2e::floor`), loaded as the router was:
//! `zmq_echo_throughput` (a bare ROUTER echoing), and `zmq_routed_throughput` with
//! `zmq_direct_rtt_us` / `zmq_routed_rtt_us`: the same echo, directly and through a bare
//! libzmq forwarder in front of a bare echo service. The last pair is what a hop through
//! any router built on libzmq costs on this machine, the yardstick for the router's own
//! ratios.

use std::time::{Duration, Instant};

use anyhow::Context;
use pitcrew::codec::Value;
use pitcrew::rpc::Client;
use pitcrew_e2e::{cpu_seconds, wait_for_service, Namespace};

/// Sequential calls per latency figure (the issue asks for 10 000).
const RTT_CALLS: usize = 10_000;
/// Calls made before measuring, to warm caches, connections and the allocator.
const WARMUP_CALLS: usize = 1_000;
/// Throughput: clients, calls each keeps in flight, and how long.
const THROUGHPUT_CLIENTS: usize = 8;
const THROUGHPUT_DEPTH: usize = 32;
const THROUGHPUT_SECONDS: u64 = 5;
/// Seconds per point of the client sweep.
const SCALE_SECONDS: u64 = 3;

fn main() -> anyhow::Result<()> {
    let which: Vec<String> = std::env::args().skip(1).collect();
    match which
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["zmq-echo", addr] => return pitcrew_e2e::floor::zmq_echo_server(addr),
        ["zmq-forward", front, back] => return pitcrew_e2e::floor::zmq_forward_server(front, back),
        ["zmq-echo-service", back] => return pitcrew_e2e::floor::zmq_echo_service(back),
        _ => {}
    }
    let which = if which.is_empty() {
        vec!["rpc".to_owned()]
    } else {
        which
    };
    // All names checked before the first runs: a typo is not found minutes in.
    if let Some(other) = which
        .iter()
        .find(|b| !["rpc", "scale"].contains(&b.as_str()))
    {
        eprintln!("pitcrew-bench: unknown benchmark {other:?} (known: rpc, scale)");
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for bench in which {
        if bench == "rpc" {
            runtime.block_on(rpc())?;
        } else {
            runtime.block_on(scale())?;
        }
    }
    Ok(())
}

/// Prints one latency figure as a table row (stderr) and a JSON line (stdout).
fn report_latency(name: &str, mut samples: Vec<f64>) -> f64 {
    let (p50, p99) = pitcrew_e2e::p50_p99(&mut samples);
    eprintln!(
        "{name:<24} p50 {p50:>9.1}   p99 {p99:>9.1}   n {}",
        samples.len()
    );
    println!(
        "{{\"bench\":\"{name}\",\"p50\":{p50:.1},\"p99\":{p99:.1},\"n\":{}}}",
        samples.len()
    );
    p50
}

/// Round trips through the router and direct, interleaved call by call so that both see
/// the same machine conditions (this machine is shared; its wake-up latency drifts).
async fn rtt_pair(
    routed: &Client,
    direct: &Client,
    service: &str,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    // A 64-byte request: the MessagePack header plus a 48-byte binary parameter.
    let payload = Value::Binary(vec![0x5a; 48]);
    for _ in 0..WARMUP_CALLS {
        routed.call(service, "echo", vec![payload.clone()]).await?;
        direct.call(service, "echo", vec![payload.clone()]).await?;
    }
    let mut via_router = Vec::with_capacity(RTT_CALLS);
    let mut straight = Vec::with_capacity(RTT_CALLS);
    for _ in 0..RTT_CALLS {
        let started = Instant::now();
        routed.call(service, "echo", vec![payload.clone()]).await?;
        via_router.push(started.elapsed().as_secs_f64() * 1e6);
        let started = Instant::now();
        direct.call(service, "echo", vec![payload.clone()]).await?;
        straight.push(started.elapsed().as_secs_f64() * 1e6);
    }
    Ok((via_router, straight))
}

/// The `rpc` benchmark: round trips through the router and direct, the router's
/// throughput and CPU per call, then the same figures for bare libzmq (the floors).
async fn rpc() -> anyhow::Result<()> {
    let ns = Namespace::new("bench");
    let router = ns.spawn("pitcrew-router", &["--log-level", "warn"]);
    let via_router = ns.spawn(
        "pitcrew-testsvc",
        &["--app", "bench", "--log-level", "warn"],
    );
    let direct_address = format!("ipc:///tmp/{}-direct.sock", ns.name);
    let _direct = ns.spawn(
        "pitcrew-testsvc",
        &[
            "--app",
            "bench",
            "--direct",
            &direct_address,
            "--log-level",
            "warn",
        ],
    );
    let client = ns.client();
    wait_for_service(&client, "bench-service", Duration::from_secs(10))
        .await
        .context("the service behind the router did not start")?;
    let direct = Client::connect(&direct_address, "bench", Duration::from_secs(5))?;
    wait_for_service(&direct, "bench-service", Duration::from_secs(10))
        .await
        .context("the direct service did not start")?;

    let (routed_us, direct_us) = rtt_pair(&client, &direct, "bench-service").await?;
    let router_p50 = report_latency("router_rtt_us", routed_us);
    let direct_p50 = report_latency("direct_rtt_us", direct_us);
    let ratio = router_p50 / direct_p50;
    eprintln!("{:<24} {ratio:.2} (target ≤ 1.6)", "router/direct p50");
    println!("{{\"bench\":\"router_over_direct_p50\",\"ratio\":{ratio:.2}}}");

    let (per_s, lost) = router_throughput(&ns, &router, &via_router).await?;
    let floors = zmq_floors(&ns.name).await?;
    report_throughput(per_s, lost, &floors);
    let zmq_direct_p50 = report_latency("zmq_direct_rtt_us", floors.direct_us);
    let zmq_routed_p50 = report_latency("zmq_routed_rtt_us", floors.routed_us);
    let ratio = zmq_routed_p50 / zmq_direct_p50;
    eprintln!(
        "{:<24} {ratio:.2} (what a hop through libzmq alone costs)",
        "zmq routed/direct p50"
    );
    println!("{{\"bench\":\"zmq_routed_over_direct_p50\",\"ratio\":{ratio:.2}}}");
    Ok(())
}

/// Calls per second through the router with [`THROUGHPUT_CLIENTS`] clients each keeping
/// [`THROUGHPUT_DEPTH`] echo calls in flight for [`THROUGHPUT_SECONDS`], and the calls
/// lost; prints the CPU each process (router, service, these clients) spent per call,
/// which says where a call's cost goes when the figure moves.
async fn router_throughput(
    ns: &Namespace,
    router: &pitcrew_e2e::Proc,
    service: &pitcrew_e2e::Proc,
) -> anyhow::Result<(f64, u64)> {
    let clients: Vec<Client> = (0..THROUGHPUT_CLIENTS).map(|_| ns.client()).collect();
    let deadline = Instant::now() + Duration::from_secs(THROUGHPUT_SECONDS);
    let started = Instant::now();
    let cpu_before = [
        cpu_seconds(router.pid()),
        cpu_seconds(service.pid()),
        cpu_seconds(std::process::id()),
    ];
    let mut tasks = Vec::new();
    for client in &clients {
        for _ in 0..THROUGHPUT_DEPTH {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let (mut ok, mut lost) = (0u64, 0u64);
                while Instant::now() < deadline {
                    match client
                        .call("bench-service", "echo", vec![Value::Binary(vec![1; 48])])
                        .await
                    {
                        Ok(_) => ok += 1,
                        Err(_) => lost += 1,
                    }
                }
                (ok, lost)
            }));
        }
    }
    let (mut ok, mut lost) = (0u64, 0u64);
    for task in tasks {
        let (o, l) = task.await?;
        ok += o;
        lost += l;
    }
    let per_s = ok as f64 / started.elapsed().as_secs_f64();
    let cpu_after = [
        cpu_seconds(router.pid()),
        cpu_seconds(service.pid()),
        cpu_seconds(std::process::id()),
    ];
    for (i, name) in ["router", "service", "clients"].iter().enumerate() {
        let us_per_call = (cpu_after[i] - cpu_before[i]) * 1e6 / ok.max(1) as f64;
        eprintln!(
            "{:<24} {us_per_call:>9.2} µs CPU per call",
            format!("{name}_cpu_per_call")
        );
        println!("{{\"bench\":\"{name}_cpu_us_per_call\",\"value\":{us_per_call:.2}}}");
    }
    Ok((per_s, lost))
}

/// The router's floors, measured as it was: echo and forwarded throughput under the same
/// load, the forwarder's CPU per call, and the bare round trips direct and forwarded.
struct FloorFigures {
    /// A bare libzmq ROUTER echoing, messages per second.
    echo_per_s: f64,
    /// A bare forwarder in front of a bare echo service, calls per second.
    routed_per_s: f64,
    /// The forwarder's CPU per call, in µs.
    forward_cpu_us: f64,
    /// Round trips to the bare echo, in µs.
    direct_us: Vec<f64>,
    /// Round trips through the bare forwarder, in µs.
    routed_us: Vec<f64>,
}

/// Starts the floors ([`ZmqFloors`]) right after the router's run and measures them the
/// same way (what any libzmq router costs on this machine); they stop when measured.
async fn zmq_floors(namespace: &str) -> anyhow::Result<FloorFigures> {
    let floors = ZmqFloors::start(namespace)?;
    tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        for addr in [&floors.echo, &floors.front] {
            pitcrew_e2e::floor::wait_for_echo(addr, Duration::from_secs(10))?;
        }
        let throughput = |addr: &str| {
            pitcrew_e2e::floor::zmq_echo_throughput(
                addr,
                THROUGHPUT_CLIENTS,
                THROUGHPUT_DEPTH,
                THROUGHPUT_SECONDS as f64,
            )
        };
        let echo_per_s = throughput(&floors.echo)?;
        let forwarder = floors.forwarder_pid();
        let cpu_before = cpu_seconds(forwarder);
        let routed_per_s = throughput(&floors.front)?;
        let forward_cpu_us = (cpu_seconds(forwarder) - cpu_before) * 1e6
            / (routed_per_s * THROUGHPUT_SECONDS as f64).max(1.0);
        let (direct_us, routed_us) =
            pitcrew_e2e::floor::zmq_rtt_pair(&floors.echo, &floors.front, RTT_CALLS)?;
        Ok(FloorFigures {
            echo_per_s,
            routed_per_s,
            forward_cpu_us,
            direct_us,
            routed_us,
        })
    })
    .await?
}

/// Prints the router's throughput beside its floors (`router_throughput`,
/// `zmq_echo_throughput`, `zmq_routed_throughput`).
fn report_throughput(per_s: f64, lost: u64, floors: &FloorFigures) {
    let FloorFigures {
        echo_per_s,
        routed_per_s,
        forward_cpu_us,
        ..
    } = *floors;
    let ratio = per_s / echo_per_s;
    let routed_ratio = per_s / routed_per_s;
    eprintln!(
        "{:<24} {per_s:>9.0} calls/s   lost {lost}   floor (zmq echo) {echo_per_s:.0} msgs/s   ×floor {ratio:.2} (target ≥ 0.5, ≥ 100 000 calls/s)",
        "router_throughput"
    );
    eprintln!(
        "{:<24} {routed_per_s:>9.0} calls/s   ×zmq echo {:.2}   router ×this {routed_ratio:.2}   forwarder {forward_cpu_us:.2} µs CPU per call",
        "zmq_routed_throughput",
        routed_per_s / echo_per_s
    );
    println!("{{\"bench\":\"router_throughput\",\"calls_per_s\":{per_s:.0},\"lost\":{lost},\"clients\":{THROUGHPUT_CLIENTS},\"depth\":{THROUGHPUT_DEPTH},\"floor_ratio\":{ratio:.2},\"routed_floor_ratio\":{routed_ratio:.2}}}");
    println!("{{\"bench\":\"zmq_echo_throughput\",\"msgs_per_s\":{echo_per_s:.0},\"clients\":{THROUGHPUT_CLIENTS},\"depth\":{THROUGHPUT_DEPTH}}}");
    println!("{{\"bench\":\"zmq_routed_throughput\",\"calls_per_s\":{routed_per_s:.0},\"clients\":{THROUGHPUT_CLIENTS},\"depth\":{THROUGHPUT_DEPTH},\"echo_ratio\":{:.2},\"forwarder_cpu_us_per_call\":{forward_cpu_us:.2}}}", routed_per_s / echo_per_s);
}

/// The router's floors as processes of their own ([`pitcrew_e2e::floor`]): a bare echo at
/// `echo`, and a bare forwarder at `front` with a bare echo service behind it.
struct ZmqFloors {
    echo: String,
    front: String,
    /// Echo, forwarder, echo service.
    procs: [pitcrew_e2e::Proc; 3],
}

impl ZmqFloors {
    fn forwarder_pid(&self) -> u32 {
        self.procs[1].pid()
    }

    fn start(namespace: &str) -> anyhow::Result<ZmqFloors> {
        let echo = format!("ipc:///tmp/{namespace}-echo.sock");
        let front = format!("ipc:///tmp/{namespace}-fwd-front.sock");
        let back = format!("ipc:///tmp/{namespace}-fwd-back.sock");
        let stage = |args: &[&str]| -> anyhow::Result<pitcrew_e2e::Proc> {
            let child = std::process::Command::new(std::env::current_exe()?)
                .args(args)
                .spawn()
                .with_context(|| format!("start the floor stage {}", args[0]))?;
            Ok(pitcrew_e2e::Proc::from_child(child, args[0]))
        };
        let procs = [
            stage(&["zmq-echo", &echo])?,
            stage(&["zmq-forward", &front, &back])?,
            stage(&["zmq-echo-service", &back])?,
        ];
        Ok(ZmqFloors { echo, front, procs })
    }
}

/// How RPC cost grows with concurrent clients: 1, 8 and 64 clients, each making sequential
/// echo calls through the router for [`SCALE_SECONDS`]; latency p50/p99 and calls/s.
async fn scale() -> anyhow::Result<()> {
    let ns = Namespace::new("benchscale");
    let _router = ns.spawn("pitcrew-router", &["--log-level", "warn"]);
    let _service = ns.spawn(
        "pitcrew-testsvc",
        &["--app", "bench", "--log-level", "warn"],
    );
    wait_for_service(&ns.client(), "bench-service", Duration::from_secs(10))
        .await
        .context("the service behind the router did not start")?;
    for clients in [1usize, 8, 64] {
        let deadline = Instant::now() + Duration::from_secs(SCALE_SECONDS);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let client = ns.client();
            tasks.push(tokio::spawn(async move {
                let mut samples = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let ok = client
                        .call("bench-service", "echo", vec![Value::Binary(vec![1; 48])])
                        .await
                        .is_ok();
                    if ok {
                        samples.push(t.elapsed().as_secs_f64() * 1e6);
                    }
                }
                samples
            }));
        }
        let mut samples = Vec::new();
        for task in tasks {
            samples.extend(task.await?);
        }
        let per_s = samples.len() as f64 / started.elapsed().as_secs_f64();
        let (p50, p99) = pitcrew_e2e::p50_p99(&mut samples);
        eprintln!(
            "{:<24}clients {clients:>3}   p50 {p50:>9.1}   p99 {p99:>9.1}   {per_s:>8.0} calls/s",
            "scale_rpc"
        );
        println!(
            "{{\"bench\":\"scale_rpc\",\"clients\":{clients},\"p50\":{p50:.1},\"p99\":{p99:.1},\"calls_per_s\":{per_s:.0}}}"
        );
    }
    Ok(())
}
