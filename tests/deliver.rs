//! Queue-out through SMTP routes, end to end: messages queued with the
//! `sendmail` command, `runq` run as a user would, and real SMTP servers
//! on loopback (the sink of tests/common/sink.rs, a DNS server of
//! tests/common/dns.rs). What the servers receive is the verdict.

mod common;
#[path = "common/dns.rs"]
mod dns;
#[path = "common/sink.rs"]
mod sink;

use std::collections::HashMap;
use std::fs;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sink::{Behaviour, Got, Sink};

fn mta(tag: &str, extra: &str, sections: &str) -> Mta {
    Mta::with_dir_config(tag, extra, sections)
}

/// A permanent route to the sink.
fn route_to(name: &str, sink: &Sink, more: &str) -> String {
    format!(
        "config route '{name}'\n\toption permanent '1'\n\toption mail_host '127.0.0.1:{}'\n\
         \toption tls 'none'\n{more}\n",
        sink.port
    )
}

/// Queue `msg` from `from` ("" for the null sender) to `to`.
fn send(m: &Mta, from: &str, to: &[&str], msg: &str) {
    let from = if from.is_empty() { "<>" } else { from };
    let mut args = vec!["-f", from];
    args.extend_from_slice(to);
    expect_code(&m.sendmail(&args, msg), 0);
}

fn runq(m: &Mta) {
    let out = m.run("runq", &[], b"");
    expect_code(&out, 0);
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

/// The message as the sink got it, with LF line ends.
fn text(g: &Got) -> String {
    g.data.replace("\r\n", "\n")
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    let head = msg.split("\n\n").next().unwrap_or("");
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn body(msg: &str) -> &str {
    msg.split_once("\n\n").map_or("", |(_, b)| b)
}

#[test]
fn hundred_messages_arrive_exactly_once() {
    let sink = Sink::start(Behaviour::default());
    let m = mta("hundred", "", &route_to("out", &sink, ""));
    for i in 0..100 {
        send(
            &m,
            "bob@remote.example",
            &["x@example.org"],
            &format!("Subject: n{i}\n\nmessage {i}\n"),
        );
    }
    assert_eq!(m.queued_ids().len(), 100);
    runq(&m);
    let got = sink.messages();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for g in &got {
        let t = text(g);
        *seen
            .entry(header(&t, "Subject").unwrap_or("").to_string())
            .or_default() += 1;
        assert_eq!(g.from, "bob@remote.example");
        assert_eq!(g.rcpts, ["x@example.org"]);
        assert!(!g.tls);
    }
    for i in 0..100 {
        assert_eq!(seen.get(&format!("n{i}")), Some(&1), "message n{i}");
    }
    assert_eq!(got.len(), 100);
    // one session carried them all
    assert_eq!(
        sink.connections.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    assert!(got.iter().all(|g| g.conn == 1));
    assert_eq!(m.mailq(), "Mail queue is empty\n");
    assert!(m.files("pool").is_empty(), "{:?}", m.files("pool"));
    // A second run finds nothing to do.
    runq(&m);
    assert_eq!(sink.messages().len(), 100);
}

#[test]
fn deferred_recipient_is_delivered_on_the_next_run() {
    let mut b = Behaviour::default();
    b.rcpt_replies.insert(
        "later@example.org".into(),
        "451 4.3.0 try again later".into(),
    );
    let sink = Sink::start(b);
    let m = mta("defer", "", &route_to("out", &sink, ""));
    send(
        &m,
        "bob@remote.example",
        &["now@example.org", "later@example.org"],
        "Subject: two\n\nhello\n",
    );
    // One log line per recipient (-v echoes them to stderr).
    let out = m.run("runq", &["-v"], b"");
    expect_code(&out, 0);
    let log = stderr(&out);
    let relay = format!("relay=127.0.0.1[127.0.0.1]:{}", sink.port);
    for want in [
        format!("=> now@example.org route=out {relay} status=sent (250 2.0.0 queued)"),
        format!(
            "=> later@example.org route=out {relay} status=deferred \
             (451 4.3.0 try again later (in reply to RCPT TO))"
        ),
    ] {
        assert!(log.lines().any(|l| l.ends_with(&want)), "{want}\nin\n{log}");
    }
    let got = sink.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpts, ["now@example.org"]);
    let q = m.mailq();
    assert!(
        q.contains("later@example.org  last error: 451 4.3.0 try again later"),
        "{q}"
    );
    assert!(!q.contains("now@example.org"), "{q}");
    // The server gets better; a run asked for by a person ignores backoff.
    sink.behaviour.lock().unwrap().rcpt_replies.clear();
    runq(&m);
    let got = sink.messages();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].rcpts, ["later@example.org"]);
    assert_eq!(m.mailq(), "Mail queue is empty\n");
}

