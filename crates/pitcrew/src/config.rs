//! Stage two of the options: the resolved configuration a binary runs with.
//!
//! Fills in the defaults of spec/wire.md that depend on the namespace (ipc paths) and picks
//! the address a connecting side uses (ipc preferred).

use std::time::Duration;

use crate::endpoint::preferred_connect_address;
use crate::options::{LogFormat, LogLevel, SharedOptions};

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
    /// Control input address (`udp://IP:PORT`).
    pub control_addr: String,
    /// Device update multicast address (`udp://GROUP:PORT`).
    pub update_addr: String,
    /// Period of device updates.
    pub update_interval: Duration,
    /// How long a driver link may be silent before it is lost.
    pub control_timeout: Duration,
    /// Default RPC call deadline.
    pub call_timeout: Duration,
    /// Concurrent handlers per service.
    pub service_workers: usize,
    /// Catalog file, if not the built-in one.
    pub catalog: Option<std::path::PathBuf>,
    /// The team key file, if any (loaded by [`Config::keys`]).
    pub key_file: Option<std::path::PathBuf>,
    /// The field key file, if any.
    pub field_key_file: Option<std::path::PathBuf>,
    /// Least severe level logged.
    pub log_level: LogLevel,
    /// Local log format.
    pub log_format: LogFormat,
}

impl Config {
    /// Resolves `options`, filling the namespace-dependent defaults.
    pub fn resolve(options: &SharedOptions) -> Self {
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
        Self {
            namespace: ns.clone(),
            ipc_dir: options.ipc_dir.clone(),
            router_frontend: or(
                &options.router_frontend,
                vec!["tcp://*:6000".into(), ipc("rpc")],
            ),
            router_backend: or(&options.router_backend, vec![ipc("srv")]),
            log_frontend: or(&options.log_frontend, vec!["tcp://*:6001".into()]),
            log_backend: or(&options.log_backend, vec![ipc("log")]),
            control_addr: options.control_addr.clone(),
            update_addr: options.update_addr.clone(),
            update_interval: options.update_interval,
            control_timeout: options.control_timeout,
            call_timeout: options.call_timeout,
            service_workers: usize::from(options.service_workers),
            catalog: options.catalog.clone(),
            key_file: options.key_file.clone(),
            field_key_file: options.field_key_file.clone(),
            log_level: options.log_level,
            log_format,
        }
    }

    /// Loads the configured keys (README, "Threat model").
    ///
    /// # Errors
    /// When a key file is unreadable, readable by others, or not a key of its kind.
    pub fn keys(&self) -> Result<crate::key::Keys, crate::key::KeyError> {
        crate::key::Keys::load(self.key_file.as_deref(), self.field_key_file.as_deref())
    }

    /// Loads the keys and sets them for this process's TCP endpoints
    /// ([`crate::endpoint::curve`]); every binary calls it once before making endpoints.
    ///
    /// # Errors
    /// A message naming the key file and what to do, or libzmq lacking CURVE.
    pub fn secure_endpoints(&self) -> Result<crate::key::Keys, String> {
        let keys = self.keys().map_err(|e| e.to_string())?;
        crate::endpoint::curve::configure(&keys).map_err(|e| e.to_string())?;
        Ok(keys)
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
        let c = Config::resolve(&cli.shared);
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
        let cli =
            Cli::try_parse_from(["x", "--namespace", "t2", "--ipc-dir", "/run/pitcrew/"]).unwrap();
        let c = Config::resolve(&cli.shared);
        assert_eq!(c.frontend_connect(), "ipc:///run/pitcrew/t2-rpc.sock");
        assert_eq!(c.log_backend_connect(), "ipc:///run/pitcrew/t2-log.sock");
        assert!(Cli::try_parse_from(["x", "--ipc-dir", "run"]).is_err());
    }
}
