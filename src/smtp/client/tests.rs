//! Scripted conversations: each test is a transcript in the shape of the
//! RFC examples. `S:` lines are fed to the client (consecutive ones in one
//! read, as a pipelining server's replies arrive); `C:` lines are what the
//! client must write; `--` lines are the other actions (`-- message`: the
//! body is sent; `-- starttls`: the handshake is done; `-- done`: the
//! results, `N sent|deferred|bounced CODE` per recipient; `-- close`);
//! `!lost` drops the connection. The driver builds the transcript from
//! what the client does; it must equal the script.

use std::collections::VecDeque;

use super::*;
use crate::smtp::reply::ReplyParser;

fn addr(s: &str) -> Address {
    Address::parse(s, None).unwrap()
}

fn mail(rcpts: &[&str]) -> Mail {
    Mail {
        sender: Sender::Addr(addr("alice@example.org")),
        rcpts: rcpts.iter().map(|r| addr(r)).collect(),
        size: 1000,
        eight_bit: false,
    }
}

fn one(rcpts: &[&str]) -> Vec<Mail> {
    vec![mail(rcpts)]
}

fn params() -> Params {
    Params {
        helo_name: "router.lan".into(),
        starttls: StartTls::Never,
        tls_active: false,
        credentials: None,
        auth_mechanism: None,
        allow_plaintext_auth: false,
        pipelining: true,
    }
}

fn creds(login: &str, secret: &str) -> Option<Credentials> {
    Some(Credentials {
        login: login.into(),
        secret: secret.into(),
    })
}

#[derive(Default)]
struct Run {
    out: Vec<String>,
    outcomes: Vec<Outcome>,
    writes: Vec<Vec<u8>>,
    tls_pending: bool,
}

fn summary(o: &Outcome) -> String {
    let mut head = "-- done".to_string();
    if o.session_failure {
        head.push_str(" session");
    }
    if o.tls {
        head.push_str(" tls");
    }
    if let Some(m) = o.auth {
        head.push_str(&format!(" auth={}", m.name()));
    }
    let parts: Vec<String> = o
        .per_rcpt
        .iter()
        .map(|(i, r)| match r {
            Ok(rep) => format!("{i} sent {}", rep.code),
            Err(f) => {
                let k = match f.kind {
                    Kind::Temporary => "deferred",
                    Kind::Permanent => "bounced",
                };
                format!("{i} {k} {}", f.reply.code)
            }
        })
        .collect();
    if parts.is_empty() {
        format!("{head}: nothing")
    } else {
        format!("{head}: {}", parts.join(", "))
    }
}

fn render(bytes: &[u8], secret: bool, run: &mut Run) {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let body = text.strip_suffix("\r\n");
    assert!(
        body.is_some(),
        "a write that does not end in CRLF: {text:?}"
    );
    for l in body.unwrap_or("").split("\r\n") {
        if secret {
            run.out.push(format!("C: {l}  [secret]"));
        } else {
            run.out.push(format!("C: {l}"));
        }
    }
}

fn handle(c: &mut Client, actions: Vec<Action>, run: &mut Run, mails: &mut VecDeque<Mail>) {
    let n = actions.len();
    for (k, a) in actions.into_iter().enumerate() {
        match a {
            Action::Send(b) => {
                render(&b, false, run);
                run.writes.push(b);
            }
            Action::SendSecret(b) => {
                render(&b, true, run);
                run.writes.push(b);
            }
            Action::StartTls => {
                run.out.push("-- starttls".into());
                run.tls_pending = true;
            }
            Action::SendMessage => {
                run.out.push("-- message".into());
                c.message_sent();
            }
            Action::Done(o) => {
                assert!(k + 1 == n || k + 2 == n, "only Close may follow Done");
                run.out.push(summary(&o));
                run.outcomes.push(o);
                if c.is_idle() {
                    let more = match mails.pop_front() {
                        Some(m) => c.next_message(m),
                        None => c.quit(),
                    };
                    handle(c, more, run, mails);
                }
            }
            Action::Close => run.out.push("-- close".into()),
        }
    }
}

