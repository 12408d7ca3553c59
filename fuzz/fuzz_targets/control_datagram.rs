//! Fuzzes what the gamepad receiver does with a datagram from the network: the sealed
//! envelope's check (a verifier holding a team and a field key, as on a robot), and the
//! parse of the datagram inside, or of the whole input as an unsealed one. Nothing may
//! panic; a forged envelope (no key here can have made it) must never open.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use pitcrew::control::{self, auth};
use pitcrew::key::{Key, KeyKind, Keys};

fuzz_target!(|data: &[u8]| {
    let keys = Keys {
        team: Some(Key::from_bytes(KeyKind::Team, [7; 32])),
        field: Some(Key::from_bytes(KeyKind::Field, [9; 32])),
    };
    let Some(mut verifier) = auth::Verifier::new(&keys) else {
        return;
    };
    if auth::is_sealed(data) {
        // The fuzzer cannot compute an HMAC-SHA256 tag under these keys.
        assert!(
            verifier.open(data, Instant::now()).is_err(),
            "a forged datagram opened"
        );
    }
    let _ = control::parse(data);
});
