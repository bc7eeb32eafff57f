//! An SMTP sink for the tests: a real server on 127.0.0.1 that records
//! what it receives and misbehaves on request (4xx/5xx for chosen
//! recipients, a dropped connection in DATA, STARTTLS and AUTH required).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One message as the sink got it.
#[derive(Clone, Debug)]
pub struct Got {
    pub helo: String,
    pub from: String,
    pub rcpts: Vec<String>,
    pub data: String,
    pub tls: bool,
    pub auth: Option<String>,
    /// Which connection (1, 2, …, in accept order) carried it.
    pub conn: usize,
}

#[derive(Clone, Default)]
pub struct Behaviour {
    /// Recipient (lower case, without <>) → reply to its RCPT.
    pub rcpt_replies: HashMap<String, String>,
    /// Reply to the end of DATA (default 250).
    pub data_reply: Option<String>,
    /// Close the connection after two lines of DATA.
    pub drop_in_data: bool,
    /// Wait this long before the reply to the end of DATA.
    pub data_delay: Option<Duration>,
    /// With `tls`: TLS from the first byte (port 465 style), no STARTTLS.
    pub implicit_tls: bool,
    /// Close the connection without a word after this many messages on it
    /// (an idle timeout, as the client sees it).
    pub close_after: Option<usize>,
    /// Answer MAIL with 421 and close after this many messages on a
    /// connection (a per-connection limit).
    pub busy_after: Option<usize>,
    /// Offer STARTTLS with this config and refuse MAIL without it.
    #[cfg(feature = "tls")]
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Require AUTH PLAIN/LOGIN with these credentials.
    pub auth: Option<(String, String)>,
    /// Greeting to send (default 220).
    pub greeting: Option<String>,
}

pub struct Sink {
    pub port: u16,
    pub got: Arc<Mutex<Vec<Got>>>,
    pub connections: Arc<AtomicUsize>,
    pub behaviour: Arc<Mutex<Behaviour>>,
    stop: Arc<AtomicBool>,
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

impl Sink {
    pub fn start(b: Behaviour) -> Sink {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        Sink::start_on(l, b)
    }

