//! Fuzzes the decoder of the device update group (`pitcrew watch`, its terminal view and
//! the dashboard read every datagram on it): nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pitcrew::updates::decode(data);
});
