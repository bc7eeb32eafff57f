//! show — the effective configuration, printed in UCI syntax.
//!
//! Every option of every section is printed, defaults included, so the
//! output documents what the program really uses and loads back to the same
//! [`Config`]. Secrets print as `'********'`. An unset optional option and
//! an empty list print as `''` (which is how the loader reads them).

use super::value;
use std::path::{Path, PathBuf};

use super::{AddressMap, Config, Route, Secret};

/// The mask printed instead of a secret.
pub const MASK: &str = "********";

/// Append `s` quoted for UCI: single quotes, with `'` written as `'\''`.
fn quote_into(out: &mut String, s: &str) {
    out.push('\'');
    for (i, part) in s.split('\'').enumerate() {
        if i > 0 {
            out.push_str("'\\''");
        }
        out.push_str(part);
    }
    out.push('\'');
}

/// One `\tKIND NAME 'VALUE'` line (`option` or `list`), the value quoted
/// as uci does. Also for `setup`, which writes the same lines.
pub fn put(out: &mut String, kind: &str, name: &str, value: &str) {
    out.push('\t');
    out.push_str(kind);
    out.push(' ');
    out.push_str(name);
    out.push(' ');
    quote_into(out, value);
    out.push('\n');
}

/// Text for a comment line: control characters (a newline would end the
/// comment) become '?'.
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        out.push(if c.is_control() { '?' } else { c });
    }
    out
}

struct W {
    out: String,
}

impl W {
    fn section(&mut self, ty: &str, name: Option<&str>) {
        if self.out.ends_with("'\n") {
            self.out.push('\n');
        }
        self.out.push_str("config ");
        self.out.push_str(ty);
        if let Some(n) = name {
            self.out.push(' ');
            quote_into(&mut self.out, n);
        }
        self.out.push('\n');
    }

    #[inline(never)]
    fn opt(&mut self, name: &str, v: &str) {
        put(&mut self.out, "option", name, v);
    }

    fn num(&mut self, name: &str, n: u64) {
        self.opt(name, &n.to_string());
    }

    fn path(&mut self, name: &str, p: &Path) {
        self.opt(name, &p.to_string_lossy());
    }

    fn opt_path(&mut self, name: &str, p: Option<&PathBuf>) {
        match p {
            Some(p) => self.path(name, p),
            None => self.opt(name, ""),
        }
    }

    fn maybe(&mut self, name: &str, v: Option<&str>) {
        self.opt(name, v.unwrap_or(""));
    }

    fn bool(&mut self, name: &str, b: bool) {
        self.opt(name, value::format_bool(b));
    }

    fn secret(&mut self, name: &str, s: Option<&Secret>) {
        self.opt(name, if s.is_some() { MASK } else { "" });
    }

    /// A list's first line: `option NAME ''` for an empty one.
    #[inline(never)]
    fn empty(&mut self, name: &str, n: usize) -> bool {
        if n == 0 {
            self.opt(name, "");
        }
        n == 0
    }

    /// One `list` line.
    #[inline(never)]
    fn item(&mut self, name: &str, v: &str) {
        put(&mut self.out, "list", name, v);
    }

    fn list(&mut self, name: &str, vals: &[String]) {
        if !self.empty(name, vals.len()) {
            for v in vals {
                self.item(name, v);
            }
        }
    }

    fn display_list<T: ToString>(&mut self, name: &str, vals: &[T]) {
        if !self.empty(name, vals.len()) {
            for v in vals {
                self.item(name, &v.to_string());
            }
        }
    }

    fn maps(&mut self, name: &str, vals: &[AddressMap]) {
        if !self.empty(name, vals.len()) {
            for v in vals {
                self.item(name, &value::format_address_map(v));
            }
        }
    }
}

