//! The disk budget of a recordings directory: the oldest recordings (by modification time,
//! the end of their session) are removed first until the directory's `.mcap` files fit.
//! The recording being written is never removed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often a running recorder enforces the budget.
const CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// A size: `500M`, `2G`, `1.5G`, `4096` (bytes), `0` (no budget).
///
/// # Errors
/// A message for clap when it is not one.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (n, scale) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&s[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&s[..i], 1 << 30),
        Some((i, 'T' | 't')) => (&s[..i], 1 << 40),
        _ => (s, 1),
    };
    let v: f64 = n
        .parse()
        .map_err(|_| "expected a size such as 500M, 2G or 0".to_owned())?;
    if !v.is_finite() || v < 0.0 {
        return Err("expected a size such as 500M, 2G or 0".to_owned());
    }
    Ok((v * scale as f64) as u64)
}

/// A directory's budget, checked now and then while recording.
#[derive(Debug)]
pub struct Budget {
    dir: PathBuf,
    limit: u64,
    current: PathBuf,
    checked: Option<Instant>,
}

impl Budget {
    /// The budget `limit` (0: none) of `dir`, sparing `current`. Enforced at once.
    pub fn new(dir: &Path, limit: u64, current: &Path) -> Budget {
        let mut b = Budget {
            dir: dir.to_owned(),
            limit,
            current: current.to_owned(),
            checked: None,
        };
        b.tick();
        b
    }

    /// Enforces the budget if [`CHECK_INTERVAL`] has passed since the last time.
    pub fn tick(&mut self) {
        if self.limit == 0 || self.checked.is_some_and(|t| t.elapsed() < CHECK_INTERVAL) {
            return;
        }
        self.checked = Some(Instant::now());
        for path in enforce(&self.dir, self.limit, &self.current) {
            tracing::info!(file = %path.display(), "recording removed: over the disk budget");
        }
    }
}

/// Removes the oldest `.mcap` files of `dir` (not `keep`) until the rest fit in `limit`
/// bytes; returns what it removed.
pub fn enforce(dir: &Path, limit: u64, keep: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf, u64)> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "mcap"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((meta.modified().ok()?, e.path(), meta.len()))
        })
        .collect();
    files.sort();
    let mut total: u64 = files.iter().map(|(_, _, n)| n).sum();
    let mut removed = Vec::new();
    for (_, path, len) in files {
        if total <= limit {
            break;
        }
        if path.file_name() == keep.file_name() {
            continue;
        }
        if std::fs::remove_file(&path).is_ok() {
            total = total.saturating_sub(len);
            removed.push(path);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1G").is_err());
    }

    #[test]
    fn the_oldest_go_first_and_the_current_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.mcap", "b.mcap", "c.mcap", "d.mcap"] {
            std::fs::write(dir.path().join(name), [0u8; 100]).unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), [0u8; 1000]).unwrap();
        let keep = dir.path().join("a.mcap");
        let removed = enforce(dir.path(), 250, &keep);
        let names: Vec<_> = removed
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["b.mcap", "c.mcap"]);
        assert!(keep.exists() && dir.path().join("d.mcap").exists());
    }
}
