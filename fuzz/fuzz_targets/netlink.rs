//! NETLINK_ROUTE datagrams (the kernel is trusted, but the parser must
//! hold against anything): parse never panics, and every message parsed
//! is applied to the state table, which then answers its questions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use masqmail::online::netlink::{self, Table};

fuzz_target!(|data: &[u8]| {
    let mut table = Table::default();
    // One datagram; its messages update the table in turn.
    if let Ok(msgs) = netlink::parse(data) {
        for m in &msgs {
            let _ = table.apply(m);
        }
    }
    let _ = table.online_devices();
    let _ = table.signature();
    let _ = table.describe();
});