/// Play `script` against a client for `p` delivering `mails` in turn.
fn play(p: Params, mails: Vec<Mail>, script: &str) -> Run {
    let mut mails: VecDeque<Mail> = mails.into();
    let first = mails.pop_front().expect("a mail");
    let mut c = Client::new(p, first);
    let mut parser = ReplyParser::new();
    let mut run = Run::default();
    let lines: Vec<&str> = script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.starts_with("S:") {
            let mut chunk = Vec::new();
            while i < lines.len() && lines[i].starts_with("S:") {
                let t = &lines[i][2..];
                chunk.extend_from_slice(t.strip_prefix(' ').unwrap_or(t).as_bytes());
                chunk.extend_from_slice(b"\r\n");
                run.out.push(lines[i].to_string());
                i += 1;
            }
            match parser.feed(&chunk) {
                Ok(replies) => {
                    for r in replies {
                        let a = c.on_reply(r);
                        handle(&mut c, a, &mut run, &mut mails);
                    }
                }
                Err(e) => {
                    run.out.push(format!("-- bad reply: {e}"));
                    let o = c.abort(&e.to_string());
                    run.out.push(summary(&o));
                    run.outcomes.push(o);
                }
            }
            // The handshake comes after the replies of that read: a reply
            // behind the 220 to STARTTLS is seen for what it is.
            if std::mem::take(&mut run.tls_pending) {
                let a = c.tls_started();
                handle(&mut c, a, &mut run, &mut mails);
            }
            continue;
        }
        if l == "!lost" {
            run.out.push(l.to_string());
            let o = c.connection_lost();
            run.out.push(summary(&o));
            run.outcomes.push(o);
        }
        i += 1;
    }
    run
}

/// Play the script and compare the transcript with it.
fn check(p: Params, mails: Vec<Mail>, script: &str) -> Run {
    let run = play(p, mails, script);
    let want: Vec<&str> = script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let got: Vec<&str> = run.out.iter().map(String::as_str).collect();
    if want != got {
        panic!(
            "transcript differs\n--- want\n{}\n--- got\n{}\n",
            want.join("\n"),
            got.join("\n")
        );
    }
    run
}

fn err(o: &Outcome, i: usize) -> &Failure {
    match &o.per_rcpt[i].1 {
        Err(f) => f,
        Ok(r) => panic!("recipient {i} delivered: {r}"),
    }
}

#[test]
fn plain_delivery() {
    let run = check(
        params(),
        one(&["bob@example.net"]),
        "
        S: 220 mx.example.net ESMTP
        C: EHLO router.lan
        S: 250-mx.example.net
        S: 250-8BITMIME
        S: 250 SIZE 10240000
        C: MAIL FROM:<alice@example.org> SIZE=1000
        S: 250 2.1.0 Ok
        C: RCPT TO:<bob@example.net>
        S: 250 2.1.5 Ok
        C: DATA
        S: 354 End data with <CR><LF>.<CR><LF>
        -- message
        S: 250 2.0.0 Ok: queued as 4F1C2
        -- done: 0 sent 250
        C: QUIT
        S: 221 2.0.0 Bye
        -- close
        ",
    );
    let o = &run.outcomes[0];
    assert_eq!(
        o.per_rcpt[0].1.as_ref().unwrap().to_string(),
        "250 2.0.0 Ok: queued as 4F1C2"
    );
    assert!(!o.session_failure && !o.tls && o.auth.is_none());
}

#[test]
fn pipelined_delivery_in_one_write() {
    let mut m = mail(&["bob@example.net", "carol@example.net"]);
    m.eight_bit = true;
    let run = check(
        params(),
        vec![m],
        "
        S: 220 mx.example.net ESMTP
        C: EHLO router.lan
        S: 250-mx.example.net
        S: 250-PIPELINING
        S: 250 8BITMIME
        C: MAIL FROM:<alice@example.org> BODY=8BITMIME
        C: RCPT TO:<bob@example.net>
        C: RCPT TO:<carol@example.net>
        C: DATA
        S: 250 2.1.0 Ok
        S: 250 2.1.5 Ok
        S: 250 2.1.5 Ok
        S: 354 go ahead
        -- message
        S: 250 2.0.0 queued
        -- done: 0 sent 250, 1 sent 250
        C: QUIT
        S: 221 bye
        -- close
        ",
    );
    assert_eq!(
        run.writes[1],
        b"MAIL FROM:<alice@example.org> BODY=8BITMIME\r\nRCPT TO:<bob@example.net>\r\n\
          RCPT TO:<carol@example.net>\r\nDATA\r\n"
    );
}

#[test]
fn pipelining_not_allowed_by_route_is_lock_step() {
    let mut p = params();
    p.pipelining = false;
    check(
        p,
        one(&["bob@example.net", "carol@example.net"]),
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250-mx
        S: 250 PIPELINING
        C: MAIL FROM:<alice@example.org>
        S: 250 ok
        C: RCPT TO:<bob@example.net>
        S: 250 ok
        C: RCPT TO:<carol@example.net>
        S: 250 ok
        C: DATA
        S: 354 go
        -- message
        S: 250 ok
        -- done: 0 sent 250, 1 sent 250
        C: QUIT
        S: 221 bye
        -- close
        ",
    );
}

