//! online — which routes are online now, and why.
//!
//! DESCRIPTION
//!   A route with `permanent '1'` is always online. For the others,
//!   `online_detect` says how to find out:
//!     `netlink`  the route is online while a usable default route exists
//!                (netlink.rs), on any interface or — with `devices` —
//!                on one of the route's devices;
//!     `mserver`  a masqdialer server names the connection that is up
//!                (mserver.rs); the name is a route name;
//!     `file`     the route names in `online_file`, one per line;
//!     `command`  `online_query`'s output names the online route(s); a
//!                non-zero exit, a timeout (10 s) or no output: none.
//!   Names that are not routes are ignored (and logged).
//!
//!   `current` answers once (a netlink dump, a file read, one query), for
//!   a queue run started by hand, `flush` without a daemon, and `queue`.
//!   The daemon keeps the answer up to date on events instead
//!   (src/daemon/online.rs); [`Online`] is what both hand to queue-out.
//!
//! SECURITY
//!   The online file and the query command are trusted (config). Their
//!   output, like a masqdialer server's answer, is only compared against
//!   route names.

pub mod mserver;
pub mod netlink;

use std::fmt;
use std::time::Duration;

use log::{debug, warn};

use crate::config::{Config, OnlineDetect};
use crate::deliver::command;

/// Why a route counts as online.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    Permanent,
    /// Listed in `online_file`.
    File,
    /// A usable default route via this device.
    Netlink(String),
    /// The masqdialer server says this connection is up.
    Mserver(String),
    /// `online_query` printed this name.
    Command(String),
}

impl Why {
    /// A word for scripts: `permanent`, `file`, `netlink`, `mserver`,
    /// `command`.
    pub fn source(&self) -> &'static str {
        match self {
            Why::Permanent => "permanent",
            Why::File => "file",
            Why::Netlink(_) => "netlink",
            Why::Mserver(_) => "mserver",
            Why::Command(_) => "command",
        }
    }

    /// Back from [`Why::source`] and [`Why::detail`] (the daemon's
    /// `routes` reply).
    pub fn from_parts(source: &str, detail: Option<&str>) -> Option<Why> {
        let d = || detail.map(str::to_string);
        Some(match source {
            "permanent" => Why::Permanent,
            "file" => Why::File,
            "netlink" => Why::Netlink(d()?),
            "mserver" => Why::Mserver(d()?),
            "command" => Why::Command(d()?),
            _ => return None,
        })
    }

    /// The device or name behind it, if any.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Why::Permanent | Why::File => None,
            Why::Netlink(d) | Why::Mserver(d) | Why::Command(d) => Some(d),
        }
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (text, name) = match self {
            Why::Permanent => ("permanent", ""),
            Why::File => ("listed in online_file", ""),
            Why::Netlink(d) => ("default route via ", d.as_str()),
            Why::Mserver(n) => ("mserver says ", n.as_str()),
            Why::Command(n) => ("online_query said ", n.as_str()),
        };
        f.write_str(text)?;
        f.write_str(name)
    }
}

/// The queried (not permanent) routes that are online, each with why,
/// in config order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Online(Vec<(String, Why)>);

impl Online {
    pub fn names(&self) -> Vec<String> {
        let mut v = Vec::with_capacity(self.0.len());
        for (n, _) in &self.0 {
            v.push(n.clone());
        }
        v
    }

    pub fn get(&self, route: &str) -> Option<&Why> {
        self.0.iter().find(|(n, _)| n == route).map(|(_, w)| w)
    }

    /// The `i`th online route and why.
    pub fn at(&self, i: usize) -> Option<&(String, Why)> {
        self.0.get(i)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Why)> {
        self.0.iter().map(|(n, w)| (n, w))
    }

    /// Routes named by a file, a command or a masqdialer server.
    pub fn from_names(cfg: &Config, names: &[String], why: impl Fn(&str) -> Why) -> Online {
        Online::from_names_dyn(cfg, names, &why)
    }

    #[inline(never)]
    fn from_names_dyn(cfg: &Config, names: &[String], why: &dyn Fn(&str) -> Why) -> Online {
        for n in names.iter().filter(|n| cfg.route(n).is_none()) {
            debug!("online: '{}' is not a route", mserver::printable(n));
        }
        let mut m = Vec::new();
        for r in &cfg.routes {
            if !r.permanent && names.contains(&r.name) {
                m.push((r.name.clone(), why(&r.name)));
            }
        }
        Online(m)
    }

