//! Addresses: envelope paths (`Address::parse`, `Sender::parse`) and
//! header address lists. Whatever parses must print as text that parses
//! back to the same address.
#![no_main]

use libfuzzer_sys::fuzz_target;
use masqmail::addr::{self, Address, Sender};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for dd in [None, Some("here.test")] {
        if let Ok(a) = Address::parse(s, dd) {
            let t = a.to_string();
            assert_eq!(
                Address::parse(&t, None).as_ref(),
                Ok(&a),
                "{s:?} printed as {t:?}"
            );
        }
        if let Ok(snd) = Sender::parse(s, dd) {
            let t = format!("<{snd}>");
            assert_eq!(
                Sender::parse(&t, None).as_ref(),
                Ok(&snd),
                "{s:?} printed as {t:?}"
            );
        }
        let (good, _bad) = addr::parse_header_list(s, dd);
        for m in good {
            let t = m.addr.to_string();
            assert_eq!(
                Address::parse(&t, None).as_ref(),
                Ok(&m.addr),
                "{s:?}: {t:?}"
            );
        }
    }
});