/// Many recipients: a window of commands, refilled as replies arrive.
#[test]
fn pipelining_window() {
    let rcpts: Vec<String> = (0..250).map(|i| format!("u{i}@example.net")).collect();
    let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let mut c = Client::new(params(), mail(&refs));
    let ok = |t: &str| Reply::new(250, None, t);
    c.on_reply(Reply::new(220, None, "mx"));
    let a = c.on_reply(Reply::new(250, None, "mx\nPIPELINING"));
    let Action::Send(first) = &a[0] else {
        panic!("{a:?}")
    };
    let count = |b: &[u8]| String::from_utf8_lossy(b).matches("\r\n").count();
    assert_eq!(count(first), PIPELINE_WINDOW);
    let mut sent = PIPELINE_WINDOW;
    let mut answered = 0;
    let mut last = Vec::new();
    // Every reply but DATA's.
    while answered + 1 < sent {
        last = c.on_reply(ok("ok"));
        answered += 1;
        if let Some(Action::Send(b)) = last.first() {
            sent += count(b);
        }
    }
    // MAIL, 250 RCPTs, DATA; then the 354 to DATA ends up last.
    assert_eq!(sent, 252);
    assert_eq!(last, vec![]);
    assert_eq!(
        c.on_reply(Reply::new(354, None, "go")),
        vec![Action::SendMessage]
    );
}

#[test]
fn ehlo_refused_falls_back_to_helo() {
    let mut m = mail(&["bob@example.net"]);
    m.eight_bit = true;
    check(
        params(),
        vec![m],
        "
        S: 220 old.example.net SMTP
        C: EHLO router.lan
        S: 502 5.5.2 Error: command not recognized
        C: HELO router.lan
        S: 250 old.example.net
        C: MAIL FROM:<alice@example.org>
        S: 250 ok
        C: RCPT TO:<bob@example.net>
        S: 250 ok
        C: DATA
        S: 354 go
        -- message
        S: 250 ok
        -- done: 0 sent 250
        C: QUIT
        S: 221 bye
        -- close
        ",
    );
}

#[test]
fn starttls_then_auth_plain() {
    let mut p = params();
    p.starttls = StartTls::Required;
    p.credentials = creds("alice", "secret");
    let run = check(
        p,
        one(&["bob@example.net"]),
        "
        S: 220 smtp.example.org ESMTP
        C: EHLO router.lan
        S: 250-smtp.example.org
        S: 250-PIPELINING
        S: 250-STARTTLS
        S: 250 AUTH CRAM-MD5
        C: STARTTLS
        S: 220 2.0.0 Ready to start TLS
        -- starttls
        C: EHLO router.lan
        S: 250-smtp.example.org
        S: 250-PIPELINING
        S: 250-AUTH CRAM-MD5 LOGIN PLAIN
        S: 250 ENHANCEDSTATUSCODES
        C: AUTH PLAIN AGFsaWNlAHNlY3JldA==  [secret]
        S: 235 2.7.0 Authentication successful
        C: MAIL FROM:<alice@example.org>
        C: RCPT TO:<bob@example.net>
        C: DATA
        S: 250 2.1.0 Ok
        S: 250 2.1.5 Ok
        S: 354 go
        -- message
        S: 250 2.0.0 Ok
        -- done tls auth=PLAIN: 0 sent 250
        C: QUIT
        S: 221 bye
        -- close
        ",
    );
    assert!(run.outcomes[0].tls);
}

#[test]
fn starttls_required_but_not_offered() {
    let mut p = params();
    p.starttls = StartTls::Required;
    p.credentials = creds("alice", "secret");
    p.allow_plaintext_auth = true;
    let run = check(
        p,
        one(&["bob@example.net", "carol@example.net"]),
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250-mx
        S: 250-PIPELINING
        S: 250 AUTH PLAIN
        C: QUIT
        -- done session: 0 deferred 451, 1 deferred 451
        S: 221 bye
        -- close
        ",
    );
    let f = err(&run.outcomes[0], 1);
    assert!(f.local);
    assert_eq!(
        f.to_string(),
        "451 4.7.4 TLS is required for this route, but the server does not offer \
         STARTTLS (at EHLO)"
    );
}

#[test]
fn starttls_refused() {
    let script = |outcome: &str| {
        format!(
            "
            S: 220 mx ESMTP
            C: EHLO router.lan
            S: 250-mx
            S: 250 STARTTLS
            C: STARTTLS
            S: 454 4.7.0 TLS not available due to temporary reason
            {outcome}
            "
        )
    };
    // Required: defer.
    let mut p = params();
    p.starttls = StartTls::Required;
    check(
        p,
        one(&["bob@example.net"]),
        &script(
            "C: QUIT
             -- done session: 0 deferred 454",
        ),
    );
    // Opportunistic: go on in plaintext.
    let mut p = params();
    p.starttls = StartTls::IfOffered;
    check(
        p,
        one(&["bob@example.net"]),
        &script(
            "C: MAIL FROM:<alice@example.org>
             S: 250 ok
             C: RCPT TO:<bob@example.net>",
        ),
    );
}

