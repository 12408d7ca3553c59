//! `pitcrew sdp encode TYPE JSON...` and `pitcrew sdp decode TYPE HEX...`: Smart Device
//! Protocol frames (hex, delimiter included) to and from readable records, typed by a
//! catalog device type.
//!
//! A record is a JSON object: `{"msg": "DEV_WRITE", "values": {"duty_cycle": 0.123}}`,
//! `{"msg": "SUB_REQ", "params": ["duty_cycle"], "interval_ms": 123}`, `{"msg": "HB_REQ",
//! "id": 128}`, `{"msg": "ERROR", "code": "BAD_CHECKSUM"}`, `{"msg": "SUB_RES", "params":
//! [...], "interval_ms": 20, "uid": "..."}`, `{"msg": "DEV_READ", "params": [...]}`,
//! `{"msg": "PING"}`, `{"msg": "DEV_DISABLE"}`.

use std::io::Write;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use pitcrew_catalog::{Catalog, DeviceType, Uid, Value};
use pitcrew_sdp::{ErrorCode, FrameDecoder, Message, MessageType, ParamData, ParamWidths};
use serde_json::{json, Value as J};

/// Arguments of `pitcrew sdp`.
#[derive(Debug, Args)]
pub struct SdpArgs {
    /// Encode or decode.
    #[command(subcommand)]
    pub action: SdpAction,
}

