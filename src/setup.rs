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
//!                         `interface 'lan'` of OpenWrt's
//!                         /etc/config/network);
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
//!   Reads /etc/config/network (lan-relay without `--lan`) and the config
//!   path; writes only the config file and its hidden temporary twin.
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

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
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
pub const PRESETS: &str = "smarthost, lan-relay, direct, local";

fn provider_names() -> String {
    let mut t = String::new();
    for p in PROVIDERS {
        if !t.is_empty() {
            t.push_str(", ");
        }
        t.push_str(p.name);
    }
    t
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Preset {
    Smarthost,
    LanRelay,
    Direct,
    Local,
}

impl Preset {
    /// Every preset, in the order of `NAMES`.
    const ALL: [Preset; 4] = [
        Preset::Smarthost,
        Preset::LanRelay,
        Preset::Direct,
        Preset::Local,
    ];
    /// The name of each preset on the command line.
    const NAMES: [&'static str; 4] = ["smarthost", "lan-relay", "direct", "local"];

    fn name(self) -> &'static str {
        Preset::NAMES
            .get(self as usize)
            .copied()
            .unwrap_or_default()
    }
}

/// The smarthost part of a plan.
#[derive(Debug)]
struct Smarthost<'a> {
    /// `host:port`, IPv6 in brackets.
    server: String,
    tls: &'static str,
    /// User and password (read from stdin for `--password -`).
    login: Option<(&'a str, String)>,
    provider: Option<&'static Provider>,
}

/// One LAN of `lan-relay`: this machine's address there and the network.
#[derive(Debug, PartialEq, Eq)]
struct Lan {
    addr: IpAddr,
    /// The network, host bits cleared.
    net: config::IpNet,
}

/// Everything the file will say, checked; borrows the arguments.
#[derive(Debug)]
struct Plan<'a> {
    preset: Preset,
    host_name: Option<&'a str>,
    mail_user: bool,
    spool: &'a str,
    listen: Vec<String>,
    lans: Vec<Lan>,
    smarthost: Option<Smarthost<'a>>,
    from: Option<String>,
    root_to: String,
    ca_file: Option<&'a str>,
    fingerprint: Option<&'a str>,
}

const DEFAULT_SPOOL: &str = "/var/spool/masqmail";
/// OpenWrt's network config: where `lan-relay` finds the LAN by default.
const NETWORK_CONFIG: &str = "/etc/config/network";

/// `WHAT 'VALUE': WHY`, exit 64.
fn bad(what: &str, val: &str, why: &str) -> Boxed {
    usage(format!("{what} '{val}': {why}"))
}

/// A failure, boxed: the checks' results stay small.
type Boxed = Box<Fail>;

/// A usage error (exit 64), boxed.
#[inline(never)]
fn usage(msg: String) -> Boxed {
    Box::new(Fail::usage(msg))
}

/// [`usage`] with a fixed message.
#[inline(never)]
fn usage_s(msg: &str) -> Boxed {
    usage(msg.to_string())
}

/// A value that goes into the file: no control characters (a newline
/// would start a new statement).
fn clean<'a>(what: &str, v: &'a str) -> Result<&'a str, Boxed> {
    if v.is_empty() || v.chars().any(char::is_control) {
        return Err(bad(what, v, "empty, or holds a control character"));
    }
    Ok(v)
}

/// `host[:port]` or `[v6]:port`.
fn split_host_port(s: &str) -> Result<(&str, Option<u16>), Boxed> {
    // The host, and Ok(port text if any) or Err for a bad form.
    let (host, port) = match s.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((h, "")) => (h, Ok(None)),
            Some((h, after)) => (h, after.strip_prefix(':').map(Some).ok_or(())),
            None => (rest, Err(())),
        },
        None => match s.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && !h.contains(':') => (h, Ok(Some(p))),
            Some(_) => (s, Err(())),
            None => (s, Ok(None)),
        },
    };
    let port = match port {
        Ok(Some(p)) => p.parse::<u16>().ok().filter(|&n| n > 0).map(Some).ok_or(()),
        Ok(None) => Ok(None),
        Err(()) => Err(()),
    };
    match port {
        Ok(p) => Ok((host, p)),
        Err(()) => Err(bad("server", s, "not host, host:port or [IPv6]:port")),
    }
}

fn tls_name(s: &str) -> Result<&'static str, Boxed> {
    match s {
        "starttls" => Ok("starttls"),
        "tls" => Ok("tls"),
        "none" => Ok("none"),
        _ => Err(bad("--tls", s, "use starttls, tls or none")),
    }
}

