//! schema — every section type and option masqmail knows.
//!
//! DESCRIPTION
//!   [`SECTIONS`] is the one table of section types and options: kind,
//!   whether it is a list, whether it is a secret, and its default (in UCI
//!   form, parsed like a value from the file). `resolve` checks the file
//!   against it; `config show` prints the same names. Add an option here,
//!   to the struct in `mod.rs` (and its `clone_by_field!` list, which the
//!   compiler insists on), to `resolve`'s builder and to `show`; the
//!   tests fail until all four agree.

use super::{BareLf, LocalDelivery, OnlineDetect, ResolveMethod, TlsMode};

/// The kind of an option's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// `0/1/yes/no/on/off/true/false`.
    Bool,
    /// Free text on one line (passwords, login names, alias targets).
    Text,
    /// One word without white space (user names, address patterns).
    Word,
    /// A shell command line.
    Command,
    /// A DNS host name.
    Domain,
    /// `user@domain`.
    Address,
    /// A network interface name.
    Device,
    /// An absolute path.
    Path,
    /// Bytes, with an optional K/M/G suffix.
    Size,
    /// A whole number in a range.
    Count { min: u64, max: u64 },
    /// Seconds, or with an s/m/h/d/w suffix.
    Duration,
    /// One of a fixed set of words.
    Enum(&'static [&'static str]),
    /// `ip:port` or `[v6]:port`.
    Socket,
    /// `address/prefix`.
    Cidr,
    /// `host[:port]`.
    HostPort,
    /// A SHA-256 fingerprint, 64 hex digits.
    Fingerprint,
    /// `local: replacement`.
    AddressMap,
    /// 0..9 or a syslog severity name.
    LogLevel,
}

impl Ty {
    /// A word for the kind, for documentation and LuCI.
    pub fn describe(self) -> &'static str {
        match self {
            Ty::Bool => "boolean",
            Ty::Text => "text",
            Ty::Word => "word",
            Ty::Command => "command",
            Ty::Domain => "host name",
            Ty::Address => "address",
            Ty::Device => "interface",
            Ty::Path => "path",
            Ty::Size => "size",
            Ty::Count { .. } => "number",
            Ty::Duration => "duration",
            Ty::Enum(_) => "choice",
            Ty::Socket => "ip:port",
            Ty::Cidr => "network",
            Ty::HostPort => "host[:port]",
            Ty::Fingerprint => "sha256 fingerprint",
            Ty::AddressMap => "local: replacement",
            Ty::LogLevel => "log level",
        }
    }
}

/// Where an option's value comes from when the file does not set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Default {
    /// The section is wrong without it.
    Required,
    /// Truly optional: no value.
    Unset,
    /// This value, in UCI form (parsed like a value from the file).
    Value(&'static str),
    /// These list values, in UCI form.
    List(&'static [&'static str]),
    /// Computed by `resolve` (host name, local hosts, ports).
    Computed,
}

/// One option of a section type.
#[derive(Clone, Copy, Debug)]
pub struct OptSpec {
    pub name: &'static str,
    pub ty: Ty,
    pub list: bool,
    pub secret: bool,
    pub default: Default,
}

/// One section type.
#[derive(Clone, Copy, Debug)]
pub struct SectionSpec {
    pub section_type: &'static str,
    pub options: &'static [OptSpec],
}

impl SectionSpec {
    pub fn option(&self, name: &str) -> Option<&'static OptSpec> {
        self.options.iter().find(|o| o.name == name)
    }
}

const fn opt(name: &'static str, ty: Ty, default: Default) -> OptSpec {
    OptSpec {
        name,
        ty,
        list: false,
        secret: false,
        default,
    }
}

const fn list(name: &'static str, ty: Ty, default: Default) -> OptSpec {
    OptSpec {
        name,
        ty,
        list: true,
        secret: false,
        default,
    }
}

const fn secret(name: &'static str, default: Default) -> OptSpec {
    OptSpec {
        name,
        ty: Ty::Text,
        list: false,
        secret: true,
        default,
    }
}

const fn val(s: &'static str) -> Default {
    Default::Value(s)
}

const NONE: &[&str] = &[];
const EMPTY: Default = Default::List(NONE);
const UNSET: Default = Default::Unset;

/// `auth_name`: the SASL mechanism; unset means the best one offered.
pub const AUTH_NAMES: &[&str] = &["plain", "login", "cram-md5"];

const fn count(min: u64, max: u64) -> Ty {
    Ty::Count { min, max }
}

