//! config — the one configuration file, in UCI syntax.
//!
//! DESCRIPTION
//!   Reads `/etc/config/masqmail` (OpenWrt) or `/etc/masqmail/masqmail.conf`
//!   (elsewhere), or the file given with `-C`. `uci` parses the UCI syntax
//!   into sections; `schema` is the table of every section type and option;
//!   `resolve` checks the sections against it and builds the typed
//!   [`Config`] below, with every default filled in, collecting every error
//!   with file:line and a hint; `value` parses and prints each kind of
//!   value; `show` prints the effective configuration. Nothing else in the
//!   program sees raw UCI.
//!
//! SECURITY
//!   The file may hold secrets (`auth_secret`, `password_hash`): they are
//!   kept in [`Secret`], which never prints its content; `config show` masks
//!   them. The file is trusted as written by the administrator.
//!
//! DIAGNOSTICS
//!   `masqmail config check` prints every error as
//!   `FILE:LINE: section 'NAME' option 'OPT': MESSAGE (hint: …)`, exit 78.
//!   The section and option parts are left out when they don't apply;
//!   anonymous sections are named as uci does, `@alias[0]`. Line 0 means
//!   the whole file (unreadable, too large).
//!
//! CONFIGURATION PARAMETERS
//!   The table in `schema` lists every section type and option with its
//!   kind and default; `config show` prints them all.

mod resolve;
pub mod schema;
mod show;
pub mod uci;
mod value;

pub use show::put as put_line;
pub use value::format_fingerprint;

use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
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

/// How mail for local users is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalDelivery {
    /// Append to `mail_dir/USER` (mbox, `>From ` quoting, locked).
    Mbox,
    /// `mail_dir/USER/{tmp,new,cur}`.
    Maildir,
    /// Pipe to the `mda` command.
    Mda,
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
#[derive(Debug, PartialEq)]
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
    /// Routes (local delivery counting as one) a queue run delivers to
    /// at the same time, each in its own process; 1: one after another.
    pub max_parallel_routes: u32,
    pub max_defer_time: Duration,
    pub smtp_bare_lf: BareLf,
    pub online_detect: OnlineDetect,
    pub online_file: PathBuf,
    pub online_query: Option<String>,
    pub mserver_host: HostPort,
    pub log_level: u8,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Where `masqmail -bd` writes its process ID.
    pub pid_file: PathBuf,
    pub local_delivery: LocalDelivery,
    /// The MDA command for `local_delivery 'mda'` (`%{rcpt}`, `%{user}`,
    /// `%{sender}`, `%{id}` substituted; no shell).
    pub mda: Option<String>,
    pub mda_fromline: bool,
    pub mda_fromhack: bool,
    /// Tell the sender when a message has waited this long (unset: never).
    pub delay_warning: Option<Duration>,
    /// The resolver configuration for MX delivery.
    pub resolv_conf: PathBuf,
}

/// A `config route 'NAME'` section (masqmail.route(5) semantics).
#[derive(Debug, PartialEq)]
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
#[derive(Clone, Debug, PartialEq)]
pub struct Alias {
    /// The UCI section name (`config alias 'root'`), kept for `show`.
    pub section: Option<String>,
    pub name: String,
    pub to: Vec<String>,
}

/// A `config user` section: an SMTP AUTH account.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub name: String,
    pub password_hash: Secret,
}

/// The checked configuration: every value present, defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    pub main: Main,
    pub routes: Vec<Route>,
    pub aliases: Vec<Alias>,
    pub users: Vec<User>,
}

/// `Clone` for the wide structs: each field through one out-of-line clone
/// per field type ([`cl`]), where the derived clone would inline every
/// field's (Config is cloned by the daemon).
macro_rules! clone_by_field {
    ($t:ident { copy: [$($c:ident),* $(,)?], clone: [$($f:ident),* $(,)?] $(,)? }) => {
        impl Clone for $t {
            fn clone(&self) -> Self {
                $t {
                    $($c: self.$c,)*
                    $($f: cl(&self.$f),)*
                }
            }
        }
    };
}

#[inline(never)]
fn cl<T: Clone>(t: &T) -> T {
    t.clone()
}

