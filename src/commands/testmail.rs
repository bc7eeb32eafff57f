//! `masqmail testmail [ADDRESS]`: queue a short test message, as the
//! calling user, to ADDRESS or to root (so that it follows root's alias:
//! "does mail from this router reach me?"). LuCI's "Send test mail" runs
//! it without an argument.
//!
//! The message goes through the same path as `sendmail` (queue-in, then
//! scanning); the daemon, if one runs, delivers it at once. Without a
//! daemon it waits for `masqmail flush` (said on stdout).

use std::io::Cursor;

use log::warn;
use nix::unistd::getuid;

use crate::addr::{self, Address, Sender};
use crate::config::Config;
use crate::error::{CmdResult, Fail};
use crate::receive::local::{self, Submission};
use crate::scan::Scanner;
use crate::util::time;

pub fn run(cfg: &Config, to: Option<&str>) -> CmdResult {
    let host = cfg.main.host_name.as_str();
    let to_text = to.unwrap_or("root");
    let (good, bad) = addr::parse_header_list(to_text, Some(host));
    if let Some((text, e)) = bad.first() {
        return Err(Fail::usage(format!("bad recipient address '{text}': {e}")));
    }
    let rcpt: Address = match good.into_iter().next() {
        Some(m) => m.addr,
        None => return Err(Fail::usage(format!("bad recipient address '{to_text}'"))),
    };
    let (login, _) = super::submit::who_am_i();
    let sender = Address::new(&login, host)
        .or_else(|_| Address::new(&format!("uid{}", getuid()), host))
        .map_err(|e| Fail::usage(format!("cannot make a sender address: {e}")))?;

    // Ask before dropping privileges: the control socket is root's.
    let control = crate::daemon::control::socket_path(&cfg.main.spool_dir);
    let daemon = std::os::unix::net::UnixStream::connect(&control).is_ok();

    let now = time::short(&time::local(time::now()));
    let text = format!(
        "To: {rcpt}\n\
         Subject: masqmail test message from {host}\n\
         \n\
         This is a test message from masqmail {} on {host},\n\
         queued by `masqmail testmail` at {now}.\n\
         \n\
         If you read this, mail from {host} reaches you.\n",
        env!("CARGO_PKG_VERSION"),
    );
    let sub = Submission {
        sender: Sender::Addr(sender),
        full_name: Some(format!("masqmail on {host}")),
        recipients: vec![rcpt.clone()],
        extract: false,
        dot_ends: false,
        rmail: false,
        ident: login,
    };
    let spool = super::open_spool(cfg)?;
    let id = local::receive(&mut Cursor::new(text.into_bytes()), sub, cfg, &spool)?;
    match Scanner::new(cfg) {
        Ok(scanner) => {
            if let Err(e) = scanner.scan(&spool, &id) {
                warn!("{id}: left for the daemon to scan: {e}");
            }
        }
        Err(e) => warn!("{id}: left for the daemon to scan: {e}"),
    }
    println!("{id}: test message to {rcpt} queued");
    if daemon {
        println!("The daemon sends it when a route for it is online; `masqmail queue` shows it until then.");
    } else {
        println!("No daemon is running: `masqmail flush` sends it now.");
    }
    Ok(())
}