/// The configuration in UCI syntax.
pub fn show(cfg: &Config) -> String {
    let mut w = W {
        out: format!(
            "# masqmail: the configuration in effect, read from {}\n\
             # Every option is shown, defaults included; secrets as {MASK}.\n\n",
            one_line(&cfg.path.to_string_lossy())
        ),
    };
    let m = &cfg.main;
    w.section("masqmail", Some("main"));
    w.opt("host_name", &m.host_name);
    w.list("local_hosts", &m.local_hosts);
    w.list("local_addresses", &m.local_addresses);
    w.list("not_local_addresses", &m.not_local_addresses);
    w.display_list("listen_addresses", &m.listen_addresses);
    w.display_list("smtps_addresses", &m.smtps_addresses);
    w.display_list("local_nets", &m.local_nets);
    w.path("spool_dir", &m.spool_dir);
    w.path("mail_dir", &m.mail_dir);
    w.bool("run_as_user", m.run_as_user);
    w.opt("mail_user", &m.mail_user);
    w.opt_path("alias_file", m.alias_file.as_ref());
    w.bool("alias_local_caseless", m.alias_local_caseless);
    w.opt("max_size", &value::format_size(m.max_size));
    w.num("max_line_length", m.max_line_length as u64);
    w.num("max_header_size", m.max_header_size as u64);
    w.num("max_headers", m.max_headers as u64);
    w.num("max_recipients", m.max_recipients as u64);
    w.num("max_connections", m.max_connections as u64);
    w.num("max_connections_per_ip", m.max_connections_per_ip as u64);
    w.num("max_parallel_routes", m.max_parallel_routes as u64);
    w.opt("max_defer_time", &value::format_duration(m.max_defer_time));
    w.opt("smtp_bare_lf", m.smtp_bare_lf.name());
    w.opt("online_detect", m.online_detect.name());
    w.path("online_file", &m.online_file);
    w.maybe("online_query", m.online_query.as_deref());
    w.opt("mserver_host", &value::format_host_port(&m.mserver_host));
    w.num("log_level", m.log_level as u64);
    w.opt_path("tls_cert", m.tls_cert.as_ref());
    w.opt_path("tls_key", m.tls_key.as_ref());
    w.path("pid_file", &m.pid_file);
    w.opt("local_delivery", m.local_delivery.name());
    w.maybe("mda", m.mda.as_deref());
    w.opt("mda_fromline", value::format_bool(m.mda_fromline));
    w.opt("mda_fromhack", value::format_bool(m.mda_fromhack));
    w.maybe(
        "delay_warning",
        m.delay_warning.map(value::format_duration).as_deref(),
    );
    w.path("resolv_conf", &m.resolv_conf);

    for r in &cfg.routes {
        route(&mut w, r);
    }
    for a in &cfg.aliases {
        w.section("alias", a.section.as_deref());
        w.opt("name", &a.name);
        w.list("to", &a.to);
    }
    for u in &cfg.users {
        w.section("user", None);
        w.opt("name", &u.name);
        w.secret("password_hash", Some(&u.password_hash));
    }
    w.out
}

fn route(w: &mut W, r: &Route) {
    w.section("route", Some(&r.name));
    w.bool("enabled", r.enabled);
    w.bool("permanent", r.permanent);
    w.list("devices", &r.devices);
    w.list("allowed_senders", &r.allowed_senders);
    w.list("denied_senders", &r.denied_senders);
    w.list("allowed_recipients", &r.allowed_recipients);
    w.list("denied_recipients", &r.denied_recipients);
    w.list("allowed_from_hdrs", &r.allowed_from_hdrs);
    w.list("denied_from_hdrs", &r.denied_from_hdrs);
    w.bool("last_route", r.last_route);
    w.bool("connect_error_fail", r.connect_error_fail);
    w.maybe(
        "mail_host",
        r.mail_host.as_ref().map(value::format_host_port).as_deref(),
    );
    if !w.empty("resolve_list", r.resolve_list.len()) {
        for m in &r.resolve_list {
            w.item("resolve_list", m.name());
        }
    }
    w.bool("prefer_ipv4", r.prefer_ipv4);
    w.maybe("helo_name", r.helo_name.as_deref());
    w.bool("do_pipelining", r.do_pipelining);
    w.maybe("auth_name", r.auth_name.as_deref());
    w.maybe("auth_login", r.auth_login.as_deref());
    w.secret("auth_secret", r.auth_secret.as_ref());
    w.bool("auth_allow_plaintext", r.auth_allow_plaintext);
    w.maybe("wrapper", r.wrapper.as_deref());
    w.maybe("pipe", r.pipe.as_deref());
    w.bool("pipe_fromline", r.pipe_fromline);
    w.bool("pipe_fromhack", r.pipe_fromhack);
    w.maybe("set_h_from_domain", r.set_h_from_domain.as_deref());
    w.maybe("set_h_reply_to_domain", r.set_h_reply_to_domain.as_deref());
    w.maybe(
        "set_return_path_domain",
        r.set_return_path_domain.as_deref(),
    );
    w.maps("map_h_from_addresses", &r.map_h_from_addresses);
    w.maps("map_h_reply_to_addresses", &r.map_h_reply_to_addresses);
    w.maps(
        "map_h_mail_followup_to_addresses",
        &r.map_h_mail_followup_to_addresses,
    );
    w.maps("map_return_path_addresses", &r.map_return_path_addresses);
    w.bool("expand_h_sender_address", r.expand_h_sender_address);
    w.opt("tls", r.tls.name());
    w.bool("tls_verify", r.tls_verify);
    w.path("tls_ca_file", &r.tls_ca_file);
    w.maybe(
        "tls_fingerprint",
        r.tls_fingerprint
            .as_ref()
            .map(super::format_fingerprint)
            .as_deref(),
    );
}
