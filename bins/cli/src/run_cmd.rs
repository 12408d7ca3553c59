//! `pitcrew run CODE.py`: runs a team's Python robot code under the executor of the
//! `pitcrew` Python package (`python3 -m pitcrew.run`, which calls `autonomous_*` and
//! `teleop_*` as the robot state says, in a worker process it supervises).
//!
//! The CLI validates the options (a bad value is a one-line error, exit 2, like every
//! option) and then replaces itself with `python3 -m pitcrew.run` with the same arguments,
//! handing the shared options over as `PITCREW_*` variables, which the package reads as
//! every binary does; so the executor's pid is the one the supervisor started and signals.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

use pitcrew::options::{parse_positive_duration, SharedOptions};

/// The Python interpreter run, unless `PITCREW_PYTHON` names another.
const PYTHON: &str = "python3";

/// Arguments of `pitcrew run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The team's code: a Python file defining `autonomous_setup`, `autonomous_main`,
    /// `teleop_setup` and `teleop_main` (each optional).
    pub code: PathBuf,
    /// Robot file naming the devices (`name: TYPE UID` per line).
    #[arg(long)]
    pub robot: Option<PathBuf>,
    /// How often `*_main` is called while enabled.
    #[arg(long, default_value = "20ms", allow_hyphen_values = true, value_parser = parse_positive_duration)]
    pub period: Duration,
    /// A setup or main call running longer than this has its worker killed and restarted.
    #[arg(long, default_value = "1s", allow_hyphen_values = true, value_parser = parse_positive_duration)]
    pub timeout: Duration,
}

/// The shared options as the `PITCREW_*` variables the package reads.
pub fn shared_env(shared: &SharedOptions) -> Vec<(&'static str, OsString)> {
    let mut env: Vec<(&'static str, OsString)> = vec![
        ("PITCREW_NAMESPACE", shared.namespace.clone().into()),
        ("PITCREW_IPC_DIR", shared.ipc_dir.clone().into()),
        (
            "PITCREW_CONTROL_ADDR",
            format!("udp://{}", shared.control_addr).into(),
        ),
        (
            "PITCREW_UPDATE_ADDR",
            format!("udp://{}", shared.update_addr).into(),
        ),
        (
            "PITCREW_CALL_TIMEOUT",
            format!("{}ms", shared.call_timeout.as_millis()).into(),
        ),
        (
            "PITCREW_CONTROL_TIMEOUT",
            format!("{}ms", shared.control_timeout.as_millis()).into(),
        ),
    ];
    let lists = [
        ("PITCREW_ROUTER_FRONTEND", &shared.router_frontend),
        ("PITCREW_ROUTER_BACKEND", &shared.router_backend),
        ("PITCREW_LOG_FRONTEND", &shared.log_frontend),
        ("PITCREW_LOG_BACKEND", &shared.log_backend),
    ];
    for (name, list) in lists {
        if !list.is_empty() {
            env.push((name, list.join(",").into()));
        }
    }
    if let Some(catalog) = &shared.catalog {
        env.push(("PITCREW_CATALOG", catalog.clone().into()));
    }
    env
}

impl RunArgs {
    /// The `python3 -m pitcrew.run` arguments for these options.
    pub fn python_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["-m".into(), "pitcrew.run".into()];
        args.push(self.code.clone().into());
        if let Some(robot) = &self.robot {
            args.push("--robot".into());
            args.push(robot.clone().into());
        }
        args.push("--period".into());
        args.push(format!("{}us", self.period.as_micros()).into());
        args.push("--timeout".into());
        args.push(format!("{}us", self.timeout.as_micros()).into());
        args
    }

    /// Replaces this process with the executor.
    ///
    /// # Errors
    /// Only when the interpreter cannot be started (exec returns).
    pub fn exec(&self, shared: &SharedOptions) -> anyhow::Error {
        let python = std::env::var_os("PITCREW_PYTHON").unwrap_or_else(|| PYTHON.into());
        let err = std::process::Command::new(&python)
            .args(self.python_args())
            .envs(shared_env(shared))
            .exec();
        anyhow::Error::new(err).context(format!(
            "cannot start {} -m pitcrew.run (is the pitcrew package installed? scripts/python-package)",
            python.to_string_lossy()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_must_be_positive() {
        assert_eq!(
            parse_positive_duration("20ms").unwrap(),
            Duration::from_millis(20)
        );
        assert!(parse_positive_duration("0s").is_err());
        assert!(parse_positive_duration("fast").is_err());
    }

    #[test]
    fn the_executor_gets_the_same_options() {
        let args = RunArgs {
            code: "drive.py".into(),
            robot: Some("robot.yaml".into()),
            period: Duration::from_millis(20),
            timeout: Duration::from_secs(1),
        };
        let got: Vec<String> = args
            .python_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            got,
            [
                "-m",
                "pitcrew.run",
                "drive.py",
                "--robot",
                "robot.yaml",
                "--period",
                "20000us",
                "--timeout",
                "1000000us"
            ]
        );
    }
}
