//! `pitcrew clean`: removes what a stopped instance leaves behind, and nothing else.
//!
//! That is the namespace's shared-memory segments, recognised by the namespace stored in
//! each segment's header (so cleaning `rt` never touches `rt-sim`, which a `/dev/shm/rt-*`
//! glob would), and the socket files of the `ipc://` endpoints of the resolved
//! configuration (so `--ipc-dir` and explicit endpoints are honoured, and a regular file
//! that happens to sit at such a path is left alone). The supervisor runs it after
//! stopping the suite. While a live process still owns a segment or listens on a socket,
//! it refuses, unless `--force`; a daemon's namespace lock held by a live process
//! ([`pitcrew::instance`]) also makes it refuse, and is never removed, even with `--force`;
//! the lock files of killed daemons are removed. It also removes the emergency-stop marker, which releases
//! a latched emergency stop for the next start.

use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::Context;
use pitcrew::config::Config;
use pitcrew::instance;

/// Arguments of `pitcrew clean`.
#[derive(Debug, clap::Args)]
pub struct CleanArgs {
    /// Remove even segments whose owner is still running and sockets with a listener
    /// (the processes using them lose them).
    #[arg(long)]
    pub force: bool,
    /// Print what was removed as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What `clean` removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// Shared-memory segment names, with their leading `/`.
    pub segments: Vec<String>,
    /// Socket file paths.
    pub sockets: Vec<PathBuf>,
    /// Lock files of daemons that were killed.
    pub locks: Vec<PathBuf>,
    /// The emergency-stop marker, if there was one (removing it releases the latch).
    pub estop_marker: Option<PathBuf>,
}

/// Why `clean` refused: what is still in use, one item per line.
#[derive(Debug)]
pub struct InUse {
    /// The namespace.
    pub namespace: String,
    /// One description per segment or socket in use.
    pub items: Vec<String>,
}

impl std::fmt::Display for InUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "namespace `{}` is still in use ({}); stop its processes first, or use --force",
            self.namespace,
            self.items.join("; ")
        )
    }
}

impl std::error::Error for InUse {}

impl CleanArgs {
    /// Cleans up and prints what was removed.
    ///
    /// # Errors
    /// [`InUse`] without `--force` while the namespace is in use; `/dev/shm` or a socket
    /// file cannot be read or removed; stdout is closed.
    pub fn run(&self, config: &Config) -> anyhow::Result<()> {
        let removed = clean(config, self.force)?;
        let out = &mut std::io::stdout().lock();
        if self.json {
            let json = serde_json::json!({
                "namespace": config.namespace,
                "segments": removed.segments,
                "sockets": removed.sockets,
                "locks": removed.locks,
                "estop_marker": removed.estop_marker,
            });
            writeln!(out, "{json}")?;
        } else if removed == Removed::default() {
            writeln!(
                out,
                "nothing to remove for namespace `{}`",
                config.namespace
            )?;
        } else {
            for name in &removed.segments {
                writeln!(out, "removed segment {name}")?;
            }
            for path in &removed.sockets {
                writeln!(out, "removed socket {}", path.display())?;
            }
            for path in &removed.locks {
                writeln!(out, "removed lock {}", path.display())?;
            }
            if let Some(path) = &removed.estop_marker {
                writeln!(
                    out,
                    "removed estop marker {} (the emergency stop is released)",
                    path.display()
                )?;
            }
        }
        out.flush()?;
        Ok(())
    }
}

/// Removes the namespace's segments and ipc socket files of `config`.
///
/// # Errors
/// As [`CleanArgs::run`].
pub fn clean(config: &Config, force: bool) -> anyhow::Result<Removed> {
    let namespace = &config.namespace;
    let sockets = ipc_socket_paths(config);
    if !force {
        let mut items: Vec<String> = pitcrew_buffer::list(namespace)
            .with_context(|| format!("listing the segments of `{namespace}`"))?
            .into_iter()
            .filter(|s| s.owner_alive)
            .map(|s| format!("segment {} is owned by pid {}", s.name, s.owner_pid))
            .collect();
        items.extend(
            sockets
                .iter()
                .filter(|p| is_socket(p) && UnixStream::connect(p).is_ok())
                .map(|p| format!("socket {} has a listener", p.display())),
        );
        items.extend(lock_paths(config).iter().filter_map(|p| {
            instance::holder(p).map(|pid| format!("pid {pid} holds {}", p.display()))
        }));
        if !items.is_empty() {
            return Err(InUse {
                namespace: namespace.clone(),
                items,
            }
            .into());
        }
    }
    // Without --force, only segments whose owner is dead go: one that a process took over
    // since the check above is left alone.
    let segments = if force {
        pitcrew_buffer::remove_namespace(namespace)
    } else {
        pitcrew_buffer::reset_stale(namespace)
    }
    .with_context(|| format!("removing the segments of `{namespace}`"))?;
    let mut removed = Removed {
        segments,
        ..Removed::default()
    };
    let marker = config.estop_marker();
    if marker.is_file() {
        std::fs::remove_file(&marker)
            .with_context(|| format!("cannot remove the estop marker {}", marker.display()))?;
        removed.estop_marker = Some(marker);
    }
    for path in sockets {
        if is_socket(&path) {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove the socket {}", path.display()))?;
            removed.sockets.push(path);
        }
    }
    // A lock file is left by a daemon that was killed; a held one, even with --force, is a
    // live daemon's, and removing it would let a second one start beside it.
    for path in lock_paths(config) {
        if path.is_file() && instance::holder(&path).is_none() {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove the lock {}", path.display()))?;
            removed.locks.push(path);
        }
    }
    Ok(removed)
}

