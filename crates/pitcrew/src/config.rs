//! Stage two of the options: the resolved configuration a binary runs with.
//!
//! Stage one ([`crate::options`]) checks each value on its own, with no I/O. This stage
//! does the checks that need the system, before anything binds: the ipc directory is a
//! directory, the catalog opens and validates. It fills in the defaults of spec/wire.md
//! that depend on the namespace (ipc paths) and picks the address a connecting side uses
//! (ipc preferred). What it holds is parsed: addresses are [`SocketAddr`]s, durations
//! [`Duration`]s, and the catalog is the loaded one, so no binary parses a string or loads
//! the catalog its own way ([`load_catalog`] is the one way).

use std::net::{SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pitcrew_catalog::Catalog;

use crate::endpoint::preferred_connect_address;
use crate::key::{Key, KeyKind, Keys};
use crate::options::{LogFormat, LogLevel, SharedOptions};

/// A value that passed stage one but is unusable on this system: a usage error (exit 2).
/// The message is one line naming the option.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--ipc-dir` is missing or not a directory.
    #[error("--ipc-dir {}: {reason}", dir.display())]
    IpcDir {
        /// The directory given.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `--key-file` or `--field-key-file` is unusable.
    #[error("{option}: {reason}")]
    Key {
        /// The option.
        option: &'static str,
        /// What is wrong (names the file and what to do).
        reason: String,
    },
    /// `--catalog` does not load.
    #[error("--catalog {}: {reason}", file.display())]
    Catalog {
        /// The file given.
        file: PathBuf,
        /// Why it does not load (file, line and key).
        reason: String,
    },
}

/// Loads the catalog file `path`, or gives the one built into the binary: the one way every
/// binary, the CLI and the Python package get their catalog.
///
/// # Errors
/// [`ConfigError::Catalog`] naming the file and why, on one line.
pub fn load_catalog(path: Option<&Path>) -> Result<Arc<Catalog>, ConfigError> {
    match path {
        None => Ok(Arc::new(Catalog::embedded().clone())),
        Some(file) => Catalog::load(file)
            .map(Arc::new)
            .map_err(|e| ConfigError::Catalog {
                file: file.to_path_buf(),
                reason: one_line(&e.to_string()),
            }),
    }
}

/// Folds `text` onto one line, cut to a readable length (a loader may quote the whole
/// offending value, and a wrong file can be anything).
fn one_line(text: &str) -> String {
    const MAX: usize = 300;
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// Loads `--key-file` and `--field-key-file`.
fn load_keys(options: &SharedOptions) -> Result<Keys, ConfigError> {
    let load = |path: Option<&Path>, kind: KeyKind, option: &'static str| {
        path.map(|p| Key::load(p, kind))
            .transpose()
            .map_err(|e| ConfigError::Key {
                option,
                reason: e.to_string(),
            })
    };
    Ok(Keys {
        team: load(options.key_file.as_deref(), KeyKind::Team, "--key-file")?,
        field: load(
            options.field_key_file.as_deref(),
            KeyKind::Field,
            "--field-key-file",
        )?,
    })
}

/// Checks that `dir` is an existing directory (whether it is writable is found out by the
/// daemons, which create their lock file in it first thing: see [`crate::instance`]).
fn check_ipc_dir(dir: &Path) -> Result<(), ConfigError> {
    let reason = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => "not a directory".to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no such directory".to_owned(),
        Err(e) => e.to_string(),
    };
    Err(ConfigError::IpcDir {
        dir: dir.to_path_buf(),
        reason,
    })
}

/// The resolved shared configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The instance namespace.
    pub namespace: String,
    /// Directory of the default ipc sockets.
    pub ipc_dir: std::path::PathBuf,
    /// Endpoints the router binds for clients.
    pub router_frontend: Vec<String>,
    /// Endpoints the router binds for services.
    pub router_backend: Vec<String>,
    /// Endpoints the log forwarder binds for subscribers.
    pub log_frontend: Vec<String>,
    /// Endpoints the log forwarder binds for publishers.
    pub log_backend: Vec<String>,
    /// Control input address.
    pub control_addr: SocketAddr,
    /// Device update multicast group and port.
    pub update_addr: SocketAddrV4,
    /// Period of device updates.
    pub update_interval: Duration,
    /// How long a driver link may be silent before it is lost.
    pub control_timeout: Duration,
    /// Default RPC call deadline.
    pub call_timeout: Duration,
    /// Concurrent handlers per service.
    pub service_workers: usize,
    /// The catalog, loaded (the file of `--catalog`, or the built-in one).
    pub catalog: Arc<Catalog>,
    /// The `--catalog` file, if one was given.
    pub catalog_file: Option<PathBuf>,
    /// The keys, loaded (README, "Who may drive").
    pub keys: Keys,
    /// Least severe level logged.
    pub log_level: LogLevel,
    /// Local log format.
    pub log_format: LogFormat,
}