/// `ADDR/PREFIX`, this machine's address in the LAN.
fn parse_lan(s: &str) -> Result<Lan, Boxed> {
    let fail = |why: &str| bad("--lan", s, why);
    let (a, p) = s.split_once('/').ok_or_else(|| {
        fail("give this machine's LAN address with the prefix length, e.g. 192.168.1.1/24")
    })?;
    lan_of(a, p.parse().ok()).map_err(fail)
}

/// The LAN of address `a` with `prefix` bits (None: not a number); the
/// error says why not.
fn lan_of(a: &str, prefix: Option<u8>) -> Result<Lan, &'static str> {
    let addr: IpAddr = a.parse().map_err(|_| "not an IP address")?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.filter(|&n| n <= max).ok_or("bad prefix length")?;
    let net = config::IpNet::new(addr, prefix);
    if net.addr == addr && prefix < max - 1 {
        return Err("the network itself; give this machine's address in it, e.g. 192.168.1.1/24");
    }
    Ok(Lan { addr, net })
}

/// The LAN of OpenWrt's network config: `config interface 'lan'` with
/// `ipaddr` (one or a list, `A.B.C.D` with `netmask`, or `A.B.C.D/N`).
fn lans_from_network(text: &[u8]) -> Vec<Lan> {
    let parsed = config::uci::parse(text);
    let Some(lan) = parsed
        .sections
        .iter()
        .find(|s| s.section_type == "interface" && s.name.as_deref() == Some("lan"))
    else {
        return Vec::new();
    };
    let prefix = lan
        .get("netmask")
        .and_then(|m| m.values.first())
        .and_then(|v| v.text.parse::<std::net::Ipv4Addr>().ok())
        .map(|m| u32::from(m).count_ones());
    let mut out = Vec::new();
    for v in lan
        .get("ipaddr")
        .map(|o| o.values.as_slice())
        .unwrap_or(&[])
    {
        let l = match (v.text.split_once('/'), prefix) {
            (Some((a, p)), _) => lan_of(a, p.parse().ok()),
            (None, Some(p)) => lan_of(&v.text, u8::try_from(p).ok()),
            (None, None) => continue,
        };
        if let Ok(l) = l {
            out.push(l);
        }
    }
    out
}

fn socket_text(addr: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(addr, port).to_string()
}

/// Read the password from stdin (`--password -`): one line, without its
/// line end. Read a byte at a time from the descriptor: nothing after the
/// line is taken, and no buffered reader is needed for one line.
fn read_password() -> Result<String, Boxed> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match nix::unistd::read(io::stdin(), &mut b) {
            Ok(1) if b[0] != b'\n' => line.push(b[0]),
            // The line end, or the end of the input (a closed stdin too,
            // as std reads it).
            Ok(_) | Err(nix::errno::Errno::EBADF) => break,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                let e = io::Error::from(e);
                return Err(Box::new(Fail::new(
                    Exit::IoErr,
                    format!("reading the password: {e}"),
                )));
            }
        }
    }
    while line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| {
        Box::new(Fail::new(
            Exit::IoErr,
            "reading the password: stream did not contain valid UTF-8",
        ))
    })
}

fn address_arg(what: &str, s: &str) -> Result<String, Boxed> {
    match Address::parse(s, None) {
        Ok(a) => Ok(a.to_string()),
        Err(_) => Err(bad(what, s, "not an address (user@domain)")),
    }
}

