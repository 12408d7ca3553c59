//! Reading a recording whole, tolerant of the way recordings end badly.
//!
//! The file is walked record by record (MCAP's framing: an opcode byte, a little-endian
//! u64 length, the body), each record parsed by the `mcap` crate and each chunk unpacked
//! (its CRC checked). A file that simply stops — a recorder killed with SIGKILL, a power
//! cut — yields everything up to its last complete record and a [`Damage`] saying where it
//! stops, what was unfinished and that no summary was written. A record that cannot be
//! parsed (bad opcode, a length past the file, a chunk failing its CRC or decompression) is
//! a [`ReadError::Corrupt`] naming its byte offset.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mcap::records::{op, Record};

const MAGIC: &[u8; 8] = b"\x89MCAP0\r\n";

/// Why a recording cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It does not start with the MCAP magic.
    #[error("{path} is not an MCAP recording (it does not start with the MCAP magic)")]
    NotMcap {
        /// The file.
        path: PathBuf,
    },
    /// A record is damaged.
    #[error("{path} is corrupt at byte offset {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the bad record starts.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// Where and how a file that was not closed stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The offset after the last complete record: everything before it was read.
    pub readable_bytes: u64,
    /// Bytes after it, of an unfinished record.
    pub lost_bytes: u64,
    /// The unfinished record, when its header could be read (`chunk of messages from
    /// t=… to …`).
    pub unfinished: Option<String>,
}

/// A channel of a recording.
#[derive(Debug, Clone)]
pub struct Channel {
    /// The topic.
    pub topic: String,
    /// The schema's name (empty without one).
    pub schema: String,
    /// The schema's encoding (`jsonschema`).
    pub schema_encoding: String,
    /// The messages' encoding (`json`).
    pub message_encoding: String,
}

/// One message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its channel's id.
    pub channel: u16,
    /// Its time (CLOCK_MONOTONIC ns in pitcrew recordings).
    pub log_time: u64,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// A recording read whole.
#[derive(Debug, Default)]
pub struct Recording {
    /// Channels by id.
    pub channels: BTreeMap<u16, Channel>,
    /// Messages in time order.
    pub messages: Vec<Message>,
    /// Metadata records by name.
    pub metadata: BTreeMap<String, BTreeMap<String, String>>,
    /// Attachments by name.
    pub attachments: BTreeMap<String, Vec<u8>>,
    /// Complete chunks read.
    pub chunks: u64,
    /// The file's size.
    pub size: u64,
    /// How the file stops, when it was not closed.
    pub damage: Option<Damage>,
}

impl Recording {
    /// The topic of a message.
    pub fn topic(&self, m: &Message) -> &str {
        self.channels
            .get(&m.channel)
            .map_or("", |c| c.topic.as_str())
    }

    /// The messages on `topic`, in time order.
    pub fn on<'a>(&'a self, topic: &'a str) -> impl Iterator<Item = &'a Message> + 'a {
        self.messages.iter().filter(move |m| self.topic(m) == topic)
    }

    /// A metadata value.
    pub fn meta(&self, record: &str, key: &str) -> Option<&str> {
        self.metadata.get(record)?.get(key).map(String::as_str)
    }
}