/// A reply read together with the 220 to STARTTLS was sent in plaintext:
/// it must never count as if it came through TLS.
#[test]
fn starttls_response_injection() {
    let mut p = params();
    p.starttls = StartTls::Required;
    check(
        p,
        one(&["bob@example.net"]),
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250-mx
        S: 250 STARTTLS
        C: STARTTLS
        S: 220 go ahead
        S: 250-mx
        S: 250 AUTH PLAIN
        -- starttls
        -- done session: 0 deferred 451
        -- close
        ",
    );
}

#[test]
fn implicit_tls_prefers_plain_and_never_starttls() {
    let mut p = params();
    p.tls_active = true;
    p.credentials = creds("alice", "secret");
    check(
        p,
        one(&["bob@example.net"]),
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250-mx
        S: 250-STARTTLS
        S: 250 AUTH LOGIN CRAM-MD5 PLAIN
        C: AUTH PLAIN AGFsaWNlAHNlY3JldA==  [secret]
        S: 235 ok
        C: MAIL FROM:<alice@example.org>
        S: 250 ok
        C: RCPT TO:<bob@example.net>
        ",
    );
}

#[test]
fn auth_login() {
    let mut p = params();
    p.tls_active = true;
    p.credentials = creds("alice", "secret");
    p.auth_mechanism = Some(Mech::Login);
    check(
        p,
        one(&["bob@example.net"]),
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250-mx
        S: 250 AUTH=LOGIN PLAIN
        C: AUTH LOGIN
        S: 334 VXNlcm5hbWU6
        C: YWxpY2U=  [secret]
        S: 334 UGFzc3dvcmQ6
        C: c2VjcmV0  [secret]
        S: 235 2.7.0 Authentication successful
        C: MAIL FROM:<alice@example.org>
        S: 250 ok
        C: RCPT TO:<bob@example.net>
        ",
    );
}

/// RFC 2195 §2's example exchange; without TLS (allowed by the route)
/// CRAM-MD5 is preferred.
#[test]
fn auth_cram_md5_rfc2195() {
    let mut p = params();
    p.credentials = creds("tim", "tanstaaftanstaaf");
    p.allow_plaintext_auth = true;
    check(
        p,
        one(&["bob@example.net"]),
        "
        S: 220 postoffice.reston.mci.net ESMTP
        C: EHLO router.lan
        S: 250-postoffice.reston.mci.net
        S: 250 AUTH PLAIN LOGIN CRAM-MD5
        C: AUTH CRAM-MD5
        S: 334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+
        C: dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw  [secret]
        S: 235 Authentication successful
        C: MAIL FROM:<alice@example.org>
        S: 250 ok
        C: RCPT TO:<bob@example.net>
        ",
    );
}

/// 535: the credentials are wrong. Deferred, not bounced: they can be fixed.
#[test]
fn auth_refused_defers() {
    let mut p = params();
    p.tls_active = true;
    p.credentials = creds("alice", "wrong");
    let run = check(
        p,
        one(&["bob@example.net"]),
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250-mx
        S: 250 AUTH PLAIN
        C: AUTH PLAIN AGFsaWNlAHdyb25n  [secret]
        S: 535 5.7.8 Error: authentication failed
        C: QUIT
        -- done session tls: 0 deferred 535
        S: 221 bye
        -- close
        ",
    );
    assert_eq!(
        err(&run.outcomes[0], 0).to_string(),
        "535 5.7.8 Error: authentication failed (in reply to AUTH)"
    );
}

#[test]
fn auth_never_in_plaintext_unless_allowed() {
    let mut p = params();
    p.credentials = creds("alice", "secret");
    let run = check(
        p,
        one(&["bob@example.net"]),
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250-mx
        S: 250 AUTH PLAIN
        C: QUIT
        -- done session: 0 deferred 451
        ",
    );
    assert!(err(&run.outcomes[0], 0).to_string().contains("without TLS"));
}

#[test]
fn auth_mechanism_not_offered() {
    for (mech, offer, why) in [
        (
            Some(Mech::CramMd5),
            "250 AUTH PLAIN LOGIN",
            "does not offer AUTH CRAM-MD5",
        ),
        (None, "250 AUTH GSSAPI XOAUTH2", "no AUTH mechanism we know"),
        (None, "250 SIZE 100000", "does not offer AUTH"),
    ] {
        let mut p = params();
        p.tls_active = true;
        p.credentials = creds("alice", "secret");
        p.auth_mechanism = mech;
        let run = check(
            p,
            one(&["bob@example.net"]),
            &format!(
                "
                S: 220 mx ESMTP
                C: EHLO router.lan
                S: 250-mx
                S: {offer}
                C: QUIT
                -- done session tls: 0 deferred 451
                "
            ),
        );
        let f = err(&run.outcomes[0], 0).to_string();
        assert!(f.contains(why), "{f}");
    }
}