/// The MIME parts of a multipart body: (part headers, part body).
fn parts(msg: &str) -> Vec<(String, String)> {
    let ct = header(msg, "Content-Type").expect("Content-Type");
    // the boundary may be on a continuation line
    let head = msg.split("\n\n").next().unwrap_or("");
    let b = head
        .split("boundary=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no boundary in {ct}"));
    let body = body(msg);
    let delim = format!("--{b}");
    let end = format!("--{b}--");
    assert!(body.contains(&end), "no closing boundary");
    body.split(&delim)
        .skip(1)
        .filter(|p| !p.starts_with("--"))
        .map(|p| {
            let p = p.strip_prefix('\n').unwrap_or(p);
            let (h, b) = p.split_once("\n\n").unwrap_or((p, ""));
            (h.to_string(), b.to_string())
        })
        .collect()
}

#[test]
fn permanent_failure_bounces_with_an_rfc3464_report() {
    let mut b = Behaviour::default();
    b.rcpt_replies.insert(
        "nobody@example.org".into(),
        "550 5.1.1 <nobody@example.org>: no such user".into(),
    );
    let sink = Sink::start(b);
    let m = mta("bounce", "", &route_to("out", &sink, ""));
    send(
        &m,
        "bob@remote.example",
        &["nobody@example.org", "ok@example.org"],
        "Subject: doomed\nMessage-ID: <doomed.1@remote.example>\n\nbody line\n",
    );
    runq(&m);
    // The good recipient got the message; the bounce went out in the same
    // run, with the null sender, to the original sender.
    let got = sink.messages();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].rcpts, ["ok@example.org"]);
    let dsn = &got[1];
    assert_eq!(dsn.from, "", "bounces use the null sender");
    assert_eq!(dsn.rcpts, ["bob@remote.example"]);
    let t = text(dsn);
    let ct = header(&t, "Content-Type").unwrap();
    assert!(
        ct.starts_with("multipart/report;") && t.contains("report-type=delivery-status"),
        "{t}"
    );
    assert_eq!(header(&t, "Auto-Submitted"), Some("auto-replied"));
    let p = parts(&t);
    assert_eq!(p.len(), 3, "{t}");
    assert!(p[0].0.contains("text/plain"), "{:?}", p[0]);
    assert!(p[0].1.contains("nobody@example.org"), "{:?}", p[0]);
    assert!(p[1].0.contains("Content-Type: message/delivery-status"));
    let report = &p[1].1;
    // RFC 3464 §2.2: the per-message fields, then a blank line and the
    // per-recipient fields.
    assert!(
        report.starts_with(&format!("Reporting-MTA: dns; {HOST}\n")),
        "{report}"
    );
    let per_rcpt = report.split("\n\n").nth(1).expect("per-recipient block");
    for want in [
        "Final-Recipient: rfc822; nobody@example.org",
        "Action: failed",
        "Status: 5.1.1",
        "Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.org>: no such user",
    ] {
        assert!(per_rcpt.lines().any(|l| l == want), "{want} in\n{report}");
    }
    assert!(!report.contains("ok@example.org"), "{report}");
    assert!(p[2].0.contains("Content-Type: text/rfc822-headers"));
    assert!(p[2].1.contains("Subject: doomed"), "{}", p[2].1);
    assert!(
        p[2].1.contains("Message-ID: <doomed.1@remote.example>"),
        "{}",
        p[2].1
    );
    assert!(!p[2].1.contains("body line"), "only the headers come back");
    assert_eq!(m.mailq(), "Mail queue is empty\n");
}