/// Reads `path` whole.
///
/// # Errors
/// See [`ReadError`]; a file that only stops early is not an error (see [`Damage`]).
pub fn read(path: &Path) -> Result<Recording, ReadError> {
    let bytes = std::fs::read(path).map_err(|source| ReadError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(&bytes).map_err(|e| match e {
        Failure::NotMcap => ReadError::NotMcap {
            path: path.to_owned(),
        },
        Failure::Corrupt(offset, reason) => ReadError::Corrupt {
            path: path.to_owned(),
            offset,
            reason,
        },
    })
}

enum Failure {
    NotMcap,
    Corrupt(u64, String),
}

/// Parses a whole file's bytes.
fn parse(bytes: &[u8]) -> Result<Recording, Failure> {
    if bytes.get(..8) != Some(MAGIC.as_slice()) {
        return Err(Failure::NotMcap);
    }
    let mut rec = Recording {
        size: bytes.len() as u64,
        ..Recording::default()
    };
    let mut schemas: BTreeMap<u16, (String, String)> = BTreeMap::new();
    let mut pos = 8usize;
    let mut closed = false;
    while pos < bytes.len() {
        let at = pos as u64;
        let Some(head) = bytes.get(pos..pos + 9) else {
            rec.damage = Some(cut(bytes, pos, None));
            break;
        };
        let opcode = head[0];
        let mut len = [0u8; 8];
        len.copy_from_slice(&head[1..9]);
        let len = u64::from_le_bytes(len);
        if opcode == 0 || (0x10..0x80).contains(&opcode) {
            return Err(Failure::Corrupt(
                at,
                format!("unknown record opcode {opcode:#04x}"),
            ));
        }
        let body_start = pos + 9;
        let Some(body) = usize::try_from(len)
            .ok()
            .and_then(|n| bytes.get(body_start..body_start.checked_add(n)?))
        else {
            let partial = bytes.get(body_start..).unwrap_or_default();
            let unfinished = (opcode == op::CHUNK)
                .then(|| describe_chunk(partial))
                .flatten();
            rec.damage = Some(cut(bytes, pos, unfinished));
            break;
        };
        pos = body_start + body.len();
        let record = mcap::parse_record(opcode, body)
            .map_err(|e| Failure::Corrupt(at, format!("record {opcode:#04x}: {e}")))?;
        match record {
            Record::Chunk { header, data } => {
                let reader = mcap::read::ChunkReader::new(header, &data)
                    .map_err(|e| Failure::Corrupt(at, format!("chunk: {e}")))?;
                for inner in reader {
                    let inner = inner.map_err(|e| Failure::Corrupt(at, format!("chunk: {e}")))?;
                    take(&mut rec, &mut schemas, inner);
                }
                rec.chunks += 1;
            }
            Record::Footer(_) => {
                // A closed file ends with the magic again, right after its footer: a file
                // that lost even its last byte was not closed (whatever cut it may have cut
                // more than this file shows).
                match bytes.get(pos..).unwrap_or_default() {
                    tail if tail == MAGIC.as_slice() => closed = true,
                    tail if tail.len() < MAGIC.len() && MAGIC.starts_with(tail) => {
                        rec.damage = Some(cut(
                            bytes,
                            pos,
                            Some("the file ends inside its closing magic".into()),
                        ));
                    }
                    _ => {
                        return Err(Failure::Corrupt(
                            pos as u64,
                            "the footer is not followed by the closing MCAP magic alone".into(),
                        ))
                    }
                }
                break;
            }
            other => take(&mut rec, &mut schemas, other),
        }
    }
    if !closed && rec.damage.is_none() {
        rec.damage = Some(cut(bytes, bytes.len(), None));
    }
    rec.messages.sort_by_key(|m| m.log_time);
    Ok(rec)
}

/// The damage of a file that stops at `pos` inside (or before) a record.
fn cut(bytes: &[u8], pos: usize, unfinished: Option<String>) -> Damage {
    Damage {
        readable_bytes: pos as u64,
        lost_bytes: (bytes.len() - pos.min(bytes.len())) as u64,
        unfinished,
    }
}

/// What an unfinished chunk held, from the start of its body.
fn describe_chunk(body: &[u8]) -> Option<String> {
    let u64_at = |i: usize| -> Option<u64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(body.get(i..i + 8)?);
        Some(u64::from_le_bytes(b))
    };
    let (start, end) = (u64_at(0)?, u64_at(8)?);
    Some(format!(
        "an unfinished chunk of messages from {start} ns to {end} ns ({:.3} s)",
        end.saturating_sub(start) as f64 / 1e9
    ))
}

