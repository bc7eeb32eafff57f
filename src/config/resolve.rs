//! resolve — from parsed UCI sections to the typed [`Config`].
//!
//! DESCRIPTION
//!   First every option of every section is checked against the table in
//!   `schema` (unknown names get the nearest known name as a hint) and the
//!   defaults are filled in; then the checked values are mapped into the
//!   typed structs and the cross-checks between options run. Every error
//!   is collected; nothing stops at the first.
//!
//!   Rules beyond the table:
//!   - `option x 'v'` for a list option is a one-element list (uci and LuCI
//!     accept it); `list x` for a single-valued option is an error.
//!   - An empty value (`''`) unsets an optional option, and a single empty
//!     value empties a list (`option listen_addresses ''`: no listener).
//!     For an option with a default an empty value is an error: delete the
//!     line to get the default.
//!   - A repeated `option` keeps the last value, as in uci.
//!   - A list given in the file replaces its default (`local_nets` then no
//!     longer holds the loopback networks unless listed).
//!   - Section names are unique; one `config masqmail` at most; routes are
//!     named; alias and user names are unique.
//!
//! SECURITY
//!   Values of options marked secret are never put into error messages.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::schema::{
    default_smtp_port, Default, OptSpec, SectionSpec, Ty, ALIAS, AUTH_NAMES, MAIN, ROUTE, SECTIONS,
    USER,
};
use super::uci::{self, Section, UciOption};
use super::value::{self, Bad};
use super::{
    AddressMap, Alias, BareLf, Config, ConfigError, ConfigErrors, HostPort, IpNet, LocalDelivery,
    Main, OnlineDetect, ResolveMethod, Route, Secret, TlsMode, User,
};

/// The checked value of one option.
#[derive(Clone, Debug, PartialEq)]
enum Val {
    Bool(bool),
    Text(String),
    Num(u64),
    Dur(Duration),
    Socket(SocketAddr),
    Net(IpNet),
    Host(String, Option<u16>),
    Fp([u8; 32]),
    Map(AddressMap),
    /// The index of a choice in its `Ty::Enum` names.
    Choice(usize),
}

fn parse_val(ty: Ty, s: &str) -> Result<Val, Bad> {
    Ok(match ty {
        Ty::Bool => Val::Bool(value::parse_bool(s)?),
        Ty::Text | Ty::Word | Ty::Command | Ty::Domain | Ty::Address | Ty::Device | Ty::Path => {
            Val::Text(value::parse_str(ty, s)?)
        }
        Ty::Size => match value::parse_size(s)? {
            0 => {
                return Err(value::why(
                    "a size of 0",
                    "there is no 'unlimited': give a size such as 1G",
                ))
            }
            n => Val::Num(n),
        },
        Ty::Count { min, max } => Val::Num(value::parse_count(s, min, max)?),
        Ty::Duration => Val::Dur(value::parse_duration(s)?),
        Ty::Enum(names) => Val::Choice(value::parse_enum(s, names)?),
        Ty::Socket => Val::Socket(value::parse_socket(s)?),
        Ty::Cidr => Val::Net(value::parse_cidr(s)?),
        Ty::HostPort => {
            let (h, p) = value::parse_host_port(s)?;
            Val::Host(h, p)
        }
        Ty::Fingerprint => Val::Fp(value::parse_fingerprint(s)?),
        Ty::AddressMap => Val::Map(value::parse_address_map(s)?),
        Ty::LogLevel => Val::Num(u64::from(value::parse_log_level(s)?)),
    })
}

/// Collects errors for one file, in line order.
struct Errs<'a> {
    file: &'a Path,
    list: Vec<ConfigError>,
}

impl Errs<'_> {
    fn add(
        &mut self,
        line: usize,
        section: Option<&str>,
        option: Option<&str>,
        message: String,
        hint: Option<String>,
    ) {
        // Kept in line order as they come (a stable insertion): after
        // every error of the same line or before.
        let at = self
            .list
            .iter()
            .rposition(|e| e.line <= line)
            .map_or(0, |i| i + 1);
        self.list.insert(
            at,
            ConfigError {
                file: self.file.to_path_buf(),
                line,
                section: section.map(str::to_string),
                option: option.map(str::to_string),
                message,
                hint,
            },
        );
    }
}