clone_by_field!(Main {
    copy: [
        run_as_user,
        alias_local_caseless,
        max_size,
        max_line_length,
        max_header_size,
        max_headers,
        max_recipients,
        max_connections,
        max_connections_per_ip,
        max_parallel_routes,
        max_defer_time,
        smtp_bare_lf,
        online_detect,
        log_level,
        local_delivery,
        mda_fromline,
        mda_fromhack,
        delay_warning
    ],
    clone: [
        host_name,
        local_hosts,
        local_addresses,
        not_local_addresses,
        listen_addresses,
        smtps_addresses,
        local_nets,
        spool_dir,
        mail_dir,
        mail_user,
        alias_file,
        online_file,
        online_query,
        mserver_host,
        tls_cert,
        tls_key,
        pid_file,
        mda,
        resolv_conf
    ],
});
clone_by_field!(Route {
    copy: [
        enabled,
        permanent,
        last_route,
        connect_error_fail,
        prefer_ipv4,
        do_pipelining,
        auth_allow_plaintext,
        pipe_fromline,
        pipe_fromhack,
        expand_h_sender_address,
        tls,
        tls_verify,
        tls_fingerprint
    ],
    clone: [
        name,
        devices,
        allowed_senders,
        denied_senders,
        allowed_recipients,
        denied_recipients,
        allowed_from_hdrs,
        denied_from_hdrs,
        mail_host,
        resolve_list,
        helo_name,
        auth_name,
        auth_login,
        auth_secret,
        wrapper,
        pipe,
        set_h_from_domain,
        set_h_reply_to_domain,
        set_return_path_domain,
        map_h_from_addresses,
        map_h_reply_to_addresses,
        map_h_mail_followup_to_addresses,
        map_return_path_addresses,
        tls_ca_file
    ],
});

/// Spellings of an enum's variants in the configuration file.
macro_rules! uci_names {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            /// The UCI spelling of every variant.
            pub const NAMES: &'static [&'static str] = &[$($s),*];

            /// Every variant, in the order of `NAMES`.
            pub const ALL: &'static [Self] = &[$(Self::$v),*];

            /// The UCI spelling of this variant.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$v => $s),*
                }
            }

            /// The variant with this (exact, lower-case) spelling.
            pub fn from_name(s: &str) -> Option<Self> {
                match s {
                    $($s => Some(Self::$v),)*
                    _ => None,
                }
            }
        }
    };
}

uci_names!(OnlineDetect {
    Netlink => "netlink",
    Mserver => "mserver",
    File => "file",
    Command => "command",
});
uci_names!(LocalDelivery {
    Mbox => "mbox",
    Maildir => "maildir",
    Mda => "mda",
});
uci_names!(BareLf {
    Normalize => "normalize",
    Reject => "reject",
});
uci_names!(TlsMode {
    None => "none",
    StartTls => "starttls",
    Tls => "tls",
});
uci_names!(ResolveMethod {
    DnsMx => "dns_mx",
    DnsA => "dns_a",
    Byname => "byname",
});

impl IpNet {
    /// The network of `addr` with `prefix` bits; host bits are cleared and
    /// the prefix is capped at the address length.
    pub fn new(addr: IpAddr, prefix: u8) -> IpNet {
        match addr {
            IpAddr::V4(a) => {
                let prefix = prefix.min(32);
                IpNet {
                    addr: IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(prefix))),
                    prefix,
                }
            }
            IpAddr::V6(a) => {
                let prefix = prefix.min(128);
                IpNet {
                    addr: IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(prefix))),
                    prefix,
                }
            }
        }
    }

    /// Whether `ip` is in this network. An IPv4-mapped IPv6 address
    /// (`::ffff:192.168.1.5`, as an IPv6 socket reports an IPv4 peer)
    /// matches the IPv4 network, and an IPv4 address matches an IPv6 net
    /// through its mapped form.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => in_v4(net, self.prefix, a),
            (IpAddr::V4(net), IpAddr::V6(a)) => a
                .to_ipv4_mapped()
                .is_some_and(|a| in_v4(net, self.prefix, a)),
            (IpAddr::V6(net), IpAddr::V6(a)) => in_v6(net, self.prefix, a),
            (IpAddr::V6(net), IpAddr::V4(a)) => in_v6(net, self.prefix, a.to_ipv6_mapped()),
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0)
}

fn in_v4(net: Ipv4Addr, prefix: u8, a: Ipv4Addr) -> bool {
    let m = mask32(prefix);
    u32::from(net) & m == u32::from(a) & m
}

