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