/// The index of option `name` in a section's table. Used in const blocks
/// (see `mo!`, `ro!`), so a name not in the table fails the build and the
/// accessors take a small index instead of a name.
const fn ix(spec: &SectionSpec, name: &str) -> usize {
    let (opts, n) = (spec.options, name.as_bytes());
    let mut i = 0;
    while i < opts.len() {
        let o = opts[i].name.as_bytes();
        if o.len() == n.len() {
            let mut k = 0;
            while k < n.len() && o[k] == n[k] {
                k += 1;
            }
            if k == n.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("option not in the table")
}

/// The index of a main option, found at compile time.
macro_rules! mo {
    ($n:literal) => {
        const { ix(&MAIN, $n) }
    };
}

/// The index of a route option, found at compile time.
macro_rules! ro {
    ($n:literal) => {
        const { ix(&ROUTE, $n) }
    };
}

/// Note a mismatch between this code and the table, as its error says it.
#[inline(never)]
fn bug(bugs: &mut Vec<String>, name: &str, what: &str) {
    bugs.push(format!("internal error: option '{name}' {what}"));
}

/// One option of a section.
#[derive(Default)]
struct Slot {
    /// The line where the file set it (None: default).
    given: Option<usize>,
    /// The file gave a value that was refused.
    refused: bool,
    vals: Vec<Val>,
}

/// The checked values of one section, in the order of its spec.
struct Slots {
    spec: &'static SectionSpec,
    /// `name` or `@type[index]`, as uci shows it.
    label: String,
    line: usize,
    /// Per spec option, in its order.
    opts: Vec<Slot>,
    /// Mismatches between this code and the table (bugs, never input).
    bugs: Vec<String>,
}

impl Slots {
    /// The `name` of an alias or user section (its first option), or ""
    /// if it has none.
    fn name(&self) -> &str {
        const { assert!(ix(&ALIAS, "name") == 0 && ix(&USER, "name") == 0) };
        match self.opts.first().and_then(|o| o.vals.first()) {
            Some(Val::Text(t)) => t,
            _ => "",
        }
    }

    /// A mismatch between this code and the table.
    fn bug(&mut self, i: usize, what: &str) {
        let name = self.spec.options.get(i).map_or("?", |o| o.name);
        bug(&mut self.bugs, name, what);
    }

    /// The option's slot, by its index in the table (`mo!`, `ro!`).
    #[inline(never)]
    fn slot(&mut self, i: usize) -> Option<&Slot> {
        self.opts.get(i)
    }

    fn given(&mut self, i: usize) -> bool {
        self.slot(i).is_some_and(|o| o.given.is_some())
    }

    /// Whether the file sets the option: to a value, or to one that was
    /// refused (then an error is out already). Cross-checks use this, so
    /// that one bad value does not bring a second error about its absence.
    fn set(&mut self, i: usize) -> bool {
        self.slot(i)
            .is_some_and(|o| (o.given.is_some() && !o.vals.is_empty()) || o.refused)
    }

    /// The line to blame for an option: where it was set, else the section.
    fn line(&mut self, i: usize) -> usize {
        let line = self.line;
        self.slot(i).and_then(|o| o.given).unwrap_or(line)
    }

    /// The values of an option.
    #[inline(never)]
    fn vals(&mut self, i: usize) -> &[Val] {
        match self.slot(i) {
            Some(o) => &o.vals,
            None => &[],
        }
    }

    /// The first value of an option, if any.
    #[inline(never)]
    fn opt(&mut self, i: usize) -> Option<&Val> {
        self.vals(i).first()
    }

    /// The value of a single-valued option that always has one: from the
    /// file or the default. A required option that is missing was reported
    /// already; its placeholder is never used, as the load fails.
    #[inline(never)]
    fn one(&mut self, i: usize) -> Option<&Val> {
        if !self.opts.get(i).is_some_and(|o| !o.vals.is_empty()) {
            let required = self
                .spec
                .options
                .get(i)
                .is_some_and(|o| matches!(o.default, Default::Required));
            if !required {
                self.bug(i, "has no value");
            }
        }
        self.opts.get(i)?.vals.first()
    }

    /// A value of another kind than the accessor's (`found`), or none.
    #[inline(never)]
    fn wrong(&mut self, i: usize, found: bool) {
        if found {
            self.bug(i, "has values of another kind");
        }
    }

    fn bool(&mut self, i: usize) -> bool {
        match self.one(i) {
            Some(Val::Bool(b)) => *b,
            v => {
                let found = v.is_some();
                self.wrong(i, found);
                false
            }
        }
    }

    fn text(&mut self, i: usize) -> String {
        match self.one(i) {
            Some(Val::Text(t)) => t.clone(),
            v => {
                let found = v.is_some();
                self.wrong(i, found);
                String::new()
            }
        }
    }

    fn opt_text(&mut self, i: usize) -> Option<String> {
        let mut out = None;
        self.opt_text_to(i, &mut out);
        out
    }

    /// [`Slots::opt_text`] into a field already in place (and None).
    #[inline(never)]
    fn opt_text_to(&mut self, i: usize, out: &mut Option<String>) {
        match self.opt(i) {
            Some(Val::Text(t)) => *out = Some(t.clone()),
            v => {
                let found = v.is_some();
                self.wrong(i, found);
            }
        }
    }

    fn texts(&mut self, i: usize) -> Vec<String> {
        let mut out = Vec::new();
        self.texts_to(i, &mut out);
        out
    }

    /// [`Slots::texts`] into a field already in place.
    #[inline(never)]
    fn texts_to(&mut self, i: usize, out: &mut Vec<String>) {
        let mut other = false;
        for v in self.vals(i) {
            match v {
                Val::Text(t) => out.push(t.clone()),
                _ => other = true,
            }
        }
        self.wrong(i, other);
    }

    /// A path, into a field already in place.
    fn path(&mut self, i: usize, out: &mut PathBuf) {
        *out = PathBuf::from(self.text(i));
    }

    /// An optional path, into a field already in place (and None).
    fn opt_path(&mut self, i: usize, out: &mut Option<PathBuf>) {
        *out = self.opt_text(i).map(PathBuf::from);
    }

    fn num(&mut self, i: usize) -> u64 {
        match self.one(i) {
            Some(Val::Num(n)) => *n,
            v => {
                let found = v.is_some();
                self.wrong(i, found);
                0
            }
        }
    }

    fn usize(&mut self, i: usize) -> usize {
        usize::try_from(self.num(i)).unwrap_or(usize::MAX)
    }

    fn u32(&mut self, i: usize) -> u32 {
        u32::try_from(self.num(i)).unwrap_or(u32::MAX)
    }

    fn opt_dur(&mut self, i: usize) -> Option<Duration> {
        if self.set(i) {
            Some(self.dur(i))
        } else {
            None
        }
    }

    fn dur(&mut self, i: usize) -> Duration {
        match self.one(i) {
            Some(Val::Dur(d)) => *d,
            v => {
                let found = v.is_some();
                self.wrong(i, found);
                Duration::ZERO
            }
        }
    }

    /// The values of a list option of this kind, into a field already in
    /// place (and empty).
    fn sockets(&mut self, i: usize, out: &mut Vec<SocketAddr>) {
        let mut other = false;
        for v in self.vals(i) {
            match v {
                Val::Socket(a) => out.push(*a),
                _ => other = true,
            }
        }
        self.wrong(i, other);
    }

    /// The values of a list option of this kind, into a field already in
    /// place (and empty).
    fn nets(&mut self, i: usize, out: &mut Vec<IpNet>) {
        let mut other = false;
        for v in self.vals(i) {
            match v {
                Val::Net(n) => out.push(*n),
                _ => other = true,
            }
        }
        self.wrong(i, other);
    }

    fn host(&mut self, i: usize) -> Option<(String, Option<u16>)> {
        match self.opt(i) {
            Some(Val::Host(h, p)) => Some((h.clone(), *p)),
            v => {
                let found = v.is_some();
                self.wrong(i, found);
                None
            }
        }
    }

    /// The address maps of an option, into a field already in place.
    fn maps(&mut self, i: usize, out: &mut Vec<AddressMap>) {
        let mut other = false;
        for v in self.vals(i) {
            match v {
                Val::Map(m) => out.push(m.clone()),
                _ => other = true,
            }
        }
        self.wrong(i, other);
    }

    fn fingerprint(&mut self, i: usize) -> Option<[u8; 32]> {
        match self.opt(i) {
            Some(Val::Fp(f)) => Some(*f),
            v => {
                let found = v.is_some();
                self.wrong(i, found);
                None
            }
        }
    }

    /// The index of a choice option's value in its names.
    fn choice(&mut self, i: usize) -> usize {
        match self.one(i) {
            Some(Val::Choice(i)) => *i,
            v => {
                let found = v.is_some();
                self.wrong(i, found);
                usize::MAX
            }
        }
    }

    /// A list of resolve methods, into a field already in place (and
    /// empty).
    fn methods(&mut self, i: usize, out: &mut Vec<ResolveMethod>) {
        let mut other = false;
        for v in self.vals(i) {
            match v {
                Val::Choice(k) => out.extend(ResolveMethod::ALL.get(*k).copied()),
                _ => other = true,
            }
        }
        self.wrong(i, other);
    }

    /// The name of an optional choice, if set.
    fn opt_choice(&mut self, i: usize, names: &[&str]) -> Option<String> {
        match self.opt(i) {
            Some(Val::Choice(i)) => names.get(*i).map(|n| n.to_string()),
            v => {
                let found = v.is_some();
                self.wrong(i, found);
                None
            }
        }
    }
}

/// Check every option of a section against its spec and fill in the
/// defaults. Unknown options and bad values are reported to `errs`.
fn check_section(
    spec: &'static SectionSpec,
    options: &[UciOption],
    line: usize,
    label: String,
    errs: &mut Errs,
) -> Slots {
    let mut slots = Slots {
        spec,
        label,
        line,
        opts: Vec::new(),
        bugs: Vec::new(),
    };
    slots.opts.resize_with(spec.options.len(), Slot::default);
    for o in options {
        let Some(i) = spec.options.iter().position(|s| s.name == o.name) else {
            unknown_option(spec, &slots.label, o, errs);
            continue;
        };
        let Some(os) = spec.options.get(i) else {
            continue;
        };
        match check_option(os, &slots.label, o, errs) {
            Some(vals) => {
                if let Some(s) = slots.opts.get_mut(i) {
                    s.given = Some(o.line);
                    s.vals = vals;
                }
            }
            None => {
                if let Some(s) = slots.opts.get_mut(i) {
                    s.refused = true;
                }
            }
        }
    }
    for (slot, os) in slots.opts.iter_mut().zip(spec.options) {
        if slot.given.is_some() {
            continue;
        }
        // An option given with a bad value counts as not given: the
        // default stands in, so that later checks don't pile up.
        let defaults: &[&str] = match &os.default {
            Default::Value(s) => std::slice::from_ref(s),
            Default::List(l) => l,
            Default::Unset | Default::Computed => &[],
            Default::Required => {
                if !options.iter().any(|o| o.name == os.name) {
                    let what = if os.list { "list" } else { "option" };
                    errs.add(
                        line,
                        Some(&slots.label),
                        Some(os.name),
                        format!("missing required {what} '{}'", os.name),
                        Some(format!("add: {what} {} '…'", os.name)),
                    );
                }
                &[]
            }
        };
        for d in defaults {
            match parse_val(os.ty, d) {
                Ok(v) => slot.vals.push(v),
                Err(_) => bug(
                    &mut slots.bugs,
                    os.name,
                    "has a default that does not parse",
                ),
            }
        }
    }
    slots
}

fn unknown_option(spec: &SectionSpec, label: &str, o: &UciOption, errs: &mut Errs) {
    // An option of another section type is a likelier mistake than a typo.
    let elsewhere = SECTIONS
        .iter()
        .find(|s| s.section_type != spec.section_type && s.option(&o.name).is_some());
    let hint = match elsewhere {
        Some(other) => Some(format!(
            "'{}' belongs in a 'config {}' section",
            o.name, other.section_type
        )),
        None => value::did_you_mean(&o.name, &mut spec.options.iter().map(|s| s.name)),
    };
    errs.add(
        o.line,
        Some(label),
        Some(&o.name),
        format!("unknown option in a '{}' section", spec.section_type),
        hint,
    );
}

/// Check one option's values. None if there was an error.
fn check_option(os: &OptSpec, label: &str, o: &UciOption, errs: &mut Errs) -> Option<Vec<Val>> {
    if !os.list && o.kind == uci::Kind::List {
        errs.add(
            o.line,
            Some(label),
            Some(os.name),
            "takes a single value, but is given as a 'list'".into(),
            Some(format!("write: option {} '…'", os.name)),
        );
        return None;
    }
    // A single empty value: unset, or the empty list. Text is not trimmed
    // (a password may be blanks), other kinds are.
    if let [only] = o.values.as_slice() {
        let empty = if matches!(os.ty, Ty::Text) && !os.list {
            only.text.is_empty()
        } else {
            value::trim(&only.text).is_empty()
        };
        if empty {
            let hint = match os.default {
                Default::Required if os.list => "give at least one value".into(),
                _ if os.list || matches!(os.default, Default::Unset) => return Some(Vec::new()),
                Default::Value(d) => format!("delete the line to get the default '{d}'"),
                Default::Required => "give a value".into(),
                _ => "delete the line to get the default".into(),
            };
            errs.add(
                only.line,
                Some(label),
                Some(os.name),
                "empty value".into(),
                Some(hint),
            );
            return None;
        }
    }
    let mut out = Vec::with_capacity(o.values.len());
    let mut ok = true;
    for v in &o.values {
        match parse_val(os.ty, &v.text) {
            Ok(x) => out.push(x),
            Err(mut b) => {
                ok = false;
                if os.secret {
                    b.msg = "invalid value (not shown: it is a secret)".into();
                }
                if os.list
                    && !os.secret
                    && o.kind == uci::Kind::Option
                    && o.values.len() == 1
                    && value::trim(&v.text).contains(char::is_whitespace)
                {
                    b.hint = Some(format!(
                        "give each value on its own line: list {} '…'",
                        os.name
                    ));
                }
                errs.add(v.line, Some(label), Some(os.name), b.msg, b.hint);
            }
        }
    }
    ok.then_some(out)
}

/// `WHAT 'NAME' is VERB twice (first at line N)`.
#[inline(never)]
fn twice(what: &str, name: &str, verb: &str, first: usize) -> String {
    format!("{what} '{name}' is {verb} twice (first at line {first})")
}

/// How uci names a section: its name, or `@type[index]` if anonymous.
fn label(sec: &Section, index: usize) -> String {
    match &sec.name {
        Some(n) => n.clone(),
        None => format!("@{}[{}]", sec.section_type, index),
    }
}

/// The machine's host name, or `localhost` if it has none usable.
pub fn system_host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| value::valid_domain(h))
        .unwrap_or_else(|| "localhost".to_string())
}

