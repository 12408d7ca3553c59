//! Logging for every binary: local output and publishing to the log forwarder.
//!
//! * Local output goes to stderr (so that a command's stdout stays clean for its results):
//!   `pretty` (coloured on a terminal) or `json` (one object per line).
//! * Every event at or above `--log-level` is also published to the forwarder's backend
//!   ([`Config::log_backend_connect`]) as a record of spec/wire.md ([`record`]), by
//!   [`PublishLayer`]: the caller only queues the event; a thread of its own encodes and
//!   sends (`publisher` explains the queue, its bound and the drop accounting).

mod layer;
mod pending;
mod publisher;
pub mod record;
pub mod refusals;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{filter::LevelFilter, fmt};

use crate::config::Config;
use crate::endpoint::EndpointError;
use crate::options::LogFormat;

pub use layer::PublishLayer;
pub use publisher::{PublishOptions, PublisherGuard, CLOSE_DEADLINE, TICK};

/// Keeps logging set up; dropping it flushes the records still queued for the forwarder
/// (for at most [`CLOSE_DEADLINE`]).
pub struct LoggingGuard {
    _publisher: Option<PublisherGuard>,
}

/// Starts a publisher for `app` connected to the forwarder's backend at `address`, and
/// returns the layer that feeds it and the guard that owns its thread.
///
/// # Errors
/// When the socket or the thread cannot be created.
pub fn publish_layer(
    app: &'static str,
    address: &str,
    options: PublishOptions,
) -> Result<(PublishLayer, PublisherGuard), EndpointError> {
    let (queue, guard) = publisher::start(app, address, options)?;
    Ok((PublishLayer::new(queue), guard))
}

/// Installs the global subscriber for `app`: local output plus publishing. A second call
/// (tests) is a no-op. When the publisher cannot start, logging stays local and says so.
pub fn init(app: &'static str, config: &Config) -> LoggingGuard {
    let level = LevelFilter::from_level(config.log_level.as_tracing());
    let address = config.log_backend_connect();
    let (publish, guard, failure) = match publish_layer(app, &address, PublishOptions::default()) {
        Ok((layer, guard)) => (Some(layer), Some(guard), None),
        Err(e) => (None, None, Some(e)),
    };
    let registry = tracing_subscriber::registry().with(level).with(publish);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let result = match config.log_format {
        LogFormat::Pretty => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(ansi)
                    .with_target(false),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    if result.is_err() {
        // Already initialised: the publisher just started is not needed (dropped here).
        return LoggingGuard { _publisher: None };
    }
    if let Some(e) = failure {
        tracing::warn!(error = %e, %address, "cannot publish logs; logging locally only");
    }
    tracing::debug!(app, %address, "logging started");
    LoggingGuard { _publisher: guard }
}

#[cfg(test)]
mod tests {
    use super::record::{LogRecord, DROPPED_FIELD, DROP_NOTICE};
    use super::*;
    use crate::codec::Value;
    use crate::endpoint::{PubSubOptions, SubSocket};
    use crate::options::LogLevel;
    use std::time::Duration;

    fn receive_all(sub: &SubSocket, idle: Duration) -> Vec<LogRecord> {
        let mut out = Vec::new();
        let started = std::time::Instant::now();
        while sub.wait(idle).unwrap() || started.elapsed() < idle {
            while let Some(frames) = sub.try_recv().unwrap() {
                out.push(LogRecord::decode(&frames).unwrap());
            }
        }
        out
    }

    #[test]
    fn events_arrive_as_records_with_typed_fields_and_span_fields() {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("ipc://{}/log.sock", dir.path().display());
        let sub =
            SubSocket::bind(std::slice::from_ref(&address), PubSubOptions::default()).unwrap();
        // The forwarder side keeps polling, as the real one does (libzmq attaches a new
        // connection to a bound socket only when that socket is used).
        let receiver = std::thread::spawn(move || receive_all(&sub, Duration::from_millis(1500)));
        let (layer, guard) = publish_layer("unit", &address, PublishOptions::default()).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("job", job = "calibrate");
            let _in = span.enter();
            for i in 0..3_u64 {
                tracing::info!(n = i, x = 0.5, ok = true, word = "hi", "step");
            }
            tracing::warn!(level = 3, "reserved field");
        });
        drop(guard); // flushes
        let records = receiver.join().unwrap();
        assert_eq!(records.len(), 4, "{records:?}");
        for (i, r) in records.iter().take(3).enumerate() {
            assert_eq!(r.level, LogLevel::Info);
            assert_eq!(r.app, "unit");
            assert_eq!(r.seq, Some(i as u64));
            assert_eq!(r.pid, Some(std::process::id()));
            assert_eq!(r.get("event"), Some(&Value::from("step")));
            assert_eq!(r.get("n"), Some(&Value::from(i as u64)));
            assert_eq!(r.get("x"), Some(&Value::F64(0.5)));
            assert_eq!(r.get("ok"), Some(&Value::from(true)));
            assert_eq!(r.get("word"), Some(&Value::from("hi")));
            assert_eq!(r.get("job"), Some(&Value::from("calibrate")));
            let target = r.get("target").and_then(Value::as_str).unwrap();
            assert!(target.starts_with("pitcrew"), "{target}");
        }
        assert_eq!(records[3].get("field.level"), Some(&Value::from(3)));
        assert_eq!(records[3].get("level"), Some(&Value::from("warn")));
    }

    #[test]
    fn records_wait_for_the_forwarder_and_drops_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("ipc://{}/log.sock", dir.path().display());
        let options = PublishOptions {
            queue: 10,
            hwm: 100,
        };
        let (layer, guard) = publish_layer("unit", &address, options).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..25_u64 {
                tracing::info!(n = i, "while away");
            }
        });
        // The forwarder comes up only now: the 10 newest records were kept.
        let sub = SubSocket::bind(&[address], PubSubOptions::default()).unwrap();
        let records = receive_all(&sub, Duration::from_millis(1000));
        assert_eq!(guard.dropped(), 15);
        let notice = &records[0];
        assert_eq!(notice.level, LogLevel::Warn);
        assert_eq!(notice.get("event"), Some(&Value::from(DROP_NOTICE)));
        assert_eq!(notice.get(DROPPED_FIELD), Some(&Value::from(15)));
        let kept: Vec<u64> = records[1..]
            .iter()
            .map(|r| r.get("n").and_then(Value::as_u64).unwrap())
            .collect();
        assert_eq!(kept, (15..25).collect::<Vec<_>>());
        let seqs: Vec<u64> = records.iter().map(|r| r.seq.unwrap()).collect();
        assert_eq!(seqs, (0..11).collect::<Vec<_>>());
    }
}