#[test]
fn bounce_of_a_bounce_goes_to_postmaster_once_then_is_dropped() {
    let mut b = Behaviour::default();
    b.rcpt_replies
        .insert("gone@example.org".into(), "550 5.1.1 gone".into());
    let sink = Sink::start(b);
    let aliases = "config alias\n\toption name 'postmaster'\n\tlist to 'pm@admin.example'\n";
    let m = mta(
        "nullbounce",
        "",
        &format!("{}{aliases}", route_to("out", &sink, "")),
    );
    // A bounce (null sender) that cannot be delivered.
    send(&m, "", &["gone@example.org"], "Subject: a bounce\n\nx\n");
    runq(&m);
    runq(&m);
    let got = sink.messages();
    assert_eq!(got.len(), 1, "one double bounce, nothing more: {got:?}");
    assert_eq!(got[0].from, "");
    assert_eq!(got[0].rcpts, ["pm@admin.example"]);
    assert!(text(&got[0]).contains("Final-Recipient: rfc822; gone@example.org"));
    assert_eq!(m.mailq(), "Mail queue is empty\n");

    // Now postmaster's mail fails too: the double bounce is dropped.
    sink.behaviour
        .lock()
        .unwrap()
        .rcpt_replies
        .insert("pm@admin.example".into(), "550 5.1.1 no postmaster".into());
    send(
        &m,
        "",
        &["gone@example.org"],
        "Subject: another bounce\n\nx\n",
    );
    for _ in 0..3 {
        runq(&m);
    }
    assert_eq!(sink.messages().len(), 1, "no mail loop");
    assert_eq!(m.mailq(), "Mail queue is empty\n");
}

#[test]
fn route_chosen_by_sender_recipient_and_from_header() {
    let (s_alice, s_b, s_carol, s_rest) = (
        Sink::start(Behaviour::default()),
        Sink::start(Behaviour::default()),
        Sink::start(Behaviour::default()),
        Sink::start(Behaviour::default()),
    );
    let routes = [
        route_to("alice", &s_alice, "\tlist allowed_senders 'alice'\n"),
        route_to(
            "b",
            &s_b,
            "\tlist allowed_recipients '*@b.example'\n\tlist denied_senders '<>'\n",
        ),
        route_to("carol", &s_carol, "\tlist allowed_from_hdrs 'carol@*'\n"),
        route_to("rest", &s_rest, ""),
    ]
    .concat();
    let m = mta("criteria", "", &routes);
    send(
        &m,
        "alice@remote.example",
        &["x@b.example"],
        "Subject: 1\n\n1\n",
    );
    send(
        &m,
        "bob@remote.example",
        &["x@b.example"],
        "Subject: 2\n\n2\n",
    );
    send(
        &m,
        "bob@remote.example",
        &["x@c.example"],
        "From: Carol <carol@remote.example>\nSubject: 3\n\n3\n",
    );
    send(
        &m,
        "bob@remote.example",
        &["x@c.example"],
        "Subject: 4\n\n4\n",
    );
    send(&m, "", &["x@b.example"], "Subject: 5\n\n5\n");
    runq(&m);
    let subjects = |s: &Sink| -> Vec<String> {
        s.messages()
            .iter()
            .map(|g| header(&text(g), "Subject").unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(subjects(&s_alice), ["1"]);
    assert_eq!(subjects(&s_b), ["2"]);
    assert_eq!(subjects(&s_carol), ["3"]);
    assert_eq!(subjects(&s_rest), ["4", "5"]);
}

#[test]
fn temporary_failure_falls_back_unless_last_route() {
    let b = Behaviour {
        greeting: Some("421 4.3.2 too busy".into()),
        ..Behaviour::default()
    };
    let busy = Sink::start(b);
    let spare = Sink::start(Behaviour::default());
    let m = mta(
        "fallback",
        "",
        &[
            route_to("busy", &busy, "\tlist allowed_recipients '*@example.org'\n"),
            route_to(
                "strict",
                &busy,
                "\tlist allowed_recipients '*@strict.example'\n\toption last_route '1'\n",
            ),
            route_to("spare", &spare, ""),
        ]
        .concat(),
    );
    send(
        &m,
        "bob@remote.example",
        &["x@example.org"],
        "Subject: fb\n\nx\n",
    );
    send(
        &m,
        "bob@remote.example",
        &["y@strict.example"],
        "Subject: lr\n\ny\n",
    );
    runq(&m);
    let got = spare.messages();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].rcpts, ["x@example.org"]);
    // last_route: deferred, never given to the spare route
    let q = m.mailq();
    assert!(
        q.contains("y@strict.example  last error: 421 4.3.2 too busy"),
        "{q}"
    );
    assert_eq!(m.queued_ids().len(), 1);
    assert!(busy.connections.load(std::sync::atomic::Ordering::SeqCst) >= 2);
}

