//! `pitcrew catalog check [FILE]` and `pitcrew catalog show TYPE`: validate a catalog and
//! inspect a type (params, ids, access, bounds, safe values, default subscription bitmap).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use pitcrew_catalog::{Catalog, DeviceType};

/// `pitcrew catalog ...`
#[derive(Debug, clap::Args)]
pub struct CatalogArgs {
    /// What to do with the catalog.
    #[command(subcommand)]
    pub command: CatalogCommand,
}

/// The catalog subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CatalogCommand {
    /// Validate a catalog file (default: the embedded one) and list its types.
    Check {
        /// The YAML file; the shipped catalog compiled into the binary when absent.
        file: Option<PathBuf>,
    },
    /// Show one type's params, ids, access and default subscription bitmap.
    Show {
        /// The type name, e.g. `polar-bear`.
        type_name: String,
        /// Read this catalog instead of the embedded one.
        #[arg(long)]
        catalog: Option<PathBuf>,
    },
}

impl CatalogArgs {
    /// Runs the subcommand, printing to stdout.
    ///
    /// # Errors
    /// The catalog does not load (the message names file, line and key) or the type is unknown.
    pub fn run(&self) -> anyhow::Result<()> {
        self.run_to(&mut std::io::stdout().lock())
    }

    /// Runs the subcommand, printing to `out` (for tests).
    ///
    /// # Errors
    /// As [`CatalogArgs::run`].
    pub fn run_to(&self, out: &mut impl Write) -> anyhow::Result<()> {
        match &self.command {
            CatalogCommand::Check { file } => {
                let cat = load(file.as_ref())?;
                writeln!(out, "{}: {} types OK", cat.origin(), cat.len())?;
                for t in cat.types() {
                    let id = t
                        .device_id()
                        .map_or_else(|| "-".to_owned(), |i| i.to_string());
                    writeln!(
                        out,
                        "  {:<16} device_id {:>5}  {:>2} params",
                        t.name(),
                        id,
                        t.params().len()
                    )?;
                }
            }
            CatalogCommand::Show { type_name, catalog } => {
                let cat = load(catalog.as_ref())?;
                let t = cat
                    .get(type_name)
                    .with_context(|| format!("type `{type_name}` is not in {}", cat.origin()))?;
                show(out, t)?;
            }
        }
        Ok(())
    }
}

/// Loads the given file, or the embedded catalog, the way every binary does
/// ([`pitcrew::config::load_catalog`]).
///
/// # Errors
/// The file does not load.
pub fn load(file: Option<&PathBuf>) -> anyhow::Result<Arc<Catalog>> {
    Ok(pitcrew::config::load_catalog(file.map(PathBuf::as_path))?)
}

fn show(out: &mut impl Write, t: &DeviceType) -> anyhow::Result<()> {
    writeln!(out, "type {}", t.name())?;
    match t.device_id() {
        Some(id) => writeln!(
            out,
            "device_id {id}  sub_interval {} s  heartbeat_interval {} s",
            t.sub_interval().as_secs_f64(),
            t.heartbeat_interval().as_secs_f64()
        )?,
        None => writeln!(out, "plain peripheral (no device_id)")?,
    }
    writeln!(
        out,
        "default subscription {:#06x} ({:b})",
        t.default_subscription(),
        t.default_subscription()
    )?;
    writeln!(out, "fingerprint {:#018x}", t.fingerprint())?;
    writeln!(
        out,
        "{:>3}  {:<20} {:<12} {:<6} {:<16} safe",
        "id", "name", "type", "access", "bounds"
    )?;
    for p in t.params() {
        let b = p.bounds();
        let bounds = if b.is_unbounded() {
            String::new()
        } else {
            format!("[{}, {}]", b.lower, b.upper)
        };
        let safe = p.safe().map(|v| v.to_string()).unwrap_or_default();
        writeln!(
            out,
            "{:>3}  {:<20} {:<12} {:<6} {:<16} {safe}",
            p.id(),
            p.name(),
            p.ty().to_string(),
            p.access().to_string(),
            bounds
        )?;
    }
    Ok(())
}
