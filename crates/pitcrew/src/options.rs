//! The options every pitcrew binary shares, flattened into each binary's clap parser.
//!
//! Stage one of two (ripgrep's LowArgs/HiArgs): these are validated values with no I/O; the
//! defaults that depend on the namespace are filled in by [`crate::config::Config`].
//! Every option can also be set through `PITCREW_<NAME>` in the environment.

use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, ValueEnum};

/// Options shared by every binary of the suite.
#[derive(Debug, Clone, Args)]
// These doc comments are clap's help text: `<namespace>` there is a placeholder, not HTML.
#[allow(rustdoc::invalid_html_tags)]
pub struct SharedOptions {
    /// Instance name: prefixes ipc paths and shared-memory names so that several
    /// instances (tests, simulated robots) run side by side.
    #[arg(long, global = true, env = "PITCREW_NAMESPACE", default_value = "rt", value_parser = parse_namespace, help_heading = "Instance")]
    pub namespace: String,

    /// Check every option (values, ipc directory, catalog) and exit without starting
    /// anything: status 0 when they are usable, 2 with a line naming the bad one.
    #[arg(long, global = true, help_heading = "Instance")]
    pub check_options: bool,

    /// Directory of the default ipc sockets (`<dir>/<namespace>-{rpc,srv,log}.sock`); on a
    /// robot, systemd's `RuntimeDirectory` (e.g. /run/pitcrew) keeps them off /tmp.
    #[arg(long, global = true, env = "PITCREW_IPC_DIR", default_value = "/tmp", value_parser = parse_ipc_dir, help_heading = "Instance")]
    pub ipc_dir: PathBuf,

    /// Router frontend endpoints (clients), comma-separated
    /// [default: tcp://*:6000,ipc://<ipc-dir>/<namespace>-rpc.sock].
    #[arg(long, global = true, env = "PITCREW_ROUTER_FRONTEND", value_delimiter = ',', value_parser = parse_zmq_endpoint, help_heading = "Endpoints")]
    pub router_frontend: Vec<String>,

    /// Router backend endpoints (services), comma-separated
    /// [default: ipc://<ipc-dir>/<namespace>-srv.sock].
    #[arg(long, global = true, env = "PITCREW_ROUTER_BACKEND", value_delimiter = ',', value_parser = parse_zmq_endpoint, help_heading = "Endpoints")]
    pub router_backend: Vec<String>,

    /// Log forwarder frontend (PUB to subscribers), comma-separated [default: tcp://*:6001].
    #[arg(long, global = true, env = "PITCREW_LOG_FRONTEND", value_delimiter = ',', value_parser = parse_zmq_endpoint, help_heading = "Endpoints")]
    pub log_frontend: Vec<String>,

    /// Log forwarder backend (SUB from publishers), comma-separated
    /// [default: ipc://<ipc-dir>/<namespace>-log.sock].
    #[arg(long, global = true, env = "PITCREW_LOG_BACKEND", value_delimiter = ',', value_parser = parse_zmq_endpoint, help_heading = "Endpoints")]
    pub log_backend: Vec<String>,

    /// Control input address of the gamepad receiver.
    #[arg(long, global = true, env = "PITCREW_CONTROL_ADDR", default_value = "udp://0.0.0.0:6002", value_parser = parse_udp_addr, help_heading = "Endpoints")]
    pub control_addr: SocketAddr,

    /// Multicast group and port of device updates.
    #[arg(long, global = true, env = "PITCREW_UPDATE_ADDR", default_value = "udp://224.1.1.1:6003", value_parser = parse_multicast_addr, help_heading = "Endpoints")]
    pub update_addr: SocketAddrV4,

    /// Period of device update datagrams (e.g. 50ms, 0.05).
    #[arg(long, global = true, env = "PITCREW_UPDATE_INTERVAL", allow_hyphen_values = true, default_value = "50ms", value_parser = parse_positive_duration, help_heading = "Timing")]
    pub update_interval: Duration,

    /// A driver link (a driver station's control datagrams) silent for this long is lost:
    /// its gamepads go neutral and the device broker disables the robot (5ms to 60s).
    #[arg(long, global = true, env = "PITCREW_CONTROL_TIMEOUT", allow_hyphen_values = true, default_value = "100ms", value_parser = parse_control_timeout, help_heading = "Timing")]
    pub control_timeout: Duration,
    /// Default deadline of an RPC call (e.g. 5s, 250ms).
    #[arg(long, global = true, env = "PITCREW_CALL_TIMEOUT", allow_hyphen_values = true, default_value = "5s", value_parser = parse_positive_duration, help_heading = "Timing")]
    pub call_timeout: Duration,

    /// How many handlers a service runs at once; more requests queue up to a bound.
    #[arg(long, global = true, env = "PITCREW_SERVICE_WORKERS", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024), help_heading = "Timing")]
    pub service_workers: u16,