#[test]
fn rewriting_is_what_the_server_sees() {
    let sink = Sink::start(Behaviour::default());
    let m = mta(
        "rewrite",
        "",
        &route_to(
            "isp",
            &sink,
            "\toption set_return_path_domain 'isp.example'\n\
             \tlist map_h_from_addresses 'alice: Alice Liddell <alice.liddell@isp.example>'\n\
             \toption set_h_reply_to_domain 'isp.example'\n",
        ),
    );
    send(
        &m,
        &format!("alice@{HOST}"),
        &["x@example.org"],
        &format!(
            "From: alice@{HOST}\nReply-To: alice@{HOST}\nTo: x@example.org\nSubject: rw\n\nhi\n"
        ),
    );
    // A remote sender is not rewritten.
    send(
        &m,
        "bob@remote.example",
        &["x@example.org"],
        "From: bob@remote.example\nSubject: kept\n\nhi\n",
    );
    runq(&m);
    let got = sink.messages();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].from, "alice@isp.example");
    let t = text(&got[0]);
    assert_eq!(
        header(&t, "From"),
        Some("Alice Liddell <alice.liddell@isp.example>")
    );
    assert_eq!(header(&t, "Reply-To"), Some("alice@isp.example"));
    assert_eq!(header(&t, "To"), Some("x@example.org"));
    assert_eq!(got[1].from, "bob@remote.example");
    assert_eq!(header(&text(&got[1]), "From"), Some("bob@remote.example"));
    // The spool keeps the original: rewriting is for the copy sent only.
    sink.behaviour
        .lock()
        .unwrap()
        .rcpt_replies
        .insert("later@example.org".into(), "451 4.3.0 later".into());
    send(
        &m,
        &format!("alice@{HOST}"),
        &["later@example.org"],
        &format!("From: alice@{HOST}\nSubject: kept\n\nhi\n"),
    );
    runq(&m);
    let ids = m.queued_ids();
    assert_eq!(ids.len(), 1);
    let hf = m.outgoing(&ids[0]);
    assert!(hf.contains(&format!("MF:<alice@{HOST}>\n")), "{hf}");
    assert!(hf.contains(&format!("HD:From: alice@{HOST}\n")), "{hf}");
}

#[test]
fn connection_dropped_in_data_defers_and_loses_nothing() {
    let b = Behaviour {
        drop_in_data: true,
        ..Behaviour::default()
    };
    let sink = Sink::start(b);
    let m = mta("dropdata", "", &route_to("out", &sink, ""));
    send(
        &m,
        "bob@remote.example",
        &["x@example.org"],
        "Subject: fragile\n\nline 1\nline 2\nline 3\n",
    );
    runq(&m);
    assert!(sink.messages().is_empty());
    let q = m.mailq();
    assert!(
        q.contains("x@example.org  last error: 451 4.4.2 connection lost"),
        "{q}"
    );
    sink.behaviour.lock().unwrap().drop_in_data = false;
    runq(&m);
    let got = sink.messages();
    assert_eq!(got.len(), 1);
    assert!(text(&got[0]).ends_with("line 1\nline 2\nline 3\n"));
    assert_eq!(m.mailq(), "Mail queue is empty\n");
}

