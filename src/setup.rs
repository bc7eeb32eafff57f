//! setup — `masqmail setup PRESET …`: a working configuration for one of
//! the common setups in one command (the thesis' "choosing one of several
//! standard setups").
//!
//! DESCRIPTION
//!   Presets:
//!     `smarthost SERVER`  all mail through a provider's server, STARTTLS or
//!                         TLS, with a login; SERVER is a known provider's
//!                         name ([`PROVIDERS`]) or `host[:port]`;
//!     `lan-relay SERVER`  the same, and the LAN may send through this
//!                         machine: it listens on its LAN addresses and
//!                         relays for the LAN networks (`--lan`, default
//!                         the addresses of `br-lan`);
//!     `direct`            delivery to each recipient's MX (needs a public
//!                         address whose reverse DNS is `--host-name`);
//!     `local`             no route: mail stays on this machine.
//!   The text is written to a hidden file next to the target (so that uci
//!   and LuCI never see a half-written config), checked by the same code
//!   as `masqmail config check`, and renamed over the target only when the
//!   check passes. An existing file is replaced only with `--force`;
//!   `--print` writes the text to stdout instead. Then it says what to do
//!   next (reload the daemon, send a test mail, read the log).
//!
//! SECURITY
//!   The file holds the login password: it is created mode 0600 and the
//!   password is never printed (`--print` masks it). `--password -` reads
//!   it from stdin, away from the process list and the shell history.
//!   Every value is quoted for UCI; values with control characters are
//!   refused, so no argument can add a line to the file.
//!
//! DIAGNOSTICS
//!   One line on stderr and exit 64 for a bad or missing argument, 73 when
//!   the file exists (without `--force`) or cannot be written, 78 (with
//!   every error of the check) when the result would not be a valid
//!   configuration; nothing is written then.

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::addr::Address;
use crate::cli::modern::SetupCmd;
use crate::config;
use crate::error::{CmdResult, Exit, Fail};

/// A mail provider's submission server.
#[derive(Clone, Copy, Debug)]
pub struct Provider {
    pub name: &'static str,
    pub host: &'static str,
    pub port: u16,
    pub tls: &'static str,
    /// What the user must know to log in.
    pub note: &'static str,
}

const fn provider(
    name: &'static str,
    host: &'static str,
    port: u16,
    tls: &'static str,
    note: &'static str,
) -> Provider {
    Provider {
        name,
        host,
        port,
        tls,
        note,
    }
}

/// Known providers: `masqmail setup smarthost NAME` fills in the server.
pub const PROVIDERS: &[Provider] = &[
    provider("gmail", "smtp.gmail.com", 587, "starttls",
        "Gmail wants an app password (Google account > Security > App passwords), not your account password."),
    provider("outlook", "smtp-mail.outlook.com", 587, "starttls",
        "Outlook.com may refuse password logins (basic authentication); Microsoft 365 accounts use 'office365'."),
    provider("office365", "smtp.office365.com", 587, "starttls",
        "Microsoft 365: SMTP AUTH must be enabled for the mailbox by its administrator."),
    provider("fastmail", "smtp.fastmail.com", 465, "tls",
        "Fastmail wants an app password (Settings > Privacy & Security > App passwords)."),
    provider("yahoo", "smtp.mail.yahoo.com", 465, "tls",
        "Yahoo wants an app password (Account security > Generate app password)."),
    provider("aol", "smtp.aol.com", 465, "tls",
        "AOL wants an app password (Account security > Generate app password)."),
    provider("icloud", "smtp.mail.me.com", 587, "starttls",
        "iCloud wants an app-specific password (appleid.apple.com); send as your @icloud.com address."),
    provider("gmx", "mail.gmx.net", 587, "starttls",
        "GMX: allow POP3/IMAP/SMTP access in the web mailer's settings first."),
    provider("webde", "smtp.web.de", 587, "starttls",
        "WEB.DE: allow POP3/IMAP/SMTP access in the web mailer's settings first."),
    provider("mailbox", "smtp.mailbox.org", 465, "tls",
        "mailbox.org: log in with your full address."),
    provider("posteo", "posteo.de", 465, "tls",
        "Posteo: log in with your full address."),
    provider("zoho", "smtp.zoho.com", 465, "tls",
        "Zoho: with two-factor login, use an app-specific password."),
];