#[test]
fn mixed_rcpt_results() {
    let run = check(
        params(),
        one(&[
            "a@example.net",
            "b@example.net",
            "c@example.net",
            "d@example.net",
        ]),
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250-mx
        S: 250 PIPELINING
        C: MAIL FROM:<alice@example.org>
        C: RCPT TO:<a@example.net>
        C: RCPT TO:<b@example.net>
        C: RCPT TO:<c@example.net>
        C: RCPT TO:<d@example.net>
        C: DATA
        S: 250 ok
        S: 250 2.1.5 ok
        S: 451 4.7.1 greylisted, try again later
        S: 550 5.1.1 <c@example.net>: Recipient address rejected: User unknown
        S: 552 5.5.3 too many recipients
        S: 354 go
        -- message
        S: 250 2.0.0 queued
        -- done: 0 sent 250, 1 deferred 451, 2 bounced 550, 3 deferred 552
        C: QUIT
        S: 221 bye
        -- close
        ",
    );
    let o = &run.outcomes[0];
    assert_eq!(
        err(o, 2).to_string(),
        "550 5.1.1 <c@example.net>: Recipient address rejected: User unknown \
         (in reply to RCPT TO)"
    );
    assert_eq!(err(o, 2).stage, Stage::Rcpt);
}

#[test]
fn all_rcpts_refused_no_data() {
    // Lock-step: no DATA at all; the next message starts with RSET.
    let mut p = params();
    p.pipelining = false;
    check(
        p,
        vec![
            mail(&["a@example.net", "b@example.net"]),
            mail(&["c@example.net"]),
        ],
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250 mx
        C: MAIL FROM:<alice@example.org>
        S: 250 ok
        C: RCPT TO:<a@example.net>
        S: 550 no
        C: RCPT TO:<b@example.net>
        S: 450 later
        -- done: 0 bounced 550, 1 deferred 450
        C: RSET
        S: 250 ok
        C: MAIL FROM:<alice@example.org>
        S: 250 ok
        C: RCPT TO:<c@example.net>
        S: 250 ok
        C: DATA
        S: 354 go
        -- message
        S: 250 ok
        -- done: 0 sent 250
        C: QUIT
        S: 221 bye
        -- close
        ",
    );
    // Pipelined: DATA went out with the RCPTs; the server refuses it.
    check(
        params(),
        one(&["a@example.net"]),
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250-mx
        S: 250 PIPELINING
        C: MAIL FROM:<alice@example.org>
        C: RCPT TO:<a@example.net>
        C: DATA
        S: 250 ok
        S: 550 5.1.1 no
        S: 554 5.5.1 Error: no valid recipients
        -- done: 0 bounced 550
        C: QUIT
        S: 221 bye
        -- close
        ",
    );
}

/// RFC 2920 §3.1: DATA accepted though every RCPT failed: a lone "."
/// ends an empty message that goes nowhere.
#[test]
fn pipelined_354_without_recipients() {
    check(
        params(),
        one(&["a@example.net"]),
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250-mx
        S: 250 PIPELINING
        C: MAIL FROM:<alice@example.org>
        C: RCPT TO:<a@example.net>
        C: DATA
        S: 250 ok
        S: 550 no
        S: 354 go
        C: .
        S: 554 no valid recipients
        -- done: 0 bounced 550
        C: QUIT
        S: 221 bye
        -- close
        ",
    );
}

#[test]
fn mail_from_refused() {
    // Pipelined: the RCPTs and DATA get 503s; everyone gets MAIL's reply.
    let run = check(
        params(),
        one(&["a@example.net", "b@example.net"]),
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250-mx
        S: 250 PIPELINING
        C: MAIL FROM:<alice@example.org>
        C: RCPT TO:<a@example.net>
        C: RCPT TO:<b@example.net>
        C: DATA
        S: 452 4.3.1 Insufficient system storage
        S: 503 5.5.1 Error: need MAIL command
        S: 503 5.5.1 Error: need MAIL command
        S: 503 5.5.1 Error: need MAIL command
        -- done: 0 deferred 452, 1 deferred 452
        C: QUIT
        S: 221 bye
        -- close
        ",
    );
    assert_eq!(err(&run.outcomes[0], 1).stage, Stage::Mail);
    // Lock-step, permanent.
    let mut p = params();
    p.pipelining = false;
    check(
        p,
        one(&["a@example.net", "b@example.net"]),
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250 mx
        C: MAIL FROM:<alice@example.org>
        S: 553 5.7.1 sender rejected
        -- done: 0 bounced 553, 1 bounced 553
        C: QUIT
        S: 221 bye
        -- close
        ",
    );
}

