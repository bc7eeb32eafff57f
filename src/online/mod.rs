//! online — which routes are online now.
//!
//! DESCRIPTION
//!   A route with `permanent '1'` is always online. For the others,
//!   `online_detect` says how to find out:
//!     `file`     the route names in `online_file`, one per line;
//!     `command`  `online_query`'s output names the online route(s);
//!     `netlink`, `mserver`: event-driven detection in the daemon.
//!   `current` answers once, for a queue run started by hand or by
//!   `flush` without a daemon.
//!
//! SECURITY
//!   The online file and the query command are trusted (config). Their
//!   output is only compared against route names.

pub mod netlink;

use std::time::Duration;

use log::warn;

use crate::config::{Config, OnlineDetect};
use crate::deliver::command;

/// Route names in a text (file content or command output): one per line
/// or separated by white space; `#` starts a comment.
pub fn parse_names(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .map(str::to_string)
        .collect()
}

/// The names of the routes online now, as far as a one-shot check can
/// tell (permanent routes are added by the caller's route test).
pub fn current(cfg: &Config) -> Vec<String> {
    match cfg.main.online_detect {
        OnlineDetect::File => match std::fs::read_to_string(&cfg.main.online_file) {
            Ok(t) => parse_names(&t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                warn!("online_file {}: {e}", cfg.main.online_file.display());
                Vec::new()
            }
        },
        OnlineDetect::Command => match &cfg.main.online_query {
            Some(q) => query(q),
            None => Vec::new(),
        },
        OnlineDetect::Netlink | OnlineDetect::Mserver => Vec::new(),
    }
}

/// Run `online_query` and read the route names it prints. A query that
/// fails or hangs means no route is online.
fn query(line: &str) -> Vec<String> {
    let argv = match command::split(line) {
        Ok(a) => a,
        Err(e) => {
            warn!("online_query: {e}");
            return Vec::new();
        }
    };
    match command::capture(&argv, QUERY_TIMEOUT) {
        Ok(out) => parse_names(&out),
        Err(e) => {
            warn!("online_query: {e}; no route counts as online");
            Vec::new()
        }
    }
}

const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            parse_names("isp\n# off: lan\n  wifi  lte \n"),
            ["isp", "wifi", "lte"]
        );
        assert!(parse_names("").is_empty());
    }
}
