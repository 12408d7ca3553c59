//! In-process buffer tests: access rules, clamping, validity, fingerprints, notification,
//! raw values, listing and cleanup. Each test has its own namespace.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{pair_key, pair_type, unique_namespace, Cleanup};
use pitcrew_buffer::{list, reset_stale, Buffer, BufferError, Owner, Subscription};
use pitcrew_catalog::{Catalog, Value, ValueError};

fn setup(tag: &str) -> (Cleanup, Owner, Buffer) {
    let ns = unique_namespace(tag);
    let owner = Owner::create(&ns, pair_type(), pair_key()).unwrap();
    let consumer = Buffer::open(&ns, pair_type(), pair_key()).unwrap();
    (Cleanup(ns), owner, consumer)
}

#[test]
fn owner_values_reach_consumers_and_writes_reach_the_owner() {
    let (_c, owner, buf) = setup("roundtrip");
    assert_eq!(buf.get::<f32>("sensed").unwrap(), 0.0);
    owner.set("sensed", 1.5f32).unwrap();
    owner
        .set_values(&[("a", Value::I64(5)), ("b", Value::I64(-5))])
        .unwrap();
    assert_eq!(buf.get::<f32>("sensed").unwrap(), 1.5);
    assert_eq!(
        buf.read_values(&["a", "b"]).unwrap(),
        vec![Value::I64(5), Value::I64(-5)]
    );
    assert_eq!(buf.take_update().unwrap(), 0b10_0011);
    assert_eq!(buf.take_update().unwrap(), 0);

    buf.write("level", 0.25f32).unwrap();
    buf.write_value("count", Value::I64(7)).unwrap();
    assert_eq!(owner.take_write().unwrap(), 0b1_1000);
    assert_eq!(owner.take_write().unwrap(), 0);
    assert_eq!(
        owner.desired_values(&["level", "count"]).unwrap(),
        vec![Value::F32(0.25), Value::U8(7)]
    );

    buf.request_read(&["sensed", "a"]).unwrap();
    assert_eq!(owner.take_read().unwrap(), 0b10_0001);
    assert!(buf.stats().last_write_age.is_some());
}

#[test]
fn access_rules_are_errors() {
    let (_c, _owner, buf) = setup("access");
    let err = buf.get::<f32>("level").unwrap_err();
    assert!(matches!(err, BufferError::NotReadable { .. }), "{err}");
    assert!(err.to_string().contains("`level` is not readable"), "{err}");
    let err = buf.write("sensed", 1.0f32).unwrap_err();
    assert!(matches!(err, BufferError::NotWriteable { .. }), "{err}");
    let err = buf.get::<f32>("nope").unwrap_err();
    assert!(
        err.to_string()
            .contains("`nope` is not a param of type `pair`"),
        "{err}"
    );
    assert!(
        err.to_string().contains(&format!("pair-{}", pair_key())),
        "names the UID: {err}"
    );
    let err = buf.get::<i32>("sensed").unwrap_err();
    assert!(
        matches!(
            err,
            BufferError::Value {
                source: ValueError::WrongType { .. },
                ..
            }
        ),
        "{err}"
    );
    let err = buf.write("flag", 1.0f32).unwrap_err();
    assert!(matches!(err, BufferError::Value { .. }), "{err}");
    let err = buf.write("level", f32::NAN).unwrap_err();
    assert!(
        matches!(
            err,
            BufferError::Value {
                source: ValueError::NotANumber,
                ..
            }
        ),
        "{err}"
    );
    let err = buf.write_value("count", Value::I64(300)).unwrap_err();
    assert!(
        err.to_string().contains("300 is out of range for uint8"),
        "{err}"
    );
    assert!(buf
        .write_value("count", Value::I64(-1))
        .unwrap_err()
        .to_string()
        .contains("out of range"));
}

/// Counts WARN events, to check "one warning per clamp".
struct WarnCounter(Arc<AtomicUsize>);

