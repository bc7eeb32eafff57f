//! The alias file text: any text parses into entries and errors without
//! panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use masqmail::scan::alias;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (entries, errors) = alias::parse_alias_text(&text, "here.test");
    let _ = (entries.len(), errors.len());
});
