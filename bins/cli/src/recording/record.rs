//! `pitcrew record`: subscribes to every process's tap and to the log forwarder and writes
//! what they say into one MCAP file (channels in [`super::channels`]), with the simulated
//! robot's pose while a simulation runs ([`super::sim_pose`]), until a signal or
//! `--duration`.
//!
//! A thread per source receives and hands messages to the writer over a bounded channel
//! (a full one drops and counts: the recorder never makes a process wait, and a slow disk
//! costs only this recorder's messages). The writer builds each chunk in memory and writes it
//! whole (zstd, about 256 KiB uncompressed, at least every `--flush-interval`), so a
//! recorder killed with SIGKILL or a power cut leaves every chunk but the one in progress
//! readable; a clean stop also writes the summary (indexes and statistics).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use pitcrew::config::Config;
use pitcrew::endpoint::{PubSubOptions, SubSocket};
use pitcrew::logging::record::LogRecord;
use pitcrew::robot::monotonic_ns;
use tokio_util::sync::CancellationToken;

use super::budget::{self, Budget};
use super::queue::{Counters, Incoming};
use super::{channels, sim_pose};

/// How often a source thread looks at the stop flag while nothing arrives.
const SOURCE_POLL: Duration = Duration::from_millis(50);
/// Messages between the sources and the writer: a few seconds of a busy robot.
const QUEUE: usize = 65_536;
/// Target uncompressed chunk size: small enough that a cut loses little, large enough to
/// compress well.
const CHUNK_SIZE: u64 = 256 * 1024;
/// libzmq's queue per source, so a burst waits in the socket rather than being dropped.
const SOURCE_HWM: i32 = 100_000;
/// How long the start and end snapshots (device list, robot state, tap counters) may take.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(1);
/// The file format's version, in the `pitcrew.recording` metadata.
pub const FORMAT_VERSION: &str = "1";

/// `pitcrew record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The file to write (default: `pitcrew-<namespace>-<UTC time>.mcap` in `--dir`, or in
    /// the current directory).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Directory for a recording named by its start time (what `scripts/supervise` uses).
    #[arg(long, value_name = "DIR", conflicts_with = "output")]
    pub dir: Option<PathBuf>,
    /// With `--dir`: the most the directory's recordings may take, oldest removed first
    /// (at the start and every minute), such as `2G` or `500M`; 0 keeps everything.
    #[arg(long, value_name = "SIZE", value_parser = budget::parse_size, default_value = "0")]
    pub budget: u64,
    /// Stop after this long (default: until SIGINT or SIGTERM).
    #[arg(long, value_parser = pitcrew::options::parse_positive_duration)]
    pub duration: Option<Duration>,
    /// The robot file in force, attached to the recording.
    #[arg(long, value_name = "FILE")]
    pub robot: Option<PathBuf>,
    /// Finish a chunk at least this often: at most this much is lost when the recorder is
    /// killed.
    #[arg(long, default_value = "1s", value_parser = pitcrew::options::parse_positive_duration)]
    pub flush_interval: Duration,
}