/// The namespace lock files of the daemons ([`pitcrew::instance`]).
fn lock_paths(config: &Config) -> Vec<PathBuf> {
    instance::ROLES
        .iter()
        .map(|role| instance::lock_path(&config.ipc_dir, &config.namespace, role))
        .collect()
}

/// The socket files of every `ipc://` endpoint of `config`, without duplicates.
pub fn ipc_socket_paths(config: &Config) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = Vec::new();
    let endpoints = [
        &config.router_frontend,
        &config.router_backend,
        &config.log_frontend,
        &config.log_backend,
    ];
    let taps = pitcrew::tap::ALL.map(|process| pitcrew::tap::endpoint(config, process));
    for endpoint in endpoints.into_iter().flatten().chain(&taps) {
        if let Some(path) = endpoint.strip_prefix("ipc://") {
            let path = PathBuf::from(path);
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
    }
    paths
}

/// Whether `path` is a Unix socket (not following a symlink).
fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::sync::Arc;

    use clap::Parser;
    use pitcrew::options::SharedOptions;
    use pitcrew_buffer::{Owner, SegmentKey};
    use pitcrew_catalog::Catalog;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        shared: SharedOptions,
    }

    fn config(args: &[&str]) -> Config {
        let mut argv = vec!["x"];
        argv.extend_from_slice(args);
        Config::resolve(&Cli::try_parse_from(argv).unwrap().shared).unwrap()
    }

    /// A fresh directory under /tmp and a namespace named after it, for one test.
    fn scratch(tag: &str) -> (PathBuf, String) {
        let ns = format!("clean{}-{tag}", std::process::id());
        let dir = std::env::temp_dir().join(&ns);
        std::fs::create_dir_all(&dir).unwrap();
        (dir, ns)
    }

    fn gamepad(namespace: &str, index: u32) -> Owner {
        let ty = Arc::clone(Catalog::embedded().get("gamepad").unwrap());
        Owner::create(namespace, ty, SegmentKey::Index(index)).unwrap()
    }

    #[test]
    fn socket_paths_are_the_ipc_endpoints_of_the_config() {
        let (dir, _) = scratch("paths");
        let c = config(&["--namespace", "n1", "--ipc-dir", &dir.display().to_string()]);
        assert_eq!(
            ipc_socket_paths(&c),
            [
                "n1-rpc.sock",
                "n1-srv.sock",
                "n1-log.sock",
                "n1-tap-gamepad.sock",
                "n1-tap-devices.sock"
            ]
            .map(|f| dir.join(f))
        );
        let _ = std::fs::remove_dir_all(&dir);
        let c = config(&[
            "--router-frontend",
            "tcp://*:7000,ipc:///tmp/a.sock",
            "--router-backend",
            "ipc:///tmp/a.sock",
            "--log-frontend",
            "ipc:///tmp/b.sock",
        ]);
        assert_eq!(
            ipc_socket_paths(&c),
            [
                "/tmp/a.sock",
                "/tmp/b.sock",
                "/tmp/rt-log.sock",
                "/tmp/rt-tap-gamepad.sock",
                "/tmp/rt-tap-devices.sock"
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn removes_socket_files_only_and_refuses_a_listened_one() {
        let (dir, ns) = scratch("sock");
        let c = config(&["--namespace", &ns, "--ipc-dir", dir.to_str().unwrap()]);
        let rpc = dir.join(format!("{ns}-rpc.sock"));
        let srv = dir.join(format!("{ns}-srv.sock"));
        let log = dir.join(format!("{ns}-log.sock"));
        drop(UnixListener::bind(&rpc).unwrap()); // a stale socket file
        std::fs::write(&srv, "not a socket").unwrap();
        let listener = UnixListener::bind(&log).unwrap();

        let err = clean(&c, false).unwrap_err();
        let in_use = err.downcast_ref::<InUse>().expect("an InUse error");
        assert_eq!(in_use.items.len(), 1, "{in_use}");
        assert!(in_use.to_string().contains("has a listener"), "{in_use}");
        assert!(rpc.exists() && log.exists());

        drop(listener);
        let removed = clean(&c, false).unwrap();
        assert_eq!(removed.sockets, [rpc.clone(), log.clone()]);
        assert!(!rpc.exists() && !log.exists());
        assert!(srv.exists(), "a regular file is left alone");
        assert_eq!(clean(&c, false).unwrap(), Removed::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_a_live_owner_unless_forced_and_spares_a_longer_namespace() {
        let (dir, ns) = scratch("seg");
        let sibling = format!("{ns}-sim");
        let c = config(&["--namespace", &ns, "--ipc-dir", dir.to_str().unwrap()]);
        let _mine = gamepad(&ns, 0);
        let _theirs = gamepad(&sibling, 0);

        let err = clean(&c, false).unwrap_err();
        let in_use = err.downcast_ref::<InUse>().expect("an InUse error");
        let pid = std::process::id();
        assert_eq!(
            in_use.items,
            [format!("segment /{ns}-gamepad-0 is owned by pid {pid}")]
        );
        assert_eq!(pitcrew_buffer::list(&ns).unwrap().len(), 1);

        let removed = clean(&c, true).unwrap();
        assert_eq!(removed.segments, [format!("/{ns}-gamepad-0")]);
        assert!(pitcrew_buffer::list(&ns).unwrap().is_empty());
        assert_eq!(pitcrew_buffer::list(&sibling).unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn options_parse() {
        #[derive(Parser)]
        struct Cmd {
            #[command(flatten)]
            args: CleanArgs,
        }
        let cmd = Cmd::try_parse_from(["x", "--force", "--json"]).unwrap();
        assert!(cmd.args.force && cmd.args.json);
        let cmd = Cmd::try_parse_from(["x"]).unwrap();
        assert!(!cmd.args.force && !cmd.args.json);
    }
}
