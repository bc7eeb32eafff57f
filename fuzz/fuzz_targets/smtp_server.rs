//! The SMTP server session: whole sessions, cut into reads at random
//! points, against a relay policy built from closures. Every event is
//! carried out the way the receiver does (commit or refuse at the end of
//! DATA, a TLS handshake that succeeds); the session must never panic,
//! never hold more than its bound between reads, and only ever say
//! `250 … queued as` after a commit that succeeded.
#![no_main]

#[path = "util.rs"]
mod util;

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use masqmail::addr::Address;
use masqmail::config::BareLf;
use masqmail::smtp::policy::RelayPolicy;
use masqmail::smtp::server::{CommitError, Event, PeerInfo, ServerParams, Session, TlsInfo};

fn policy() -> RelayPolicy<'static> {
    RelayPolicy {
        local_nets: vec!["192.168.1.0/24".parse().expect("net")],
        is_local_domain: Box::new(|a: &Address| a.domain() == "here.test"),
        local_recipient_exists: Box::new(|a: &Address| a.local() != "nobody"),
        verify_password: Box::new(|u: &str, p: &str| u == "user" && p == "secret"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((control, rest)) = util::split(data) else {
        return;
    };
    let params = ServerParams {
        host_name: "mx.here.test".into(),
        max_cmd_line: 512,
        max_line: 998,
        max_size: 20_000,
        max_recipients: 5,
        max_errors: 10,
        bare_lf: if control & 1 == 0 {
            BareLf::Normalize
        } else {
            BareLf::Reject
        },
        starttls_available: control & 2 != 0,
        auth_available: control & 4 != 0,
    };
    let ip = if control & 8 != 0 {
        IpAddr::V4(Ipv4Addr::new(192, 168, 1, 7))
    } else {
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9))
    };
    let commit_fails = control & 16 != 0;
    let policy = policy();
    let mut s = Session::new(
        params,
        PeerInfo {
            ip,
            name: None,
            tls: None,
        },
    );
    let bound = s.buffer_bound();
    let mut pending = s.greeting();
    let mut committed = 0usize;
    let mut queued = 0usize;
    let mut reads = util::chunks(control, rest).into_iter();
    loop {
        while !pending.is_empty() {
            for ev in std::mem::take(&mut pending) {
                match ev {
                    Event::Reply(text) => {
                        assert!(text.ends_with("\r\n"), "a reply without CRLF: {text:?}");
                        if text.contains("queued as") {
                            queued += 1;
                            assert!(queued <= committed, "250 without a commit: {text:?}");
                        }
                    }
                    Event::DataEnd => {
                        let r = if commit_fails {
                            Err(CommitError::NoSpace)
                        } else {
                            committed += 1;
                            Ok("1xWLXX35JG-02zU".to_string())
                        };
                        pending.extend(s.data_committed(r, &policy));
                    }
                    Event::StartTls => pending.extend(s.tls_started(TlsInfo {
                        version: "TLSv1.3".into(),
                        cipher: "TLS13_AES_128_GCM_SHA256".into(),
                    })),
                    Event::Close => return,
                    Event::MessageBegin(_) | Event::DataLine(_) | Event::DataAbort(_) => {}
                }
            }
        }
        let Some(chunk) = reads.next() else {
            // The client went quiet: the timeout.
            let _ = s.timeout();
            return;
        };
        pending = s.feed(chunk, &policy);
        let in_data_end = pending.iter().any(|e| matches!(e, Event::DataEnd));
        assert!(
            in_data_end || s.buffered() <= bound,
            "{} bytes held, bound {bound}",
            s.buffered()
        );
    }
});
