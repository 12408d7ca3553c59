//! `pitcrew buffers`, `pitcrew get DEVICE PARAM` and `pitcrew set DEVICE PARAM VALUE`:
//! list and use device buffers directly through shared memory.
//!
//! DEVICE is a Smart Device UID in decimal (`56668397794435742564352`) or a plain
//! peripheral as `TYPE-INDEX` (`gamepad-0`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use pitcrew_buffer::{list, Buffer, SegmentKey};
use pitcrew_catalog::{Catalog, Uid, Value};

use crate::catalog_cmd::load;

/// `pitcrew buffers`: list the namespace's buffers.
#[derive(Debug, clap::Args)]
pub struct BuffersArgs {}

impl BuffersArgs {
    /// Prints one line per buffer: type, UID/index, valid, owner pid, last update age.
    ///
    /// # Errors
    /// `/dev/shm` cannot be read or the namespace is malformed.
    pub fn run(&self, namespace: &str) -> anyhow::Result<()> {
        let out = &mut std::io::stdout().lock();
        let infos = list(namespace).with_context(|| format!("listing buffers of `{namespace}`"))?;
        writeln!(
            out,
            "{:<16} {:<26} {:<6} {:>8}  last update",
            "type", "uid/index", "valid", "owner"
        )?;
        for i in infos {
            let owner = if i.owner_alive {
                i.owner_pid.to_string()
            } else {
                format!("{} (dead)", i.owner_pid)
            };
            let age = i.last_update_age.map_or_else(
                || "never".to_owned(),
                |a| format!("{:.3} s ago", a.as_secs_f64()),
            );
            writeln!(
                out,
                "{:<16} {:<26} {:<6} {:>8}  {age}",
                i.type_name,
                i.key.to_string(),
                i.valid,
                owner
            )?;
        }
        Ok(())
    }
}

/// The param `name` of the buffer's type, or an error naming the type.
fn param_of<'b>(buf: &'b Buffer, name: &str) -> anyhow::Result<&'b pitcrew_catalog::Param> {
    buf.device_type()
        .param(name)
        .with_context(|| format!("`{name}` is not a param of `{}`", buf.device_type().name()))
}

/// `pitcrew get DEVICE PARAM`: read a sensed value.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// A decimal UID, or `TYPE-INDEX` for plain peripherals (`gamepad-0`).
    pub device: String,
    /// The param name.
    pub param: String,
    /// Use this catalog instead of the embedded one (must match the owner's).
    #[arg(long)]
    pub catalog: Option<PathBuf>,
}

impl GetArgs {
    /// Prints the value (arrays as hex).
    ///
    /// # Errors
    /// Unknown device or param, invalid buffer, catalog mismatch.
    pub fn run(&self, namespace: &str) -> anyhow::Result<()> {
        let cat = load(self.catalog.as_ref())?;
        let buf = open(namespace, &cat, &self.device)?;
        let p = param_of(&buf, &self.param)?;
        let out = &mut std::io::stdout().lock();
        if p.scalar().is_some() {
            writeln!(out, "{}", buf.get_value(&self.param)?)?;
        } else {
            let raw = buf.get_raw(&self.param)?;
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            writeln!(out, "{hex}")?;
        }
        Ok(())
    }
}

/// `pitcrew set DEVICE PARAM VALUE`: write a desired value (clamped to bounds).
#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// A decimal UID, or `TYPE-INDEX` for plain peripherals.
    pub device: String,
    /// The param name.
    pub param: String,
    /// The value, parsed as the param's type (`true`, `-3`, `0.25`).
    pub value: String,
    /// Use this catalog instead of the embedded one (must match the owner's).
    #[arg(long)]
    pub catalog: Option<PathBuf>,
}

impl SetArgs {
    /// Writes the value; reports a clamp on stderr.
    ///
    /// # Errors
    /// Unknown device or param, unparsable or out-of-range value, non-writeable param,
    /// invalid buffer.
    pub fn run(&self, namespace: &str) -> anyhow::Result<()> {
        let cat = load(self.catalog.as_ref())?;
        let buf = open(namespace, &cat, &self.device)?;
        let p = param_of(&buf, &self.param)?;
        let scalar = p.scalar().with_context(|| {
            format!(
                "`{}` is an array ({}); it cannot be set from the CLI",
                p.name(),
                p.ty()
            )
        })?;
        let value = Value::parse(&self.value, scalar)
            .with_context(|| format!("value for `{}`", p.name()))?;
        let outcome = buf.write_value(&self.param, value)?;
        if let Some(c) = outcome.clamped {
            eprintln!(
                "note: {} clamped from {} to {}",
                p.name(),
                c.requested,
                c.stored
            );
        }
        Ok(())
    }
}

/// Opens a buffer from a DEVICE argument.
///
/// # Errors
/// Malformed DEVICE, unknown type, or the buffer cannot be attached.
pub fn open(namespace: &str, cat: &Catalog, device: &str) -> anyhow::Result<Buffer> {
    if device.bytes().all(|b| b.is_ascii_digit()) {
        let uid: Uid = device.parse()?;
        return Buffer::open_uid(namespace, cat, uid).with_context(|| format!("device {uid}"));
    }
    let (type_name, index) = device
        .rsplit_once('-')
        .with_context(|| format!("`{device}` is neither a decimal UID nor TYPE-INDEX"))?;
    let index: u32 = index
        .parse()
        .with_context(|| format!("`{device}`: `{index}` is not an index"))?;
    let ty = cat
        .get(type_name)
        .with_context(|| format!("type `{type_name}` is not in {}", cat.origin()))?;
    Buffer::open(namespace, Arc::clone(ty), SegmentKey::Index(index))
        .with_context(|| format!("device {device}"))
}
