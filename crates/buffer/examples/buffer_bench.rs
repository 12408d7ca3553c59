//! Short buffer benchmark printing JSON lines: `buffer_get_ns`, `buffer_write_ns`,
//! `buffer_get_contended_ns` (a writer thread busy on the same block) and `buffer_wake_us`
//! (a write in a child process → owner awake here) beside `wake_floor_us`, its floor: the
//! same one-way wake-up done with a bare futex on a shared-memory word and no pitcrew code,
//! the two interleaved sample by sample, at SCHED_FIFO 10 as the broker's waker threads run
//! (`--realtime 10`), then both again at normal priority. Run with
//! `cargo run --release -p pitcrew-buffer --example buffer_bench`.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
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

/// The floor's shared words: [sequence (the futex word), stamp low, stamp high, the
/// parent's acknowledgements].
struct FloorWords(*mut AtomicU32);

impl FloorWords {
    fn open(path: &str) -> FloorWords {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .expect("floor file");
        file.set_len(64).expect("floor size");
        // SAFETY: a shared mapping of a 64-byte file, never unmapped (the process ends).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                64,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&file),
                0,
            )
        };
        assert!(ptr != libc::MAP_FAILED, "floor mmap");
        FloorWords(ptr.cast())
    }

    fn word(&self, i: usize) -> &AtomicU32 {
        // SAFETY: i < 4, inside the 64-byte mapping; AtomicU32 has u32's layout.
        unsafe { &*self.0.add(i) }
    }

    /// Stores the stamp, then bumps the sequence (word 0) and wakes its waiter.
    fn post(&self, stamp: u64) {
        self.word(1).store(stamp as u32, Ordering::Relaxed);
        self.word(2).store((stamp >> 32) as u32, Ordering::Relaxed);
        self.bump(0);
    }

    /// Waits until the sequence moves past `seen`; (sequence, stamp), or `None` when
    /// nothing came for 5 s (the child is gone).
    fn wait(&self, seen: u32) -> Option<(u32, u64)> {
        let now = self.wait_word(0, seen)?;
        let stamp = u64::from(self.word(1).load(Ordering::Relaxed))
            | u64::from(self.word(2).load(Ordering::Relaxed)) << 32;
        Some((now, stamp))
    }

    /// The parent took a sample (word 3): the child may post the next one. Without this
    /// hand-back, a parent late by one post would pair each wake-up with the other
    /// path's stamp for the rest of the run.
    fn ack(&self) {
        self.bump(3);
    }

    /// Increments word `i` and FUTEX_WAKEs it.
    fn bump(&self, i: usize) {
        self.word(i).fetch_add(1, Ordering::Release);
        // SAFETY: a live u32 of the shared mapping.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.word(i).as_ptr(),
                libc::FUTEX_WAKE,
                i32::MAX,
            );
        }
    }

    /// FUTEX_WAITs until word `i` moves past `seen`; its new value, or `None` after 5 s.
    fn wait_word(&self, i: usize, seen: u32) -> Option<u32> {
        let ts = libc::timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let now = self.word(i).load(Ordering::Acquire);
            if now != seen {
                return Some(now);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            // SAFETY: as in `bump`; a spurious return is re-checked.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.word(i).as_ptr(),
                    libc::FUTEX_WAIT,
                    seen,
                    &ts as *const libc::timespec,
                );
            }
        }
    }
}

/// SCHED_FIFO `priority` for this thread (0: leave it normal).
fn realtime(priority: i32) {
    if priority == 0 {
        return;
    }
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: plain syscall on the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
        eprintln!("buffer_bench: no SCHED_FIFO {priority}: runs at normal priority");
    }
}

/// Posts `WAKES` pairs: a buffer write (the real path), then the bare futex (the floor),
/// each after the parent took the one before.
fn child(ns: &str, floor: &str, priority: i32) {
    realtime(priority);
    let buf = Buffer::open(ns, ty(), key()).expect("child open");
    let words = FloorWords::open(floor);
    let mut acked = words.word(3).load(Ordering::Acquire);
    for _ in 0..WAKES {
        std::thread::sleep(Duration::from_micros(500));
        buf.write_value("stamp", Value::U64(mono_ns()))
            .expect("child write");
        let Some(n) = words.wait_word(3, acked) else {
            return;
        };
        std::thread::sleep(Duration::from_micros(500));
        words.post(mono_ns());
        let Some(m) = words.wait_word(3, n) else {
            return;
        };
        acked = m;
    }
}

/// `buffer_wake_us` and `wake_floor_us`, interleaved, at SCHED_FIFO `priority` (0: normal).
fn wakes(owner: &Owner, ns: &str, priority: i32) {
    owner.take_write().expect("take");
    let floor = format!("/dev/shm/{ns}-wakefloor");
    let words = FloorWords::open(&floor);
    let mut seen = words.word(0).load(Ordering::Acquire);
    let exe = std::env::current_exe().expect("exe");
    let mut kid = Command::new(exe)
        .args(["child", ns, &floor, &priority.to_string()])
        .spawn()
        .expect("spawn");
    realtime(priority);
    let (mut lat, mut bare) = (Vec::with_capacity(WAKES), Vec::with_capacity(WAKES));
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
        words.ack();
        let Some((next, stamp)) = words.wait(seen) else {
            eprintln!(
                "buffer_bench: the child stopped posting; {} samples",
                lat.len()
            );
            break;
        };
        bare.push(mono_ns().saturating_sub(stamp) as f64 / 1000.0);
        seen = next;
        words.ack();
    }
    let _ = kid.wait();
    realtime_off();
    let label = if priority == 0 {
        "normal".to_owned()
    } else {
        format!("realtime {priority}")
    };
    let (wake, floor_p) = (pcts(&mut lat), pcts(&mut bare));
    println!(
        "{{\"bench\":\"buffer_wake_us\",\"p50\":{:.2},\"p99\":{:.2},\"samples\":{},\"priority\":\"{label}\",\"floor_ratio_p50\":{:.2},\"floor_ratio_p99\":{:.2}}}",
        wake.0, wake.1, lat.len(), wake.0 / floor_p.0, wake.1 / floor_p.1
    );
    println!(
        "{{\"bench\":\"wake_floor_us\",\"p50\":{:.2},\"p99\":{:.2},\"samples\":{},\"priority\":\"{label}\"}}",
        floor_p.0, floor_p.1, bare.len()
    );
    let _ = std::fs::remove_file(&floor);
}

fn pcts(v: &mut [f64]) -> (f64, f64) {
    (pct(v, 0.5), pct(v, 0.99))
}

/// Back to SCHED_OTHER for the next section.
fn realtime_off() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain syscall on the calling thread.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        let priority = args[4].parse().unwrap_or(0);
        return child(&args[2], &args[3], priority);
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

    wakes(&owner, &ns, 10);
    wakes(&owner, &ns, 0);
    drop(buf);
    drop(owner);
    let _ = remove_namespace(&ns);
}
