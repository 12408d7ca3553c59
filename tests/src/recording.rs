//! Reading a recording back the way a team would: `pitcrew recording export FILE --csv DIR`,
//! its CSV files as rows of named fields (the tests compare them with what was sent).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Rows of named fields, per CSV file (`control_refused`, `devices_write`...).
pub type Tables = BTreeMap<String, Vec<BTreeMap<String, String>>>;

/// Runs `pitcrew` (a CLI command with the instance's options, from `Instance::cli(&[])` or
/// `Namespace::cli(&[])`) as `recording export FILE --csv DIR` and reads the files.
///
/// # Panics
/// When the export fails or its directory cannot be read.
pub fn export_tables(mut pitcrew: Command, file: &Path, dir: &Path) -> Tables {
    crate::run_ok(
        pitcrew
            .args(["recording", "export"])
            .arg(file)
            .arg("--csv")
            .arg(dir),
    );
    let mut tables = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("the CSV directory").flatten() {
        let text = std::fs::read_to_string(entry.path()).expect("a CSV file");
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap_or("")
            .split(',')
            .map(str::to_owned)
            .collect();
        // Only simple fields are compared here: a quoted one would shift columns, so any
        // line with a quote is kept whole under "line".
        let rows = lines
            .map(|l| {
                if l.contains('"') {
                    BTreeMap::from([("line".to_owned(), l.to_owned())])
                } else {
                    header
                        .iter()
                        .cloned()
                        .zip(l.split(',').map(str::to_owned))
                        .collect()
                }
            })
            .collect();
        let name = entry
            .file_name()
            .to_string_lossy()
            .trim_end_matches(".csv")
            .to_owned();
        tables.insert(name, rows);
    }
    tables
}

/// Reads `file` with `tests/python/SCRIPT ARGS...`, a script over the `mcap` Python package
/// (the third-party reader teams use), and returns the JSON it prints.
///
/// # Panics
/// When the script fails (the `mcap` package is missing: `scripts/setup` installs it).
pub fn read_with_mcap_package(script: &str, file: &Path, args: &[&str]) -> serde_json::Value {
    let py = Command::new("python3")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("python")
                .join(script),
        )
        .arg(file)
        .args(args)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("python3 runs");
    assert!(
        py.status.success(),
        "the mcap Python package could not read the file (scripts/setup installs it): {}",
        String::from_utf8_lossy(&py.stderr)
    );
    serde_json::from_slice(&py.stdout).expect("the reader prints JSON")
}