#[test]
fn data_refused() {
    check(
        params(),
        vec![
            mail(&["a@example.net", "b@example.net"]),
            mail(&["c@example.net"]),
        ],
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250-mx
        S: 250 PIPELINING
        C: MAIL FROM:<alice@example.org>
        C: RCPT TO:<a@example.net>
        C: RCPT TO:<b@example.net>
        C: DATA
        S: 250 ok
        S: 250 ok
        S: 550 no
        S: 554 5.7.1 transaction failed
        -- done: 0 bounced 554, 1 bounced 550
        C: RSET
        S: 250 ok
        C: MAIL FROM:<alice@example.org>
        C: RCPT TO:<c@example.net>
        C: DATA
        ",
    );
}

#[test]
fn end_of_data_refused() {
    let run = check(
        params(),
        one(&["a@example.net", "b@example.net"]),
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250 mx
        C: MAIL FROM:<alice@example.org>
        S: 250 ok
        C: RCPT TO:<a@example.net>
        S: 250 ok
        C: RCPT TO:<b@example.net>
        S: 250 ok
        C: DATA
        S: 354 go
        -- message
        S: 554 5.7.1 message content rejected
        -- done: 0 bounced 554, 1 bounced 554
        C: QUIT
        S: 221 bye
        -- close
        ",
    );
    assert_eq!(err(&run.outcomes[0], 0).stage, Stage::DataEnd);
    assert_eq!(
        err(&run.outcomes[0], 0).to_string(),
        "554 5.7.1 message content rejected (in reply to end of DATA)"
    );
}

/// The message went out, the final reply never came: nothing is confirmed,
/// so everything is deferred (it may arrive twice, never not at all).
#[test]
fn connection_lost_after_data() {
    let run = check(
        params(),
        one(&["a@example.net", "b@example.net"]),
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250-mx
        S: 250 PIPELINING
        C: MAIL FROM:<alice@example.org>
        C: RCPT TO:<a@example.net>
        C: RCPT TO:<b@example.net>
        C: DATA
        S: 250 ok
        S: 250 ok
        S: 550 no such user
        S: 354 go
        -- message
        !lost
        -- done: 0 deferred 451, 1 bounced 550
        ",
    );
    let f = err(&run.outcomes[0], 0);
    assert_eq!(f.to_string(), "451 4.4.2 connection lost (at end of DATA)");
    assert!(f.local && !run.outcomes[0].session_failure);
}

#[test]
fn connection_lost_before_mail_is_a_session_failure() {
    check(
        params(),
        one(&["a@example.net"]),
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        !lost
        -- done session: 0 deferred 451
        ",
    );
}

#[test]
fn size_too_big() {
    let mut m = mail(&["a@example.net", "b@example.net"]);
    m.size = 20_000_000;
    let run = check(
        params(),
        vec![m],
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250-mx
        S: 250 SIZE 10240000
        -- done: 0 bounced 552, 1 bounced 552
        C: QUIT
        S: 221 bye
        -- close
        ",
    );
    assert_eq!(
        err(&run.outcomes[0], 1).to_string(),
        "552 5.3.4 message size 20000000 exceeds the server's limit of 10240000 bytes \
         (at MAIL FROM)"
    );
    // SIZE 0: no limit.
    let mut m = mail(&["a@example.net"]);
    m.size = 20_000_000;
    check(
        params(),
        vec![m],
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250-mx
        S: 250 SIZE 0
        C: MAIL FROM:<alice@example.org> SIZE=20000000
        ",
    );
}

#[test]
fn greeting_refused() {
    check(
        params(),
        one(&["a@example.net"]),
        "
        S: 554 5.7.1 no service for you
        C: QUIT
        -- done session: 0 deferred 554
        S: 221 bye
        -- close
        ",
    );
}

#[test]
fn service_closing_421() {
    check(
        params(),
        one(&["a@example.net", "b@example.net"]),
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250-mx
        S: 250 PIPELINING
        C: MAIL FROM:<alice@example.org>
        C: RCPT TO:<a@example.net>
        C: RCPT TO:<b@example.net>
        C: DATA
        S: 250 ok
        S: 550 no
        S: 421 4.3.2 shutting down
        -- done: 0 bounced 550, 1 deferred 421
        -- close
        ",
    );
}