pub fn find_provider(name: &str) -> Option<&'static Provider> {
    PROVIDERS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// The names of the presets, for messages.
pub const PRESETS: &[&str] = &["smarthost", "lan-relay", "direct", "local"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Preset {
    Smarthost,
    LanRelay,
    Direct,
    Local,
}

impl Preset {
    fn name(self) -> &'static str {
        match self {
            Preset::Smarthost => "smarthost",
            Preset::LanRelay => "lan-relay",
            Preset::Direct => "direct",
            Preset::Local => "local",
        }
    }
}

/// The smarthost part of a plan.
#[derive(Debug)]
struct Smarthost {
    host: String,
    port: u16,
    tls: &'static str,
    login: Option<(String, String)>,
    provider: Option<&'static Provider>,
}

/// One LAN of `lan-relay`: this machine's address there and the network.
#[derive(Debug, PartialEq, Eq)]
struct Lan {
    addr: IpAddr,
    prefix: u8,
    network: IpAddr,
}

/// Everything the file will say, checked.
#[derive(Debug)]
struct Plan {
    preset: Preset,
    host_name: Option<String>,
    mail_user: Option<String>,
    spool: String,
    listen: Vec<String>,
    lans: Vec<Lan>,
    smarthost: Option<Smarthost>,
    from: Option<String>,
    root_to: String,
    ca_file: Option<String>,
    fingerprint: Option<String>,
    command: String,
}

const DEFAULT_SPOOL: &str = "/var/spool/masqmail";

fn usage(msg: impl Into<String>) -> Fail {
    Fail::usage(msg)
}

/// A value that goes into the file: no control characters (a newline
/// would start a new statement).
fn clean(what: &str, v: &str) -> Result<String, Fail> {
    if v.is_empty() {
        return Err(usage(format!("{what} is empty")));
    }
    if v.chars().any(char::is_control) {
        return Err(usage(format!("{what} contains a control character")));
    }
    Ok(v.to_string())
}

/// `host[:port]` or `[v6]:port`.
fn split_host_port(s: &str) -> Result<(String, Option<u16>), Fail> {
    let bad = || usage(format!("server '{s}' is not host or host:port"));
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad())?),
            None if after.is_empty() => None,
            None => return Err(bad()),
        };
        return Ok((host.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            let port = p.parse::<u16>().map_err(|_| bad())?;
            if h.is_empty() || port == 0 {
                return Err(bad());
            }
            Ok((h.to_string(), Some(port)))
        }
        Some(_) => Err(usage(format!(
            "server '{s}': write an IPv6 address as [ADDRESS]:PORT"
        ))),
        None => Ok((s.to_string(), None)),
    }
}

fn tls_name(s: &str) -> Result<&'static str, Fail> {
    match s {
        "starttls" => Ok("starttls"),
        "tls" => Ok("tls"),
        "none" => Ok("none"),
        _ => Err(usage(format!("--tls '{s}': use starttls, tls or none"))),
    }
}

/// `ADDR/PREFIX`, this machine's address in the LAN.
fn parse_lan(s: &str) -> Result<Lan, Fail> {
    let hint = "give this router's address in the LAN with its prefix length, e.g. 192.168.1.1/24";
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| usage(format!("--lan '{s}': no prefix length; {hint}")))?;
    let addr: IpAddr = a
        .parse()
        .map_err(|_| usage(format!("--lan '{s}': not an IP address; {hint}")))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = p
        .parse()
        .ok()
        .filter(|&n| n <= max)
        .ok_or_else(|| usage(format!("--lan '{s}': bad prefix length; {hint}")))?;
    let network = mask(addr, prefix);
    if network == addr && prefix < max - 1 {
        return Err(usage(format!("--lan '{s}' is the network itself; {hint}")));
    }
    Ok(Lan {
        addr,
        prefix,
        network,
    })
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

fn prefix_len(netmask: IpAddr) -> u8 {
    let ones = match netmask {
        IpAddr::V4(m) => u32::from(m).count_ones(),
        IpAddr::V6(m) => u128::from(m).count_ones(),
    };
    u8::try_from(ones).unwrap_or(0)
}