/// `config masqmail`: the main options (masqmail.conf(5) names).
pub const MAIN: SectionSpec = SectionSpec {
    section_type: "masqmail",
    options: &[
        opt("host_name", Ty::Domain, Default::Computed),
        list("local_hosts", Ty::Domain, Default::Computed),
        list("local_addresses", Ty::Address, EMPTY),
        list("not_local_addresses", Ty::Address, EMPTY),
        list(
            "listen_addresses",
            Ty::Socket,
            Default::List(&["127.0.0.1:25"]),
        ),
        list("smtps_addresses", Ty::Socket, EMPTY),
        list(
            "local_nets",
            Ty::Cidr,
            Default::List(&["127.0.0.0/8", "::1/128"]),
        ),
        opt("spool_dir", Ty::Path, val("/var/spool/masqmail")),
        opt("mail_dir", Ty::Path, val("/var/mail")),
        opt("run_as_user", Ty::Bool, val("0")),
        opt("mail_user", Ty::Word, val("mail")),
        opt("alias_file", Ty::Path, UNSET),
        opt("alias_local_caseless", Ty::Bool, val("0")),
        opt("max_size", Ty::Size, val("10M")),
        opt("max_line_length", count(512, 1 << 24), val("65536")),
        opt("max_header_size", count(1, 1 << 24), val("262144")),
        opt("max_headers", count(1, 1_000_000), val("1000")),
        opt("max_recipients", count(1, 1_000_000), val("1000")),
        opt("max_connections", count(1, 65535), val("20")),
        opt("max_connections_per_ip", count(1, 65535), val("5")),
        opt("max_parallel_routes", count(1, 64), val("2")),
        opt("max_defer_time", Ty::Duration, val("5d")),
        opt("smtp_bare_lf", Ty::Enum(BareLf::NAMES), val("normalize")),
        opt(
            "online_detect",
            Ty::Enum(OnlineDetect::NAMES),
            val("netlink"),
        ),
        opt("online_file", Ty::Path, val("/var/run/masqmail/online")),
        opt("online_query", Ty::Command, UNSET),
        opt("mserver_host", Ty::HostPort, val("localhost:224")),
        opt("log_level", Ty::LogLevel, val("5")),
        opt("tls_cert", Ty::Path, UNSET),
        opt("tls_key", Ty::Path, UNSET),
        opt("pid_file", Ty::Path, val("/var/run/masqmail/masqmail.pid")),
        opt(
            "local_delivery",
            Ty::Enum(LocalDelivery::NAMES),
            val("mbox"),
        ),
        opt("mda", Ty::Command, UNSET),
        opt("mda_fromline", Ty::Bool, val("0")),
        opt("mda_fromhack", Ty::Bool, val("0")),
        opt("delay_warning", Ty::Duration, UNSET),
        opt("resolv_conf", Ty::Path, val("/etc/resolv.conf")),
    ],
};

/// `config route 'NAME'` (masqmail.route(5) names).
pub const ROUTE: SectionSpec = SectionSpec {
    section_type: "route",
    options: &[
        opt("enabled", Ty::Bool, val("1")),
        opt("permanent", Ty::Bool, val("0")),
        list("devices", Ty::Device, EMPTY),
        list("allowed_senders", Ty::Word, EMPTY),
        list("denied_senders", Ty::Word, EMPTY),
        list("allowed_recipients", Ty::Word, EMPTY),
        list("denied_recipients", Ty::Word, EMPTY),
        list("allowed_from_hdrs", Ty::Word, EMPTY),
        list("denied_from_hdrs", Ty::Word, EMPTY),
        opt("last_route", Ty::Bool, val("0")),
        opt("connect_error_fail", Ty::Bool, val("0")),
        opt("mail_host", Ty::HostPort, UNSET),
        list(
            "resolve_list",
            Ty::Enum(ResolveMethod::NAMES),
            Default::List(&["dns_mx", "dns_a", "byname"]),
        ),
        opt("prefer_ipv4", Ty::Bool, val("1")),
        opt("helo_name", Ty::Domain, UNSET),
        opt("do_pipelining", Ty::Bool, val("1")),
        opt("auth_name", Ty::Enum(AUTH_NAMES), UNSET),
        opt("auth_login", Ty::Text, UNSET),
        secret("auth_secret", UNSET),
        opt("auth_allow_plaintext", Ty::Bool, val("0")),
        opt("wrapper", Ty::Command, UNSET),
        opt("pipe", Ty::Command, UNSET),
        opt("pipe_fromline", Ty::Bool, val("0")),
        opt("pipe_fromhack", Ty::Bool, val("0")),
        opt("set_h_from_domain", Ty::Domain, UNSET),
        opt("set_h_reply_to_domain", Ty::Domain, UNSET),
        opt("set_return_path_domain", Ty::Domain, UNSET),
        list("map_h_from_addresses", Ty::AddressMap, EMPTY),
        list("map_h_reply_to_addresses", Ty::AddressMap, EMPTY),
        list("map_h_mail_followup_to_addresses", Ty::AddressMap, EMPTY),
        list("map_return_path_addresses", Ty::AddressMap, EMPTY),
        opt("expand_h_sender_address", Ty::Bool, val("1")),
        opt("tls", Ty::Enum(TlsMode::NAMES), val("starttls")),
        opt("tls_verify", Ty::Bool, val("1")),
        opt(
            "tls_ca_file",
            Ty::Path,
            val("/etc/ssl/certs/ca-certificates.crt"),
        ),
        opt("tls_fingerprint", Ty::Fingerprint, UNSET),
    ],
};

/// `config alias`: `name` is delivered to every `to`.
pub const ALIAS: SectionSpec = SectionSpec {
    section_type: "alias",
    options: &[
        opt("name", Ty::Word, Default::Required),
        list("to", Ty::Text, Default::Required),
    ],
};

/// `config user`: an SMTP AUTH account.
pub const USER: SectionSpec = SectionSpec {
    section_type: "user",
    options: &[
        opt("name", Ty::Word, Default::Required),
        secret("password_hash", Default::Required),
    ],
};

/// Every section type.
pub const SECTIONS: &[&SectionSpec] = &[&MAIN, &ROUTE, &ALIAS, &USER];

/// Port of `mail_host` when none is given.
pub fn default_smtp_port(tls: TlsMode) -> u16 {
    match tls {
        TlsMode::Tls => 465,
        TlsMode::None | TlsMode::StartTls => 25,
    }
}