#[test]
fn garbage_reply_defers() {
    for garbage in ["hello there", "2500 ok", "250-a", "99 x"] {
        let script = format!(
            "
            S: 220 mx ESMTP
            C: EHLO router.lan
            S: 250 mx
            C: MAIL FROM:<alice@example.org>
            S: {garbage}
            S: 251 x
            "
        );
        let run = play(params(), one(&["a@example.net"]), &script);
        let last = run.out.last().unwrap();
        assert_eq!(last, "-- done: 0 deferred 451", "{garbage}: {:?}", run.out);
        assert!(run.out.iter().any(|l| l.starts_with("-- bad reply: ")));
    }
}

#[test]
fn early_reply_during_message() {
    let mut c = Client::new(params(), mail(&["a@example.net"]));
    c.on_reply(Reply::new(220, None, "mx"));
    c.on_reply(Reply::new(250, None, "mx"));
    c.on_reply(Reply::new(250, None, "ok"));
    c.on_reply(Reply::new(250, None, "ok"));
    assert_eq!(
        c.on_reply(Reply::new(354, None, "go")),
        vec![Action::SendMessage]
    );
    // The server gives up before the end of the message.
    let a = c.on_reply(Reply::new(552, Some((5, 3, 4)), "too big"));
    let [Action::Done(o), Action::Close] = &a[..] else {
        panic!("{a:?}")
    };
    assert_eq!(summary(o), "-- done: 0 bounced 552");
}

#[test]
fn zero_recipients_sends_nothing() {
    check(
        params(),
        one(&[]),
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250 mx
        -- done: nothing
        C: QUIT
        ",
    );
}

#[test]
fn null_sender() {
    let mut m = mail(&["a@example.net"]);
    m.sender = Sender::Null;
    check(
        params(),
        vec![m],
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250 mx
        C: MAIL FROM:<>
        ",
    );
}

#[test]
fn timeouts_follow_rfc5321() {
    let mut p = params();
    p.pipelining = false;
    let mut c = Client::new(p, mail(&["a@example.net"]));
    assert_eq!(c.timeout(), Duration::from_secs(300));
    c.on_reply(Reply::new(220, None, "mx"));
    assert_eq!(c.timeout(), TIMEOUT_OTHER);
    c.on_reply(Reply::new(250, None, "mx"));
    assert_eq!(c.timeout(), TIMEOUT_MAIL);
    c.on_reply(Reply::new(250, None, "ok"));
    assert_eq!(c.timeout(), TIMEOUT_RCPT);
    c.on_reply(Reply::new(250, None, "ok"));
    assert_eq!(c.timeout(), Duration::from_secs(120));
    c.on_reply(Reply::new(354, None, "go"));
    assert_eq!(c.timeout(), Duration::from_secs(180));
    c.message_sent();
    assert_eq!(c.timeout(), Duration::from_secs(600));
}

#[test]
fn misuse_does_not_panic() {
    let mut c = Client::new(params(), mail(&["a@example.net"]));
    assert_eq!(c.tls_started(), vec![]);
    c.message_sent();
    let a = c.next_message(mail(&["b@example.net"]));
    assert_eq!(
        a.iter()
            .map(|a| matches!(a, Action::Done(_)))
            .collect::<Vec<_>>(),
        [true]
    );
    let a = c.quit();
    assert!(matches!(&a[..], [Action::Done(_), Action::Close]));
    assert_eq!(c.on_reply(Reply::new(250, None, "late")), vec![]);
    assert!(c.connection_lost().per_rcpt.is_empty());
}

/// Any sequence of replies: no panic, and the session always ends.
#[test]
fn random_replies_never_panic() {
    let codes = [
        220, 221, 235, 250, 251, 334, 354, 421, 450, 451, 452, 500, 502, 535, 550, 552, 554,
    ];
    let texts = [
        "ok",
        "mx\nPIPELINING\nSTARTTLS\nAUTH PLAIN LOGIN CRAM-MD5\nSIZE 10",
        "Zm9v",
        "!!",
    ];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let mut p = params();
        p.credentials = creds("a", "b");
        p.allow_plaintext_auth = next() % 2 == 0;
        p.starttls =
            [StartTls::Never, StartTls::IfOffered, StartTls::Required][(next() % 3) as usize];
        p.pipelining = next() % 2 == 0;
        let mut c = Client::new(
            p,
            mail(&["a@example.net", "b@example.net", "c@example.net"]),
        );
        for _ in 0..20 {
            let r = Reply::new(
                codes[(next() % codes.len() as u64) as usize],
                None,
                texts[(next() % texts.len() as u64) as usize],
            );
            for a in c.on_reply(r) {
                match a {
                    Action::StartTls => {
                        c.tls_started();
                    }
                    Action::SendMessage => c.message_sent(),
                    Action::Done(o) => assert_eq!(o.per_rcpt.len(), 3),
                    _ => {}
                }
            }
        }
        let o = c.connection_lost();
        assert!(o.per_rcpt.is_empty() || o.per_rcpt.len() == 3);
    }
}