impl RecordArgs {
    /// Records until a signal or the duration.
    ///
    /// # Errors
    /// When the file cannot be created or written, or a source cannot be subscribed.
    pub async fn run(self, config: &Config) -> anyhow::Result<()> {
        let path = self.path(config)?;
        let stop = CancellationToken::new();
        pitcrew::signals::spawn_watcher(stop.clone())
            .context("cannot install the signal handlers")?;
        let start = snapshot_start(config).await;
        let mut file = Recording::create(&path, config, &self, &start)?;
        eprintln!("pitcrew: recording to {}", path.display());
        let flag = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let mut threads = Vec::new();
        for (name, address) in sources(config) {
            let socket = SubSocket::connect(
                &address,
                &[b""],
                PubSubOptions {
                    hwm: SOURCE_HWM,
                    ..PubSubOptions::default()
                },
            )
            .with_context(|| format!("cannot subscribe to {name} at {address}"))?;
            let (tx, flag, counters) = (tx.clone(), Arc::clone(&flag), Arc::clone(&counters));
            threads.push(
                std::thread::Builder::new()
                    .name(format!("record-{name}"))
                    .spawn(move || source(&socket, name == "logs", &tx, &flag, &counters))
                    .context("cannot start a source thread")?,
            );
        }
        let polling = CancellationToken::new();
        let poller = tokio::spawn(sim_pose::poll(
            config.frontend_connect(),
            tx,
            polling.clone(),
            Arc::clone(&counters),
        ));
        let budget = self
            .dir
            .as_ref()
            .map(|dir| Budget::new(dir, self.budget, &path));
        let flush = self.flush_interval;
        let writer = {
            let counters = Arc::clone(&counters);
            tokio::task::spawn_blocking(move || -> anyhow::Result<Recording> {
                file.write_all(&rx, flush, budget, &counters)?;
                Ok(file)
            })
        };
        match self.duration {
            Some(d) => {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(d) => {}
                }
            }
            None => stop.cancelled().await,
        }
        flag.store(true, Ordering::Relaxed);
        polling.cancel();
        let _ = poller.await;
        for t in threads {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        let file = writer.await.context("the writer thread failed")??;
        let end = snapshot_end(config).await;
        let summary = file.finish(&end, &counters)?;
        eprintln!("pitcrew: recorded {summary}");
        Ok(())
    }

    fn path(&self, config: &Config) -> anyhow::Result<PathBuf> {
        if let Some(output) = &self.output {
            return Ok(output.clone());
        }
        let dir = self.dir.clone().unwrap_or_else(|| PathBuf::from("."));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the directory {}", dir.display()))?;
        Ok(dir.join(file_name(&config.namespace, SystemTime::now())))
    }
}

/// `pitcrew-<ns>-20261201T120000Z.mcap`: a recording named by when its session started.
pub fn file_name(namespace: &str, at: SystemTime) -> String {
    let stamp: String = pitcrew::logging::record::rfc3339(at)
        .chars()
        .take(19)
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    format!("pitcrew-{namespace}-{stamp}Z.mcap")
}

/// Every source: each tap, then the log forwarder.
fn sources(config: &Config) -> Vec<(&'static str, String)> {
    let mut v: Vec<_> = pitcrew::tap::ALL
        .iter()
        .map(|p| (*p, pitcrew::tap::endpoint(config, p)))
        .collect();
    v.push(("logs", config.log_frontend_connect()));
    v
}

