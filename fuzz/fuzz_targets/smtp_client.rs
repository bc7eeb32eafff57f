//! The SMTP client session fed random server replies (through the reply
//! parser, in random cuts), carried out the way the transport does: the
//! message is "sent" when asked, TLS "starts" when asked, the next message
//! or QUIT follows a result. It must never panic, write only whole CRLF
//! lines, and give at most one result per recipient, for real ones only.
#![no_main]

#[path = "util.rs"]
mod util;

use libfuzzer_sys::fuzz_target;
use masqmail::addr::{Address, Sender};
use masqmail::smtp::client::{Action, Client, Credentials, Mail, Outcome, Params, StartTls};
use masqmail::smtp::reply::ReplyParser;

fn mail(n: usize) -> Mail {
    let rcpts = (0..n)
        .filter_map(|i| Address::parse(&format!("r{i}@there.test"), None).ok())
        .collect();
    Mail {
        sender: Address::parse("alice@here.test", None)
            .map(Sender::Addr)
            .unwrap_or(Sender::Null),
        rcpts,
        size: 1000,
        eight_bit: n % 2 == 0,
    }
}

fn check(o: &Outcome, n: usize) {
    let mut seen = vec![false; n];
    for (i, _) in &o.per_rcpt {
        assert!(*i < n, "a result for recipient {i} of {n}");
        assert!(!seen[*i], "two results for recipient {i}");
        seen[*i] = true;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((control, rest)) = util::split(data) else {
        return;
    };
    let params = Params {
        helo_name: "router.lan".into(),
        starttls: match control % 3 {
            0 => StartTls::Never,
            1 => StartTls::IfOffered,
            _ => StartTls::Required,
        },
        tls_active: false,
        credentials: (control & 4 != 0).then(|| Credentials {
            login: "user".into(),
            secret: "secret".into(),
        }),
        auth_mechanism: None,
        allow_plaintext_auth: control & 8 != 0,
        pipelining: control & 16 != 0,
    };
    let sizes = [1 + (control as usize >> 5) % 3, 2, 1];
    let mut mails = sizes.iter().map(|&n| mail(n));
    let Some(first) = mails.next() else {
        return;
    };
    let mut n = first.rcpts.len();
    let mut c = Client::new(params, first);
    let mut parser = ReplyParser::new();
    let mut todo: Vec<Action> = Vec::new();
    let mut closed = false;
    for chunk in util::chunks(control, rest) {
        match parser.feed(chunk) {
            Ok(replies) => {
                for r in replies {
                    todo.extend(c.on_reply(r));
                }
            }
            Err(e) => {
                check(&c.abort(&e.to_string()), n);
                return;
            }
        }
        while !todo.is_empty() {
            for a in std::mem::take(&mut todo) {
                match a {
                    Action::Send(b) | Action::SendSecret(b) => {
                        assert!(b.ends_with(b"\r\n"), "a write without CRLF: {b:?}");
                    }
                    Action::StartTls => todo.extend(c.tls_started()),
                    Action::SendMessage => c.message_sent(),
                    Action::Done(o) => {
                        check(&o, n);
                        if c.is_idle() {
                            match mails.next() {
                                Some(m) => {
                                    n = m.rcpts.len();
                                    todo.extend(c.next_message(m));
                                }
                                None => todo.extend(c.quit()),
                            }
                        }
                    }
                    Action::Close => closed = true,
                }
            }
        }
        if closed {
            return;
        }
    }
    check(&c.connection_lost(), n);
});
