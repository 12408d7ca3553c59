//! Which instance Python code talks to: the shared options of every pitcrew binary, read
//! from the `PITCREW_*` environment exactly as the CLI reads them (so a controller started
//! by `scripts/supervise`, which hands every option to its children that way, finds its
//! namespace, router and log forwarder with no arguments), then resolved with
//! [`pitcrew::config::Config`]. An argument given in Python overrides its variable.

use std::path::Path;
use std::sync::Arc;

use clap::Parser;
use pitcrew::config::{load_catalog, Config, ConfigError};
use pitcrew::options::SharedOptions;
use pitcrew_catalog::Catalog;

/// The shared options alone, to parse the environment with.
#[derive(Debug, Parser)]
#[command(name = "pitcrew (Python)")]
struct FromEnv {
    #[command(flatten)]
    shared: SharedOptions,
}

/// Resolves the configuration from the environment, with `namespace` overriding
/// `PITCREW_NAMESPACE` when given.
///
/// # Errors
/// A one-line message naming the bad option or variable.
pub fn resolve(namespace: Option<&str>) -> Result<Config, String> {
    let mut args = vec!["pitcrew".to_owned()];
    if let Some(ns) = namespace {
        args.push(format!("--namespace={ns}"));
    }
    let options = FromEnv::try_parse_from(args).map_err(|e| {
        let text = e.render().to_string();
        let line = text
            .lines()
            .next()
            .unwrap_or("invalid pitcrew option")
            .trim();
        line.strip_prefix("error: ").unwrap_or(line).to_owned()
    })?;
    let config = Config::resolve(&options.shared).map_err(|e| e.to_string())?;
    // Python tools reach a robot's TCP endpoints with the key of PITCREW_KEY_FILE.
    config.secure_endpoints().map_err(|e| e.to_string())?;
    Ok(config)
}

/// The catalog: the file `path` when given, else the configured `--catalog`
/// (`PITCREW_CATALOG`), else the one built in.
///
/// # Errors
/// [`ConfigError`] naming the file and line.
pub fn catalog(config: &Config, path: Option<&Path>) -> Result<Arc<Catalog>, ConfigError> {
    match path {
        Some(path) => load_catalog(Some(path)),
        None => Ok(Arc::clone(&config.catalog)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_argument_shapes_the_endpoints() {
        let c = resolve(Some("py-ns")).unwrap();
        assert_eq!(c.namespace, "py-ns");
        assert!(
            c.frontend_connect().ends_with("py-ns-rpc.sock"),
            "{}",
            c.frontend_connect()
        );
        let e = resolve(Some("bad/ns")).unwrap_err();
        assert!(e.contains("namespace"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn a_catalog_file_is_loaded_with_its_errors() {
        let c = resolve(Some("py-cat")).unwrap();
        assert!(catalog(&c, None).unwrap().get("koala-bear").is_some());
        let e = catalog(&c, Some(Path::new("/nonexistent/devices.yaml"))).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/devices.yaml"), "{e}");
    }
}