/// Check the arguments and decide everything the file will say.
fn plan(a: &SetupCmd) -> Result<Plan<'_>, Boxed> {
    let Some(preset) = Preset::NAMES
        .iter()
        .position(|&n| n == a.preset)
        .and_then(|i| Preset::ALL.get(i).copied())
    else {
        return Err(bad(
            "preset",
            &a.preset,
            concat!("unknown; presets: ", "smarthost, lan-relay, direct, local"),
        ));
    };
    let relaying = matches!(preset, Preset::Smarthost | Preset::LanRelay);

    // Options that belong to other presets are mistakes, not no-ops: the
    // options given, one bit each in the order of OPTS, against the ones
    // the preset takes.
    const OPTS: [&str; 9] = [
        "SERVER",
        "--port",
        "--user",
        "--password",
        "--from",
        "--tls",
        "--ca-file",
        "--fingerprint",
        "--lan",
    ];
    let given = [
        a.server.is_some(),
        a.port.is_some(),
        a.user.is_some(),
        a.password.is_some(),
        a.from.is_some(),
        a.tls.is_some(),
        a.ca_file.is_some(),
        a.fingerprint.is_some(),
        !a.lan.is_empty(),
    ];
    let takes: u32 = match preset {
        Preset::Smarthost => 0xff,
        Preset::LanRelay => 0x1ff,
        Preset::Direct => 0xe0,
        Preset::Local => 0,
    };
    let mut bits = 0u32;
    for (i, &g) in given.iter().enumerate() {
        bits |= u32::from(g) << i;
    }
    let wrong = bits & !takes;
    if wrong != 0 {
        let opt = OPTS.get(wrong.trailing_zeros() as usize).unwrap_or(&"?");
        return Err(usage(format!(
            "{opt} does not apply to the {} preset",
            preset.name()
        )));
    }

    let host_name = match &a.host_name {
        Some(h) => {
            if crate::addr::check_domain(h).is_err() {
                return Err(bad("--host-name", h, "not a host name"));
            }
            Some(h.as_str())
        }
        None if preset == Preset::Direct => {
            return Err(usage_s(
                "the direct preset needs --host-name: this machine's public name, as its reverse DNS gives it",
            ))
        }
        None => None,
    };

    let smarthost = if relaying {
        let Some(server) = a.server.as_deref() else {
            return Err(usage(format!(
                "the {} preset needs a SERVER: host[:port] or a provider ({})",
                preset.name(),
                provider_names()
            )));
        };
        let server = clean("SERVER", server)?;
        let prov = find_provider(server);
        let (host, arg_port, prov_tls) = match prov {
            Some(p) => (p.host, Some(p.port), Some(p.tls)),
            None if server.contains(['.', ':']) || server == "localhost" => {
                let (h, p) = split_host_port(server)?;
                if p.is_some() && a.port.is_some() {
                    return Err(bad("--port", server, "the port is given twice"));
                }
                (h, p, None)
            }
            None => {
                return Err(usage(format!(
                    "unknown provider '{server}' (known: {}); or give the server's host name",
                    provider_names()
                )))
            }
        };
        let port = a.port.or(arg_port);
        let tls = match (&a.tls, port, prov_tls) {
            (Some(t), _, _) => tls_name(t)?,
            (None, Some(465), _) => "tls",
            (None, _, Some(t)) => t,
            (None, _, None) => "starttls",
        };
        let port = port.unwrap_or(match tls {
            "tls" => 465,
            "none" => 25,
            _ => 587,
        });
        if port == 0 {
            return Err(usage_s("--port 0 is not a port"));
        }
        let login = match (&a.user, &a.password) {
            (Some(u), Some(p)) => {
                let p = if p == "-" {
                    read_password()?
                } else {
                    p.clone()
                };
                let u = clean("--user", u)?;
                clean("--password", &p)?;
                Some((u, p))
            }
            (Some(_), None) => {
                return Err(usage_s(
                    "--user needs --password (--password - reads it from stdin)",
                ))
            }
            (None, Some(_)) => return Err(usage_s("--password needs --user")),
            (None, None) => None,
        };
        if let (None, Some(p)) = (&login, prov) {
            return Err(usage(format!(
                "{} needs --user and --password. {}",
                p.name, p.note
            )));
        }
        if login.is_some() && tls == "none" {
            return Err(usage_s(
                "--tls none would send the password in clear text; use starttls or tls",
            ));
        }
        let (l, r) = if host.contains(':') {
            ("[", "]")
        } else {
            ("", "")
        };
        let server = format!("{l}{host}{r}:{port}");
        Some(Smarthost {
            server,
            tls,
            login,
            provider: prov,
        })
    } else {
        None
    };
    if preset == Preset::Direct && a.tls.as_deref().map(tls_name).transpose()? == Some("tls") {
        return Err(usage_s(
            "--tls tls does not apply to direct delivery: mail servers take STARTTLS on port 25",
        ));
    }

    let from = match (&a.from, &smarthost) {
        (Some(f), _) => Some(address_arg("--from", f)?),
        (
            None,
            Some(Smarthost {
                login: Some((u, _)),
                ..
            }),
        ) => Address::parse(u, None).ok().map(|a| a.to_string()),
        _ => None,
    };

    let root_to = match &a.to {
        Some(t) if preset == Preset::Local => {
            let t = clean("--to", t)?;
            if t.contains('@') {
                return Err(bad("--to", t, "with the local preset, a local user"));
            }
            format!("\\{}", t.trim_start_matches('\\'))
        }
        Some(t) => address_arg("--to", t)?,
        None => from.clone().unwrap_or_else(|| "\\root".to_string()),
    };

    let lans = if preset != Preset::LanRelay {
        Vec::new()
    } else if a.lan.is_empty() {
        let found = fs::read(NETWORK_CONFIG)
            .map(|t| lans_from_network(&t))
            .unwrap_or_default();
        if found.is_empty() {
            return Err(usage_s(
                "no LAN address in /etc/config/network: give --lan with this machine's LAN address, e.g. --lan 192.168.1.1/24",
            ));
        }
        found
    } else {
        let mut v = Vec::new();
        for l in &a.lan {
            v.push(parse_lan(l)?);
        }
        v
    };

    let mut listen: Vec<String> = Vec::new();
    for l in &a.listen {
        listen.push(clean("--listen", l)?.to_string());
    }
    if listen.is_empty() {
        listen.push("127.0.0.1:25".to_string());
    }
    for lan in &lans {
        listen.push(socket_text(lan.addr, 25));
    }
    listen.dedup();

    let spool = match &a.spool {
        Some(s) if !s.starts_with('/') => return Err(bad("--spool", s, "not an absolute path")),
        Some(s) => clean("--spool", s)?,
        None => DEFAULT_SPOOL,
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
        return Err(usage_s("--fingerprint needs TLS (--tls starttls or tls)"));
    }

    Ok(Plan {
        preset,
        host_name,
        mail_user: matches!(crate::passwd::by_name("masqmail"), Ok(Some(_))),
        spool,
        listen,
        lans,
        smarthost,
        from,
        root_to,
        ca_file,
        fingerprint,
    })
}

