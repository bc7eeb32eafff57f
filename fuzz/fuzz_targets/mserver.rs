//! masqdialer server replies: the STAT answer is parsed without panic,
//! and what parses names a connection that is not empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use masqmail::online::mserver::{self, Stat};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        match mserver::parse_stat(line) {
            Ok(Stat::Up(n)) | Ok(Stat::Pending(n)) => assert!(!n.trim().is_empty()),
            Ok(Stat::Down) | Err(_) => {}
        }
        let p = mserver::printable(line);
        assert!(p.chars().count() <= 80 && !p.chars().any(char::is_control));
    }
});