#[test]
fn extensions_parsing() {
    let r = Reply::new(
        250,
        None,
        "mx.example.net Hello router [192.0.2.1]\npipelining\nSIZE 35882577\n8BITMIME\n\
         STARTTLS\nAUTH=LOGIN\nAUTH LOGIN PLAIN XOAUTH2 plain\nENHANCEDSTATUSCODES\nCHUNKING",
    );
    let e = Extensions::from_ehlo(&r);
    assert_eq!(e.domain, "mx.example.net");
    assert!(e.esmtp && e.pipelining && e.eight_bit_mime && e.starttls && e.enhanced_status_codes);
    assert_eq!(e.size, Some(35882577));
    assert_eq!(e.auth, [Mech::Login, Mech::Plain]);
    let e = Extensions::from_ehlo(&Reply::new(250, None, "mx\nSIZE\nSIZE x"));
    assert_eq!(e.size, Some(0));
}

#[test]
fn secrets_stay_out_of_debug() {
    let mut p = params();
    p.credentials = creds("alice", "hunter2");
    let c = Client::new(p, mail(&["a@example.net"]));
    let dbg = format!("{c:?}");
    assert!(dbg.contains("alice") && !dbg.contains("hunter2"), "{dbg}");
    let a = Action::SendSecret(b"AUTH PLAIN AGFsaWNlAGh1bnRlcjI=\r\n".to_vec());
    assert_eq!(format!("{a:?}"), "SendSecret(<33 bytes>)");
}

#[test]
fn params_from_route() {
    let text = "config route 'isp'\n\
         \toption mail_host 'smtp.example.org:587'\n\
         \toption tls 'starttls'\n\
         \toption auth_name 'cram-md5'\n\
         \toption auth_login 'me'\n\
         \toption auth_secret 'pw'\n\
         \toption do_pipelining '0'\n";
    let cfg = crate::config::from_bytes(std::path::Path::new("test.conf"), text.as_bytes())
        .expect("config");
    let p = Params::for_route(&cfg.routes[0], "router.lan");
    assert_eq!(p.helo_name, "router.lan");
    assert_eq!(p.starttls, StartTls::Required);
    assert!(!p.tls_active && !p.pipelining && !p.allow_plaintext_auth);
    assert_eq!(p.auth_mechanism, Some(Mech::CramMd5));
    assert_eq!(p.credentials, creds("me", "pw"));
}

#[test]
fn dot_stuffing() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"hello\n", b"hello\r\n"),
        (b"hello", b"hello\r\n"),
        (b".\n", b"..\r\n"),
        (b".hidden\r\n", b"..hidden\r\n"),
        (b"a.b\n", b"a.b\r\n"),
        (b"", b""),
    ];
    for (line, want) in cases {
        let mut out = Vec::new();
        dot_stuff_line(line, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(want),
            "{line:?}"
        );
    }
    // A whole message, fed in every split: LF, CRLF, bare CR and a final
    // line without an end all come out as CRLF lines; dots are doubled.
    let msg: &[u8] = b"Subject: x\n\n.\n..two\r\nbare\rcr\nlast.";
    let want: &[u8] = b"Subject: x\r\n\r\n..\r\n...two\r\nbare\r\ncr\r\nlast.\r\n.\r\n";
    for split in 0..=msg.len() {
        let mut out = Vec::new();
        let mut d = DotStuffer::new();
        d.push(&msg[..split], &mut out);
        d.push(&msg[split..], &mut out);
        d.finish(&mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(want),
            "split {split}"
        );
    }
    // The smuggling sequence "\n.\r" cannot end DATA early.
    let mut out = Vec::new();
    let mut d = DotStuffer::new();
    d.push(b"a\n.\rb\n", &mut out);
    d.finish(&mut out);
    assert_eq!(out, b"a\r\n..\r\nb\r\n.\r\n");
}

/// A 2xx to DATA is not a 354: nothing was transferred, nothing delivered.
#[test]
fn data_answered_250_confirms_nothing() {
    check(
        params(),
        one(&["a@example.net"]),
        "
        S: 220 mx ESMTP
        C: EHLO router.lan
        S: 250-mx
        S: 250 PIPELINING
        C: MAIL FROM:<alice@example.org>
        C: RCPT TO:<a@example.net>
        C: DATA
        S: 250 ok
        S: 250 ok
        S: 250 ok
        -- done: 0 deferred 250
        C: QUIT
        ",
    );
}