impl Config {
    /// Resolves `options`: checks the ipc directory, loads the catalog, fills the
    /// namespace-dependent defaults.
    ///
    /// # Errors
    /// [`ConfigError`], a usage error naming the option.
    pub fn resolve(options: &SharedOptions) -> Result<Self, ConfigError> {
        check_ipc_dir(&options.ipc_dir)?;
        let catalog = load_catalog(options.catalog.as_deref())?;
        let keys = load_keys(options)?;
        let ns = &options.namespace;
        let ipc = |kind: &str| {
            let path = options.ipc_dir.join(format!("{ns}-{kind}.sock"));
            format!("ipc://{}", path.display())
        };
        let or = |given: &[String], default: Vec<String>| {
            if given.is_empty() {
                default
            } else {
                given.to_vec()
            }
        };
        let log_format = options.log_format.unwrap_or_else(|| {
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                LogFormat::Pretty
            } else {
                LogFormat::Json
            }
        });
        Ok(Self {
            namespace: ns.clone(),
            ipc_dir: options.ipc_dir.clone(),
            router_frontend: or(
                &options.router_frontend,
                vec!["tcp://*:6000".into(), ipc("rpc")],
            ),
            router_backend: or(&options.router_backend, vec![ipc("srv")]),
            log_frontend: or(&options.log_frontend, vec!["tcp://*:6001".into()]),
            log_backend: or(&options.log_backend, vec![ipc("log")]),
            control_addr: options.control_addr,
            update_addr: options.update_addr,
            update_interval: options.update_interval,
            control_timeout: options.control_timeout,
            call_timeout: options.call_timeout,
            service_workers: usize::from(options.service_workers),
            catalog,
            catalog_file: options.catalog.clone(),
            keys,
            log_level: options.log_level,
            log_format,
        })
    }

    /// Sets the keys for this process's TCP endpoints ([`crate::endpoint::curve`]);
    /// every binary calls it once before making endpoints ([`crate::app::main`] does).
    ///
    /// # Errors
    /// When libzmq lacks CURVE or the ZAP handler cannot start.
    pub fn secure_endpoints(&self) -> Result<(), crate::endpoint::EndpointError> {
        crate::endpoint::curve::configure(&self.keys)
    }

    /// The file that records an emergency stop of this instance (`<ipc-dir>/<ns>-estop`).
    /// The device broker writes it when it latches and honours it when it starts, so an
    /// emergency stop survives a broker that crashed or was restarted; `pitcrew clean`
    /// removes it, which is the deliberate act that releases the robot.
    pub fn estop_marker(&self) -> std::path::PathBuf {
        self.ipc_dir.join(format!("{}-estop", self.namespace))
    }

    /// Where a client connects to reach the router.
    pub fn frontend_connect(&self) -> String {
        preferred_connect_address(&self.router_frontend).unwrap_or_default()
    }

    /// Where a service connects to reach the router.
    pub fn backend_connect(&self) -> String {
        preferred_connect_address(&self.router_backend).unwrap_or_default()
    }

    /// Where a process publishes its logs.
    pub fn log_backend_connect(&self) -> String {
        preferred_connect_address(&self.log_backend).unwrap_or_default()
    }

    /// Where a log subscriber connects.
    pub fn log_frontend_connect(&self) -> String {
        preferred_connect_address(&self.log_frontend).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        shared: SharedOptions,
    }

    #[test]
    fn namespace_shapes_the_default_ipc_paths() {
        let cli = Cli::try_parse_from(["x", "--namespace", "t1"]).unwrap();
        let c = Config::resolve(&cli.shared).unwrap();
        assert_eq!(
            c.router_frontend,
            ["tcp://*:6000", "ipc:///tmp/t1-rpc.sock"]
        );
        assert_eq!(c.frontend_connect(), "ipc:///tmp/t1-rpc.sock");
        assert_eq!(c.backend_connect(), "ipc:///tmp/t1-srv.sock");
        assert_eq!(c.log_backend_connect(), "ipc:///tmp/t1-log.sock");
        assert_eq!(c.log_frontend_connect(), "tcp://127.0.0.1:6001");
    }

    #[test]
    fn ipc_dir_moves_the_default_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let given = format!("{}/", dir.path().display());
        let cli = Cli::try_parse_from(["x", "--namespace", "t2", "--ipc-dir", &given]).unwrap();
        let c = Config::resolve(&cli.shared).unwrap();
        let at = dir.path().display();
        assert_eq!(c.frontend_connect(), format!("ipc://{at}/t2-rpc.sock"));
        assert_eq!(c.log_backend_connect(), format!("ipc://{at}/t2-log.sock"));
        assert!(Cli::try_parse_from(["x", "--ipc-dir", "run"]).is_err());
    }

    #[test]
    fn an_unusable_ipc_dir_or_catalog_is_one_line_naming_the_option() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "types: [").unwrap();
        let missing = dir.path().join("missing");
        for (option, value) in [
            ("--ipc-dir", &file),
            ("--ipc-dir", &missing),
            ("--catalog", &file),
            ("--catalog", &missing),
        ] {
            let value = value.display().to_string();
            let cli = Cli::try_parse_from(["x", option, &value]).unwrap();
            let err = Config::resolve(&cli.shared).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{option} {value}: ")), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }
}
