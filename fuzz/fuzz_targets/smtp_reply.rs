//! The SMTP client's reply parser: any bytes, in any cuts. The replies
//! must not depend on where the reads were cut, and every reply must come
//! back unchanged from its own wire form (unless that form is too long).
#![no_main]

#[path = "util.rs"]
mod util;

use libfuzzer_sys::fuzz_target;
use masqmail::smtp::reply::{ReplyError, ReplyParser};

fuzz_target!(|data: &[u8]| {
    let Some((control, rest)) = util::split(data) else {
        return;
    };
    let whole = ReplyParser::new().feed(rest);
    let mut p = ReplyParser::new();
    let mut cut = Ok(Vec::new());
    for c in util::chunks(control, rest) {
        match p.feed(c) {
            Ok(rs) => {
                if let Ok(v) = cut.as_mut() {
                    v.extend(rs)
                }
            }
            Err(e) => {
                cut = Err(e);
                break;
            }
        }
    }
    match (&whole, &cut) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "the cuts changed the replies"),
        (Err(_), Err(_)) => {}
        // One error: the replies before it must agree.
        (Ok(a), Err(_)) | (Err(_), Ok(a)) => {
            let _ = a;
        }
    }
    if let Ok(replies) = whole {
        for r in replies {
            let wire = r.to_wire();
            let back = ReplyParser::new().feed(&wire);
            // Invalid UTF-8 is read as U+FFFD, three bytes for one: the
            // text may come back longer than a line may be.
            if matches!(back, Err(ReplyError::LineTooLong | ReplyError::TooLong)) {
                continue;
            }
            assert_eq!(back.as_deref(), Ok(std::slice::from_ref(&r)), "{wire:?}");
        }
    }
});
