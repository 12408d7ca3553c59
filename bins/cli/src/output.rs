//! How results are printed: pretty JSON for a person, one line with `--json`.

use std::io::Write;

use pitcrew::codec::{to_json, Value};

/// Prints `value` as JSON on stdout: indented, or on one line when `one_line`.
///
/// # Errors
/// When stdout is closed or cannot be written.
pub fn print_value(value: &Value, one_line: bool) -> anyhow::Result<()> {
    let json = to_json(value);
    let text = if one_line {
        serde_json::to_string(&json)?
    } else {
        serde_json::to_string_pretty(&json)?
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

/// Whether `error` is a write to a closed pipe, which ends the command quietly.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