/// The IPv4 addresses of OpenWrt's LAN bridge, `br-lan`.
fn detect_lans() -> Vec<Lan> {
    let mut out = Vec::new();
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return out;
    };
    for ifa in addrs {
        if ifa.interface_name != "br-lan" {
            continue;
        }
        let (Some(a), Some(m)) = (ifa.address, ifa.netmask) else {
            continue;
        };
        let (Some(a), Some(m)) = (a.as_sockaddr_in(), m.as_sockaddr_in()) else {
            continue;
        };
        let addr = IpAddr::V4(a.ip());
        let prefix = prefix_len(IpAddr::V4(m.ip()));
        out.push(Lan {
            addr,
            prefix,
            network: mask(addr, prefix),
        });
    }
    out
}

fn socket_text(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// Read the password from stdin (`--password -`): one line.
fn read_password() -> Result<String, Fail> {
    let mut line = String::new();
    io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Fail::new(Exit::IoErr, format!("reading the password: {e}")))?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    if pw.is_empty() {
        return Err(usage("--password -: no password on stdin"));
    }
    Ok(pw)
}

fn address_arg(what: &str, s: &str) -> Result<String, Fail> {
    Address::parse(s, None)
        .map(|a| a.to_string())
        .map_err(|e| usage(format!("{what} '{s}' is not an address: {e}")))
}

fn user_exists(name: &str) -> bool {
    matches!(nix::unistd::User::from_name(name), Ok(Some(_)))
}