    /// The team key (`pitcrew key new FILE`): driver links, RPC and logs from other
    /// machines must be authenticated with it. Without it the suite takes commands from
    /// this machine only (loopback) [robot: /etc/pitcrew/team.key].
    #[arg(
        long,
        global = true,
        env = "PITCREW_KEY_FILE",
        help_heading = "Security"
    )]
    pub key_file: Option<PathBuf>,

    /// The field controller's key (`pitcrew key new --field FILE`): permits match phases
    /// and the emergency stop only. Needs --key-file.
    #[arg(
        long,
        global = true,
        env = "PITCREW_FIELD_KEY_FILE",
        help_heading = "Security"
    )]
    pub field_key_file: Option<PathBuf>,

    /// Device catalog (YAML) [default: the catalog built into the binary].
    #[arg(long, global = true, env = "PITCREW_CATALOG", help_heading = "Devices")]
    pub catalog: Option<PathBuf>,

    /// Least severe level logged and published.
    #[arg(
        long,
        global = true,
        env = "PITCREW_LOG_LEVEL",
        default_value = "info",
        help_heading = "Logging"
    )]
    pub log_level: LogLevel,

    /// Local log output: `pretty` for a terminal, `json` (one object per line) otherwise
    /// [default: pretty on a terminal, json otherwise].
    #[arg(
        long,
        global = true,
        env = "PITCREW_LOG_FORMAT",
        help_heading = "Logging"
    )]
    pub log_format: Option<LogFormat>,
}

/// A log level name, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum LogLevel {
    /// Everything, including per-message detail.
    Trace,
    /// Diagnostic detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the process handled.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// The `tracing` level.
    pub fn as_tracing(self) -> tracing::Level {
        match self {
            Self::Trace => tracing::Level::TRACE,
            Self::Debug => tracing::Level::DEBUG,
            Self::Info => tracing::Level::INFO,
            Self::Warn => tracing::Level::WARN,
            Self::Error => tracing::Level::ERROR,
        }
    }
}

/// Local log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable, coloured on a terminal.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Parses the command line of a binary; on a usage error prints ONE line naming the
/// problem (clap's first line) and exits with status 2, as DESIGN.md asks. `--help` and
/// `--version` print as usual and exit 0.
pub fn parse<T: Parser>() -> T {
    match T::try_parse() {
        Ok(options) => options,
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp
            | clap::error::ErrorKind::DisplayVersion
            | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            _ => {
                eprintln!("{}", one_line(&e.render().to_string()));
                std::process::exit(2);
            }
        },
    }
}

/// Folds clap's error text into one line: its first paragraph (which for a missing
/// argument spans several lines naming the arguments), without the usage and help hints.
fn one_line(text: &str) -> String {
    let paragraph: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    if paragraph.is_empty() {
        "error: invalid arguments".to_owned()
    } else {
        paragraph.join(" ")
    }
}

/// A namespace is a short name safe in file names and shm names.
pub fn parse_namespace(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || (c == '-'));
    if ok && !s.starts_with('-') {
        Ok(s.to_owned())
    } else {
        Err("use 1 to 32 letters, digits, '_' or '-' (not starting with '-')".to_owned())
    }
}

/// The ipc socket directory: an absolute path short enough that `<dir>/<namespace>-rpc.sock`
/// fits a Unix socket address (108 bytes with the 32-byte namespace limit).
pub fn parse_ipc_dir(s: &str) -> Result<PathBuf, String> {
    if !s.starts_with('/') {
        return Err("use an absolute directory (e.g. /run/pitcrew)".to_owned());
    }
    if s.len() > 64 {
        return Err(
            "use a directory path of at most 64 bytes (Unix socket paths are short)".to_owned(),
        );
    }
    Ok(PathBuf::from(s))
}

/// A ZeroMQ endpoint: `tcp://HOST:PORT`, `ipc://PATH` or `inproc://NAME`.
pub fn parse_zmq_endpoint(s: &str) -> Result<String, String> {
    let rest = ["tcp://", "ipc://", "inproc://"]
        .iter()
        .find_map(|p| s.strip_prefix(p));
    match rest {
        Some(r) if !r.is_empty() => {
            let has_port = r
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
            if s.starts_with("tcp://") && !has_port {
                return Err("a tcp endpoint needs a port: tcp://HOST:PORT".to_owned());
            }
            Ok(s.to_owned())
        }
        _ => Err("expected tcp://HOST:PORT, ipc://PATH or inproc://NAME".to_owned()),
    }
}

/// A UDP endpoint `udp://IP:PORT` (or plain `IP:PORT`), normalised to `udp://IP:PORT`.
pub fn parse_udp_endpoint(s: &str) -> Result<String, String> {
    let addr = s.strip_prefix("udp://").unwrap_or(s);
    addr.parse::<std::net::SocketAddr>()
        .map(|a| format!("udp://{a}"))
        .map_err(|_| "expected udp://IP:PORT, e.g. udp://0.0.0.0:6002".to_owned())
}

/// A UDP address `udp://IP:PORT` (or plain `IP:PORT`), parsed.
pub fn parse_udp_addr(s: &str) -> Result<SocketAddr, String> {
    s.strip_prefix("udp://")
        .unwrap_or(s)
        .parse()
        .map_err(|_| "expected udp://IP:PORT, e.g. udp://0.0.0.0:6002".to_owned())
}