/// Resolve parsed UCI into a checked [`Config`]. `file` is used in error
/// messages and kept in `Config::path`; `host_name` is the default host name.
pub fn resolve(file: &Path, parsed: uci::Parsed, host_name: &str) -> Result<Config, ConfigErrors> {
    let mut errs = Errs {
        file,
        list: Vec::new(),
    };
    for e in parsed.errors {
        errs.add(e.line, None, None, e.msg, e.hint);
    }

    // Section names are unique in a uci package.
    for (i, s) in parsed.sections.iter().enumerate() {
        let Some(n) = &s.name else { continue };
        let before = parsed.sections.get(..i).unwrap_or_default();
        if let Some(first) = before.iter().find(|f| f.name.as_ref() == Some(n)) {
            errs.add(
                s.line,
                Some(n),
                None,
                twice("section name", n, "used", first.line),
                Some("section names must be unique in the file".into()),
            );
        }
    }

    let mut main: Option<Main> = None;
    let mut main_line = 0;
    let mut routes = Vec::new();
    let mut aliases: Vec<Alias> = Vec::new();
    let mut users: Vec<User> = Vec::new();
    let mut counts: Vec<(&str, usize)> = Vec::new();
    let mut all_slots = Vec::new();

    for sec in &parsed.sections {
        let ty = sec.section_type.as_str();
        let index = match counts.iter_mut().find(|e| e.0 == ty) {
            Some(e) => {
                e.1 += 1;
                e.1 - 1
            }
            None => {
                counts.push((ty, 1));
                0
            }
        };
        let lbl = label(sec, index);
        let Some(spec) = SECTIONS.iter().find(|s| s.section_type == ty) else {
            let hint = value::did_you_mean(ty, &mut SECTIONS.iter().map(|s| s.section_type))
                .unwrap_or_else(|| "known section types: masqmail, route, alias, user".into());
            errs.add(
                sec.line,
                Some(&lbl),
                None,
                format!("unknown section type '{ty}'"),
                Some(hint),
            );
            continue;
        };
        let mut slots = check_section(spec, &sec.options, sec.line, lbl, &mut errs);
        match spec.section_type {
            "masqmail" => {
                let m = build_main(&mut slots, host_name, &mut errs);
                if main.is_some() {
                    errs.add(
                        sec.line,
                        Some(&slots.label),
                        None,
                        format!(
                            "a second 'config masqmail' section (the first is at line {main_line})"
                        ),
                        Some("put all main options into one section".into()),
                    );
                } else {
                    main = Some(m);
                    main_line = sec.line;
                }
            }
            "route" => {
                build_route(sec, &mut slots, &mut errs, &mut routes);
            }
            "alias" => {
                let a = Alias {
                    section: sec.name.clone(),
                    name: slots.text(const { ix(&ALIAS, "name") }),
                    to: slots.texts(const { ix(&ALIAS, "to") }),
                };
                aliases.push(a);
            }
            "user" => {
                let u = User {
                    name: slots.text(const { ix(&USER, "name") }),
                    password_hash: Secret(slots.text(const { ix(&USER, "password_hash") })),
                };
                users.push(u);
            }
            _ => {}
        }
        all_slots.push(slots);
    }

    let main = match main {
        Some(m) => m,
        None => {
            let mut slots = check_section(&MAIN, &[], 0, "main".into(), &mut errs);
            let m = build_main(&mut slots, host_name, &mut errs);
            all_slots.push(slots);
            m
        }
    };

    // Alias and user names are unique; alias names regardless of case
    // with alias_local_caseless.
    for (i, s) in all_slots.iter().enumerate() {
        let (what, hint) = match s.spec.section_type {
            "alias" => (
                "alias",
                Some("put all targets into one alias section as 'list to' lines"),
            ),
            "user" => ("user", None),
            _ => continue,
        };
        let name = s.name();
        let caseless = what == "alias" && main.alias_local_caseless;
        let mut first = None;
        for f in all_slots.get(..i).unwrap_or_default() {
            let n = f.name();
            if std::ptr::eq(f.spec, s.spec)
                && (n == name || (caseless && n.eq_ignore_ascii_case(name)))
            {
                first = Some(f.line);
                break;
            }
        }
        if let Some(first) = first {
            errs.add(
                s.line,
                Some(&s.label),
                Some("name"),
                twice(what, name, "defined", first),
                hint.map(str::to_string),
            );
        }
    }

    for s in &mut all_slots {
        for b in std::mem::take(&mut s.bugs) {
            errs.add(s.line, Some(&s.label), None, b, None);
        }
    }

    if !errs.list.is_empty() {
        return Err(ConfigErrors { errors: errs.list });
    }
    Ok(Config {
        path: file.to_path_buf(),
        main,
        routes,
        aliases,
        users,
    })
}