/// Check the arguments and decide everything the file will say.
fn plan(a: &SetupCmd, command: String) -> Result<Plan, Fail> {
    let preset = match a.preset.as_str() {
        "smarthost" => Preset::Smarthost,
        "lan-relay" => Preset::LanRelay,
        "direct" => Preset::Direct,
        "local" => Preset::Local,
        other => {
            return Err(usage(format!(
                "unknown preset '{other}' (presets: {})",
                PRESETS.join(", ")
            )))
        }
    };
    let relaying = matches!(preset, Preset::Smarthost | Preset::LanRelay);
    let name = &a.preset;

    // Options that belong to other presets are mistakes, not no-ops.
    let mut wrong = Vec::new();
    if !relaying {
        for (set, opt) in [
            (a.server.is_some(), "SERVER"),
            (a.port.is_some(), "--port"),
            (a.user.is_some(), "--user"),
            (a.password.is_some(), "--password"),
            (a.from.is_some(), "--from"),
        ] {
            if set {
                wrong.push(opt);
            }
        }
    }
    if preset == Preset::Local {
        for (set, opt) in [
            (a.tls.is_some(), "--tls"),
            (a.ca_file.is_some(), "--ca-file"),
            (a.fingerprint.is_some(), "--fingerprint"),
        ] {
            if set {
                wrong.push(opt);
            }
        }
    }
    if preset != Preset::LanRelay && !a.lan.is_empty() {
        wrong.push("--lan");
    }
    if let Some(opt) = wrong.first() {
        return Err(usage(format!("{opt} does not apply to the {name} preset")));
    }

    let host_name = match &a.host_name {
        Some(h) => {
            let h = clean("--host-name", h)?;
            if let Err(e) = crate::addr::check_domain(&h) {
                return Err(usage(format!("--host-name '{h}' is not a host name: {e}")));
            }
            Some(h)
        }
        None if preset == Preset::Direct => {
            return Err(usage(
                "the direct preset needs --host-name: this machine's public name, as its reverse DNS gives it",
            ))
        }
        None => None,
    };

    let smarthost =
        if relaying {
            let server =
                a.server.as_deref().ok_or_else(|| {
                    usage(format!(
                "the {name} preset needs a SERVER: a provider ({}) or the server's host[:port]",
                PROVIDERS.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
            ))
                })?;
            let server = clean("SERVER", server)?;
            let prov = find_provider(&server);
            let (host, port_in_arg, tls_default) = match prov {
                Some(p) => (p.host.to_string(), Some(p.port), Some(p.tls)),
                None if server.contains('.') || server.contains(':') || server == "localhost" => {
                    let (h, p) = split_host_port(&server)?;
                    (h, p, None)
                }
                None => {
                    return Err(usage(format!(
                        "unknown provider '{server}' (known: {}); or give the server's host name",
                        PROVIDERS
                            .iter()
                            .map(|p| p.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
            };
            if prov.is_none() && port_in_arg.is_some() && a.port.is_some() {
                return Err(usage("the port is given twice (SERVER:PORT and --port)"));
            }
            let tls = match &a.tls {
                Some(t) => tls_name(t)?,
                None => match (tls_default, a.port.or(port_in_arg)) {
                    (_, Some(465)) => "tls",
                    (Some(t), _) => t,
                    (None, _) => "starttls",
                },
            };
            let port = a.port.or(port_in_arg).unwrap_or(match tls {
                "tls" => 465,
                "none" => 25,
                _ => 587,
            });
            if port == 0 {
                return Err(usage("--port 0 is not a port"));
            }
            let login = match (&a.user, &a.password) {
                (Some(u), Some(p)) => {
                    let p = if p == "-" {
                        read_password()?
                    } else {
                        p.clone()
                    };
                    Some((clean("--user", u)?, clean("--password", &p)?))
                }
                (Some(_), None) => {
                    return Err(usage(
                        "--user needs --password (or --password - to read it from stdin)",
                    ))
                }
                (None, Some(_)) => return Err(usage("--password needs --user")),
                (None, None) => None,
            };
            if login.is_none() {
                if let Some(p) = prov {
                    return Err(usage(format!(
                        "{} needs a login: --user and --password. {}",
                        p.name, p.note
                    )));
                }
            }
            if login.is_some() && tls == "none" {
                return Err(usage(
                    "--tls none would send the password in clear text; use starttls or tls",
                ));
            }
            Some(Smarthost {
                host,
                port,
                tls,
                login,
                provider: prov,
            })
        } else {
            None
        };
    if let Some(t) = &a.tls {
        if preset == Preset::Direct && tls_name(t)? == "tls" {
            return Err(usage(
                "--tls tls does not apply to direct delivery: mail servers take STARTTLS on port 25",
            ));
        }
    }

    let from = match (&a.from, &smarthost) {
        (Some(f), _) => Some(address_arg("--from", f)?),
        (
            None,
            Some(Smarthost {
                login: Some((u, _)),
                ..
            }),
        ) if u.contains('@') => Address::parse(u, None).ok().map(|a| a.to_string()),
        _ => None,
    };

    let root_to = match &a.to {
        Some(t) if preset == Preset::Local => {
            let t = clean("--to", t)?;
            if t.contains('@') {
                return Err(usage(
                    "--to with the local preset: a local user (mail cannot leave this machine)",
                ));
            }
            format!("\\{}", t.trim_start_matches('\\'))
        }
        Some(t) => address_arg("--to", t)?,
        None => from.clone().unwrap_or_else(|| "\\root".to_string()),
    };

    let lans = if preset == Preset::LanRelay {
        let lans = if a.lan.is_empty() {
            detect_lans()
        } else {
            a.lan
                .iter()
                .map(|l| parse_lan(l))
                .collect::<Result<_, _>>()?
        };
        if lans.is_empty() {
            return Err(usage(
                "no LAN found (no address on br-lan): give --lan with this router's LAN address, e.g. --lan 192.168.1.1/24",
            ));
        }
        lans
    } else {
        Vec::new()
    };

    let mut listen: Vec<String> = Vec::new();
    for l in &a.listen {
        let l = clean("--listen", l)?;
        if !listen.contains(&l) {
            listen.push(l);
        }
    }
    if listen.is_empty() {
        listen.push("127.0.0.1:25".to_string());
    }
    for lan in &lans {
        let s = socket_text(lan.addr, 25);
        if !listen.contains(&s) {
            listen.push(s);
        }
    }

    let spool = match &a.spool {
        Some(s) => {
            let s = clean("--spool", s)?;
            if !s.starts_with('/') {
                return Err(usage(format!("--spool '{s}' is not an absolute path")));
            }
            s
        }
        None => DEFAULT_SPOOL.to_string(),
    };
    let ca_file = a
        .ca_file
        .as_deref()
        .map(|c| clean("--ca-file", c))
        .transpose()?;
    let fingerprint = a
        .fingerprint
        .as_deref()
        .map(|f| clean("--fingerprint", f))
        .transpose()?;
    if fingerprint.is_some() && smarthost.as_ref().is_some_and(|s| s.tls == "none") {
        return Err(usage("--fingerprint needs TLS (--tls starttls or tls)"));
    }

    Ok(Plan {
        preset,
        host_name,
        mail_user: user_exists("masqmail").then(|| "masqmail".to_string()),
        spool,
        listen,
        lans,
        smarthost,
        from,
        root_to,
        ca_file,
        fingerprint,
        command,
    })
}

/// A UCI value in single quotes (`'` written as `'\''`, as uci does).
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The file's text; `mask` hides the password (for `--print`).
fn render(p: &Plan, mask: bool) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "# masqmail configuration, written by `{}`.", p.command);
    t.push_str(
        "# Check it with `masqmail config check`; every option and its default:\n\
         # `masqmail config show`; the options: masqmail.conf(5).\n\n",
    );
    t.push_str("config masqmail 'main'\n");
    if let Some(h) = &p.host_name {
        let _ = writeln!(t, "\toption host_name {}", q(h));
    }
    if let Some(u) = &p.mail_user {
        let _ = writeln!(t, "\toption mail_user {}", q(u));
    }
    t.push_str(
        "\t# Where mail waits while the route is down. /var is RAM on OpenWrt:\n\
         \t# queued mail is lost at a power cut, but the flash is spared.\n",
    );
    let _ = writeln!(t, "\toption spool_dir {}", q(&p.spool));
    for l in &p.listen {
        let _ = writeln!(t, "\tlist listen_addresses {}", q(l));
    }
    if !p.lans.is_empty() {
        t.push_str("\t# Who may relay: this machine and the LAN.\n");
        for n in ["127.0.0.0/8", "::1/128"] {
            let _ = writeln!(t, "\tlist local_nets {}", q(n));
        }
        for lan in &p.lans {
            let _ = writeln!(
                t,
                "\tlist local_nets {}",
                q(&format!("{}/{}", lan.network, lan.prefix))
            );
        }
    }
    match (&p.smarthost, p.preset) {
        (Some(s), _) => {
            t.push_str(
                "\n# The provider's server; mail leaves when the route is online.\n\
                 config route 'smarthost'\n",
            );
            let host = if s.host.contains(':') {
                format!("[{}]", s.host)
            } else {
                s.host.clone()
            };
            let _ = writeln!(t, "\toption mail_host {}", q(&format!("{host}:{}", s.port)));
            let _ = writeln!(t, "\toption tls {}", q(s.tls));
            if s.tls != "none" {
                t.push_str("\toption tls_verify '1'\n");
            }
            if let Some((u, pw)) = &s.login {
                let _ = writeln!(t, "\toption auth_login {}", q(u));
                let shown = if mask { "********" } else { pw.as_str() };
                let _ = writeln!(t, "\toption auth_secret {}", q(shown));
            }
        }
        (None, Preset::Direct) => {
            t.push_str(
                "\n# Delivery to each recipient's mail server (MX), port 25, with\n\
                 # STARTTLS. Mail servers' certificates often do not match their\n\
                 # names, so they are not checked (like other MTAs' default);\n\
                 # set tls_verify '1' to insist.\n\
                 config route 'mx'\n\
                 \tlist resolve_list 'dns_mx'\n\
                 \tlist resolve_list 'dns_a'\n\
                 \toption tls 'starttls'\n\
                 \toption tls_verify '0'\n",
            );
            if let Some(h) = &p.host_name {
                let _ = writeln!(t, "\toption helo_name {}", q(h));
            }
        }
        (None, _) => {}
    }
    if p.smarthost.is_some() || p.preset == Preset::Direct {
        if let Some(c) = &p.ca_file {
            let _ = writeln!(t, "\toption tls_ca_file {}", q(c));
        }
        if let Some(f) = &p.fingerprint {
            let _ = writeln!(t, "\toption tls_fingerprint {}", q(f));
        }
        if let Some(f) = &p.from {
            t.push_str("\t# Providers accept only their users' own addresses as sender.\n");
            let _ = writeln!(
                t,
                "\tlist map_return_path_addresses {}",
                q(&format!("*: {f}"))
            );
            let _ = writeln!(t, "\tlist map_h_from_addresses {}", q(&format!("*: {f}")));
        }
    }
    t.push_str("\n# Mail to root (and postmaster): cron jobs, alerts.\nconfig alias 'root'\n");
    t.push_str("\toption name 'root'\n");
    let _ = writeln!(t, "\tlist to {}", q(&p.root_to));
    t
}

/// Where setup writes when no `-C` is given: OpenWrt's UCI file on
/// OpenWrt (even when the package's file was removed), else the default.
fn target_path(config: Option<PathBuf>) -> PathBuf {
    if let Some(c) = config {
        return c;
    }
    let uci = Path::new(config::OPENWRT_PATH);
    if uci.exists() || Path::new("/etc/openwrt_release").exists() {
        uci.to_path_buf()
    } else {
        PathBuf::from(config::DEFAULT_PATH)
    }
}

fn write_fail(path: &Path, e: &io::Error) -> Fail {
    Fail::new(
        Exit::CantCreate,
        format!("cannot write {}: {e}", path.display()),
    )
}

/// Write `text` to a new file `tmp` (mode 0600) and check it as `config
/// check` would; errors are printed as if they were `shown`'s. On failure
/// `tmp` is removed.
fn write_and_check(tmp: &Path, shown: &Path, text: &str) -> CmdResult {
    let _ = fs::remove_file(tmp);
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(tmp);
        return Err(write_fail(shown, &e));
    }
    if let Err(errs) = config::load(tmp) {
        let _ = fs::remove_file(tmp);
        let (from, to) = (tmp.display().to_string(), shown.display().to_string());
        let mut err = io::stderr().lock();
        for e in &errs.errors {
            let _ = writeln!(err, "{}", e.to_string().replace(&from, &to));
        }
        return Err(Fail::new(
            Exit::Config,
            format!(
                "{}: {} error(s) in the result; nothing written",
                shown.display(),
                errs.errors.len()
            ),
        ));
    }
    Ok(())
}

/// Write `text` to a hidden file beside `path`, check it, rename it over
/// `path`. On a failed check nothing is left behind.
fn write_checked(path: &Path, text: &str) -> CmdResult {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "masqmail".into());
    if !dir.is_dir() {
        fs::create_dir_all(&dir).map_err(|e| write_fail(&dir, &e))?;
    }
    let tmp = dir.join(format!(".{base}.setup"));
    write_and_check(&tmp, path, text)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(write_fail(path, &e));
    }
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// How to make the running daemon read the new file.
fn reload_hint(path: &Path, custom: bool) -> String {
    if custom {
        return format!(
            "restart `masqmail -C {} daemon` (or send it SIGHUP)",
            path.display()
        );
    }
    if path == Path::new(config::OPENWRT_PATH) {
        "/etc/init.d/masqmail reload".into()
    } else if Path::new("/run/systemd/system").is_dir() {
        "systemctl reload masqmail".into()
    } else {
        "/etc/init.d/masqmail reload".into()
    }
}

/// What was set up, in words, and what to do next.
fn summary(p: &Plan, path: &Path, custom: bool, replaced: bool) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{} {} ({} preset).",
        if replaced { "Replaced" } else { "Wrote" },
        path.display(),
        p.preset.name()
    );
    let _ = writeln!(t, "{}: OK", path.display());
    if let Some(s) = &p.smarthost {
        let tls = match s.tls {
            "tls" => "TLS",
            "starttls" => "STARTTLS",
            _ => "no encryption",
        };
        let _ = write!(t, "Mail leaves through {}:{} ({tls}", s.host, s.port);
        match &s.login {
            Some((u, _)) => {
                let _ = writeln!(t, ", login {u}).");
            }
            None => t.push_str(", no login).\n"),
        }
    }
    match p.preset {
        Preset::Direct => {
            t.push_str("Mail goes straight to each recipient's mail server on port 25.\n")
        }
        Preset::Local => t.push_str("No route: mail stays on this machine.\n"),
        _ => {}
    }
    if let Some(f) = &p.from {
        let _ = writeln!(t, "Mail from users of this machine is sent as {f}.");
    }
    for lan in &p.lans {
        let _ = writeln!(
            t,
            "LAN devices in {}/{} send to {} port 25, no login; give them a sender @{} to have it rewritten.",
            lan.network,
            lan.prefix,
            lan.addr,
            p.host_name.as_deref().unwrap_or("this host's name")
        );
    }
    if p.root_to.starts_with('\\') {
        let _ = writeln!(
            t,
            "Mail for root stays in the local mailbox of {}; --to ADDRESS sends it to you.",
            p.root_to.trim_start_matches('\\')
        );
    } else {
        let _ = writeln!(t, "Mail for root goes to {}.", p.root_to);
    }
    if let Some(note) = p
        .smarthost
        .as_ref()
        .and_then(|s| s.provider)
        .map(|p| p.note)
    {
        let _ = writeln!(t, "{note}");
    }
    let c = if custom {
        format!(" -C {}", path.display())
    } else {
        String::new()
    };
    let _ = writeln!(t, "\nNext:");
    let _ = writeln!(
        t,
        "  make the daemon read it:  {}",
        reload_hint(path, custom)
    );
    let _ = writeln!(t, "  send a test message:      masqmail{c} testmail");
    let _ = writeln!(
        t,
        "  see it leave:             logread -e masqmail  (mailq: what still waits)"
    );
    t
}

