//! `pitcrew emulate --from FILE`: every device of a recording played back as an emulated
//! device, with its recorded UID and type, sending the DEV_DATA values it sent in the
//! recording at the recorded times (relative to the start of the recording, counted from
//! when `emulate` starts), so a controller can be run against a match's sensor data.
//!
//! A device that connects late skips the samples already due (it starts from the latest
//! of them); between samples it answers reads and heartbeats as any emulated device, and
//! writes still reach it (and are printed), but it streams only what was recorded.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use pitcrew_catalog::{Catalog, Uid, Value};

use super::DeviceSpec;
use crate::recording::{channels, info::start_ns, read};

/// One recorded DEV_DATA: when, from the start of the recording, and the values (param
/// id, value).
pub type Sample = (Duration, Vec<(usize, Value)>);

/// One device's recorded DEV_DATA: when (from the start of the recording) and which values
/// (param id, value).
#[derive(Debug)]
pub struct Script {
    /// Where the recording's time 0 is in this run.
    pub origin: tokio::time::Instant,
    /// The samples in time order.
    pub samples: Vec<Sample>,
}

impl Script {
    /// When sample `i` is due, if there is one.
    pub fn due(&self, i: usize) -> Option<tokio::time::Instant> {
        self.samples.get(i).map(|(at, _)| self.origin + *at)
    }
}

/// The devices of `path`, each with its script.
///
/// # Errors
/// When the recording cannot be read, names a type the catalog lacks, or has no DEV_DATA.
pub fn devices(path: &Path, catalog: &Catalog) -> anyhow::Result<Vec<DeviceSpec>> {
    let rec = read::read(path)?;
    let origin_ns = start_ns(&rec);
    let origin = tokio::time::Instant::now();
    // UID → (type name, samples).
    let mut by_uid: BTreeMap<String, (String, Vec<Sample>)> = BTreeMap::new();
    for m in rec.on(channels::DEVICES_DATA) {
        let json: serde_json::Value = serde_json::from_slice(&m.data)
            .with_context(|| format!("a {} message is not JSON", channels::DEVICES_DATA))?;
        let (Some(uid), Some(ty_name)) = (json["uid"].as_str(), json["type"].as_str()) else {
            continue;
        };
        let ty = catalog
            .get(ty_name)
            .with_context(|| format!("the recording has a {ty_name}, which the catalog lacks"))?;
        let mut values = Vec::new();
        for (name, v) in json["values"].as_object().into_iter().flatten() {
            let Some(p) = ty.param(name) else { continue };
            if let Some(value) = p.scalar().and_then(|s| Value::from_json(v, s).ok()) {
                values.push((p.id(), value));
            }
        }
        let at = Duration::from_nanos(m.log_time.saturating_sub(origin_ns));
        by_uid
            .entry(uid.to_owned())
            .or_insert_with(|| (ty_name.to_owned(), Vec::new()))
            .1
            .push((at, values));
    }
    if by_uid.is_empty() {
        bail!(
            "{} holds no device data ({})",
            path.display(),
            channels::DEVICES_DATA
        );
    }
    let mut specs = Vec::new();
    for (uid, (ty_name, samples)) in by_uid {
        let ty = catalog
            .get(&ty_name)
            .with_context(|| format!("unknown device type {ty_name:?}"))?;
        let uid: Uid = uid
            .parse()
            .with_context(|| format!("bad UID {uid:?} in the recording"))?;
        let initial = samples
            .first()
            .map(|(_, v)| {
                v.iter()
                    .filter_map(|(id, v)| Some((ty.param_by_id(*id)?.name().to_owned(), *v)))
                    .collect()
            })
            .unwrap_or_default();
        specs.push(DeviceSpec {
            ty: Arc::clone(ty),
            uid,
            initial,
            script: Some(Arc::new(Script { origin, samples })),
            world: None,
        });
    }
    Ok(specs)
}