/// `pitcrew sdp` actions.
#[derive(Debug, Subcommand)]
pub enum SdpAction {
    /// JSON records → hex frames (one line each, `00` delimiter included).
    Encode {
        /// Catalog device type (names params and their types).
        r#type: String,
        /// Records as JSON objects.
        #[arg(required = true)]
        records: Vec<String>,
    },
    /// Hex frames → records (spaces inside a frame are allowed).
    Decode {
        /// Catalog device type.
        r#type: String,
        /// Frames in hex.
        #[arg(required = true)]
        frames: Vec<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

fn bitmap(ty: &DeviceType, v: &J) -> anyhow::Result<u16> {
    match v {
        J::Null => Ok(0),
        J::Number(n) => n
            .as_u64()
            .and_then(|b| u16::try_from(b).ok())
            .context("a params bitmap is a u16"),
        J::Array(names) => names.iter().try_fold(0u16, |acc, n| {
            let name = n.as_str().context("param names are strings")?;
            let p = ty
                .param(name)
                .with_context(|| format!("{} has no param {name:?}", ty.name()))?;
            Ok(acc | (1u16.checked_shl(u32::try_from(p.id())?).unwrap_or(0)))
        }),
        _ => bail!("params must be a bitmap or a list of names"),
    }
}

fn names(ty: &DeviceType, bits: u16) -> J {
    J::Array(
        ty.params_in(u64::from(bits))
            .map(|p| J::from(p.name()))
            .collect(),
    )
}

fn small(v: &J, what: &str) -> anyhow::Result<u64> {
    v.as_u64()
        .with_context(|| format!("{what} must be a non-negative integer"))
}

/// Encodes one record into `out` (hex of the frame).
fn encode(ty: &DeviceType, text: &str) -> anyhow::Result<String> {
    let r: J = serde_json::from_str(text).with_context(|| format!("{text:?} is not JSON"))?;
    let kind = r["msg"].as_str().context("a record needs \"msg\"")?;
    let u16_of = |k: &str| -> anyhow::Result<u16> { Ok(u16::try_from(small(&r[k], k)?)?) };
    let u8_of = |k: &str| -> anyhow::Result<u8> { Ok(u8::try_from(small(&r[k], k)?)?) };
    let mut frame = Vec::new();
    let mut value_bytes: Vec<(u8, pitcrew_catalog::LeBytes)> = Vec::new();
    let msg = match kind {
        "PING" => Message::Ping,
        "DEV_DISABLE" => Message::DevDisable,
        "SUB_REQ" => Message::SubReq {
            params: bitmap(ty, &r["params"])?,
            interval_ms: u16_of("interval_ms")?,
        },
        "SUB_RES" => {
            let uid: Uid = r["uid"]
                .as_str()
                .context("uid is a decimal string")?
                .parse()?;
            Message::SubRes {
                params: bitmap(ty, &r["params"])?,
                interval_ms: u16_of("interval_ms")?,
                uid,
            }
        }
        "DEV_READ" => Message::DevRead {
            params: bitmap(ty, &r["params"])?,
        },
        "HB_REQ" => Message::HbReq(u8_of("id")?),
        "HB_RES" => Message::HbRes(u8_of("id")?),
        "ERROR" => {
            let name = r["code"]
                .as_str()
                .context("code is a name like BAD_CHECKSUM")?;
            let code = ErrorCode::ALL
                .into_iter()
                .find(|c| c.name() == name)
                .with_context(|| format!("unknown error code {name}"))?;
            Message::Error(code)
        }
        "DEV_WRITE" | "DEV_DATA" => {
            for (name, v) in r["values"].as_object().context("values is an object")? {
                let p = ty
                    .param(name)
                    .with_context(|| format!("{} has no param {name:?}", ty.name()))?;
                let value = Value::from_json(v, p.scalar().context("array param")?)?;
                value_bytes.push((u8::try_from(p.id())?, value.le_bytes()));
            }
            value_bytes.sort_by_key(|(id, _)| *id);
            let mut data = ParamData::new();
            for (id, b) in &value_bytes {
                data.insert(*id, b.as_slice())?;
            }
            for part in data.split() {
                let m = if kind == "DEV_WRITE" {
                    Message::DevWrite(part)
                } else {
                    Message::DevData(part)
                };
                m.encode_frame(&mut frame)?;
            }
            return Ok(hex(&frame));
        }
        other => bail!("unknown message {other:?}"),
    };
    msg.encode_frame(&mut frame)?;
    Ok(hex(&frame))
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn unhex(text: &str) -> anyhow::Result<Vec<u8>> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() % 2 != 0 {
        bail!("{text:?} has an odd number of hex digits");
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            let pair = digits.get(i..i + 2).context("hex pair")?;
            u8::from_str_radix(pair, 16).with_context(|| format!("{pair:?} is not hex"))
        })
        .collect()
}

/// The record of a decoded message.
fn record(ty: &DeviceType, msg: &Message<'_>) -> J {
    let name = msg.msg_type().name();
    match *msg {
        Message::SubReq {
            params,
            interval_ms,
        } => json!({"msg": name, "params": names(ty, params), "interval_ms": interval_ms}),
        Message::SubRes {
            params,
            interval_ms,
            uid,
        } => {
            json!({"msg": name, "params": names(ty, params), "interval_ms": interval_ms, "uid": uid.to_string()})
        }
        Message::DevRead { params } => json!({"msg": name, "params": names(ty, params)}),
        Message::DevWrite(data) | Message::DevData(data) => {
            let mut values = serde_json::Map::new();
            for (id, bytes) in data.iter() {
                if let Some(p) = ty.param_by_id(usize::from(id)) {
                    let v = p.scalar().and_then(|s| Value::from_le_bytes(s, bytes).ok());
                    values.insert(p.name().to_owned(), v.map_or(J::Null, |v| v.to_json()));
                }
            }
            json!({"msg": name, "values": values})
        }
        Message::HbReq(id) | Message::HbRes(id) => json!({"msg": name, "id": id}),
        Message::Error(code) => json!({"msg": name, "code": code.name()}),
        Message::Ping | Message::DevDisable => json!({"msg": name}),
    }
}

/// The widths a frame of `ty` is decoded with: its writeable params' for a frame to the
/// device, its readable params' for one from it.
fn widths(ty: &DeviceType, writes: bool) -> ParamWidths {
    if writes {
        ty.write_widths()
    } else {
        ty.read_widths()
    }
}

impl SdpArgs {
    /// Runs the action.
    ///
    /// # Errors
    /// Unknown type, bad records; decode failures are printed as records, not errors.
    pub fn run(self, catalog: &Catalog) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        match self.action {
            SdpAction::Encode { r#type, records } => {
                let ty = catalog
                    .get(&r#type)
                    .with_context(|| format!("unknown device type {type:?}"))?;
                for r in &records {
                    writeln!(out, "{}", encode(ty, r)?)?;
                }
            }
            SdpAction::Decode {
                r#type,
                frames,
                json,
            } => {
                let ty = catalog
                    .get(&r#type)
                    .with_context(|| format!("unknown device type {type:?}"))?;
                for f in &frames {
                    let mut bytes = unhex(f)?;
                    if bytes.last() != Some(&0) {
                        bytes.push(0);
                    }
                    for packet in FrameDecoder::new().decode(&bytes) {
                        let rec = match packet {
                            Err(e) => {
                                json!({"error": e.error_code().name(), "detail": e.to_string()})
                            }
                            Ok(p) => {
                                let writes = p.msg_type() == MessageType::DevWrite.as_byte();
                                match Message::from_packet(&p, &widths(ty, writes)) {
                                    Ok(m) => record(ty, &m),
                                    Err(e) => {
                                        json!({"error": e.error_code().name(), "detail": e.to_string()})
                                    }
                                }
                            }
                        };
                        if json {
                            writeln!(out, "{rec}")?;
                        } else {
                            writeln!(out, "{}", serde_json::to_string_pretty(&rec)?)?;
                        }
                    }
                }
            }
        }
        out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_vectors_for_polar_bear_both_ways() {
        let ty = Catalog::embedded().get("polar-bear").unwrap();
        let cases = [
            (
                r#"{"msg":"SUB_REQ","params":["duty_cycle"],"interval_ms":123}"#,
                "04 11 04 01 02 7b 02 6f 00",
            ),
            (
                r#"{"msg":"DEV_READ","params":["duty_cycle"]}"#,
                "04 13 02 01 02 10 00",
            ),
            (
                r#"{"msg":"DEV_WRITE","values":{"duty_cycle":0.123}}"#,
                "04 14 06 01 06 6d e7 fb 3d 5f 00",
            ),
            (
                r#"{"msg":"DEV_DATA","values":{"duty_cycle":0.456}}"#,
                "04 15 06 01 06 d5 78 e9 3e 68 00",
            ),
            (r#"{"msg":"HB_RES","id":255}"#, "05 18 01 ff e6 00"),
        ];
        for (rec, frame) in cases {
            assert_eq!(encode(ty, rec).unwrap(), frame, "{rec}");
            let bytes = unhex(frame).unwrap();
            let p = FrameDecoder::new().decode(&bytes).next().unwrap().unwrap();
            let writes = p.msg_type() == MessageType::DevWrite.as_byte();
            let m = Message::from_packet(&p, &widths(ty, writes)).unwrap();
            let back = record(ty, &m);
            let want: J = serde_json::from_str(rec).unwrap();
            assert_eq!(back["msg"], want["msg"]);
        }
        assert!(unhex("0").is_err());
    }
}