/// `masqmail setup PRESET …`.
pub fn run(config_arg: Option<PathBuf>, a: &SetupCmd) -> CmdResult {
    let mut command = format!("masqmail setup {}", a.preset);
    if let Some(s) = &a.server {
        let _ = write!(command, " {s}");
    }
    let p = plan(a, command)?;
    if a.print {
        // Checked like a written file, then shown with the password masked.
        let tmp = std::env::temp_dir().join(format!(".masqmail-setup-{}", std::process::id()));
        write_and_check(&tmp, Path::new("(printed config)"), &render(&p, false))?;
        let _ = fs::remove_file(&tmp);
        print!("{}", render(&p, true));
        return Ok(());
    }
    let custom = config_arg.is_some();
    let path = target_path(config_arg);
    let replaced = path.exists();
    if replaced && !a.force {
        return Err(Fail::new(
            Exit::CantCreate,
            format!(
                "{} exists; add --force to replace it (its settings are not kept)",
                path.display()
            ),
        ));
    }
    write_checked(&path, &render(&p, false))?;
    print!("{}", summary(&p, &path, custom, replaced));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        assert_eq!(
            split_host_port("smtp.example.net:587").unwrap(),
            ("smtp.example.net".into(), Some(587))
        );
        assert_eq!(
            split_host_port("smtp.example.net").unwrap(),
            ("smtp.example.net".into(), None)
        );
        assert_eq!(
            split_host_port("[2001:db8::1]:25").unwrap(),
            ("2001:db8::1".into(), Some(25))
        );
        for bad in [
            "h:x",
            "h:0",
            ":25",
            "2001:db8::1",
            "[::1",
            "[::1]x",
            "h:99999",
        ] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lans() {
        let l = parse_lan("192.168.1.1/24").unwrap();
        assert_eq!(l.network, "192.168.1.0".parse::<IpAddr>().unwrap());
        assert_eq!((l.addr.to_string().as_str(), l.prefix), ("192.168.1.1", 24));
        let l = parse_lan("fd00:1::1/64").unwrap();
        assert_eq!(l.network.to_string(), "fd00:1::");
        for bad in [
            "192.168.1.0/24",
            "192.168.1.1",
            "192.168.1.1/33",
            "x/24",
            "fd00::/64",
        ] {
            assert!(parse_lan(bad).is_err(), "{bad}");
        }
        assert_eq!(prefix_len("255.255.255.0".parse().unwrap()), 24);
    }

    #[test]
    fn quoting_keeps_values_whole() {
        assert_eq!(q("it's"), "'it'\\''s'");
        assert!(clean("x", "a\nb").is_err());
        assert!(clean("x", "").is_err());
    }

    #[test]
    fn providers_are_unique_and_lower_case() {
        for (i, p) in PROVIDERS.iter().enumerate() {
            assert_eq!(p.name, p.name.to_ascii_lowercase());
            assert!(!p.name.contains('.'), "{} would read as a host", p.name);
            assert!(PROVIDERS[i + 1..].iter().all(|o| o.name != p.name));
            assert!(matches!(p.tls, "tls" | "starttls"));
        }
        assert_eq!(
            find_provider("GMail").map(|p| p.host),
            Some("smtp.gmail.com")
        );
    }
}
