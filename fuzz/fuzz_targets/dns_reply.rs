//! DNS replies from the network: decoding never panics, names (with
//! compression pointers) are read from any offset, and the answer lookup
//! (CNAME chains) terminates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use masqmail::dns::wire::{self, Name};

fuzz_target!(|data: &[u8]| {
    let Some((&control, msg)) = data.split_first() else {
        return;
    };
    let qtype = [1u16, 28, 15, 5][control as usize % 4];
    let Ok(qname) = Name::from_host("mail.example.org") else {
        return;
    };
    // The reply's own ID, so that decoding gets past the ID check.
    let id = match msg {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    };
    if let Ok(reply) = wire::decode_reply(msg, id, &qname, qtype) {
        let _ = reply.answer_for(&qname, qtype);
    }
    if !msg.is_empty() {
        let _ = wire::read_name(msg, (control as usize * 7) % msg.len());
    }
});