#[test]
fn refused_connection_defers_or_fails_with_connect_error_fail() {
    // a port where nothing listens
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sink = Sink::start(Behaviour::default());
    let routes = format!(
        "config route 'down'\n\toption permanent '1'\n\toption mail_host '127.0.0.1:{port}'\n\
         \toption tls 'none'\n\tlist allowed_recipients '*@down.example'\n\toption last_route '1'\n\n\
         config route 'hard'\n\toption permanent '1'\n\toption mail_host '127.0.0.1:{port}'\n\
         \toption tls 'none'\n\tlist allowed_recipients '*@hard.example'\n\toption connect_error_fail '1'\n\n{}",
        route_to("rest", &sink, "")
    );
    let m = mta("refused", "", &routes);
    send(
        &m,
        "bob@remote.example",
        &["x@down.example"],
        "Subject: d\n\nx\n",
    );
    send(
        &m,
        "bob@remote.example",
        &["x@hard.example"],
        "Subject: h\n\nx\n",
    );
    runq(&m);
    let q = m.mailq();
    assert!(
        q.contains("x@down.example  last error: connect to 127.0.0.1"),
        "{q}"
    );
    assert!(!q.contains("hard.example"), "{q}");
    // the bounce for the hard one went to the sender through `rest`
    let got = sink.messages();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].rcpts, ["bob@remote.example"]);
    assert!(text(&got[0]).contains("Final-Recipient: rfc822; x@hard.example"));
}

#[test]
fn expired_message_bounces_after_max_defer_time() {
    let mut b = Behaviour::default();
    b.rcpt_replies
        .insert("slow@example.org".into(), "450 4.2.0 mailbox busy".into());
    let sink = Sink::start(b);
    let m = mta(
        "expire",
        "\toption max_defer_time '1'\n",
        &route_to("out", &sink, ""),
    );
    send(
        &m,
        "bob@remote.example",
        &["slow@example.org"],
        "Subject: e\n\nx\n",
    );
    runq(&m);
    assert!(sink.messages().is_empty());
    assert_eq!(m.queued_ids().len(), 1);
    std::thread::sleep(Duration::from_millis(2100));
    runq(&m);
    let got = sink.messages();
    assert_eq!(got.len(), 1, "{got:?}");
    let t = text(&got[0]);
    assert_eq!(got[0].from, "");
    assert!(t.contains("Status: 4.2.0"), "{t}");
    assert!(t.contains("Action: failed"), "{t}");
    assert!(t.contains("expired"), "{t}");
    assert_eq!(m.mailq(), "Mail queue is empty\n");
}

#[test]
fn delay_warning_is_sent_once() {
    let mut b = Behaviour::default();
    b.rcpt_replies
        .insert("slow@example.org".into(), "450 4.2.0 mailbox busy".into());
    let sink = Sink::start(b);
    let m = mta(
        "delaywarn",
        "\toption delay_warning '1'\n",
        &route_to("out", &sink, ""),
    );
    send(
        &m,
        "bob@remote.example",
        &["slow@example.org"],
        "Subject: w\n\nx\n",
    );
    runq(&m);
    assert!(
        sink.messages().is_empty(),
        "no warning before delay_warning"
    );
    std::thread::sleep(Duration::from_millis(2100));
    runq(&m);
    runq(&m);
    let got = sink.messages();
    assert_eq!(got.len(), 1, "one warning: {got:?}");
    let t = text(&got[0]);
    assert_eq!(got[0].rcpts, ["bob@remote.example"]);
    assert!(t.contains("Action: delayed"), "{t}");
    assert!(t.contains("Status: 4.2.0"), "{t}");
    // still queued, still retried
    assert_eq!(m.queued_ids().len(), 1);
}

