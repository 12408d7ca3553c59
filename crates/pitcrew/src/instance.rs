//! One instance per namespace: the lock each daemon of the suite holds for its lifetime.
//!
//! A second router, log forwarder, device broker or gamepad receiver started by mistake in
//! a live namespace used to take the first one's sockets, shared memory or service identity
//! over. Each of them now takes `<ipc-dir>/<namespace>-<role>.lock` first, with `flock`,
//! before it binds, unlinks or creates anything; a second one finds the lock held, names the
//! pid written in the file and exits. The kernel releases an `flock` when its holder dies
//! (kill -9 included), so a crash never leaves a stale lock: the next start just takes it.
//! `scripts/supervise` and `pitcrew clean` test the same files.
//!
//! A clean stop unlinks the file while still holding it. So that this cannot let two
//! processes in (one locking the unlinked file, the next a new one), a process that got the
//! lock checks that the path still names the file it locked, and starts over if not.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The daemons that hold a namespace lock, by the role name in the lock file's name.
pub const ROLES: [&str; 4] = ["router", "logfwd", "devices", "gamepad"];

/// A held namespace lock; released (and its file removed) when dropped, or by the kernel
/// when the process dies.
#[derive(Debug)]
pub struct InstanceLock {
    file: File,
    path: PathBuf,
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds it.
    #[error("another pitcrew {role} is running in namespace `{namespace}` (pid {pid}, holding {path}); stop it first, or use another --namespace")]
    Held {
        /// The role (`router`, `devices`, ...).
        role: String,
        /// The namespace.
        namespace: String,
        /// The holder's pid as written in the file, or `unknown`.
        pid: String,
        /// The lock file.
        path: PathBuf,
    },
    /// The ipc directory cannot hold the lock file: a usage error.
    #[error("--ipc-dir {}: {reason}", dir.display())]
    IpcDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl LockError {
    /// The exit status for this error: 1 for a live instance, 2 (usage) for a bad ipc dir.
    pub fn exit_code(&self) -> u8 {
        match self {
            LockError::Held { .. } => 1,
            LockError::IpcDir { .. } => 2,
        }
    }
}

/// The lock file of `role` in `namespace`: `<ipc-dir>/<namespace>-<role>.lock`.
pub fn lock_path(ipc_dir: &Path, namespace: &str, role: &str) -> PathBuf {
    ipc_dir.join(format!("{namespace}-{role}.lock"))
}

/// Takes the lock of `role` in `namespace`, without waiting, and writes our pid into it.
///
/// # Errors
/// [`LockError::Held`] naming the holder's pid; [`LockError::IpcDir`] when the file cannot
/// be created in `ipc_dir` (missing, not a directory, not writable, immutable).
pub fn acquire(ipc_dir: &Path, namespace: &str, role: &str) -> Result<InstanceLock, LockError> {
    let path = lock_path(ipc_dir, namespace, role);
    let dir_error = |e: std::io::Error| LockError::IpcDir {
        dir: ipc_dir.to_path_buf(),
        reason: format!("cannot create {}: {e}", path.display()),
    };
    // A few rounds: each lost one means a holder unlinked the file between our open and
    // our lock, which a stopping holder does once.
    for _ in 0..8 {
        // No truncation: the file may be a live holder's, whose pid we must be able to read.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o664)
            .open(&path)
            .map_err(dir_error)?;
        if !try_flock(&file).map_err(dir_error)? {
            return Err(LockError::Held {
                role: role.to_owned(),
                namespace: namespace.to_owned(),
                pid: holder_pid(&mut file),
                path,
            });
        }
        if !same_file(&file, &path) {
            continue;
        }
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.flush());
        written.map_err(dir_error)?;
        return Ok(InstanceLock { file, path });
    }
    Err(LockError::Held {
        role: role.to_owned(),
        namespace: namespace.to_owned(),
        pid: "unknown".to_owned(),
        path,
    })
}

/// Checks that `role` could take its lock in `ipc_dir` (`--check-options`): creates and
/// removes a probe file beside the lock file, without touching the lock itself (a live
/// holder, or one starting meanwhile, is left alone). `access(2)` would not do: it says
/// yes to root in an immutable or read-only directory where every create then fails.
///
/// # Errors
/// [`LockError::IpcDir`] when no file can be created there.
pub fn check_dir(ipc_dir: &Path, namespace: &str, role: &str) -> Result<(), LockError> {
    let probe = ipc_dir.join(format!("{namespace}-{role}.check-{}", std::process::id()));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| LockError::IpcDir {
            dir: ipc_dir.to_path_buf(),
            reason: format!(
                "cannot create files there ({e}); the {role} keeps its lock file and sockets in it"
            ),
        })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Whether a live process holds the lock at `path` right now, and its pid if so. A missing
/// file is not held. Used by `pitcrew clean`, which must not remove a live instance's files.
pub fn holder(path: &Path) -> Option<String> {
    let mut file = File::open(path).ok()?;
    match try_flock(&file) {
        // We got it, so nobody holds it; closing the file releases it again.
        Ok(true) => None,
        Ok(false) => Some(holder_pid(&mut file)),
        Err(_) => None,
    }
}

impl InstanceLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        // Unlinked while held; see the module documentation for why that is safe.
        if same_file(&self.file, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: `Ok(false)` when another open file holds it.
fn try_flock(file: &File) -> std::io::Result<bool> {
    loop {
        // SAFETY: flock only reads the descriptor, which `file` keeps open for the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

/// Whether `path` still names the open `file` (same device and inode).
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The pid a holder wrote. A holder writes it right after locking, so an empty file gets a
/// short second look before it is reported as unknown.
fn holder_pid(file: &mut File) -> String {
    for attempt in 0..5 {
        let mut text = String::new();
        if file.rewind().is_ok() && file.read_to_string(&mut text).is_ok() {
            let pid = text.trim();
            if !pid.is_empty() && pid.chars().all(|c| c.is_ascii_digit()) {
                return pid.to_owned();
            }
        }
        if attempt < 4 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    "unknown".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), "t", "router").unwrap();
        let text = std::fs::read_to_string(first.path()).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        match acquire(dir.path(), "t", "router") {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, std::process::id().to_string()),
            other => panic!("not refused: {other:?}"),
        }
        assert_eq!(holder(first.path()), Some(std::process::id().to_string()));
        // Other roles and namespaces are independent.
        let _devices = acquire(dir.path(), "t", "devices").unwrap();
        let _other = acquire(dir.path(), "u", "router").unwrap();
        let path = first.path().to_path_buf();
        drop(first);
        assert!(!path.exists(), "a clean stop removes the lock file");
        assert_eq!(holder(&path), None);
        let again = acquire(dir.path(), "t", "router").unwrap();
        drop(again);
    }

    #[test]
    fn an_unusable_directory_is_a_usage_error_naming_the_option() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "").unwrap();
        for bad in [file, dir.path().join("missing")] {
            let err = acquire(&bad, "t", "router").unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().starts_with("--ipc-dir "), "{err}");
        }
    }
}