/// An IPv4 multicast group and port, `udp://GROUP:PORT`.
pub fn parse_multicast_addr(s: &str) -> Result<SocketAddrV4, String> {
    match parse_udp_addr(s) {
        Ok(SocketAddr::V4(a)) if a.ip().is_multicast() => Ok(a),
        _ => Err("expected an IPv4 multicast udp://GROUP:PORT, e.g. udp://224.1.1.1:6003".into()),
    }
}

/// The control timeout: between 5 ms (below that, ordinary scheduling jitter on a busy
/// board would disable the robot) and 60 s.
pub fn parse_control_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(5) || d > Duration::from_secs(60) {
        return Err("expected a timeout between 5ms and 60s".into());
    }
    Ok(d)
}

/// A duration: `250ms`, `5s`, `1.5s`, `2m`, or a plain number of seconds (`0.05`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| "expected a duration such as 250ms, 5s or 0.05".to_owned())?;
    if !value.is_finite() || value < 0.0 || value * scale > 86_400.0 {
        return Err("expected a duration between 0 and 24 h".to_owned());
    }
    Ok(Duration::from_secs_f64(value * scale))
}

/// A duration that must be more than zero: a period (an interval of 0 would spin or, in a
/// timer, panic) or a timeout (0 would fail everything at once).
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s).map_err(|e| {
        if s.trim().starts_with('-') {
            "expected a duration above 0, such as 250ms or 5s".to_owned()
        } else {
            e
        }
    })?;
    if d.is_zero() {
        return Err("expected a duration above 0, such as 250ms or 5s".to_owned());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_and_timeouts_must_be_positive() {
        assert_eq!(
            parse_positive_duration("20ms"),
            Ok(Duration::from_millis(20))
        );
        for bad in ["0", "0ms", "0s", "-1s", "soon"] {
            assert!(parse_positive_duration(bad).is_err(), "{bad}");
        }
        assert!(Cli::try_parse_from(["x", "--update-interval", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "--call-timeout", "0s"]).is_err());
        // A negative value is taken as the option's value (not as a flag) and refused by
        // name.
        let err = Cli::try_parse_from(["x", "--update-interval", "-1s"]).unwrap_err();
        assert!(err.to_string().contains("--update-interval"), "{err}");
    }

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        shared: SharedOptions,
    }

    #[test]
    fn defaults_parse() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.shared.namespace, "rt");
        assert_eq!(cli.shared.call_timeout, Duration::from_secs(5));
        assert_eq!(cli.shared.update_interval, Duration::from_millis(50));
        assert_eq!(cli.shared.service_workers, 8);
        assert_eq!(
            cli.shared.control_addr,
            SocketAddr::from(([0, 0, 0, 0], 6002))
        );
        assert!(cli.shared.router_frontend.is_empty());
    }

    #[test]
    fn namespace() {
        assert!(parse_namespace("test-42_a").is_ok());
        for bad in ["", "a/b", "-x", "x y", &"n".repeat(33)] {
            assert!(parse_namespace(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn endpoints() {
        assert!(parse_zmq_endpoint("tcp://*:6000").is_ok());
        assert!(parse_zmq_endpoint("ipc:///tmp/x.sock").is_ok());
        assert!(parse_zmq_endpoint("tcp://host").is_err());
        assert!(parse_zmq_endpoint("http://x:1").is_err());
        assert_eq!(
            parse_udp_endpoint("127.0.0.1:6002").unwrap(),
            "udp://127.0.0.1:6002"
        );
        assert!(parse_udp_endpoint("udp://nowhere").is_err());
        assert!(parse_multicast_addr("udp://224.1.1.1:6003").is_ok());
        assert!(parse_multicast_addr("udp://127.0.0.1:6003").is_err());
        assert_eq!(
            parse_udp_addr("udp://127.0.0.1:6002"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 6002)))
        );
        let cli = Cli::try_parse_from(["x", "--router-frontend", "ipc:///a,tcp://*:1"]).unwrap();
        assert_eq!(cli.shared.router_frontend, ["ipc:///a", "tcp://*:1"]);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("0.05").unwrap(), Duration::from_millis(50));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        for bad in ["", "-1s", "fast", "NaN", "1e9"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_missing_argument_is_named_on_the_one_line() {
        #[derive(Parser, Debug)]
        struct Needs {
            #[arg(long)]
            to: String,
        }
        let err = Needs::try_parse_from(["x"]).unwrap_err();
        let line = one_line(&err.render().to_string());
        assert!(line.contains("--to"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn bad_values_name_the_option() {
        let err = Cli::try_parse_from(["x", "--call-timeout", "soon"]).unwrap_err();
        let first = err.render().to_string();
        let first = first.lines().next().unwrap();
        assert!(first.contains("--call-timeout"), "{first}");
        let err = Cli::try_parse_from(["x", "--service-workers", "0"]).unwrap_err();
        assert!(err.to_string().contains("--service-workers"));
        let err = Cli::try_parse_from(["x", "--log-level", "loud"]).unwrap_err();
        assert!(err.to_string().contains("--log-level"));
    }
}