#[test]
fn kill_9_mid_run_then_rerun_loses_nothing() {
    const N: usize = 60;
    let b = Behaviour {
        data_delay: Some(Duration::from_millis(20)),
        ..Behaviour::default()
    };
    let sink = Sink::start(b);
    let m = mta("kill9", "", &route_to("out", &sink, ""));
    for i in 0..N {
        send(
            &m,
            "bob@remote.example",
            &["x@example.org"],
            &format!("Subject: k{i}\n\nmessage {i}\n"),
        );
    }
    let mut child = Command::new(m.bin.join("runq"))
        .args(["-C", m.conf.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runq");
    // Kill it once a good part, not all, has arrived.
    let t = Instant::now();
    while sink.messages().len() < N / 3 && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill -9");
    child.wait().expect("wait");
    let before = sink.messages().len();
    assert!(before < N, "the run finished before the kill");
    runq(&m);
    let mut count: HashMap<String, usize> = HashMap::new();
    for g in sink.messages() {
        *count
            .entry(header(&text(&g), "Subject").unwrap_or("").to_string())
            .or_default() += 1;
    }
    let dups: usize = count.values().map(|c| c - 1).sum();
    for i in 0..N {
        assert!(count.contains_key(&format!("k{i}")), "k{i} lost");
    }
    eprintln!("kill -9 after {before} of {N}: {dups} duplicate(s)");
    assert!(dups <= 1, "{dups} duplicates: at most the one in flight");
    assert_eq!(m.mailq(), "Mail queue is empty\n");
    m.assert_clean_spool();
}

#[test]
fn pipe_route_with_from_line_and_quoting() {
    let m = mta(
        "piperoute",
        "",
        "config route 'uucp'\n\toption permanent '1'\n\
         \toption pipe '/bin/sh -c \"cat > @DIR@/piped.%{rcpt}\"'\n\
         \toption pipe_fromline '1'\n\toption pipe_fromhack '1'\n",
    );
    send(
        &m,
        "bob@remote.example",
        &["x@example.org"],
        "Subject: p\n\nFrom the start\n>From quoted\n",
    );
    runq(&m);
    let out = fs::read_to_string(m.dir.path().join("piped.x@example.org")).expect("piped");
    assert!(out.starts_with("From bob@remote.example "), "{out}");
    assert!(
        out.contains("\nReturn-Path: <bob@remote.example>\n"),
        "{out}"
    );
    assert!(
        out.ends_with("\n\n>From the start\n>>From quoted\n"),
        "{out}"
    );
    assert_eq!(m.mailq(), "Mail queue is empty\n");
}

/// MX delivery needs a server on port 25 (of 127.0.0.x): root only.
#[test]
fn mx_delivery_through_the_test_dns_server() {
    if !is_root() {
        eprintln!("SKIP: MX delivery test: binding port 25 needs root (CI is root)");
        return;
    }
    // mx1 answers nothing (no listener), mx2 is the sink; v6only has only
    // an AAAA record, which prefer_ipv4 still uses.
    let l = match TcpListener::bind("127.0.0.62:25") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("SKIP: MX delivery test: cannot bind 127.0.0.62:25: {e}");
            return;
        }
    };
    let sink = Sink::start_on(l, Behaviour::default());
    let zone = vec![
        ("mx.test".to_string(), dns::Rr::Mx(20, "mx2.mx.test".into())),
        ("mx.test".to_string(), dns::Rr::Mx(10, "mx1.mx.test".into())),
        (
            "mx1.mx.test".to_string(),
            dns::Rr::A("127.0.0.61".parse().unwrap()),
        ),
        (
            "mx2.mx.test".to_string(),
            dns::Rr::A("127.0.0.62".parse().unwrap()),
        ),
        (
            "implicit.test".to_string(),
            dns::Rr::A("127.0.0.62".parse().unwrap()),
        ),
        ("nullmx.test".to_string(), dns::Rr::Mx(0, ".".into())),
    ];
    let d = dns::DnsServer::start(zone);
    let m = mta(
        "mx",
        "",
        "config route 'direct'\n\toption permanent '1'\n\toption tls 'none'\n",
    );
    fs::write(m.dir.path().join("resolv.conf"), d.resolv_conf()).unwrap();
    send(
        &m,
        "bob@remote.example",
        &["a@mx.test"],
        "Subject: mx\n\nx\n",
    );
    send(
        &m,
        "bob@remote.example",
        &["b@implicit.test"],
        "Subject: implicit\n\nx\n",
    );
    send(
        &m,
        "bob@remote.example",
        &["c@nxdomain.test"],
        "Subject: nx\n\nx\n",
    );
    send(
        &m,
        "bob@remote.example",
        &["d@nullmx.test"],
        "Subject: nullmx\n\nx\n",
    );
    runq(&m);
    let got = sink.messages();
    let find = |s: &str| got.iter().find(|g| header(&text(g), "Subject") == Some(s));
    assert_eq!(find("mx").expect("mx delivered").rcpts, ["a@mx.test"]);
    assert_eq!(
        find("implicit").expect("implicit MX").rcpts,
        ["b@implicit.test"]
    );
    // NXDOMAIN and null MX bounce; the bounces go to remote.example,
    // which does not exist either: they end as failed double bounces.
    assert!(find("nx").is_none() && find("nullmx").is_none());
    assert!(d.queries.load(std::sync::atomic::Ordering::SeqCst) >= 4);
}

