//! `sendmail` / `rmail`: queue a message from stdin, then scan it.

use log::warn;
use nix::unistd::getuid;

use crate::addr::{self, Address, Sender};
use crate::cli::sendmail::SendmailArgs;
use crate::config::Config;
use crate::error::{CmdResult, Fail};
use crate::passwd;
use crate::receive::local::{self, Submission};
use crate::scan::Scanner;

/// The invoking user: login name and the full name of the GECOS field.
fn who_am_i() -> (String, Option<String>) {
    let uid = getuid();
    match passwd::by_uid(uid.as_raw()) {
        Ok(Some(u)) => {
            let full = u.full_name().map(str::to_string);
            (u.name, full)
        }
        _ => (format!("uid{uid}"), None),
    }
}

pub fn run(cfg: &Config, args: &SendmailArgs, rmail: bool) -> CmdResult {
    let host = cfg.main.host_name.as_str();
    let (login, gecos) = who_am_i();
    let sender = match args.from {
        Some("") => {
            return Err(Fail::usage(
                "empty sender address; use -f '<>' for the null sender",
            ))
        }
        Some(f) => Sender::parse(f, Some(host))
            .map_err(|e| Fail::usage(format!("bad sender address '{f}': {e}")))?,
        None => Sender::Addr(
            Address::new(&login, host)
                .or_else(|_| Address::new(&format!("uid{}", getuid()), host))
                .map_err(|e| Fail::usage(format!("cannot make a sender address: {e}")))?,
        ),
    };
    let mut recipients = Vec::new();
    for a in &args.args {
        let (good, bad) = addr::parse_header_list(a, Some(host));
        if let Some((text, e)) = bad.first() {
            return Err(Fail::usage(format!("bad recipient address '{text}': {e}")));
        }
        if good.is_empty() {
            return Err(Fail::usage(format!("bad recipient address '{a}'")));
        }
        recipients.extend(good.into_iter().map(|m| m.addr));
    }
    let sub = Submission {
        sender,
        full_name: args.full_name.map(str::to_string).or(gecos),
        recipients,
        extract: args.extract,
        dot_ends: !args.ignore_dots && !rmail,
        rmail,
        ident: login,
    };
    let spool = super::open_spool(cfg)?;
    let id = local::receive(&mut std::io::stdin().lock(), sub, cfg, &spool)?;
    // The message is on disk: from here on nothing may fail the command.
    let scanned = match Scanner::new(cfg) {
        Ok(scanner) => scanner
            .scan(&spool, &id)
            .map(drop)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    if let Err(e) = scanned {
        warn!("{id}: left for the daemon to scan: {e}");
    }
    Ok(())
}