impl tracing::Subscriber for WarnCounter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        if *e.metadata().level() == tracing::Level::WARN {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn clamps_with_one_warning_per_clamp() {
    let (_c, owner, buf) = setup("clamp");
    let warns = Arc::new(AtomicUsize::new(0));
    let sub = WarnCounter(Arc::clone(&warns));
    tracing::subscriber::with_default(sub, || {
        let out = buf.write("level", 3.0f32).unwrap();
        assert_eq!(out.clamped.unwrap().stored, Value::F32(1.0));
        assert_eq!(warns.load(Ordering::Relaxed), 1);
        assert!(buf.write("level", 0.5f32).unwrap().clamped.is_none());
        assert_eq!(warns.load(Ordering::Relaxed), 1);
        buf.write_value("count", Value::I64(150)).unwrap();
        assert_eq!(warns.load(Ordering::Relaxed), 2);
    });
    assert_eq!(
        owner.desired_values(&["count"]).unwrap(),
        vec![Value::U8(100)]
    );
}

#[test]
fn invalid_buffer_refuses_every_operation_until_valid_again() {
    let (_c, owner, buf) = setup("invalid");
    owner.set_valid(false).unwrap();
    assert!(!buf.is_valid());
    let sub = Subscription {
        params: 1,
        interval: Duration::from_millis(50),
    };
    let results: Vec<Result<(), BufferError>> = vec![
        buf.get::<f32>("sensed").map(drop),
        buf.get_value("sensed").map(drop),
        buf.get_raw("sensed").map(drop),
        buf.write("level", 0.1f32).map(drop),
        buf.request_read(&["sensed"]),
        buf.take_update().map(drop),
        buf.subscription().map(drop),
        buf.set_subscription(sub),
        owner.set("sensed", 1.0f32),
        owner.set_raw(1 << 5, &1.0f32.to_le_bytes()),
        owner.take_write().map(drop),
        owner.take_read().map(drop),
        owner.take_subscription_change().map(drop),
        owner.wait_for_change(Duration::from_millis(1)).map(drop),
        owner.desired_raw(1 << 3).map(drop),
    ];
    for (i, r) in results.into_iter().enumerate() {
        let err = r.unwrap_err();
        assert!(matches!(err, BufferError::Invalid { .. }), "op {i}: {err}");
        assert!(err.to_string().contains("is invalid"), "op {i}: {err}");
    }
    owner.set_valid(true).unwrap();
    buf.write("level", 0.1f32).unwrap();
    owner.set("sensed", 2.0f32).unwrap();
    assert_eq!(buf.get::<f32>("sensed").unwrap(), 2.0);
}

#[test]
fn consumer_with_another_catalog_refuses_to_attach() {
    let (c, _owner, _buf) = setup("fingerprint");
    let other = TEST_CATALOG_VARIANT.replace("PLACEHOLDER", "");
    let cat = Catalog::from_yaml_str(&other, "other").unwrap();
    let err = Buffer::open(&c.0, Arc::clone(cat.get("pair").unwrap()), pair_key()).unwrap_err();
    assert!(
        matches!(err, BufferError::FingerprintMismatch { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("catalog mismatch for type `pair`"),
        "{err}"
    );
}

const TEST_CATALOG_VARIANT: &str =
    "pair:\n  device_id: 200\n  params:\n    - {name: a, type: int32}\nPLACEHOLDER";

#[test]
fn a_second_owner_is_refused() {
    let (c, _owner, _buf) = setup("owned");
    let err = Owner::create(&c.0, pair_type(), pair_key()).unwrap_err();
    assert!(
        matches!(err, BufferError::AlreadyOwned { pid, .. } if pid == std::process::id()),
        "{err}"
    );
}

#[test]
fn blocked_owner_is_woken_by_a_write() {
    let (_c, owner, buf) = setup("wake");
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let t0 = Instant::now();
            let woke = owner.wait_for_change(Duration::from_secs(10)).unwrap();
            (woke, t0.elapsed(), Instant::now())
        });
        std::thread::sleep(Duration::from_millis(50));
        let wrote = Instant::now();
        buf.write("level", 0.5f32).unwrap();
        let (woke, waited, at) = waiter.join().unwrap();
        assert!(woke, "wait returned without a change");
        assert!(
            waited >= Duration::from_millis(40),
            "returned before the write: {waited:?}"
        );
        let latency = at.saturating_duration_since(wrote);
        assert!(
            latency < Duration::from_millis(200),
            "woken after {latency:?}"
        );
    });
    assert!(owner.pending().unwrap());
    assert_eq!(owner.take_write().unwrap(), 1 << 3);
    assert!(
        !owner.wait_for_change(Duration::from_millis(20)).unwrap(),
        "times out when idle"
    );
}

#[test]
fn raw_bytes_in_and_out() {
    let (_c, owner, buf) = setup("raw");
    let mut data = Vec::new();
    data.extend_from_slice(&9i64.to_le_bytes());
    data.extend_from_slice(&0.75f32.to_le_bytes());
    owner.set_raw((1 << 0) | (1 << 5), &data).unwrap();
    assert_eq!(buf.get::<i64>("a").unwrap(), 9);
    assert_eq!(buf.get::<f32>("sensed").unwrap(), 0.75);
    let err = owner.set_raw(1 << 3, &[0; 4]).unwrap_err();
    assert!(
        err.to_string().contains("param 3 has no read slot"),
        "{err}"
    );
    let err = owner.set_raw(1, &[0; 7]).unwrap_err();
    assert!(
        err.to_string().contains("needs 8 value bytes, got 7"),
        "{err}"
    );
    buf.write_values(&[("level", Value::F32(-0.5)), ("flag", Value::Bool(true))])
        .unwrap();
    let bits = owner.take_write().unwrap();
    assert_eq!(
        owner.desired_raw(bits).unwrap(),
        [&[1u8][..], &(-0.5f32).to_le_bytes()].concat()
    );
}

#[test]
fn subscription_requests_reach_the_owner() {
    let (_c, owner, buf) = setup("sub");
    assert_eq!(buf.subscription().unwrap().params, 0b11_0111);
    assert_eq!(
        buf.subscription().unwrap().interval,
        Duration::from_millis(40)
    );
    let want = Subscription {
        params: 0xFF,
        interval: Duration::from_millis(100),
    };
    buf.set_subscription(want).unwrap();
    let got = owner.take_subscription_change().unwrap().unwrap();
    assert_eq!(got.params, 0b11_0111, "masked to readable params");
    assert_eq!(got.interval, Duration::from_millis(100));
    assert_eq!(owner.take_subscription_change().unwrap(), None);
}

#[test]
fn list_reports_segments_and_owner_drop_removes_them() {
    let (c, owner, buf) = setup("list");
    owner.set("sensed", 1.0f32).unwrap();
    let infos = list(&c.0).unwrap();
    assert_eq!(infos.len(), 1);
    let info = &infos[0];
    assert_eq!(info.type_name, "pair");
    assert_eq!(info.key, pair_key());
    assert!(info.valid && info.owner_alive);
    assert_eq!(info.owner_pid, std::process::id());
    assert!(info.last_update_age.unwrap() < Duration::from_secs(5));
    assert!(
        reset_stale(&c.0).unwrap().is_empty(),
        "a live owner is not stale"
    );
    drop(owner);
    assert!(list(&c.0).unwrap().is_empty());
    let err = buf.get::<f32>("sensed").unwrap_err();
    assert!(matches!(err, BufferError::Superseded { .. }), "{err}");
}