/// A kept session that the server ended meanwhile (closed silently, or
/// 421 to the next MAIL) costs a new connection, never a deferral.
#[test]
fn sessions_ended_by_the_server_are_replaced() {
    for (tag, b) in [
        (
            "closed",
            Behaviour {
                close_after: Some(3),
                ..Behaviour::default()
            },
        ),
        (
            "busy",
            Behaviour {
                busy_after: Some(3),
                ..Behaviour::default()
            },
        ),
    ] {
        let sink = Sink::start(b);
        let m = mta(&format!("reuse-{tag}"), "", &route_to("out", &sink, ""));
        for i in 0..10 {
            send(
                &m,
                "bob@remote.example",
                &["x@example.org"],
                &format!("Subject: r{i}\n\nx\n"),
            );
        }
        runq(&m);
        let got = sink.messages();
        assert_eq!(got.len(), 10, "{tag}: {}", m.mailq());
        assert_eq!(m.mailq(), "Mail queue is empty\n", "{tag}");
        let conns = sink.connections.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(conns, 4, "{tag}: 3 messages per connection");
    }
}

/// masqmail as its own peer: the route's wrapper runs `masqmail -bs` of a
/// second installation, which speaks SMTP on stdin and stdout.
#[test]
fn wrapper_command_is_the_connection() {
    let peer = mta("wrapper-peer", "", "");
    runq(&peer); // makes its spool (`-bs` alone does not)
    let m = mta(
        "wrapper",
        "",
        &format!(
            "config route 'tunnel'\n\toption permanent '1'\n\toption tls 'none'\n\
             \toption wrapper '{} -C {} -bs'\n",
            peer.bin.join("masqmail").display(),
            peer.conf.display()
        ),
    );
    send(
        &m,
        "bob@remote.example",
        &["x@example.org"],
        "Subject: tunnelled\n\nthrough\n",
    );
    send(
        &m,
        "bob@remote.example",
        &["y@example.org"],
        "Subject: tunnelled 2\n\nthrough\n",
    );
    runq(&m);
    assert_eq!(m.mailq(), "Mail queue is empty\n");
    let q = peer.mailq();
    assert_eq!(peer.queued_ids().len(), 2, "{q}");
    assert!(
        q.contains("<bob@remote.example>") && q.contains("x@example.org"),
        "{q}"
    );

    // A wrapper that cannot run defers.
    let m = mta(
        "wrapper-missing",
        "",
        "config route 'tunnel'\n\toption permanent '1'\n\toption tls 'none'\n\
         \toption wrapper '/nonexistent/tunnel'\n",
    );
    send(
        &m,
        "bob@remote.example",
        &["x@example.org"],
        "Subject: t\n\nx\n",
    );
    runq(&m);
    assert!(m.mailq().contains("cannot run wrapper"), "{}", m.mailq());
}

/// A wrapper that writes much to stderr before it speaks SMTP (ssh's
/// warnings, in bulk: more than a pipe holds): its lines go to the log at
/// debug level, and the session goes on meanwhile.
#[test]
fn wrapper_stderr_goes_to_the_log() {
    let peer = mta("wrapper-noisy-peer", "", "");
    runq(&peer);
    let m = mta(
        "wrapper-noisy",
        "\toption log_level '7'\n",
        &format!(
            "config route 'tunnel'\n\toption permanent '1'\n\toption tls 'none'\n\
             \toption wrapper '/bin/sh -c \"echo tunnel up >&2; \
             yes noise | head -c 200000 >&2; exec {} -C {} -bs\"'\n",
            peer.bin.join("masqmail").display(),
            peer.conf.display()
        ),
    );
    send(
        &m,
        "bob@remote.example",
        &["x@example.org"],
        "Subject: noisy\n\nthrough\n",
    );
    let start = Instant::now();
    let out = m.run("runq", &["-v"], b"");
    expect_code(&out, 0);
    assert!(start.elapsed() < Duration::from_secs(30));
    assert_eq!(m.mailq(), "Mail queue is empty\n");
    assert_eq!(peer.queued_ids().len(), 1, "{}", peer.mailq());
    let log = stderr(&out);
    assert!(log.contains("wrapper /bin/sh: tunnel up"), "{log}");
    // The first 64 KiB of it.
    let noise = log.matches("wrapper /bin/sh: noise").count();
    assert_eq!(noise, (64 * 1024 - "tunnel up\n".len()) / "noise\n".len());
}

