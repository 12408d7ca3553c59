//! Differential: the log forwarder checks each record with the in-place scanner
//! (`codec::scan::check`) and hands it on undecoded, so the scanner must accept exactly
//! what the full decoder (`codec::decode`, which subscribers use) accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pitcrew::codec;

fuzz_target!(|data: &[u8]| {
    let scanned = codec::scan::check(data).is_ok();
    let decoded = codec::decode(data).is_ok();
    assert_eq!(scanned, decoded, "scanner {scanned}, decoder {decoded}");
});