    /// Routes served by the interfaces that have a usable default route.
    pub fn from_devices(cfg: &Config, devices: &[String]) -> Online {
        let mut m = Vec::new();
        for r in cfg.routes.iter().filter(|r| !r.permanent) {
            let dev = if r.devices.is_empty() {
                devices.first()
            } else {
                r.devices.iter().find(|d| devices.contains(*d))
            };
            if let Some(d) = dev {
                m.push((r.name.clone(), Why::Netlink(d.clone())));
            }
        }
        Online(m)
    }
}

/// One route as `status` and `queue --json` show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteState {
    pub name: String,
    pub enabled: bool,
    /// Some: online, and why.
    pub why: Option<Why>,
}

impl RouteState {
    pub fn state(&self) -> &'static str {
        match (&self.why, self.enabled) {
            (_, false) => "disabled",
            (Some(_), true) => "online",
            (None, true) => "offline",
        }
    }
}

/// Every route, in config order, with its state.
pub fn route_states(cfg: &Config, online: &Online) -> Vec<RouteState> {
    let mut v = Vec::with_capacity(cfg.routes.len());
    for r in &cfg.routes {
        v.push(RouteState {
            name: r.name.clone(),
            enabled: r.enabled,
            why: if !r.enabled {
                None
            } else if r.permanent {
                Some(Why::Permanent)
            } else {
                online.get(&r.name).cloned()
            },
        });
    }
    v
}

/// Route names in a text (file content or command output): one per line
/// or separated by white space; `#` starts a comment.
pub fn parse_names(text: &str) -> Vec<String> {
    let mut v = Vec::new();
    for l in text.lines() {
        words(l.split('#').next().unwrap_or(""), &mut v);
    }
    v
}

/// Push the words of `s`.
fn words(s: &str, out: &mut Vec<String>) {
    for w in s.split_whitespace() {
        out.push(w.to_string());
    }
}

/// The online routes now, as far as a one-shot check can tell.
pub fn current(cfg: &Config) -> Online {
    match cfg.main.online_detect {
        OnlineDetect::File => from_file(cfg),
        OnlineDetect::Netlink => match netlink::snapshot() {
            Ok(devs) => Online::from_devices(cfg, &devs),
            Err(e) => {
                warn!("netlink: {e}; no route counts as online");
                Online::default()
            }
        },
        OnlineDetect::Mserver | OnlineDetect::Command => from_answer(cfg, &ask(cfg)),
    }
}

/// The routes listed in `online_file`, online.
pub fn from_file(cfg: &Config) -> Online {
    Online::from_names_dyn(cfg, &read_file(cfg), &|_| Why::File)
}

/// The routes in `online_file` (missing: none).
pub fn read_file(cfg: &Config) -> Vec<String> {
    match std::fs::read_to_string(&cfg.main.online_file) {
        Ok(t) => parse_names(&t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            warn!("online_file {}: {e}", cfg.main.online_file.display());
            Vec::new()
        }
    }
}

/// The answer of a query method (mserver, command): the names it gave,
/// or why there is none.
pub type Answer = Result<Vec<String>, String>;

/// Ask the masqdialer server or run `online_query`, blocking but bounded
/// (mserver: 10 s; command: 10 s, then it is killed).
pub fn ask(cfg: &Config) -> Answer {
    match cfg.main.online_detect {
        OnlineDetect::Mserver => {
            match mserver::query(&cfg.main.mserver_host, &cfg.main.resolv_conf) {
                Ok(mserver::Stat::Up(name)) => Ok(vec![name]),
                Ok(mserver::Stat::Down) => Ok(Vec::new()),
                Ok(mserver::Stat::Pending(name)) => {
                    debug!(
                        "mserver: connection {} is being dialled",
                        mserver::printable(&name)
                    );
                    Ok(Vec::new())
                }
                Err(e) => Err(format!(
                    "mserver {}:{}: {e}",
                    cfg.main.mserver_host.host, cfg.main.mserver_host.port
                )),
            }
        }
        OnlineDetect::Command => match &cfg.main.online_query {
            Some(q) => query(q),
            None => Err("online_query is not set".into()),
        },
        _ => Ok(Vec::new()),
    }
}

/// Turn a query's answer into online routes (an error: none).
pub fn from_answer(cfg: &Config, a: &Answer) -> Online {
    match a {
        Ok(names) => {
            let mserver = cfg.main.online_detect == OnlineDetect::Mserver;
            Online::from_names_dyn(cfg, names, &|n| {
                if mserver {
                    Why::Mserver(n.into())
                } else {
                    Why::Command(n.into())
                }
            })
        }
        Err(e) => {
            warn!("{e}; no route counts as online");
            Online::default()
        }
    }
}

