//! The UCI configuration: parse and check any bytes; a configuration that
//! loads must show (`config show`) as text that loads again and shows the
//! same.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use masqmail::config;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("/etc/masqmail/fuzz.conf");
    let Ok(cfg) = config::from_bytes(path, data) else {
        return;
    };
    let shown = config::show(&cfg);
    let back = match config::from_bytes(path, shown.as_bytes()) {
        Ok(c) => c,
        Err(e) => panic!("config show does not load again: {e:?}\n{shown}"),
    };
    assert_eq!(config::show(&back), shown, "show is not stable");
});
