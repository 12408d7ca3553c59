//! Signals to test processes and their process groups, and what is left running in them.

/// Sends `signal` to process `pid` (a negative pid: a process group). Ignores errors: the
/// process may be gone.
pub fn kill(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        if pid > 0 {
            // SAFETY: kill(2) has no memory effects.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }
}

/// Sends `signal` to every process of process group `pgid`, ignoring errors.
pub fn kill_group(pgid: u32, signal: i32) {
    if let Ok(pgid) = i32::try_from(pgid) {
        if pgid > 1 {
            // SAFETY: kill(2) has no memory effects.
            unsafe {
                libc::kill(-pgid, signal);
            }
        }
    }
}

/// Processes (pid, command name) still running — zombies excluded — whose process group
/// is one of `groups`.
pub fn running_in_groups(groups: &[u32]) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": the command name may contain spaces.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat.get(open + 1..close).unwrap_or_default().to_owned();
        let rest: Vec<&str> = stat
            .get(close + 1..)
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let state = rest.first().copied().unwrap_or("Z");
        let pgrp = rest.get(2).and_then(|s| s.parse::<u32>().ok());
        if state != "Z" && pgrp.is_some_and(|g| groups.contains(&g)) {
            found.push((pid, comm));
        }
    }
    found
}
