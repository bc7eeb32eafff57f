//! Header sections: the reader with its limits, then scanning's header
//! fixing (Received:, Message-ID:, Date:, From:, …), then the spool header
//! file they are stored in, which must decode to exactly what was encoded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use masqmail::addr::{Address, Sender};
use masqmail::message::{HeaderReader, Limits, LineKind};
use masqmail::queue::{Envelope, HeaderFile, MsgId, Rcpt};
use masqmail::scan::headers;

fuzz_target!(|data: &[u8]| {
    let mut r = HeaderReader::new(Limits {
        max_line: 998,
        max_header_size: 16 * 1024,
        max_headers: 100,
    });
    for line in data.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match r.feed(line) {
            Ok(LineKind::Header) => {}
            Ok(_) | Err(_) => break,
        }
    }
    let hdrs = r.finish();
    let (Some(id), Ok(to)) = (
        MsgId::parse("1xWLXX35JG-02zU"),
        Address::parse("bob@there.test", None),
    ) else {
        return;
    };
    let env = Envelope {
        sender: Address::parse("alice@here.test", None)
            .map(Sender::Addr)
            .unwrap_or(Sender::Null),
        full_name: Some("Alice".into()),
        protocol: "esmtp".into(),
        ident: "[192.168.1.7]".into(),
        helo: Some("printer.lan".into()),
        received: 1_795_645_960,
        body_size: 3,
        rcpts: vec![Rcpt::new(to)],
        warned: false,
        tls: None,
    };
    let fixed = headers::fix(hdrs, &env, &id, "here.test");
    let hf = HeaderFile {
        env,
        headers: fixed,
    };
    let enc = hf.encode();
    assert_eq!(
        HeaderFile::decode(&enc).as_ref(),
        Ok(&hf),
        "{}",
        String::from_utf8_lossy(&enc)
    );
});