/// On a kept session a refused message does not disturb the next one:
/// RSET between them, one connection for all.
#[test]
fn refusals_between_messages_on_one_session() {
    let mut b = Behaviour::default();
    b.rcpt_replies
        .insert("bad@example.org".into(), "550 5.1.1 no".into());
    let sink = Sink::start(b);
    let m = mta("reuse-rset", "", &route_to("out", &sink, ""));
    for (i, to) in ["bad", "good", "bad", "good"].iter().enumerate() {
        send(
            &m,
            "bob@remote.example",
            &[&format!("{to}@example.org")],
            &format!("Subject: s{i}\n\nx\n"),
        );
    }
    runq(&m);
    let got = sink.messages();
    let to_good: Vec<_> = got
        .iter()
        .filter(|g| g.from == "bob@remote.example")
        .collect();
    assert_eq!(to_good.len(), 2, "{got:?}");
    assert!(to_good.iter().all(|g| g.rcpts == ["good@example.org"]));
    // and two bounces to bob
    assert_eq!(got.iter().filter(|g| g.from.is_empty()).count(), 2);
    assert_eq!(m.mailq(), "Mail queue is empty\n");
    assert_eq!(
        sink.connections.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

/// A 4xx to one RCPT sends that recipient (only) on to the next route.
#[test]
fn rcpt_4xx_falls_back_for_that_recipient_only() {
    let mut b = Behaviour::default();
    b.rcpt_replies
        .insert("z@example.net".into(), "452 4.2.2 mailbox full".into());
    let picky = Sink::start(b);
    let spare = Sink::start(Behaviour::default());
    let m = mta(
        "rcptfallback",
        "",
        &[route_to("picky", &picky, ""), route_to("spare", &spare, "")].concat(),
    );
    send(
        &m,
        "bob@remote.example",
        &["a@example.net", "z@example.net"],
        "Subject: split\n\nx\n",
    );
    runq(&m);
    let (p, s) = (picky.messages(), spare.messages());
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].rcpts, ["a@example.net"]);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].rcpts, ["z@example.net"]);
    assert_eq!(m.mailq(), "Mail queue is empty\n");
}

/// `-qo ROUTE` runs only that route (and counts it as online); a plain
/// run leaves mail for a route that is not online waiting, without error.
#[test]
fn qo_runs_one_route_and_offline_routes_wait() {
    let (sa, sb) = (
        Sink::start(Behaviour::default()),
        Sink::start(Behaviour::default()),
    );
    let ra = format!(
        "config route 'dialup'\n\toption mail_host '127.0.0.1:{}'\n\toption tls 'none'\n\
         \tlist allowed_recipients '*@a.example'\n\toption last_route '1'\n\n",
        sa.port
    );
    let lan = route_to("lan", &sb, "\tlist denied_recipients '*@a.example'\n");
    // Online detection by file, and the file names no route.
    let m = mta(
        "qo",
        "\toption online_detect 'file'\n\toption online_file '@DIR@/online'\n",
        &format!("{ra}{lan}"),
    );
    fs::write(m.dir.path().join("online"), "").unwrap();
    send(
        &m,
        "bob@remote.example",
        &["x@a.example"],
        "Subject: a\n\nx\n",
    );
    send(
        &m,
        "bob@remote.example",
        &["x@b.example"],
        "Subject: b\n\nx\n",
    );
    let out = m.run("masqmail", &["-qo", "dialup"], b"");
    expect_code(&out, 0);
    assert_eq!(sa.messages().len(), 1);
    assert!(sb.messages().is_empty(), "-qo dialup used another route");
    runq(&m);
    assert_eq!(sb.messages().len(), 1);
    send(
        &m,
        "bob@remote.example",
        &["y@a.example"],
        "Subject: a2\n\nx\n",
    );
    runq(&m);
    assert_eq!(sa.messages().len(), 1, "dialup is not online");
    let q = m.mailq();
    assert!(
        q.contains("        y@a.example\n"),
        "waits without an error: {q}"
    );
    let out = m.run("masqmail", &["-qo", "nosuch"], b"");
    expect_code(&out, 64);
}
