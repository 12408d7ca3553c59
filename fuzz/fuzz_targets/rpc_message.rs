//! Fuzzes the RPC message decoder (what the router peeks at and every client and service
//! decodes): nothing may panic, and a message that decodes re-encodes to one that decodes,
//! stable from then on. (Not equal at once: a MessagePack `str` holding invalid UTF-8 is
//! accepted and re-encoded as `bin`, as `rmpv` writes such a string.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use pitcrew::codec::peek_header;
use pitcrew::rpc::Message;

fuzz_target!(|data: &[u8]| {
    let _ = peek_header(data);
    if let Ok(message) = Message::decode(data) {
        let once = Message::decode(&message.encode()).expect("a re-encoded message decodes");
        let twice = Message::decode(&once.encode()).expect("and again");
        assert_eq!(format!("{twice:?}"), format!("{once:?}"));
    }
});