fn in_v6(net: Ipv6Addr, prefix: u8, a: Ipv6Addr) -> bool {
    let m = mask128(prefix);
    u128::from(net) & m == u128::from(a) & m
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `192.168.1.0/24`, `fd00::/8`, or a bare address (a single host).
impl FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<IpNet, String> {
        value::parse_cidr(s).map_err(|b| b.msg)
    }
}

impl HostPort {
    /// Parse `host`, `host:port`, `[v6]:port` or a bare IPv6 address, with
    /// `default_port` when none is given.
    pub fn parse(s: &str, default_port: u16) -> Result<HostPort, String> {
        let (host, port) = value::parse_host_port(s).map_err(|b| b.msg)?;
        Ok(HostPort {
            host,
            port: port.unwrap_or(default_port),
        })
    }
}

/// `host[:port]`; the port defaults to 25 (SMTP). Use [`HostPort::parse`]
/// for another default.
impl FromStr for HostPort {
    type Err = String;
    fn from_str(s: &str) -> Result<HostPort, String> {
        HostPort::parse(s, 25)
    }
}

/// `host:port`, with brackets around an IPv6 address.
impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&value::format_host_port(self))
    }
}

impl Main {
    /// Whether mail for `domain` is delivered here: a case-insensitive
    /// match against `local_hosts` (a trailing dot is ignored).
    pub fn is_local_domain(&self, domain: &str) -> bool {
        let d = domain.strip_suffix('.').unwrap_or(domain);
        self.local_hosts.iter().any(|h| h.eq_ignore_ascii_case(d))
    }
}

impl Config {
    /// The route named `name`.
    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.name == name)
    }
}

/// One problem in the configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 for the whole file.
    pub line: usize,
    /// The section's name, or `@type[N]` for an anonymous one.
    pub section: Option<String>,
    pub option: Option<String>,
    pub message: String,
    pub hint: Option<String>,
}

/// `FILE:LINE: section 'NAME' option 'OPT': MESSAGE (hint: …)`.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        match (&self.section, &self.option) {
            (Some(s), Some(o)) => write!(f, "section '{s}' option '{o}': ")?,
            (Some(s), None) => write!(f, "section '{s}': ")?,
            (None, Some(o)) => write!(f, "option '{o}': ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (hint: {h})")?;
        }
        Ok(())
    }
}

/// Every problem found in one load, in line order. Never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    fn whole_file(file: &Path, message: String, hint: Option<String>) -> ConfigErrors {
        ConfigErrors {
            errors: vec![ConfigError {
                file: file.to_path_buf(),
                line: 0,
                section: None,
                option: None,
                message,
                hint,
            }],
        }
    }

    /// One line for commands that print a single error line: the first
    /// error, and how many more there are.
    pub fn summary(&self) -> String {
        match self.errors.split_first() {
            None => "configuration error".into(),
            Some((first, [])) => first.to_string(),
            Some((first, rest)) => format!(
                "{first} (and {} more; run 'masqmail config check')",
                rest.len()
            ),
        }
    }
}

/// One error per line.
impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The OpenWrt location.
pub const OPENWRT_PATH: &str = "/etc/config/masqmail";
/// The location on other systems.
pub const DEFAULT_PATH: &str = "/etc/masqmail/masqmail.conf";

/// `/etc/config/masqmail` if it exists (OpenWrt), else
/// `/etc/masqmail/masqmail.conf`.
pub fn default_path() -> PathBuf {
    let uci = Path::new(OPENWRT_PATH);
    if uci.exists() {
        uci.to_path_buf()
    } else {
        PathBuf::from(DEFAULT_PATH)
    }
}

/// Read, parse and check the configuration file. On error, every problem
/// found is returned; a missing or unreadable file is one error, line 0.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let bytes = read_bounded(path)?;
    from_bytes(path, &bytes)
}