fn take(rec: &mut Recording, schemas: &mut BTreeMap<u16, (String, String)>, r: Record<'_>) {
    match r {
        Record::Schema { header, .. } => {
            schemas.insert(header.id, (header.name, header.encoding));
        }
        Record::Channel(c) => {
            let (schema, schema_encoding) = schemas.get(&c.schema_id).cloned().unwrap_or_default();
            rec.channels.insert(
                c.id,
                Channel {
                    topic: c.topic,
                    schema,
                    schema_encoding,
                    message_encoding: c.message_encoding,
                },
            );
        }
        Record::Message { header, data } => rec.messages.push(Message {
            channel: header.channel_id,
            log_time: header.log_time,
            data: data.into_owned(),
        }),
        Record::Metadata(m) => {
            rec.metadata.insert(m.name, m.metadata);
        }
        Record::Attachment { header, data, .. } => {
            rec.attachments.insert(header.name, Cow::into_owned(data));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut w = mcap::WriteOptions::new()
            .compression(Some(mcap::Compression::Zstd))
            .chunk_size(None)
            .disable_seeking(true)
            .create(&mut out)
            .unwrap();
        let schema = w.add_schema("s", "jsonschema", b"{}").unwrap();
        let ch = w
            .add_channel(schema, "/t", "json", &BTreeMap::new())
            .unwrap();
        for chunk in 0..3u64 {
            for i in 0..10u64 {
                let t = chunk * 100 + i;
                let header = mcap::records::MessageHeader {
                    channel_id: ch,
                    sequence: t as u32,
                    log_time: t,
                    publish_time: t,
                };
                w.write_to_known_channel(&header, format!("{{\"n\":{t}}}").as_bytes())
                    .unwrap();
            }
            w.flush().unwrap();
        }
        w.finish().unwrap();
        drop(w);
        out.into_inner()
    }

    #[test]
    fn a_whole_file_reads_whole() {
        let rec = parse(&sample()).ok().unwrap();
        assert_eq!(rec.messages.len(), 30);
        assert!(rec.damage.is_none());
        assert_eq!(rec.channels[&1].topic, "/t");
        assert_eq!(rec.chunks, 3);
    }

    #[test]
    fn a_cut_file_reads_up_to_its_last_complete_chunk() {
        let bytes = sample();
        // Find the third chunk and cut inside it.
        let rec = parse(&bytes).ok().unwrap();
        assert_eq!(rec.chunks, 3);
        for cut_at in [bytes.len() / 2, bytes.len() - 30] {
            let cut = parse(&bytes[..cut_at]).ok().unwrap();
            let damage = cut.damage.clone().unwrap();
            assert!(damage.readable_bytes <= cut_at as u64);
            assert_eq!(damage.readable_bytes + damage.lost_bytes, cut_at as u64);
            assert_eq!(
                cut.messages.len() as u64,
                cut.chunks * 10,
                "whole chunks only"
            );
        }
    }

    #[test]
    fn a_file_missing_only_its_last_bytes_is_not_closed() {
        let bytes = sample();
        for lost in 1..=8 {
            let rec = parse(&bytes[..bytes.len() - lost]).ok().unwrap();
            let damage = rec.damage.expect("not closed");
            assert_eq!(damage.lost_bytes as usize, 8 - lost, "lost {lost}");
            assert_eq!(rec.messages.len(), 30, "every message is still read");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(parse(&longer).is_err(), "a byte after the closing magic");
    }

    #[test]
    fn a_corrupt_file_names_the_offset() {
        let mut bytes = sample();
        let rec = parse(&bytes).ok().unwrap();
        assert!(rec.damage.is_none());
        // Flip bytes in the middle of the first chunk's compressed data.
        let mut first_chunk = 8;
        while bytes[first_chunk] != op::CHUNK {
            let len =
                u64::from_le_bytes(bytes[first_chunk + 1..first_chunk + 9].try_into().unwrap());
            first_chunk += 9 + len as usize;
        }
        let mid = first_chunk + 60;
        bytes[mid] ^= 0xFF;
        bytes[mid + 1] ^= 0xFF;
        match parse(&bytes) {
            Err(Failure::Corrupt(offset, reason)) => {
                assert!(offset as usize <= mid, "{offset} {reason}");
            }
            Err(Failure::NotMcap) => panic!("not mcap"),
            Ok(_) => panic!("corruption went unnoticed"),
        }
        assert!(matches!(
            parse(b"hello world, not mcap"),
            Err(Failure::NotMcap)
        ));
    }
}