/// The variant at `i` of an enum's `ALL` (its `NAMES` order).
fn pick<T: Copy>(all: &[T], i: usize, fallback: T) -> T {
    all.get(i).copied().unwrap_or(fallback)
}

/// A cross-check between options: the option whose line is blamed, the
/// option the error names, the message and the hint.
type Check = (usize, &'static str, &'static str, &'static str);

/// The cross-checks of the main section, in the order of `build_main`'s
/// `fails`.
const MAIN_CHECKS: [Check; 6] = [
    (
        ix(&MAIN, "tls_cert"),
        "tls_cert",
        "a certificate without a key",
        "set tls_key too",
    ),
    (
        ix(&MAIN, "tls_key"),
        "tls_key",
        "a key without a certificate",
        "set tls_cert too",
    ),
    (
        ix(&MAIN, "smtps_addresses"),
        "smtps_addresses",
        "implicit TLS needs a certificate",
        "set tls_cert and tls_key",
    ),
    (
        ix(&MAIN, "online_detect"),
        "online_query",
        "online_detect 'command' needs online_query",
        "set online_query to a command that prints the name of the online route",
    ),
    (
        ix(&MAIN, "local_delivery"),
        "mda",
        "local_delivery 'mda' needs mda",
        "set mda to the delivery command, e.g. '/usr/bin/procmail -d %{user}'",
    ),
    (
        ix(&MAIN, "max_connections_per_ip"),
        "max_connections_per_ip",
        "larger than max_connections",
        "make it at most max_connections",
    ),
];

/// The cross-checks of a route, in the order of `build_route`'s `fails`.
const ROUTE_CHECKS: [Check; 8] = [
    (
        ix(&ROUTE, "pipe"),
        "pipe",
        "pipe and mail_host exclude each other",
        "a route delivers either to a command (pipe) or by SMTP (mail_host)",
    ),
    (
        ix(&ROUTE, "auth_login"),
        "auth_login",
        "auth_login without auth_secret",
        "set auth_secret to the password",
    ),
    (
        ix(&ROUTE, "auth_secret"),
        "auth_secret",
        "auth_secret without auth_login",
        "set auth_login to the user name",
    ),
    (
        ix(&ROUTE, "auth_login"),
        "auth_login",
        AUTH_PLAIN,
        AUTH_PLAIN_HINT,
    ),
    (
        ix(&ROUTE, "auth_name"),
        "auth_name",
        AUTH_PLAIN,
        AUTH_PLAIN_HINT,
    ),
    (
        ix(&ROUTE, "tls_fingerprint"),
        "tls_fingerprint",
        "a pinned fingerprint with tls 'none'",
        "set option tls 'starttls' or 'tls'",
    ),
    (
        ix(&ROUTE, "set_h_from_domain"),
        "set_h_from_domain",
        "set_h_from_domain and map_h_from_addresses both rewrite From:",
        "use only one of them",
    ),
    (
        ix(&ROUTE, "set_h_reply_to_domain"),
        "set_h_reply_to_domain",
        "set_h_reply_to_domain and map_h_reply_to_addresses both rewrite Reply-To:",
        "use only one of them",
    ),
];

const AUTH_PLAIN: &str = "AUTH would send the password without TLS";
const AUTH_PLAIN_HINT: &str =
    "set option tls 'starttls' (or 'tls'), or option auth_allow_plaintext '1'";

/// Report each check in `checks` whose entry in `fails` is true.
#[inline(never)]
fn cross_checks(s: &mut Slots, errs: &mut Errs, checks: &[Check], fails: &[bool]) {
    for (&(at, opt, msg, hint), &failed) in checks.iter().zip(fails) {
        if failed {
            let line = s.line(at);
            errs.add(
                line,
                Some(&s.label),
                Some(opt),
                msg.into(),
                Some(hint.into()),
            );
        }
    }
}

fn build_main(s: &mut Slots, default_host: &str, errs: &mut Errs) -> Main {
    let host_name = if s.given(mo!("host_name")) {
        s.text(mo!("host_name"))
    } else {
        default_host.to_string()
    };
    let local_hosts = if s.given(mo!("local_hosts")) {
        s.texts(mo!("local_hosts"))
    } else {
        let mut l = vec!["localhost".to_string()];
        if !host_name.eq_ignore_ascii_case("localhost") {
            l.push(host_name.clone());
        }
        l
    };
    // Lists, texts and paths start empty and the accessors fill them in
    // place below: smaller code than moving each value into the struct.
    let mut m = Main {
        host_name,
        local_hosts,
        local_addresses: Vec::new(),
        not_local_addresses: Vec::new(),
        listen_addresses: Vec::new(),
        smtps_addresses: Vec::new(),
        local_nets: Vec::new(),
        spool_dir: PathBuf::new(),
        mail_dir: PathBuf::new(),
        run_as_user: s.bool(mo!("run_as_user")),
        mail_user: s.text(mo!("mail_user")),
        alias_file: None,
        alias_local_caseless: s.bool(mo!("alias_local_caseless")),
        max_size: s.num(mo!("max_size")),
        max_line_length: s.usize(mo!("max_line_length")),
        max_header_size: s.usize(mo!("max_header_size")),
        max_headers: s.usize(mo!("max_headers")),
        max_recipients: s.usize(mo!("max_recipients")),
        max_connections: s.u32(mo!("max_connections")),
        max_connections_per_ip: s.u32(mo!("max_connections_per_ip")),
        max_parallel_routes: s.u32(mo!("max_parallel_routes")),
        max_defer_time: s.dur(mo!("max_defer_time")),
        smtp_bare_lf: pick(
            BareLf::ALL,
            s.choice(mo!("smtp_bare_lf")),
            BareLf::Normalize,
        ),
        online_detect: pick(
            OnlineDetect::ALL,
            s.choice(mo!("online_detect")),
            OnlineDetect::Netlink,
        ),
        online_file: PathBuf::new(),
        online_query: None,
        mserver_host: {
            // The default is in the table; None only on a table bug.
            let (host, port) = s.host(mo!("mserver_host")).unwrap_or_default();
            HostPort {
                host,
                port: port.unwrap_or(224),
            }
        },
        log_level: u8::try_from(s.num(mo!("log_level"))).unwrap_or(9),
        tls_cert: None,
        tls_key: None,
        pid_file: PathBuf::new(),
        local_delivery: pick(
            LocalDelivery::ALL,
            s.choice(mo!("local_delivery")),
            LocalDelivery::Mbox,
        ),
        mda: None,
        mda_fromline: s.bool(mo!("mda_fromline")),
        mda_fromhack: s.bool(mo!("mda_fromhack")),
        delay_warning: s.opt_dur(mo!("delay_warning")),
        resolv_conf: PathBuf::new(),
    };
    s.sockets(mo!("listen_addresses"), &mut m.listen_addresses);
    s.sockets(mo!("smtps_addresses"), &mut m.smtps_addresses);
    s.nets(mo!("local_nets"), &mut m.local_nets);
    s.path(mo!("spool_dir"), &mut m.spool_dir);
    s.path(mo!("mail_dir"), &mut m.mail_dir);
    s.opt_path(mo!("alias_file"), &mut m.alias_file);
    s.path(mo!("online_file"), &mut m.online_file);
    s.opt_path(mo!("tls_cert"), &mut m.tls_cert);
    s.opt_path(mo!("tls_key"), &mut m.tls_key);
    s.path(mo!("pid_file"), &mut m.pid_file);
    s.path(mo!("resolv_conf"), &mut m.resolv_conf);
    s.texts_to(mo!("local_addresses"), &mut m.local_addresses);
    s.texts_to(mo!("not_local_addresses"), &mut m.not_local_addresses);
    s.opt_text_to(mo!("online_query"), &mut m.online_query);
    s.opt_text_to(mo!("mda"), &mut m.mda);

    let (cert, key) = (s.set(mo!("tls_cert")), s.set(mo!("tls_key")));
    let fails = [
        cert && !key,
        key && !cert,
        !m.smtps_addresses.is_empty() && !cert,
        m.online_detect == OnlineDetect::Command && !s.set(mo!("online_query")),
        m.local_delivery == LocalDelivery::Mda && !s.set(mo!("mda")),
        m.max_connections_per_ip > m.max_connections,
    ];
    cross_checks(s, errs, &MAIN_CHECKS, &fails);
    if let Some(dup) = m
        .smtps_addresses
        .iter()
        .find(|a| m.listen_addresses.contains(a))
    {
        let line = s.line(mo!("smtps_addresses"));
        errs.add(
            line,
            Some(&s.label),
            Some("smtps_addresses"),
            format!("{dup} is also in listen_addresses"),
            Some("an address can serve either plain SMTP or implicit TLS".into()),
        );
    }
    m
}

/// Check a route section; add it to `routes` if it has a name.
#[inline(never)]
fn build_route(sec: &Section, s: &mut Slots, errs: &mut Errs, routes: &mut Vec<Route>) {
    let tls = pick(TlsMode::ALL, s.choice(ro!("tls")), TlsMode::StartTls);
    // Lists, texts and paths start empty and the accessors fill them in
    // place below: smaller code than moving each value into the struct.
    let mut r = Route {
        name: sec.name.clone().unwrap_or_default(),
        enabled: s.bool(ro!("enabled")),
        permanent: s.bool(ro!("permanent")),
        devices: Vec::new(),
        allowed_senders: Vec::new(),
        denied_senders: Vec::new(),
        allowed_recipients: Vec::new(),
        denied_recipients: Vec::new(),
        allowed_from_hdrs: Vec::new(),
        denied_from_hdrs: Vec::new(),
        last_route: s.bool(ro!("last_route")),
        connect_error_fail: s.bool(ro!("connect_error_fail")),
        mail_host: s.host(ro!("mail_host")).map(|(host, port)| HostPort {
            host,
            port: port.unwrap_or(default_smtp_port(tls)),
        }),
        resolve_list: Vec::new(),
        prefer_ipv4: s.bool(ro!("prefer_ipv4")),
        helo_name: None,
        do_pipelining: s.bool(ro!("do_pipelining")),
        auth_name: s.opt_choice(ro!("auth_name"), AUTH_NAMES),
        auth_login: None,
        auth_secret: s.opt_text(ro!("auth_secret")).map(Secret),
        auth_allow_plaintext: s.bool(ro!("auth_allow_plaintext")),
        wrapper: None,
        pipe: None,
        pipe_fromline: s.bool(ro!("pipe_fromline")),
        pipe_fromhack: s.bool(ro!("pipe_fromhack")),
        set_h_from_domain: None,
        set_h_reply_to_domain: None,
        set_return_path_domain: None,
        map_h_from_addresses: Vec::new(),
        map_h_reply_to_addresses: Vec::new(),
        map_h_mail_followup_to_addresses: Vec::new(),
        map_return_path_addresses: Vec::new(),
        expand_h_sender_address: s.bool(ro!("expand_h_sender_address")),
        tls,
        tls_verify: s.bool(ro!("tls_verify")),
        tls_ca_file: PathBuf::new(),
        tls_fingerprint: s.fingerprint(ro!("tls_fingerprint")),
    };
    s.path(ro!("tls_ca_file"), &mut r.tls_ca_file);
    s.opt_text_to(ro!("helo_name"), &mut r.helo_name);
    s.opt_text_to(ro!("auth_login"), &mut r.auth_login);
    s.opt_text_to(ro!("wrapper"), &mut r.wrapper);
    s.opt_text_to(ro!("pipe"), &mut r.pipe);
    s.opt_text_to(ro!("set_h_from_domain"), &mut r.set_h_from_domain);
    s.opt_text_to(ro!("set_h_reply_to_domain"), &mut r.set_h_reply_to_domain);
    s.opt_text_to(ro!("set_return_path_domain"), &mut r.set_return_path_domain);

    s.texts_to(ro!("devices"), &mut r.devices);
    s.texts_to(ro!("allowed_senders"), &mut r.allowed_senders);
    s.texts_to(ro!("denied_senders"), &mut r.denied_senders);
    s.texts_to(ro!("allowed_recipients"), &mut r.allowed_recipients);
    s.texts_to(ro!("denied_recipients"), &mut r.denied_recipients);
    s.texts_to(ro!("allowed_from_hdrs"), &mut r.allowed_from_hdrs);
    s.texts_to(ro!("denied_from_hdrs"), &mut r.denied_from_hdrs);
    s.methods(ro!("resolve_list"), &mut r.resolve_list);
    s.maps(ro!("map_h_from_addresses"), &mut r.map_h_from_addresses);
    s.maps(
        ro!("map_h_reply_to_addresses"),
        &mut r.map_h_reply_to_addresses,
    );
    s.maps(
        ro!("map_h_mail_followup_to_addresses"),
        &mut r.map_h_mail_followup_to_addresses,
    );
    s.maps(
        ro!("map_return_path_addresses"),
        &mut r.map_return_path_addresses,
    );
    if sec.name.is_none() {
        errs.add(
            sec.line,
            Some(&s.label),
            None,
            "a route needs a name".into(),
            Some("name it, e.g. config route 'isp'; names use letters, digits and '_'".into()),
        );
    }
    let (login, secret) = (s.set(ro!("auth_login")), s.set(ro!("auth_secret")));
    let plain = r.tls == TlsMode::None && !r.auth_allow_plaintext;
    let fails = [
        s.set(ro!("pipe")) && s.set(ro!("mail_host")),
        login && !secret,
        secret && !login,
        login && plain,
        !login && plain && s.set(ro!("auth_name")),
        s.set(ro!("tls_fingerprint")) && r.tls == TlsMode::None,
        s.set(ro!("map_h_from_addresses")) && s.set(ro!("set_h_from_domain")),
        s.set(ro!("map_h_reply_to_addresses")) && s.set(ro!("set_h_reply_to_domain")),
    ];
    cross_checks(s, errs, &ROUTE_CHECKS, &fails);
    if sec.name.is_some() {
        routes.push(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigErrors> {
        resolve(
            Path::new("test.conf"),
            uci::parse(text.as_bytes()),
            "box.example",
        )
    }

    fn ok(text: &str) -> Config {
        match load(text) {
            Ok(c) => c,
            Err(e) => panic!("{text}\n{e}"),
        }
    }

    fn errors(text: &str) -> Vec<ConfigError> {
        match load(text) {
            Ok(_) => panic!("no error for:\n{text}"),
            Err(e) => e.errors,
        }
    }

    fn one_error(text: &str) -> ConfigError {
        let e = errors(text);
        assert_eq!(e.len(), 1, "{text}\n{e:?}");
        e.into_iter().next().expect("one error")
    }

    #[test]
    fn table_defaults_parse_and_names_are_valid() {
        for s in SECTIONS {
            assert!(uci::valid_name(s.section_type));
            for (i, o) in s.options.iter().enumerate() {
                assert!(uci::valid_name(o.name), "{}", o.name);
                assert!(
                    s.options.iter().skip(i + 1).all(|p| p.name != o.name),
                    "duplicate {}",
                    o.name
                );
                match o.default {
                    Default::Value(v) => {
                        assert!(!o.list, "{}", o.name);
                        assert!(parse_val(o.ty, v).is_ok(), "{}", o.name);
                    }
                    Default::List(l) => {
                        assert!(o.list, "{}", o.name);
                        for v in l {
                            assert!(parse_val(o.ty, v).is_ok(), "{}", o.name);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn defaults() {
        let c = ok("");
        let m = &c.main;
        assert_eq!(m.host_name, "box.example");
        assert_eq!(m.local_hosts, vec!["localhost", "box.example"]);
        assert_eq!(
            m.listen_addresses,
            vec!["127.0.0.1:25".parse::<SocketAddr>().expect("addr")]
        );
        assert!(m.smtps_addresses.is_empty());
        assert_eq!(
            m.local_nets
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>(),
            vec!["127.0.0.0/8", "::1/128"]
        );
        assert_eq!(m.spool_dir, PathBuf::from("/var/spool/masqmail"));
        assert_eq!(m.mail_dir, PathBuf::from("/var/mail"));
        assert!(!m.run_as_user);
        assert_eq!(m.mail_user, "mail");
        assert_eq!(m.alias_file, None);
        assert!(!m.alias_local_caseless);
        assert_eq!(m.max_size, 10 << 20);
        assert_eq!(m.max_line_length, 65536);
        assert_eq!(m.max_header_size, 262144);
        assert_eq!(m.max_headers, 1000);
        assert_eq!(m.max_recipients, 1000);
        assert_eq!(m.max_connections, 20);
        assert_eq!(m.max_connections_per_ip, 5);
        assert_eq!(m.max_parallel_routes, 2);
        assert_eq!(m.max_defer_time, Duration::from_secs(5 * 86400));
        assert_eq!(m.smtp_bare_lf, BareLf::Normalize);
        assert_eq!(m.online_detect, OnlineDetect::Netlink);
        assert_eq!(m.online_file, PathBuf::from("/var/run/masqmail/online"));
        assert_eq!(m.online_query, None);
        assert_eq!(
            m.mserver_host,
            HostPort {
                host: "localhost".into(),
                port: 224
            }
        );
        assert_eq!(m.log_level, 5);
        assert_eq!((m.tls_cert.clone(), m.tls_key.clone()), (None, None));
        assert!(c.routes.is_empty() && c.aliases.is_empty() && c.users.is_empty());

        let c = ok("config route 'isp'\n");
        let r = &c.routes[0];
        assert_eq!(r.name, "isp");
        assert!(r.enabled && !r.permanent && r.prefer_ipv4 && r.do_pipelining);
        assert!(r.tls_verify && r.expand_h_sender_address);
        assert!(!r.last_route && !r.connect_error_fail && !r.auth_allow_plaintext);
        assert_eq!(
            r.resolve_list,
            vec![
                ResolveMethod::DnsMx,
                ResolveMethod::DnsA,
                ResolveMethod::Byname
            ]
        );
        assert_eq!(r.tls, TlsMode::StartTls);
        assert_eq!(r.mail_host, None);
        assert_eq!(
            r.tls_ca_file,
            PathBuf::from("/etc/ssl/certs/ca-certificates.crt")
        );
        assert!(r.devices.is_empty() && r.map_h_from_addresses.is_empty());
    }

    #[test]
    fn every_option_kind_accepts_valid_values() {
        let c = ok("
config masqmail 'main'
	option host_name 'mail.example.org'
	list local_hosts 'example.org'
	list local_hosts 'Mail.Example.org'
	list local_addresses 'root@other.example'
	list not_local_addresses 'bob@example.org'
	list listen_addresses '192.168.1.1:25'
	list listen_addresses '[::1]:25'
	list smtps_addresses '192.168.1.1:465'
	list local_nets '192.168.1.0/24'
	option spool_dir '/srv/spool'
	option mail_dir '/srv/mail'
	option run_as_user 'yes'
	option mail_user 'nobody'
	option alias_file '/etc/aliases'
	option alias_local_caseless 'on'
	option max_size '512K'
	option max_line_length '1000'
	option max_header_size '65536'
	option max_headers '50'
	option max_recipients '100'
	option max_connections '10'
	option max_connections_per_ip '10'
	option max_defer_time '2h'
	option smtp_bare_lf 'reject'
	option online_detect 'command'
	option online_file '/tmp/online'
	option online_query '/bin/echo isp'
	option mserver_host 'dialer.lan'
	option log_level 'debug'
	option tls_cert '/etc/masqmail/cert.pem'
	option tls_key '/etc/masqmail/key.pem'

config route 'isp'
	option enabled 'false'
	option permanent 'true'
	list devices 'pppoe-wan'
	list allowed_senders '*@example.org'
	list denied_senders 'spam@*'
	list allowed_recipients '*'
	list denied_recipients '*@localhost'
	list allowed_from_hdrs '*@example.org'
	list denied_from_hdrs '*@evil.example'
	option last_route '1'
	option connect_error_fail '1'
	option mail_host 'smtp.example.net'
	list resolve_list 'byname'
	option prefer_ipv4 '0'
	option helo_name 'gw.example.org'
	option do_pipelining 'no'
	option auth_name 'LOGIN'
	option auth_login 'me@example.org'
	option auth_secret 'pass word'
	option auth_allow_plaintext '1'
	option wrapper '/usr/bin/openssl s_client -quiet -connect smtp.example.net:465'
	option pipe_fromline '1'
	option pipe_fromhack '1'
	option set_h_reply_to_domain 'example.org'
	option set_return_path_domain 'example.org'
	list map_h_from_addresses 'john: John <john@example.org>'
	list map_h_mail_followup_to_addresses 'a: a@example.org'
	list map_return_path_addresses 'b: b@example.org'
	option expand_h_sender_address '0'
	option tls 'tls'
	option tls_verify '0'
	option tls_ca_file '/etc/ca.pem'
	option tls_fingerprint '0011223344556677889900112233445566778899001122334455667788990011'

config route 'lan'
	option pipe '/usr/bin/procmail'
	list map_h_reply_to_addresses 'c: c@example.org'
	option set_h_from_domain 'example.org'

config alias
	option name 'postmaster'
	list to 'root'
	list to '|/usr/bin/logger'

config user
	option name 'printer'
	option password_hash '$6$salt$hash'
");
        let m = &c.main;
        assert_eq!(m.local_hosts, vec!["example.org", "Mail.Example.org"]);
        assert_eq!(m.listen_addresses.len(), 2);
        assert!(m.run_as_user && m.alias_local_caseless);
        assert_eq!(m.max_size, 512 * 1024);
        assert_eq!(m.max_defer_time, Duration::from_secs(7200));
        assert_eq!(m.smtp_bare_lf, BareLf::Reject);
        assert_eq!(m.online_detect, OnlineDetect::Command);
        assert_eq!(m.online_query.as_deref(), Some("/bin/echo isp"));
        assert_eq!(m.mserver_host.port, 224);
        assert_eq!(m.log_level, 7);
        let r = c.route("isp").expect("isp");
        assert!(!r.enabled && r.permanent && r.last_route);
        assert_eq!(
            r.mail_host,
            Some(HostPort {
                host: "smtp.example.net".into(),
                port: 465
            })
        );
        assert_eq!(r.resolve_list, vec![ResolveMethod::Byname]);
        assert_eq!(r.auth_name.as_deref(), Some("login"));
        assert_eq!(
            r.auth_secret.as_ref().map(Secret::expose),
            Some("pass word")
        );
        assert_eq!(r.tls, TlsMode::Tls);
        assert_eq!(r.tls_fingerprint.map(|f| f[1]), Some(0x11));
        assert_eq!(r.map_h_from_addresses[0].to, "John <john@example.org>");
        let lan = c.route("lan").expect("lan");
        assert_eq!(lan.pipe.as_deref(), Some("/usr/bin/procmail"));
        assert_eq!(c.aliases[0].to, vec!["root", "|/usr/bin/logger"]);
        assert_eq!(c.users[0].password_hash.expose(), "$6$salt$hash");
    }

    #[test]
    fn every_option_kind_refuses_invalid_values() {
        let table: &[(&str, &str, &str)] = &[
            ("masqmail", "host_name 'a b'", "not a valid host name"),
            ("masqmail", "run_as_user 'maybe'", "not a boolean"),
            ("masqmail", "max_size '10X'", "not a size"),
            ("masqmail", "max_size '0'", "size of 0"),
            ("masqmail", "max_headers '0'", "out of range"),
            ("masqmail", "max_line_length '100'", "out of range"),
            ("masqmail", "max_connections 'many'", "not a number"),
            ("masqmail", "max_defer_time '5 days'", "not a duration"),
            ("masqmail", "online_detect 'ping'", "not a valid choice"),
            (
                "masqmail",
                "listen_addresses '127.0.0.1'",
                "not an IP address with a port",
            ),
            (
                "masqmail",
                "local_nets '192.168.1.0/33'",
                "prefix length out of range",
            ),
            ("masqmail", "spool_dir 'spool'", "not an absolute path"),
            ("masqmail", "mserver_host 'host:99999'", "bad port"),
            ("masqmail", "log_level '10'", "not a log level"),
            ("masqmail", "local_addresses 'root'", "not an address"),
            ("masqmail", "mail_user 'a b'", "white space"),
            (
                "route 'r'",
                "tls_fingerprint 'abc'",
                "not a SHA-256 fingerprint",
            ),
            ("route 'r'", "map_h_from_addresses 'john'", "has no ':'"),
            ("route 'r'", "devices 'a/b'", "not an interface name"),
            ("route 'r'", "auth_name 'digest'", "not a valid choice"),
            ("route 'r'", "pipe 'a\nb'", "control character"),
            ("route 'r'", "resolve_list 'dns'", "not a valid choice"),
        ];
        for (section, line, want) in table {
            let text = format!("config {section}\n\toption {line}\n");
            let e = one_error(&text);
            assert!(e.message.contains(want), "{text}: {e}");
            assert_eq!(e.line, 2, "{text}");
            assert!(e.option.is_some(), "{text}");
            assert!(e.hint.is_some(), "{text}: no hint");
        }
    }

    #[test]
    fn unknown_names_get_hints() {
        let e = one_error("config masqmail 'main'\n\toption max_szie '1M'\n");
        assert_eq!(e.option.as_deref(), Some("max_szie"));
        assert_eq!(e.hint.as_deref(), Some("did you mean 'max_size'?"));
        assert_eq!(e.section.as_deref(), Some("main"));

        let e = one_error("config masqmail\n\toption mail_host 'x'\n");
        assert_eq!(
            e.hint.as_deref(),
            Some("'mail_host' belongs in a 'config route' section")
        );
        assert_eq!(e.section.as_deref(), Some("@masqmail[0]"));

        // Another section's option: say where it belongs, not a near miss.
        let e = one_error("config route 'r'\n\toption host_name 'x'\n");
        assert_eq!(
            e.hint.as_deref(),
            Some("'host_name' belongs in a 'config masqmail' section")
        );

        let e = one_error("config rotue 'isp'\n\toption whatever '1'\n");
        assert_eq!(e.hint.as_deref(), Some("did you mean 'route'?"));
        assert!(e.message.contains("unknown section type 'rotue'"));

        let e = one_error("config xyzzy\n");
        assert!(e.hint.unwrap_or_default().contains("known section types"));
    }

    #[test]
    fn five_errors_at_once() {
        let text = "\
config masqmail 'main'
	option max_szie '1M'
	option spool_dir 'relative'
	list host_name 'a'
config route
	option tls 'startls'
config alias
	list to 'root'
";
        let e = errors(text);
        let got: Vec<(usize, Option<&str>)> =
            e.iter().map(|e| (e.line, e.option.as_deref())).collect();
        assert_eq!(
            got,
            vec![
                (2, Some("max_szie")),
                (3, Some("spool_dir")),
                (4, Some("host_name")),
                (5, None),
                (6, Some("tls")),
                (7, Some("name")),
            ],
            "{e:?}"
        );
        let shown: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            shown[0],
            "test.conf:2: section 'main' option 'max_szie': unknown option in a \
             'masqmail' section (hint: did you mean 'max_size'?)"
        );
        assert!(
            shown[4].contains("did you mean 'starttls'?"),
            "{}",
            shown[4]
        );
        assert!(shown[3].starts_with("test.conf:5: section '@route[0]': a route needs a name"));
    }

    #[test]
    fn syntax_and_schema_errors_together() {
        let e = errors("config masqmail\n\toption a\n\toption max_size 'x'\n");
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].line, 2);
        assert_eq!(e[0].section, None);
        assert_eq!(e[1].line, 3);
    }

    #[test]
    fn list_and_option_forms() {
        // option for a list: one element.
        let c = ok("config masqmail\n\toption local_hosts 'example.org'\n");
        assert_eq!(c.main.local_hosts, vec!["example.org"]);
        // A value with spaces for a list: a hint to use list lines.
        let e = one_error("config masqmail\n\toption local_hosts 'a.org b.org'\n");
        assert!(e.hint.unwrap_or_default().contains("list local_hosts"));
        // list for a scalar: error.
        let e = one_error("config masqmail\n\tlist max_size '1M'\n");
        assert!(e.message.contains("single value"));
        // Last option wins, no error.
        let c = ok("config masqmail\n\toption max_size '1M'\n\toption max_size '2M'\n");
        assert_eq!(c.main.max_size, 2 << 20);
        // An empty value empties a list and unsets an optional option.
        let c = ok("config masqmail\n\toption listen_addresses ''\n\toption alias_file ''\n");
        assert!(c.main.listen_addresses.is_empty());
        assert_eq!(c.main.alias_file, None);
        // ... but is an error for an option with a default.
        let e = one_error("config masqmail\n\toption spool_dir ''\n");
        assert_eq!(
            e.hint.as_deref(),
            Some("delete the line to get the default '/var/spool/masqmail'")
        );
        // An empty entry among others is an error.
        let e = one_error("config masqmail\n\tlist local_hosts 'a'\n\tlist local_hosts ''\n");
        assert_eq!(e.line, 3);
    }

    #[test]
    fn section_rules() {
        let e = one_error("config masqmail 'a'\nconfig masqmail 'b'\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("second 'config masqmail'"));

        let e = one_error("config route 'isp'\nconfig route 'isp'\n");
        assert!(e.message.contains("used twice"));

        let e = one_error("config alias\n\tlist to 'root'\n");
        assert!(e.message.contains("missing required option 'name'"));
        let e = one_error("config alias\n\toption name 'x'\n");
        assert!(e.message.contains("missing required list 'to'"));
        let e = one_error("config alias\n\toption name 'x'\n\toption to ''\n");
        assert_eq!(e.option.as_deref(), Some("to"));
        let e = one_error(
            "config alias\n\toption name 'x'\n\tlist to 'a'\nconfig alias\n\toption name 'x'\n\tlist to 'b'\n",
        );
        assert!(e.message.contains("defined twice"));
        assert_eq!(e.message, "alias 'x' is defined twice (first at line 1)");
        assert_eq!((e.line, e.section.as_deref()), (4, Some("@alias[1]")));
        // Case counts only without alias_local_caseless; a user may share
        // an alias's name.
        let two = "config alias\n\toption name 'X'\n\tlist to 'a'\n\
                   config alias\n\toption name 'x'\n\tlist to 'b'\n\
                   config user\n\toption name 'x'\n\toption password_hash 'h'\n";
        ok(two);
        let e = one_error(&format!(
            "{two}config masqmail\n\toption alias_local_caseless '1'\n"
        ));
        assert!(e.message.starts_with("alias 'x' is defined twice"), "{e}");

        let e = one_error("config user\n\toption name 'x'\n");
        assert!(e.message.contains("password_hash"));
        let e = one_error("config user\n\toption password_hash 'x'\n");
        assert!(e.message.contains("'name'"));
        let e = one_error(
            "config user\n\toption name 'x'\n\toption password_hash 'a'\n\
             config user\n\toption name 'x'\n\toption password_hash 'b'\n",
        );
        assert!(e.message.contains("defined twice"));
    }

    #[test]
    fn cross_checks() {
        let table: &[(&str, &str)] = &[
            ("config route 'r'\n\toption pipe '/bin/cat'\n\toption mail_host 'h'\n", "exclude each other"),
            ("config route 'r'\n\toption auth_login 'me'\n", "without auth_secret"),
            ("config route 'r'\n\toption auth_secret 'pw'\n", "without auth_login"),
            (
                "config route 'r'\n\toption tls 'none'\n\toption auth_login 'me'\n\toption auth_secret 'pw'\n",
                "without TLS",
            ),
            (
                "config route 'r'\n\toption tls 'none'\n\toption tls_fingerprint '0000000000000000000000000000000000000000000000000000000000000000'\n",
                "fingerprint",
            ),
            (
                "config route 'r'\n\toption set_h_from_domain 'a.org'\n\tlist map_h_from_addresses 'a: b'\n",
                "both rewrite From:",
            ),
            ("config masqmail\n\toption tls_cert '/c.pem'\n", "without a key"),
            ("config masqmail\n\toption tls_key '/k.pem'\n", "without a certificate"),
            ("config masqmail\n\tlist smtps_addresses '127.0.0.1:465'\n", "needs a certificate"),
            ("config masqmail\n\toption online_detect 'command'\n", "needs online_query"),
            (
                "config masqmail\n\toption max_connections '2'\n\toption max_connections_per_ip '3'\n",
                "larger than",
            ),
            ("config masqmail\n\toption max_parallel_routes '0'\n", "out of range"),
            ("config masqmail\n\toption max_parallel_routes '65'\n", "out of range"),
        ];
        for (text, want) in table {
            let e = one_error(text);
            assert!(e.message.contains(want), "{text}: {e}");
            assert!(e.hint.is_some());
        }
        // The plaintext escape hatch works.
        ok(
            "config route 'r'\n\toption tls 'none'\n\toption auth_allow_plaintext '1'\n\
            \toption auth_login 'me'\n\toption auth_secret 'pw'\n",
        );
        // online_detect file uses the default online_file.
        let c = ok("config masqmail\n\toption online_detect 'file'\n");
        assert_eq!(
            c.main.online_file,
            PathBuf::from("/var/run/masqmail/online")
        );
    }

    #[test]
    fn mail_host_ports() {
        let c = ok("config route 'a'\n\toption mail_host 'h'\n\
                    config route 'b'\n\toption mail_host 'h'\n\toption tls 'tls'\n\
                    config route 'c'\n\toption mail_host 'h:587'\n\toption tls 'tls'\n");
        let ports: Vec<u16> = c
            .routes
            .iter()
            .filter_map(|r| r.mail_host.as_ref().map(|h| h.port))
            .collect();
        assert_eq!(ports, vec![25, 465, 587]);
    }

    #[test]
    fn secrets_stay_out_of_error_messages() {
        let e = one_error(
            "config route 'r'\n\toption auth_login 'me'\n\toption auth_secret 'bad\u{7}secret'\n",
        );
        assert!(!e.to_string().contains("bad"), "{e}");
        assert!(e.message.contains("not shown"));
    }

    #[test]
    fn host_name_default_is_in_local_hosts_once() {
        let parsed = uci::parse(b"");
        let c = resolve(Path::new("x"), parsed, "localhost").expect("config");
        assert_eq!(c.main.local_hosts, vec!["localhost"]);
        let c = ok("config masqmail\n\toption host_name 'gw.lan'\n");
        assert_eq!(c.main.local_hosts, vec!["localhost", "gw.lan"]);
    }
}