/// The answer as one line, for the pipe from the daemon's query child.
pub fn encode_answer(a: &Answer) -> String {
    let mut s = String::new();
    match a {
        Ok(names) => {
            s.push_str("ok");
            if names.is_empty() {
                s.push(' ');
            }
            for n in names {
                s.push(' ');
                s.push_str(n);
            }
        }
        Err(e) => {
            s.push_str("error ");
            for c in e.chars() {
                s.push(if c == '\n' || c == '\r' { ' ' } else { c });
            }
        }
    }
    s.push('\n');
    s
}

/// Read [`encode_answer`]'s line; anything else is an error answer.
pub fn decode_answer(line: &str) -> Answer {
    let line = line.trim_end_matches(['\n', '\r']);
    if let Some(names) = line.strip_prefix("ok") {
        if names.is_empty() || names.starts_with(' ') {
            let mut v = Vec::new();
            words(names, &mut v);
            return Ok(v);
        }
    }
    match line.strip_prefix("error ") {
        Some(e) => Err(e.to_string()),
        None => Err("the query ended without an answer".into()),
    }
}

/// Run `online_query` and read the route names it prints. A query that
/// fails (non-zero exit, as masqmail's) or hangs means no route is online.
fn query(line: &str) -> Answer {
    command::split(line)
        .and_then(|argv| command::capture(&argv, QUERY_TIMEOUT))
        .map(|out| parse_names(&out))
        .map_err(|e| format!("online_query: {e}"))
}

pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

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

    #[test]
    fn reasons_survive_the_control_socket() {
        for w in [
            Why::Permanent,
            Why::File,
            Why::Netlink("eth0".into()),
            Why::Mserver("isp".into()),
            Why::Command("lte".into()),
        ] {
            assert_eq!(Why::from_parts(w.source(), w.detail()), Some(w));
        }
        assert_eq!(Why::from_parts("netlink", None), None);
        assert_eq!(Why::from_parts("-", None), None);
    }

    #[test]
    fn answers_survive_the_pipe() {
        for a in [
            Ok(vec![]),
            Ok(vec!["isp".to_string(), "lte".to_string()]),
            Err("mserver localhost:224: refused".to_string()),
        ] {
            assert_eq!(decode_answer(&encode_answer(&a)), a);
        }
        assert!(decode_answer("").is_err());
        assert!(decode_answer("okay").is_err());
        assert_eq!(
            decode_answer(&encode_answer(&Err("two\nlines".into()))),
            Err("two lines".into())
        );
    }

    fn cfg(text: &str) -> Config {
        crate::config::from_bytes(std::path::Path::new("t.conf"), text.as_bytes()).unwrap()
    }

    #[test]
    fn routes_from_devices_and_names() {
        let c = cfg("config masqmail\n\toption online_detect 'netlink'\n\
             config route 'lan'\n\toption permanent '1'\n\
             config route 'dsl'\n\tlist devices 'pppoe-wan'\n\
             config route 'lte'\n\tlist devices 'wwan0'\n\tlist devices 'usb0'\n\
             config route 'any'\n\
             config route 'off'\n\toption enabled '0'\n");
        let devs = ["usb0".to_string()];
        let o = Online::from_devices(&c, &devs);
        assert_eq!(o.get("lte"), Some(&Why::Netlink("usb0".into())));
        assert_eq!(o.get("any"), Some(&Why::Netlink("usb0".into())));
        assert_eq!(o.get("dsl"), None);
        assert_eq!(o.get("lan"), None, "permanent routes are not queried");
        let states = route_states(&c, &o);
        let s: Vec<(&str, &str)> = states
            .iter()
            .map(|r| (r.name.as_str(), r.state()))
            .collect();
        assert_eq!(
            s,
            [
                ("lan", "online"),
                ("dsl", "offline"),
                ("lte", "online"),
                ("any", "online"),
                ("off", "disabled")
            ]
        );
        assert_eq!(
            states[2].why.as_ref().unwrap().to_string(),
            "default route via usb0"
        );
        let o = Online::from_names(&c, &["dsl".into(), "nosuch".into(), "lan".into()], |n| {
            Why::Mserver(n.into())
        });
        assert_eq!(o.names(), ["dsl"]);
        assert_eq!(o.get("dsl").unwrap().to_string(), "mserver says dsl");
    }
}
