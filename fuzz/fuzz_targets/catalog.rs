//! Fuzzes the catalog loader (a team's own catalog file): any text either loads or is an
//! error naming a line; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pitcrew_catalog::Catalog;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = Catalog::from_yaml_str(text, "fuzz.yaml") {
            let _ = e.to_string();
        }
    }
});
