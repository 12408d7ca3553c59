//! Short buffer benchmark printing JSON lines: `buffer_get_ns`, `buffer_write_ns`,
//! `buffer_get_contended_ns` (a writer thread busy on the same block) and `buffer_wake_us`
//! (a write in a child process → owner awake here). Run with
//! `cargo run --release -p pitcrew-buffer --example buffer_bench`.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pitcrew_buffer::{remove_namespace, Buffer, Owner, SegmentKey};
use pitcrew_catalog::{Catalog, DeviceType, Uid, Value};

const CATALOG: &str = "\
bench:
  device_id: 201
  params:
    - {name: duty_cycle, type: float, writeable: true, lower: -1, upper: 1}
    - {name: stamp, type: uint64, readable: false, writeable: true}
";
const BATCH: u32 = 1000;
const SAMPLES: usize = 2000;
const WAKES: usize = 2000;

fn ty() -> Arc<DeviceType> {
    let cat = Catalog::from_yaml_str(CATALOG, "bench").expect("bench catalog");
    Arc::clone(cat.get("bench").expect("bench type"))
}

fn key() -> SegmentKey {
    SegmentKey::Uid(Uid::new(201, 0, 1))
}

fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, mut v: Vec<f64>) {
    let (p50, p99) = (pct(&mut v, 0.5), pct(&mut v, 0.99));
    println!(
        "{{\"bench\":\"{name}\",\"p50\":{p50:.2},\"p99\":{p99:.2},\"samples\":{}}}",
        v.len()
    );
}

fn per_op(mut f: impl FnMut()) -> Vec<f64> {
    (0..SAMPLES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..BATCH {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(BATCH)
        })
        .collect()
}

fn child(ns: &str) {
    let buf = Buffer::open(ns, ty(), key()).expect("child open");
    for _ in 0..WAKES {
        std::thread::sleep(Duration::from_micros(500));
        buf.write_value("stamp", Value::U64(mono_ns()))
            .expect("child write");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        return child(&args[2]);
    }
    let ns = format!("bench{}", std::process::id());
    let owner = Owner::create(&ns, ty(), key()).expect("create");
    let buf = Buffer::open(&ns, ty(), key()).expect("open");
    owner.set("duty_cycle", 0.5f32).expect("set");

    report(
        "buffer_get_ns",
        per_op(|| {
            std::hint::black_box(buf.get::<f32>("duty_cycle").expect("get"));
        }),
    );
    let mut x = 0.0f32;
    report(
        "buffer_write_ns",
        per_op(|| {
            x = if x > 0.5 { -0.5 } else { x + 0.001 };
            buf.write("duty_cycle", x).expect("write");
        }),
    );
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut v = 0.0f32;
            while !stop.load(Ordering::Relaxed) {
                v = if v > 0.5 { -0.5 } else { v + 0.001 };
                owner.set("duty_cycle", v).expect("set");
            }
        });
        report(
            "buffer_get_contended_ns",
            per_op(|| {
                std::hint::black_box(buf.get::<f32>("duty_cycle").expect("get"));
            }),
        );
        stop.store(true, Ordering::Relaxed);
    });

    owner.take_write().expect("take");
    let exe = std::env::current_exe().expect("exe");
    let mut kid = Command::new(exe)
        .args(["child", &ns])
        .spawn()
        .expect("spawn");
    let mut lat = Vec::with_capacity(WAKES);
    while lat.len() < WAKES {
        if !owner.wait_for_change(Duration::from_secs(5)).expect("wait") {
            break;
        }
        let now = mono_ns();
        owner.take_write().expect("take");
        if let Ok(v) = owner.desired_values(&["stamp"]) {
            if let Value::U64(stamp) = v[0] {
                lat.push(now.saturating_sub(stamp) as f64 / 1000.0);
            }
        }
    }
    let _ = kid.wait();
    report("buffer_wake_us", lat);
    drop(buf);
    drop(owner);
    let _ = remove_namespace(&ns);
}