/// A source thread: receives until the flag is set, hands each message on.
fn source(
    socket: &SubSocket,
    logs: bool,
    tx: &SyncSender<Incoming>,
    stop: &AtomicBool,
    counters: &Counters,
) {
    while !stop.load(Ordering::Relaxed) {
        if !matches!(socket.wait(SOURCE_POLL), Ok(true)) {
            continue;
        }
        while let Ok(Some(frames)) = socket.try_recv() {
            let incoming = if logs {
                log_message(&frames)
            } else {
                tap_message(&frames)
            };
            let Some(incoming) = incoming else {
                counters.malformed.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                tx.try_send(incoming)
            {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn channel_index(topic: &str) -> Option<usize> {
    channels::ALL.iter().position(|c| c.topic == topic)
}

fn tap_message(frames: &[Vec<u8>]) -> Option<Incoming> {
    let (topic, log_time, payload) = pitcrew::tap::parse_message(frames)?;
    Some(Incoming {
        channel: channel_index(topic)?,
        log_time,
        data: payload.to_vec(),
    })
}

fn log_message(frames: &[Vec<u8>]) -> Option<Incoming> {
    let record = LogRecord::decode(frames).ok()?;
    let json = pitcrew::codec::to_json(&record.record);
    Some(Incoming {
        channel: channel_index(channels::LOG)?,
        log_time: monotonic_ns(),
        data: serde_json::to_vec(&json).ok()?,
    })
}

/// What the suite said at the start: the devices and the robot state.
async fn snapshot_start(config: &Config) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Some(v) = call(config, "device-service", "list_devices").await {
        m.insert("devices".into(), v.to_string());
    }
    if let Some(v) = call(config, "robot-service", "state").await {
        m.insert("robot_state".into(), v.to_string());
    }
    m
}

/// What the processes counted at the end: their taps' sent and dropped events.
async fn snapshot_end(config: &Config) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (key, service) in [
        ("devices", "device-service"),
        ("gamepad", "gamepad-service"),
    ] {
        if let Some(tap) = call(config, service, "status")
            .await
            .and_then(|s| s.get("tap").cloned())
        {
            m.insert(format!("tap_{key}"), tap.to_string());
        }
    }
    m
}

async fn call(config: &Config, service: &str, method: &str) -> Option<serde_json::Value> {
    let client =
        pitcrew::rpc::Client::connect(&config.frontend_connect(), "record", SNAPSHOT_TIMEOUT)
            .ok()?;
    let v = client.call(service, method, vec![]).await.ok()?;
    Some(pitcrew::codec::to_json(&v))
}

/// Adds `channel` and its schema to the file; returns its id.
fn register(
    writer: &mut mcap::Writer<BufWriter<File>>,
    channel: &channels::Channel,
) -> anyhow::Result<u16> {
    let schema = serde_json::to_vec(&channels::schema(channel))?;
    let schema_id = writer.add_schema(channel.schema, "jsonschema", &schema)?;
    Ok(writer.add_channel(schema_id, channel.topic, "json", &BTreeMap::new())?)
}

/// The MCAP file being written.
struct Recording {
    writer: mcap::Writer<BufWriter<File>>,
    /// Each channel's id in the file, by its index in [`channels::ALL`]; `None` until an
    /// on-demand channel's first message.
    ids: Vec<Option<u16>>,
    sequence: Vec<u32>,
    messages: u64,
    path: PathBuf,
    started: Instant,
}

impl Recording {
    /// Creates the file with its header, channels, metadata and attachments.
    fn create(
        path: &Path,
        config: &Config,
        args: &RecordArgs,
        start: &BTreeMap<String, String>,
    ) -> anyhow::Result<Recording> {
        let anchor_mono = monotonic_ns();
        let anchor_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let file = File::create(path)
            .with_context(|| format!("cannot create the recording {}", path.display()))?;
        let options = mcap::WriteOptions::new()
            .compression(Some(mcap::Compression::Zstd))
            .chunk_size(Some(CHUNK_SIZE))
            .compression_threads(0)
            .disable_seeking(true)
            .profile("")
            .library(concat!("pitcrew ", env!("CARGO_PKG_VERSION")));
        let mut writer = mcap::Writer::with_options(BufWriter::new(file), options)
            .with_context(|| format!("cannot write the recording {}", path.display()))?;
        let mut ids = Vec::new();
        for c in &channels::ALL {
            ids.push(if c.on_demand {
                None
            } else {
                Some(register(&mut writer, c)?)
            });
        }
        let mut meta = BTreeMap::from([
            ("format_version".to_owned(), FORMAT_VERSION.to_owned()),
            ("namespace".to_owned(), config.namespace.clone()),
            ("clock".to_owned(), "CLOCK_MONOTONIC".to_owned()),
            ("anchor_monotonic_ns".to_owned(), anchor_mono.to_string()),
            ("anchor_unix_ns".to_owned(), anchor_unix.to_string()),
            (
                "pitcrew_version".to_owned(),
                env!("CARGO_PKG_VERSION").to_owned(),
            ),
        ]);
        meta.extend(start.iter().map(|(k, v)| (k.clone(), v.clone())));
        writer.write_metadata(&mcap::records::Metadata {
            name: "pitcrew.recording".into(),
            metadata: meta,
        })?;
        let catalog = match &config.catalog_file {
            Some(p) => std::fs::read(p)
                .with_context(|| format!("cannot read the catalog {}", p.display()))?,
            None => pitcrew_catalog::EMBEDDED_YAML.as_bytes().to_vec(),
        };
        let mut attach = |name: &str, data: &[u8]| {
            writer.attach(&mcap::Attachment {
                log_time: anchor_mono,
                create_time: anchor_mono,
                name: name.into(),
                media_type: "application/yaml".into(),
                data: std::borrow::Cow::Borrowed(data),
            })
        };
        attach("catalog.yaml", &catalog)?;
        if let Some(robot) = &args.robot {
            let text = std::fs::read(robot)
                .with_context(|| format!("cannot read the robot file {}", robot.display()))?;
            attach("robot.yaml", &text)?;
        }
        writer.flush()?;
        Ok(Recording {
            writer,
            ids,
            sequence: vec![0; channels::ALL.len()],
            messages: 0,
            path: path.to_owned(),
            started: Instant::now(),
        })
    }

    /// Writes what arrives until every source is gone, finishing a chunk every `flush`.
    fn write_all(
        &mut self,
        rx: &mpsc::Receiver<Incoming>,
        flush: Duration,
        mut budget: Option<Budget>,
        counters: &Counters,
    ) -> anyhow::Result<()> {
        let mut flushed = Instant::now();
        loop {
            match rx.recv_timeout(flush) {
                Ok(m) => self.write(&m)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            if flushed.elapsed() >= flush {
                self.writer.flush().context("cannot write the recording")?;
                flushed = Instant::now();
                if let Some(b) = budget.as_mut() {
                    b.tick();
                }
                let dropped = counters.dropped.load(Ordering::Relaxed);
                if dropped > 0 {
                    tracing::warn!(dropped, "the recorder could not keep up");
                }
            }
        }
    }

    fn write(&mut self, m: &Incoming) -> anyhow::Result<()> {
        let (Some(id), Some(channel)) = (self.ids.get_mut(m.channel), channels::ALL.get(m.channel))
        else {
            return Ok(());
        };
        let id = match id {
            Some(id) => *id,
            None => *id
                .insert(register(&mut self.writer, channel).context("cannot write the recording")?),
        };
        let Some(seq) = self.sequence.get_mut(m.channel) else {
            return Ok(());
        };
        *seq = seq.wrapping_add(1);
        self.writer
            .write_to_known_channel(
                &mcap::records::MessageHeader {
                    channel_id: id,
                    sequence: *seq,
                    log_time: m.log_time,
                    publish_time: m.log_time,
                },
                &m.data,
            )
            .context("cannot write the recording")?;
        self.messages += 1;
        Ok(())
    }

    /// Writes the end metadata and the summary; returns a line for the user.
    fn finish(
        mut self,
        end: &BTreeMap<String, String>,
        counters: &Counters,
    ) -> anyhow::Result<String> {
        let dropped = counters.dropped.load(Ordering::Relaxed);
        let mut meta = BTreeMap::from([
            ("ended_monotonic_ns".to_owned(), monotonic_ns().to_string()),
            ("recorder_dropped".to_owned(), dropped.to_string()),
            (
                "recorder_malformed".to_owned(),
                counters.malformed.load(Ordering::Relaxed).to_string(),
            ),
        ]);
        meta.extend(end.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.writer.write_metadata(&mcap::records::Metadata {
            name: "pitcrew.end".into(),
            metadata: meta,
        })?;
        self.writer
            .finish()
            .context("cannot finish the recording")?;
        std::io::Write::flush(&mut self.writer.into_inner())
            .with_context(|| format!("cannot write the recording {}", self.path.display()))?;
        Ok(format!(
            "{} messages in {:.1} s to {} ({dropped} dropped by the recorder)",
            self.messages,
            self.started.elapsed().as_secs_f64(),
            self.path.display()
        ))
    }
}