/// Parse and check configuration text; `path` names it in errors and is
/// kept in [`Config::path`]. Also for tests and `setup`, which check the
/// text they generate.
pub fn from_bytes(path: &Path, text: &[u8]) -> Result<Config, ConfigErrors> {
    resolve::resolve(path, uci::parse(text), &resolve::system_host_name())
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, ConfigErrors> {
    let io_err = |e: std::io::Error| {
        let hint = (e.kind() == std::io::ErrorKind::NotFound)
            .then(|| "create it, or name another file with -C FILE".to_string());
        ConfigErrors::whole_file(path, format!("cannot read the file: {e}"), hint)
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let mut buf = Vec::new();
    let limit = u64::try_from(uci::MAX_FILE)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    file.take(limit).read_to_end(&mut buf).map_err(io_err)?;
    if buf.len() > uci::MAX_FILE {
        return Err(ConfigErrors::whole_file(
            path,
            format!("the file is larger than {} bytes", uci::MAX_FILE),
            Some("a masqmail configuration is a few KiB; is this the right file?".into()),
        ));
    }
    Ok(buf)
}

/// The effective configuration in UCI syntax: every option, defaults
/// included, secrets masked. Loads back to an equal [`Config`] apart from
/// the masked secrets.
pub fn show(cfg: &Config) -> String {
    show::show(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        resolve::resolve(
            Path::new("t.conf"),
            uci::parse(text.as_bytes()),
            "box.example",
        )
    }

    fn ok(text: &str) -> Config {
        match parse(text) {
            Ok(c) => c,
            Err(e) => panic!("{text}\n{e}"),
        }
    }

    /// A configuration that sets every option to something other than its
    /// default, with secrets.
    const FULL: &str = "
config masqmail 'main'
	option host_name 'mail.example.org'
	list local_hosts 'example.org'
	list local_hosts 'mail.example.org'
	list local_addresses 'root@other.example'
	list listen_addresses '192.168.1.1:25'
	list listen_addresses '[::1]:25'
	list smtps_addresses '192.168.1.1:465'
	list local_nets '192.168.1.0/24'
	option spool_dir '/srv/spool'
	option run_as_user '1'
	option alias_file '/etc/aliases'
	option max_size '1500'
	option max_defer_time '90m'
	option online_detect 'file'
	option online_query 'echo \"it'\\''s\" # x'
	option log_level '7'
	option tls_cert '/etc/masqmail/cert.pem'
	option tls_key '/etc/masqmail/key.pem'

config route 'isp'
	list devices 'pppoe-wan'
	list allowed_senders '*@example.org'
	option mail_host 'smtp.example.net:587'
	list resolve_list 'dns_a'
	list resolve_list 'byname'
	option auth_name 'plain'
	option auth_login 'me@example.org'
	option auth_secret 'hunter2'
	list map_h_from_addresses 'john: John <john@example.org>'
	option tls_fingerprint '00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff'

config route 'lan'
	option permanent '1'
	option pipe '/usr/bin/procmail -d'

config alias
	option name 'postmaster'
	list to 'root'
	list to '|/usr/bin/logger -t mail'

config user
	option name 'printer'
	option password_hash '$6$salt$hash'
";

    #[test]
    fn show_reloads_to_an_equal_config() {
        for text in ["", FULL] {
            let c = ok(text);
            let shown = show(&c);
            let mut back = ok(&shown);
            back.path = c.path.clone();
            // Only the masked secrets differ.
            let mut want = c.clone();
            for r in &mut want.routes {
                if r.auth_secret.is_some() {
                    r.auth_secret = Some(Secret(show::MASK.into()));
                }
            }
            for u in &mut want.users {
                u.password_hash = Secret(show::MASK.into());
            }
            assert_eq!(back, want, "{shown}");
            assert_eq!(show(&back), shown);
        }
    }

    #[test]
    fn show_masks_secrets() {
        let shown = show(&ok(FULL));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("$6$"), "{shown}");
        assert!(shown.contains("\toption auth_secret '********'\n"));
        assert!(shown.contains("\toption password_hash '********'\n"));
    }

    #[test]
    fn show_prints_every_option_of_the_table() {
        let shown = show(&ok(FULL));
        let parsed = uci::parse(shown.as_bytes());
        assert!(parsed.errors.is_empty());
        for spec in schema::SECTIONS {
            let sec = parsed
                .sections
                .iter()
                .find(|s| s.section_type == spec.section_type)
                .unwrap_or_else(|| panic!("no {} section", spec.section_type));
            let printed: Vec<&str> = sec.options.iter().map(|o| o.name.as_str()).collect();
            let table: Vec<&str> = spec.options.iter().map(|o| o.name).collect();
            assert_eq!(printed, table, "{}", spec.section_type);
            for o in &sec.options {
                let os = spec.option(&o.name).expect("in table");
                if os.secret {
                    assert_eq!(o.values[0].text, show::MASK);
                }
            }
        }
    }

    #[test]
    fn show_shape() {
        let shown = show(&ok("config route 'isp'\n\toption mail_host 'h'\n"));
        assert!(shown.starts_with("# masqmail: the configuration in effect, read from t.conf\n"));
        assert!(shown.contains("\n\nconfig masqmail 'main'\n\toption host_name 'box.example'\n"));
        assert!(
            shown.contains("\tlist local_hosts 'localhost'\n\tlist local_hosts 'box.example'\n")
        );
        assert!(shown.contains("\toption smtps_addresses ''\n"));
        assert!(shown.contains("\toption max_size '10M'\n"));
        assert!(shown.contains("\toption max_defer_time '5d'\n"));
        assert!(shown.contains("\nconfig route 'isp'\n\toption enabled '1'\n"));
        assert!(shown.contains("\toption mail_host 'h:25'\n"));
        assert!(shown.contains("\toption auth_secret ''\n"));
        let mut c = ok("");
        c.path = PathBuf::from("a\nconfig route 'x'");
        assert_eq!(ok(&show(&c)).routes.len(), 0);
    }

    #[test]
    fn error_display() {
        let mut e = ConfigError {
            file: PathBuf::from("/etc/config/masqmail"),
            line: 12,
            section: Some("isp".into()),
            option: Some("max_szie".into()),
            message: "unknown option".into(),
            hint: Some("did you mean 'max_size'?".into()),
        };
        assert_eq!(
            e.to_string(),
            "/etc/config/masqmail:12: section 'isp' option 'max_szie': unknown option \
             (hint: did you mean 'max_size'?)"
        );
        e.option = None;
        e.hint = None;
        assert_eq!(
            e.to_string(),
            "/etc/config/masqmail:12: section 'isp': unknown option"
        );
        e.section = None;
        assert_eq!(e.to_string(), "/etc/config/masqmail:12: unknown option");
        let errs = ConfigErrors {
            errors: vec![e.clone(), e.clone()],
        };
        assert_eq!(errs.to_string().lines().count(), 2);
        assert!(errs
            .summary()
            .ends_with("(and 1 more; run 'masqmail config check')"));
    }

    #[test]
    fn missing_file_is_one_error_at_line_0() {
        let p = Path::new("/nonexistent/masqmail-test/masqmail.conf");
        let e = load(p).expect_err("missing file");
        assert_eq!(e.errors.len(), 1);
        assert_eq!(e.errors[0].line, 0);
        let s = e.errors[0].to_string();
        assert!(
            s.starts_with("/nonexistent/masqmail-test/masqmail.conf:0: cannot read"),
            "{s}"
        );
        assert!(s.contains("-C FILE"), "{s}");
    }

    #[test]
    fn default_path_is_one_of_the_two() {
        let p = default_path();
        assert!(p == Path::new(OPENWRT_PATH) || p == Path::new(DEFAULT_PATH));
    }

    #[test]
    fn local_domains() {
        let c = ok(
            "config masqmail\n\tlist local_hosts 'localhost'\n\tlist local_hosts 'Box.Example'\n",
        );
        for d in [
            "localhost",
            "LOCALHOST",
            "box.example",
            "BOX.EXAMPLE.",
            "box.Example",
        ] {
            assert!(c.main.is_local_domain(d), "{d}");
        }
        for d in ["example", "other.example", "", "box.example.."] {
            assert!(!c.main.is_local_domain(d), "{d}");
        }
    }

    #[test]
    fn routes_by_name() {
        let c = ok(FULL);
        assert_eq!(c.route("lan").map(|r| r.permanent), Some(true));
        assert!(c.route("LAN").is_none());
        assert!(c.route("nope").is_none());
    }

    #[test]
    fn ip_net_contains() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let net = |s: &str| s.parse::<IpNet>().expect("net");
        let table: &[(&str, &str, bool)] = &[
            ("192.168.1.0/24", "192.168.1.77", true),
            ("192.168.1.0/24", "192.168.2.1", false),
            ("192.168.1.0/24", "::ffff:192.168.1.5", true),
            ("192.168.1.0/24", "::ffff:10.0.0.1", false),
            ("192.168.1.0/24", "::1", false),
            ("127.0.0.0/8", "127.3.2.1", true),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("0.0.0.0/0", "::ffff:8.8.8.8", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("10.0.0.1", "10.0.0.1", true),
            ("10.0.0.1", "10.0.0.2", false),
            ("::1/128", "::1", true),
            ("::1/128", "127.0.0.1", false),
            ("fd00::/8", "fd12::1", true),
            ("fd00::/8", "fe80::1", false),
            ("::/0", "2001:db8::1", true),
            ("::/0", "10.0.0.1", true),
            ("::ffff:0:0/96", "10.0.0.1", true),
        ];
        for (n, a, want) in table {
            assert_eq!(net(n).contains(ip(a)), *want, "{n} ∋ {a}");
        }
        assert_eq!(IpNet::new(ip("10.1.2.3"), 40).prefix, 32);
        assert_eq!(net("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert!("10.1.2.3/x".parse::<IpNet>().is_err());
    }

    #[test]
    fn host_port_parsing() {
        let hp: HostPort = "smtp.example.net".parse().expect("hp");
        assert_eq!(hp.port, 25);
        assert_eq!(HostPort::parse("mserver", 224).map(|h| h.port), Ok(224));
        assert_eq!(
            HostPort::parse("[::1]:2525", 25).map(|h| h.to_string()),
            Ok("[::1]:2525".into())
        );
        assert!("bad host:1".parse::<HostPort>().is_err());
    }

    #[test]
    fn enum_names_round_trip() {
        for n in OnlineDetect::NAMES {
            assert_eq!(OnlineDetect::from_name(n).map(OnlineDetect::name), Some(*n));
        }
        for n in BareLf::NAMES {
            assert_eq!(BareLf::from_name(n).map(BareLf::name), Some(*n));
        }
        for n in TlsMode::NAMES {
            assert_eq!(TlsMode::from_name(n).map(TlsMode::name), Some(*n));
        }
        for n in ResolveMethod::NAMES {
            assert_eq!(
                ResolveMethod::from_name(n).map(ResolveMethod::name),
                Some(*n)
            );
        }
        assert_eq!(TlsMode::from_name("bogus"), None);
    }

    #[test]
    fn every_example_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut names = Vec::new();
        let entries = std::fs::read_dir(&dir).expect("examples/");
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("conf") {
                continue;
            }
            if let Err(e) = load(&path) {
                panic!("{e}");
            }
            if let Some(n) = path.file_name().and_then(|n| n.to_str()) {
                names.push(n.to_string());
            }
        }
        for want in [
            "test.conf",
            "smarthost.conf",
            "lan-relay.conf",
            "direct-mx.conf",
        ] {
            assert!(names.iter().any(|n| n == want), "examples/{want} missing");
        }
        let t = load(&dir.join("test.conf")).expect("test.conf");
        assert!(t.main.run_as_user);
        assert_eq!(t.main.host_name, "test.example");
    }

    /// xorshift64*: a small deterministic generator for the garbage test.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % (n as u64)).unwrap_or(0)
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut words: Vec<&str> = vec![
            "config",
            "option",
            "list",
            "package",
            "masqmail",
            "route",
            "alias",
            "user",
            "'",
            "\"",
            "\\",
            "#",
            " ",
            "\t",
            "\n",
            "\r\n",
            "''",
            "'a b'",
            "\"x\\\"y\"",
            "0",
            "1",
            "10M",
            "5d",
            "127.0.0.1:25",
            "[::1]:25",
            "192.168.1.0/24",
            "smtp.example.net:587",
            "none",
            "tls",
            "starttls",
            "command",
            "file",
            "a: b",
            "/tmp/x",
            "",
            "ü",
            "\u{0}",
        ];
        for s in schema::SECTIONS {
            words.extend(s.options.iter().map(|o| o.name));
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut loaded = 0;
        for round in 0..4000 {
            let mut input: Vec<u8> = Vec::new();
            let len = rng.below(200);
            for _ in 0..len {
                if round % 4 == 0 {
                    // Raw bytes, including invalid UTF-8.
                    input.push(rng.next() as u8);
                } else {
                    let w = words[rng.below(words.len())];
                    input.extend_from_slice(w.as_bytes());
                    if rng.below(3) == 0 {
                        input.push(b' ');
                    }
                }
            }
            let parsed = uci::parse(&input);
            let res = resolve::resolve(Path::new("fuzz"), parsed, "box.example");
            if let Ok(c) = res {
                // Whatever loads shows and reloads to the same text.
                loaded += 1;
                let shown = show(&c);
                let mut again = ok(&shown);
                again.path = c.path.clone();
                assert_eq!(show(&again), shown);
            }
        }
        assert!(loaded > 0);
    }
}