/// One `\toption NAME 'VALUE'` (or `list`) line, quoted as uci does.
fn put(t: &mut String, kind: &str, name: &str, value: &str) {
    config::put_line(t, kind, name, value);
}

/// The file's text; `mask` hides the password (for `--print`).
fn render(p: &Plan, command: &str, mask: bool) -> String {
    let mut t = String::new();
    t.push_str("# masqmail configuration, written by `");
    t.push_str(command);
    t.push_str(
        "`.\n# Check it with `masqmail config check`; every option and its default:\n\
         # `masqmail config show`; the options: masqmail.conf(5).\n\n\
         config masqmail 'main'\n",
    );
    if let Some(h) = &p.host_name {
        put(&mut t, "option", "host_name", h);
    }
    if p.mail_user {
        put(&mut t, "option", "mail_user", "masqmail");
    }
    t.push_str(
        "\t# Where mail waits while the route is down. /var is RAM on OpenWrt:\n\
         \t# queued mail is lost at a power cut, but the flash is spared.\n",
    );
    put(&mut t, "option", "spool_dir", p.spool);
    for l in &p.listen {
        put(&mut t, "list", "listen_addresses", l);
    }
    if !p.lans.is_empty() {
        t.push_str(
            "\t# Who may relay: this machine and the LAN.\n\
             \tlist local_nets '127.0.0.0/8'\n\tlist local_nets '::1/128'\n",
        );
        for lan in &p.lans {
            put(&mut t, "list", "local_nets", &lan.net.to_string());
        }
    }
    if let Some(s) = &p.smarthost {
        t.push_str(
            "\n# The provider's server; mail leaves when the route is online.\n\
             config route 'smarthost'\n",
        );
        put(&mut t, "option", "mail_host", &s.server);
        put(&mut t, "option", "tls", s.tls);
        if s.tls != "none" {
            t.push_str("\toption tls_verify '1'\n");
        }
        if let Some((u, pw)) = &s.login {
            put(&mut t, "option", "auth_login", u);
            put(
                &mut t,
                "option",
                "auth_secret",
                if mask { "********" } else { pw },
            );
        }
    } else if p.preset == Preset::Direct {
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
            put(&mut t, "option", "helo_name", h);
        }
    }
    if p.smarthost.is_some() || p.preset == Preset::Direct {
        if let Some(c) = &p.ca_file {
            put(&mut t, "option", "tls_ca_file", c);
        }
        if let Some(f) = &p.fingerprint {
            put(&mut t, "option", "tls_fingerprint", f);
        }
        if let Some(f) = &p.from {
            t.push_str("\t# Providers accept only their users' own addresses as sender.\n");
            let map = format!("*: {f}");
            put(&mut t, "list", "map_return_path_addresses", &map);
            put(&mut t, "list", "map_h_from_addresses", &map);
        }
    }
    t.push_str(
        "\n# Mail to root (and postmaster): cron jobs, alerts.\n\
         config alias 'root'\n\toption name 'root'\n",
    );
    put(&mut t, "list", "to", &p.root_to);
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
        // Named as the file they are about (messages never hold the path).
        let mut errs = errs;
        for e in &mut errs.errors {
            e.file = shown.to_path_buf();
        }
        let mut err = io::stderr().lock();
        for e in &errs.errors {
            let _ = writeln!(err, "{e}");
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
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(".setup");
    let tmp = dir.join(tmp_name);
    fs::create_dir_all(&dir).map_err(|e| write_fail(&dir, &e))?;
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

/// What was set up, in words, and what to do next.
fn summary(p: &Plan, path: &Path, custom: bool) -> String {
    let file = path.display().to_string();
    let mut t = format!("{file}: OK ({} preset)\n", p.preset.name());
    if let Some(s) = &p.smarthost {
        t.push_str("Mail leaves through ");
        t.push_str(&s.server);
        t.push_str(match s.tls {
            "tls" => " with TLS",
            "starttls" => " with STARTTLS",
            _ => " without encryption",
        });
        if let Some((u, _)) = &s.login {
            t.push_str(", login ");
            t.push_str(u);
        }
        t.push_str(".\n");
    }
    if let Some(f) = &p.from {
        t.push_str("Mail of this machine's users is sent as ");
        t.push_str(f);
        t.push_str(".\n");
    }
    if !p.lans.is_empty() {
        t.push_str("LAN devices may send through this machine on port 25 (no login).\n");
    }
    t.push_str("Mail for root goes to ");
    t.push_str(&p.root_to);
    t.push_str(if p.root_to.starts_with('\\') {
        " (a local mailbox; --to ADDRESS sends it to you).\n"
    } else {
        ".\n"
    });
    if let Some(prov) = p.smarthost.as_ref().and_then(|s| s.provider) {
        t.push_str(prov.note);
        t.push('\n');
    }
    t.push_str("\nNext:\n  make the daemon read it:  ");
    if custom {
        t.push_str("restart `masqmail -C ");
        t.push_str(&file);
        t.push_str(" daemon`");
    } else if path.as_os_str() == config::OPENWRT_PATH || !Path::new("/run/systemd/system").is_dir()
    {
        t.push_str("/etc/init.d/masqmail reload");
    } else {
        t.push_str("systemctl reload masqmail");
    }
    t.push_str("\n  send a test message:      masqmail");
    if custom {
        t.push_str(" -C ");
        t.push_str(&file);
    }
    t.push_str(
        " testmail\n  see it leave:             logread -e masqmail  (mailq: what still waits)\n",
    );
    t
}

/// `masqmail setup PRESET …`.
pub fn run(config_arg: Option<PathBuf>, a: &SetupCmd) -> CmdResult {
    let mut command = String::from("masqmail setup ");
    command.push_str(&a.preset);
    if let Some(s) = &a.server {
        command.push(' ');
        command.push_str(s);
    }
    let p = plan(a).map_err(|e| *e)?;
    if a.print {
        // Checked like a written file, then shown with the password masked.
        let tmp = std::env::temp_dir().join(format!(".masqmail-setup-{}", std::process::id()));
        write_and_check(
            &tmp,
            Path::new("(printed config)"),
            &render(&p, &command, false),
        )?;
        let _ = fs::remove_file(&tmp);
        print!("{}", render(&p, &command, true));
        return Ok(());
    }
    let custom = config_arg.is_some();
    let path = target_path(config_arg);
    if path.exists() && !a.force {
        return Err(Fail::new(
            Exit::CantCreate,
            format!(
                "{} exists; add --force to replace it (its settings are not kept)",
                path.display()
            ),
        ));
    }
    write_checked(&path, &render(&p, &command, false))?;
    print!("{}", summary(&p, &path, custom));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        assert_eq!(
            split_host_port("smtp.example.net:587").unwrap(),
            ("smtp.example.net", Some(587))
        );
        assert_eq!(
            split_host_port("smtp.example.net").unwrap(),
            ("smtp.example.net", None)
        );
        assert_eq!(
            split_host_port("[2001:db8::1]:25").unwrap(),
            ("2001:db8::1", Some(25))
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
        assert_eq!(socket_text("fd00::1".parse().unwrap(), 25), "[fd00::1]:25");
    }

    #[test]
    fn lans() {
        let l = parse_lan("192.168.1.1/24").unwrap();
        assert_eq!(l.net.addr, "192.168.1.0".parse::<IpAddr>().unwrap());
        assert_eq!(
            (l.addr.to_string().as_str(), l.net.prefix),
            ("192.168.1.1", 24)
        );
        let l = parse_lan("fd00:1::1/64").unwrap();
        assert_eq!(l.net.to_string(), "fd00:1::/64");
        for bad in [
            "192.168.1.0/24",
            "192.168.1.1",
            "192.168.1.1/33",
            "x/24",
            "fd00::/64",
        ] {
            assert!(parse_lan(bad).is_err(), "{bad}");
        }
        let l = parse_lan("10.1.2.3/32").unwrap();
        assert_eq!(l.net.to_string(), "10.1.2.3/32");
    }

    #[test]
    fn the_lan_of_openwrts_network_config() {
        let old = b"config interface 'loopback'\n\toption ipaddr '127.0.0.1'\n\toption netmask '255.0.0.0'\n\
            config interface 'lan'\n\toption device 'br-lan'\n\toption proto 'static'\n\
            \toption ipaddr '192.168.1.1'\n\toption netmask '255.255.255.0'\n";
        let l = lans_from_network(old);
        assert_eq!(l.len(), 1);
        assert_eq!(
            (l[0].addr.to_string(), l[0].net.prefix),
            ("192.168.1.1".into(), 24)
        );
        let cidr =
            b"config interface 'lan'\n\tlist ipaddr '10.0.0.1/16'\n\tlist ipaddr 'fd00::1/64'\n";
        let l = lans_from_network(cidr);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].net.to_string(), "10.0.0.0/16");
        assert!(lans_from_network(b"config interface 'wan'\n\toption proto 'dhcp'\n").is_empty());
        assert!(lans_from_network(b"config interface 'lan'\n\toption proto 'dhcp'\n").is_empty());
    }

    #[test]
    fn quoting_keeps_values_whole() {
        assert!(clean("x", "a\nb").is_err());
        assert!(clean("x", "").is_err());
        let mut t = String::new();
        put(&mut t, "list", "to", "\\root");
        assert_eq!(t, "\tlist to '\\root'\n");
        put(&mut t, "option", "x", "it's");
        assert!(t.ends_with("\toption x 'it'\\''s'\n"));
    }

    /// `setup PRESET` with no options.
    fn blank(preset: &str) -> SetupCmd {
        SetupCmd {
            preset: preset.into(),
            server: None,
            port: None,
            tls: None,
            user: None,
            password: None,
            from: None,
            to: None,
            ca_file: None,
            fingerprint: None,
            lan: Vec::new(),
            host_name: None,
            spool: None,
            listen: Vec::new(),
            force: false,
            print: false,
        }
    }

    #[test]
    fn options_of_other_presets_are_refused() {
        let x = || Some("x".to_string());
        for preset in ["smarthost", "lan-relay", "direct", "local"] {
            let relaying = preset == "smarthost" || preset == "lan-relay";
            for k in 0..9 {
                let mut a = blank(preset);
                let (opt, refused) = match k {
                    0 => (&mut a.server, !relaying),
                    1 => (&mut a.user, !relaying),
                    2 => (&mut a.password, !relaying),
                    3 => (&mut a.from, !relaying),
                    4 => (&mut a.tls, preset == "local"),
                    5 => (&mut a.ca_file, preset == "local"),
                    6 => (&mut a.fingerprint, preset == "local"),
                    _ => (&mut a.to, false),
                };
                *opt = x();
                if k == 8 {
                    a.port = Some(25);
                }
                let refused = if k == 8 { !relaying } else { refused };
                let msg = match plan(&a) {
                    Ok(_) => String::new(),
                    Err(e) => e.to_string(),
                };
                assert_eq!(
                    msg.contains("does not apply"),
                    refused,
                    "{preset} {k}: {msg}"
                );
            }
            let a = SetupCmd {
                lan: vec!["x".into()],
                ..blank(preset)
            };
            let msg = plan(&a).err().map(|e| e.to_string()).unwrap_or_default();
            assert_eq!(
                msg.starts_with("--lan does not apply"),
                preset != "lan-relay",
                "{preset}: {msg}"
            );
        }
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
