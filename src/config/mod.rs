//! config — the one configuration file, in UCI syntax.
//!
//! DESCRIPTION
//!   Reads `/etc/config/masqmail` (OpenWrt) or `/etc/masqmail/masqmail.conf`
//!   (elsewhere), or the file given with `-C`. `uci` parses the UCI syntax
//!   into sections; `schema` knows every section type and option and resolves
//!   the sections into the typed [`Config`] below, collecting every error
//!   with file:line and a hint. Nothing else in the program sees raw UCI.
//!
//! SECURITY
//!   The file may hold secrets (`auth_secret`, `password_hash`): they are
//!   kept in [`Secret`], which never prints its content; `config show` masks
//!   them. The file is trusted as written by the administrator.
//!
//! DIAGNOSTICS
//!   `masqmail config check` prints every error as
//!   `FILE:LINE: section 'NAME' option 'OPT': MESSAGE (hint: …)`, exit 78.

// The typed configuration is filled completely here; the daemon, the
// receivers, queue-out and the transports read its fields as they are
// written, so some are not used yet.
#![allow(dead_code)]

pub mod uci;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// A value that must never be printed (passwords, password hashes).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("********")
    }
}

/// An IP network in CIDR notation (`192.168.1.0/24`, `::1/128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// `host[:port]`, the port defaulted by the option that holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnlineDetect {
    Netlink,
    Mserver,
    File,
    Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BareLf {
    /// A bare LF counts as a line end, but a `.` after it never ends DATA.
    Normalize,
    /// A message with a bare LF is refused.
    Reject,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    None,
    StartTls,
    /// Implicit TLS (port 465 style).
    Tls,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolveMethod {
    DnsMx,
    DnsA,
    Byname,
}

/// One `from: to` pair of a `map_*_addresses` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressMap {
    /// Local part (or glob) to match.
    pub local: String,
    /// Replacement, `Name <addr>` or `addr`.
    pub to: String,
}

/// The `config masqmail` section.
#[derive(Clone, Debug)]
pub struct Main {
    pub host_name: String,
    pub local_hosts: Vec<String>,
    pub local_addresses: Vec<String>,
    pub not_local_addresses: Vec<String>,
    pub listen_addresses: Vec<SocketAddr>,
    pub smtps_addresses: Vec<SocketAddr>,
    pub local_nets: Vec<IpNet>,
    pub spool_dir: PathBuf,
    pub mail_dir: PathBuf,
    pub run_as_user: bool,
    pub mail_user: String,
    pub alias_file: Option<PathBuf>,
    pub alias_local_caseless: bool,
    pub max_size: u64,
    pub max_line_length: usize,
    pub max_header_size: usize,
    pub max_headers: usize,
    pub max_recipients: usize,
    pub max_connections: u32,
    pub max_connections_per_ip: u32,
    pub max_defer_time: Duration,
    pub smtp_bare_lf: BareLf,
    pub online_detect: OnlineDetect,
    pub online_file: PathBuf,
    pub online_query: Option<String>,
    pub mserver_host: HostPort,
    pub log_level: u8,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// A `config route 'NAME'` section (masqmail.route(5) semantics).
#[derive(Clone, Debug)]
pub struct Route {
    pub name: String,
    pub enabled: bool,
    pub permanent: bool,
    pub devices: Vec<String>,
    pub allowed_senders: Vec<String>,
    pub denied_senders: Vec<String>,
    pub allowed_recipients: Vec<String>,
    pub denied_recipients: Vec<String>,
    pub allowed_from_hdrs: Vec<String>,
    pub denied_from_hdrs: Vec<String>,
    pub last_route: bool,
    pub connect_error_fail: bool,
    /// None: deliver by MX.
    pub mail_host: Option<HostPort>,
    pub resolve_list: Vec<ResolveMethod>,
    pub prefer_ipv4: bool,
    pub helo_name: Option<String>,
    pub do_pipelining: bool,
    pub auth_name: Option<String>,
    pub auth_login: Option<String>,
    pub auth_secret: Option<Secret>,
    pub auth_allow_plaintext: bool,
    pub wrapper: Option<String>,
    pub pipe: Option<String>,
    pub pipe_fromline: bool,
    pub pipe_fromhack: bool,
    pub set_h_from_domain: Option<String>,
    pub set_h_reply_to_domain: Option<String>,
    pub set_return_path_domain: Option<String>,
    pub map_h_from_addresses: Vec<AddressMap>,
    pub map_h_reply_to_addresses: Vec<AddressMap>,
    pub map_h_mail_followup_to_addresses: Vec<AddressMap>,
    pub map_return_path_addresses: Vec<AddressMap>,
    pub expand_h_sender_address: bool,
    pub tls: TlsMode,
    pub tls_verify: bool,
    pub tls_ca_file: PathBuf,
    /// SHA-256 of the server certificate (DER), pinned.
    pub tls_fingerprint: Option<[u8; 32]>,
}

/// A `config alias` section: `name` is delivered to every `to`.
#[derive(Clone, Debug)]
pub struct Alias {
    pub name: String,
    pub to: Vec<String>,
}

/// A `config user` section: an SMTP AUTH account.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub password_hash: Secret,
}

/// The checked configuration: every value present, defaults filled in.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    pub main: Main,
    pub routes: Vec<Route>,
    pub aliases: Vec<Alias>,
    pub users: Vec<User>,
}