    pub fn start_on(l: TcpListener, b: Behaviour) -> Sink {
        let port = l.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let behaviour = Arc::new(Mutex::new(b));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, c, bh, st) = (
            got.clone(),
            connections.clone(),
            behaviour.clone(),
            stop.clone(),
        );
        l.set_nonblocking(true).unwrap();
        std::thread::spawn(move || loop {
            if st.load(Ordering::SeqCst) {
                return;
            }
            match l.accept() {
                Ok((s, _)) => {
                    let conn = c.fetch_add(1, Ordering::SeqCst) + 1;
                    let (g, bh) = (g.clone(), bh.lock().unwrap().clone());
                    std::thread::spawn(move || {
                        // Pipelined replies go out at once, not after the
                        // client's delayed ACK (40 ms a message).
                        let _ = s.set_nodelay(true);
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                        #[cfg(feature = "tls")]
                        if bh.implicit_tls {
                            if let Some(cfg) = bh.tls.clone() {
                                let conn_tls = rustls::ServerConnection::new(cfg).unwrap();
                                let t = rustls::StreamOwned::new(conn_tls, s);
                                serve(Box::new(t), g, bh, conn, true, true);
                                return;
                            }
                        }
                        serve(Box::new(s), g, bh, conn, false, true);
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        });
        Sink {
            port,
            got,
            connections,
            behaviour,
            stop,
        }
    }

    pub fn messages(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Wait until `n` messages arrived (or panic after `secs`).
    pub fn wait_for(&self, n: usize, secs: u64) -> Vec<Got> {
        for _ in 0..secs * 50 {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sink got {} message(s), wanted {n}", self.messages().len());
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn b64(s: &str) -> Option<String> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.trim().bytes() {
        if c == b'=' {
            break;
        }
        let v = A.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    String::from_utf8(out).ok()
}

fn serve(
    mut s: Box<dyn Stream>,
    got: Arc<Mutex<Vec<Got>>>,
    b: Behaviour,
    conn: usize,
    tls: bool,
    greet: bool,
) {
    let greeting = b
        .greeting
        .clone()
        .unwrap_or_else(|| "220 sink.test ESMTP".into());
    if greet {
        let _ = s.write_all(format!("{greeting}\r\n").as_bytes());
        if !greeting.starts_with("220") {
            return;
        }
    }
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let (mut helo, mut from, mut rcpts, mut auth) =
        (String::new(), String::new(), Vec::new(), None);
    let mut count = 0usize;
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        let w = r.get_mut();
        let reply = |w: &mut Box<dyn Stream>, t: &str| {
            let _ = w.write_all(format!("{t}\r\n").as_bytes());
        };
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            helo = cmd[4..].trim().to_string();
            let mut ext = vec![
                "250-sink.test",
                "250-PIPELINING",
                "250-8BITMIME",
                "250-SIZE 10000000",
            ];
            #[cfg(feature = "tls")]
            if b.tls.is_some() && !tls {
                ext.push("250-STARTTLS");
            }
            if b.auth.is_some() {
                ext.push("250-AUTH PLAIN LOGIN");
            }
            ext.push("250 ENHANCEDSTATUSCODES");
            reply(w, &ext.join("\r\n"));
        } else if upper == "STARTTLS" {
            #[cfg(feature = "tls")]
            if let Some(cfg) = b.tls.clone() {
                reply(w, "220 2.0.0 go ahead");
                let sock = r.into_inner();
                let tls_conn = rustls::ServerConnection::new(cfg).unwrap();
                let t = rustls::StreamOwned::new(tls_conn, sock);
                serve(Box::new(t), got, b, conn, true, false);
                return;
            }
            reply(w, "502 5.5.1 no TLS here");
        } else if upper.starts_with("AUTH PLAIN") {
            let arg = cmd[10..].trim().to_string();
            let arg = if arg.is_empty() {
                reply(w, "334 ");
                line.clear();
                let _ = r.read_line(&mut line);
                line.trim().to_string()
            } else {
                arg
            };
            let w = r.get_mut();
            let dec = b64(&arg).unwrap_or_default();
            let parts: Vec<&str> = dec.split('\0').collect();
            match (&b.auth, parts.as_slice()) {
                (Some((u, p)), [_, user, pass]) if user == u && pass == p => {
                    auth = Some(user.to_string());
                    reply(w, "235 2.7.0 ok")
                }
                _ => reply(w, "535 5.7.8 bad credentials"),
            }
        } else if upper == "AUTH LOGIN" {
            reply(w, "334 VXNlcm5hbWU6");
            line.clear();
            let _ = r.read_line(&mut line);
            let user = b64(line.trim()).unwrap_or_default();
            reply(r.get_mut(), "334 UGFzc3dvcmQ6");
            line.clear();
            let _ = r.read_line(&mut line);
            let pass = b64(line.trim()).unwrap_or_default();
            let w = r.get_mut();
            match &b.auth {
                Some((u, p)) if *u == user && *p == pass => {
                    auth = Some(user);
                    reply(w, "235 2.7.0 ok")
                }
                _ => reply(w, "535 5.7.8 bad credentials"),
            }
        } else if upper.starts_with("MAIL FROM:") {
            #[cfg(feature = "tls")]
            if b.tls.is_some() && !tls {
                reply(w, "530 5.7.0 STARTTLS first");
                continue;
            }
            if b.auth.is_some() && auth.is_none() {
                reply(w, "530 5.7.0 AUTH first");
                continue;
            }
            if b.busy_after.is_some_and(|n| count >= n) {
                reply(w, "421 4.7.0 enough for this connection");
                return;
            }
            from = cmd[10..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches(['<', '>'])
                .to_string();
            rcpts.clear();
            reply(w, "250 2.1.0 ok");
        } else if upper.starts_with("RCPT TO:") {
            let to = cmd[8..]
                .trim()
                .trim_matches(['<', '>'])
                .to_ascii_lowercase();
            match b.rcpt_replies.get(&to) {
                Some(t) => reply(w, t),
                None => {
                    rcpts.push(to);
                    reply(w, "250 2.1.5 ok");
                }
            }
        } else if upper == "DATA" {
            if rcpts.is_empty() {
                reply(w, "554 5.5.1 no valid recipients");
                continue;
            }
            reply(w, "354 go on");
            let mut data = String::new();
            let mut n = 0;
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                n += 1;
                if b.drop_in_data && n > 2 {
                    return;
                }
                if line == ".\r\n" {
                    break;
                }
                let l = line.strip_prefix('.').unwrap_or(&line);
                data.push_str(l);
            }
            let w = r.get_mut();
            if let Some(d) = b.data_delay {
                std::thread::sleep(d);
            }
            let end = b
                .data_reply
                .clone()
                .unwrap_or_else(|| "250 2.0.0 queued".into());
            if end.starts_with('2') {
                got.lock().unwrap().push(Got {
                    helo: helo.clone(),
                    from: from.clone(),
                    rcpts: rcpts.clone(),
                    data,
                    tls,
                    auth: auth.clone(),
                    conn,
                });
            }
            reply(w, &end);
            count += 1;
            if b.close_after.is_some_and(|n| count >= n) {
                return;
            }
        } else if upper == "RSET" || upper == "NOOP" {
            rcpts.clear();
            reply(w, "250 2.0.0 ok");
        } else if upper == "QUIT" {
            reply(w, "221 2.0.0 bye");
            return;
        } else {
            reply(w, "500 5.5.2 what?");
        }
    }
}
