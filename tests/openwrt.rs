//! The OpenWrt integration, checked without an OpenWrt box: the shell
//! scripts parse (sh -n, busybox ash -n, shellcheck), the LuCI files are
//! valid JSON and JavaScript (node --check), the rpcd ACL grants exactly
//! the commands the pages run, every option and choice the pages can write
//! is one `masqmail config check` accepts, the default config passes the
//! check, the ifup hook makes queued mail go out (with a daemon and
//! without), and the .ipk files built by openwrt/build-ipk.sh unpack to the
//! expected tree, with the cross-built binaries running under qemu-user.
//!
//! A tool that is missing (shellcheck, busybox, node, make, qemu, a cross
//! binary) makes the test that needs it print SKIP with the reason.

mod common;
#[allow(unused_imports)] // sink.rs is shared; not every user needs all it imports
#[rustfmt::skip] // sink.rs keeps its own formatting
#[path = "common/sink.rs"]
mod sink;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Does `cmd ARGS` run at all (the tool is installed)?
fn have(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn run_ok(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

const OPENWRT_SCRIPTS: &[&str] = &[
    "init.d/masqmail",
    "openwrt/masqmail/files/masqmail.hotplug",
    "openwrt/masqmail/files/masqmail.ntp-hotplug",
];
const SYSV_SCRIPT: &str = "init.d/masqmail.sysv";
const LUCI: &str = "openwrt/luci-app-masqmail";
const VIEWS: &str = "openwrt/luci-app-masqmail/htdocs/luci-static/resources/view/masqmail";

// ---------------------------------------------------------------- shell

#[test]
fn shell_scripts_parse() {
    for f in OPENWRT_SCRIPTS.iter().chain([&SYSV_SCRIPT]) {
        let p = repo().join(f);
        let (ok, out) = run_ok(Command::new("sh").arg("-n").arg(&p));
        assert!(ok, "sh -n {f}: {out}");
        if have("busybox", &["true"]) {
            let (ok, out) = run_ok(Command::new("busybox").args(["ash", "-n"]).arg(&p));
            assert!(ok, "busybox ash -n {f}: {out}");
        }
    }
    if !have("busybox", &["true"]) {
        println!("SKIP busybox ash -n: no busybox (apt-get install busybox)");
    }
    let (ok, out) = run_ok(
        Command::new("bash")
            .arg("-n")
            .arg(repo().join("openwrt/build-ipk.sh")),
    );
    assert!(ok, "bash -n build-ipk.sh: {out}");
}

#[test]
fn shellcheck_is_clean() {
    if !have("shellcheck", &["--version"]) {
        println!("SKIP shellcheck: not installed (apt-get install shellcheck)");
        return;
    }
    // OPENWRT.md §9: the codes OpenWrt's script conventions trigger
    // (START/USE_PROCD "unused", ash's `local`, /lib/functions.sh absent,
    // variables set by hotplug-call and procd).
    for f in OPENWRT_SCRIPTS {
        let (ok, out) = run_ok(
            Command::new("shellcheck")
                .args(["-s", "sh", "-e", "SC2034,SC3043,SC1091,SC2154"])
                .arg(repo().join(f)),
        );
        assert!(ok, "shellcheck {f}:\n{out}");
    }
    for f in [SYSV_SCRIPT, "openwrt/build-ipk.sh"] {
        let (ok, out) = run_ok(Command::new("shellcheck").arg(repo().join(f)));
        assert!(ok, "shellcheck {f}:\n{out}");
    }
}

#[test]
fn procd_script_follows_the_conventions() {
    let s = read("init.d/masqmail");
    assert!(s.starts_with("#!/bin/sh /etc/rc.common\n"));
    for want in [
        "USE_PROCD=1",
        "START=",
        "procd_set_param command \"$PROG\" daemon",
        "procd_set_param file \"$CONF\"",
        "procd_set_param reload_signal HUP",
        "procd_set_param respawn",
        "procd_set_param stderr 1",
        "procd_add_reload_trigger \"masqmail\"",
        "PROG=/usr/sbin/masqmail",
        "CONF=/etc/config/masqmail",
    ] {
        assert!(s.contains(want), "init.d/masqmail lacks {want:?}");
    }
    // The daemon must stay in the foreground under procd.
    assert!(!s.contains("-bd"));
}

/// Run the procd script's functions against stubs that print each procd
/// call: what procd would be told.
#[test]
fn procd_script_tells_procd_the_right_things() {
    let script = format!(
        "procd_open_instance() {{ echo open; }}\n\
         procd_set_param() {{ echo \"param $*\"; }}\n\
         procd_close_instance() {{ echo close; }}\n\
         procd_add_reload_trigger() {{ echo \"trigger $*\"; }}\n\
         procd_send_signal() {{ echo \"signal $*\"; }}\n\
         extra_command() {{ :; }}\n\
         . '{}'\n\
         start_service\nservice_triggers\nreload_service\n",
        repo().join("init.d/masqmail").display()
    );
    let (ok, out) = run_ok(Command::new("sh").arg("-c").arg(&script));
    assert!(ok, "{out}");
    assert_eq!(
        out,
        "open\n\
         param command /usr/sbin/masqmail daemon\n\
         param file /etc/config/masqmail\n\
         param reload_signal HUP\n\
         param respawn\n\
         param stderr 1\n\
         close\n\
         trigger masqmail\n\
         signal masqmail * HUP\n"
    );
}

#[test]
fn systemd_unit_verifies() {
    let unit = read("init.d/masqmail.service");
    assert!(unit.contains("ExecStart=/usr/sbin/masqmail daemon\n"));
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID\n"));
    if !have("systemd-analyze", &["--version"]) {
        println!("SKIP systemd-analyze verify: no systemd-analyze");
        return;
    }
    let dir = TempDir::new("unit");
    let p = dir.path().join("masqmail.service");
    fs::write(&p, unit.replace("/usr/sbin/masqmail", BIN)).expect("unit");
    let (ok, out) = run_ok(Command::new("systemd-analyze").arg("verify").arg(&p));
    assert!(ok, "systemd-analyze verify:\n{out}");
}

// ---------------------------------------------------------------- JSON

/// A JSON value, from the small strict parser below (no dependency).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn get(&self, k: &str) -> Option<&Json> {
        match self {
            Json::Obj(v) => v.iter().find(|(n, _)| n == k).map(|(_, j)| j),
            _ => None,
        }
    }
    fn keys(&self) -> Vec<String> {
        match self {
            Json::Obj(v) => v.iter().map(|(n, _)| n.clone()).collect(),
            _ => Vec::new(),
        }
    }
    fn str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn parse(text: &str) -> Result<Json, String> {
        let mut p = JsonParser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing data at byte {}", p.i));
        }
        Ok(v)
    }
    fn ws(&mut self) {
        while self.i < self.s.len() && b" \t\r\n".contains(&self.s[self.i]) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }
    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut v = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(v));
                }
                loop {
                    self.ws();
                    let Json::Str(k) = self.string()? else {
                        unreachable!()
                    };
                    if v.iter().any(|(n, _)| *n == k) {
                        return Err(format!("duplicate key {k:?}"));
                    }
                    self.eat(b':')?;
                    v.push((k, self.value()?));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(v));
                        }
                        _ => return Err(format!("expected , or }} at byte {}", self.i)),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut v = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(v));
                }
                loop {
                    v.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(v));
                        }
                        _ => return Err(format!("expected , or ] at byte {}", self.i)),
                    }
                }
            }
            Some(b'"') => self.string(),
            Some(b't') => self.word("true", Json::Bool(true)),
            Some(b'f') => self.word("false", Json::Bool(false)),
            Some(b'n') => self.word("null", Json::Null),
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let st = self.i;
                while self.i < self.s.len() && b"+-.eE0123456789".contains(&self.s[self.i]) {
                    self.i += 1;
                }
                let t = std::str::from_utf8(&self.s[st..self.i]).map_err(|e| e.to_string())?;
                t.parse()
                    .map(Json::Num)
                    .map_err(|_| format!("bad number {t}"))
            }
            _ => Err(format!("unexpected byte at {}", self.i)),
        }
    }
    fn word(&mut self, w: &str, v: Json) -> Result<Json, String> {
        if self.s[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Ok(v)
        } else {
            Err(format!("bad literal at byte {}", self.i))
        }
    }
    fn string(&mut self) -> Result<Json, String> {
        if self.s.get(self.i) != Some(&b'"') {
            return Err(format!("expected a string at byte {}", self.i));
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.s.get(self.i) {
                None => return Err("unterminated string".into()),
                Some(b'"') => {
                    self.i += 1;
                    return String::from_utf8(out)
                        .map(Json::Str)
                        .map_err(|e| e.to_string());
                }
                Some(b'\\') => {
                    let c = *self.s.get(self.i + 1).ok_or("bad escape")?;
                    self.i += 2;
                    match c {
                        b'"' | b'\\' | b'/' => out.push(c),
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let h = std::str::from_utf8(
                                self.s.get(self.i..self.i + 4).ok_or("bad \\u")?,
                            )
                            .map_err(|e| e.to_string())?;
                            let n = u32::from_str_radix(h, 16).map_err(|e| e.to_string())?;
                            self.i += 4;
                            let ch = char::from_u32(n).unwrap_or('\u{fffd}');
                            out.extend_from_slice(ch.to_string().as_bytes());
                        }
                        _ => return Err(format!("bad escape at byte {}", self.i)),
                    }
                }
                Some(c) if *c < 0x20 => return Err("control character in a string".into()),
                Some(c) => {
                    out.push(*c);
                    self.i += 1;
                }
            }
        }
    }
}

fn json(rel: &str) -> Json {
    JsonParser::parse(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

const MENU: &str = "openwrt/luci-app-masqmail/root/usr/share/luci/menu.d/luci-app-masqmail.json";
const ACL: &str = "openwrt/luci-app-masqmail/root/usr/share/rpcd/acl.d/luci-app-masqmail.json";

fn view_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(repo().join(VIEWS))
        .expect("views")
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v
}

fn all_js() -> Vec<PathBuf> {
    let mut v = view_files();
    v.push(
        repo()
            .join(LUCI)
            .join("htdocs/luci-static/resources/masqmail/shacrypt.js"),
    );
    v
}

#[test]
fn json_files_are_valid_and_the_menu_has_its_views() {
    let menu = json(MENU);
    let _ = json(ACL);
    let mut paths = BTreeSet::new();
    for k in menu.keys() {
        assert!(k.starts_with("admin/services/masqmail"), "{k}");
        let entry = menu.get(&k).expect("entry");
        let action = entry.get("action").expect("action");
        match action.get("type").and_then(Json::str) {
            Some("view") => {
                let p = action
                    .get("path")
                    .and_then(Json::str)
                    .expect("path")
                    .to_string();
                let js = repo()
                    .join(LUCI)
                    .join(format!("htdocs/luci-static/resources/view/{p}.js"));
                assert!(js.exists(), "menu {k}: no {}", js.display());
                paths.insert(p);
            }
            Some("firstchild") => {
                let dep = entry.get("depends").expect("depends");
                assert_eq!(
                    dep.get("acl"),
                    Some(&Json::Arr(vec![Json::Str("luci-app-masqmail".into())]))
                );
                assert_eq!(
                    dep.get("uci").and_then(|u| u.get("masqmail")),
                    Some(&Json::Bool(true))
                );
            }
            other => panic!("menu {k}: action type {other:?}"),
        }
    }
    // Every view is reachable.
    for f in view_files() {
        let stem = f.file_stem().expect("stem").to_string_lossy().into_owned();
        assert!(
            paths.contains(&format!("masqmail/{stem}")),
            "{stem} is not in the menu"
        );
    }
}

/// The commands status.js may run: its COMMANDS table, as
/// "/usr/sbin/masqmail ARG …" strings (rpcd matches exactly these).
fn js_commands() -> BTreeSet<String> {
    let js = fs::read_to_string(repo().join(VIEWS).join("status.js")).expect("status.js");
    let prog = js
        .lines()
        .find_map(|l| {
            l.strip_prefix("var PROG = '")
                .and_then(|r| r.strip_suffix("';"))
        })
        .expect("PROG");
    let start = js.find("var COMMANDS = {").expect("COMMANDS table");
    let end = start + js[start..].find("};").expect("end of COMMANDS");
    let mut out = BTreeSet::new();
    for line in js[start..end].lines().skip(1) {
        let Some((_, arr)) = line.split_once(": [") else {
            continue;
        };
        let args: Vec<&str> = arr
            .trim_end()
            .trim_end_matches(',')
            .trim_end_matches(']')
            .split(',')
            .map(|a| a.trim().trim_matches('\''))
            .collect();
        out.insert(format!("{prog} {}", args.join(" ")));
    }
    out
}

#[test]
fn acl_grants_exactly_the_commands_the_pages_run() {
    // Every page runs commands only through status.js's table.
    for f in all_js() {
        let js = fs::read_to_string(&f).expect("js");
        let name = f.file_name().expect("name").to_string_lossy().into_owned();
        for (i, _) in js.match_indices("fs.") {
            let rest = &js[i..];
            assert!(
                rest.starts_with("fs.exec(PROG, COMMANDS[name])") && name == "status.js",
                "{name}: an fs call outside the COMMANDS table: {}",
                &rest[..rest.len().min(40)]
            );
        }
        for forbidden in [
            "rpc.declare",
            "exec_direct",
            "'require rpc'",
            "L.resolveDefault(fs",
        ] {
            assert!(
                !js.contains(forbidden),
                "{name} uses {forbidden}: the ACL must cover it"
            );
        }
        for m in js.match_indices("form.Map(") {
            assert!(
                js[m.0..].starts_with("form.Map('masqmail'"),
                "{name}: a map of another config"
            );
        }
        for m in js.match_indices("uci.load(") {
            assert!(
                js[m.0..].starts_with("uci.load('masqmail')"),
                "{name}: loads another config"
            );
        }
    }
    let cmds = js_commands();
    assert_eq!(cmds.len(), 5, "{cmds:?}");

    let acl = json(ACL);
    assert_eq!(acl.keys(), vec!["luci-app-masqmail".to_string()]);
    let group = acl.get("luci-app-masqmail").expect("group");
    let mut granted = BTreeMap::new();
    for level in ["read", "write"] {
        let l = group.get(level).expect(level);
        assert_eq!(
            l.get("uci"),
            Some(&Json::Arr(vec![Json::Str("masqmail".into())]))
        );
        assert_eq!(
            l.get("ubus").and_then(|u| u.get("file")),
            Some(&Json::Arr(vec![Json::Str("exec".into())])),
            "{level}: fs.exec needs ubus file exec"
        );
        let files = l.get("file").expect("file");
        for k in files.keys() {
            assert_eq!(
                files.get(&k),
                Some(&Json::Arr(vec![Json::Str("exec".into())]))
            );
            assert!(
                !k.contains('*') && !k.contains('?') && !k.contains('['),
                "{k}: no globs"
            );
            granted.insert(k, level);
        }
    }
    let keys: BTreeSet<String> = granted.keys().cloned().collect();
    assert_eq!(keys, cmds, "ACL file keys vs the commands of status.js");
    // What changes something needs the write level.
    for (k, level) in &granted {
        let writes = k.ends_with(" flush") || k.ends_with(" testmail");
        assert_eq!(*level, if writes { "write" } else { "read" }, "{k}");
    }
}

#[test]
fn javascript_passes_node_check() {
    if !have("node", &["--version"]) {
        println!("SKIP node --check: no node (apt-get install nodejs)");
        return;
    }
    for f in all_js() {
        let (ok, out) = run_ok(Command::new("node").arg("--check").arg(&f));
        assert!(ok, "node --check {}: {out}", f.display());
        let js = fs::read_to_string(&f).expect("js");
        assert!(js.starts_with("'use strict';\n"), "{}", f.display());
        assert!(js.contains("return view.extend(") || js.contains("return baseclass.extend("));
    }
}

/// The SMTP user page hashes passwords in the browser: the hash must be
/// one masqmail's own SHA-crypt accepts, and match the spec's vectors.
#[test]
fn luci_password_hash_matches_masqmail() {
    if !have("node", &["--version"]) {
        println!("SKIP: no node (apt-get install nodejs)");
        return;
    }
    let module = repo()
        .join(LUCI)
        .join("htdocs/luci-static/resources/masqmail/shacrypt.js");
    let script = format!(
        "const src = require('fs').readFileSync({:?}, 'utf8');\n\
         const m = new Function('baseclass', src)({{ extend: o => o }});\n\
         console.log(m.crypt5('Hello world!', 'saltstring'));\n\
         console.log(m.crypt5('Hello world!', 'saltstringsaltstring', 10000));\n\
         console.log(m.hash('pa\u{e4}ss word'));\n",
        module.display().to_string()
    );
    let (ok, out) = run_ok(Command::new("node").arg("-e").arg(&script));
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"
    );
    assert_eq!(
        lines[1],
        "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"
    );
    assert!(
        lines[2].starts_with("$5$") && lines[2].len() > 40,
        "{}",
        lines[2]
    );
    assert!(masqmail::util::shacrypt::verify(
        "pa\u{e4}ss word".as_bytes(),
        lines[2]
    ));
    assert!(!masqmail::util::shacrypt::verify(b"pass word", lines[2]));
}

// ------------------------------------------------ options the pages write

/// (section type, option) → the fixed choices the page offers (empty for
/// free input).
type UiOptions = BTreeMap<(String, String), Vec<String>>;

/// Scan the views: a `form.XSection` call sets the section type for the
/// options after it; `form.Kind, 'name'` declares an option; `o.value('v'`
/// adds a choice to the last option; a Flag can write 0 and 1.
fn ui_options() -> UiOptions {
    let mut out = UiOptions::new();
    for f in view_files() {
        let js = fs::read_to_string(&f).expect("js");
        let mut section = String::new();
        let mut last: Option<(String, String)> = None;
        let mut i = 0;
        while i < js.len() {
            let rest = &js[i..];
            if let Some(r) = rest.strip_prefix("form.") {
                let kind: String = r
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                let args = quoted_args(&r[kind.len()..]);
                match kind.as_str() {
                    "Map" | "JSONMap" => {}
                    "NamedSection" => section = args.get(1).cloned().unwrap_or_default(),
                    "TypedSection" | "GridSection" | "TableSection" => {
                        section = args.first().cloned().unwrap_or_default()
                    }
                    _ => {
                        if let Some(name) = args.first() {
                            let key = (section.clone(), name.clone());
                            let e = out.entry(key.clone()).or_default();
                            if kind == "Flag" {
                                e.extend(["0".to_string(), "1".to_string()]);
                            }
                            last = Some(key);
                        }
                    }
                }
                i += 5 + kind.len();
                continue;
            }
            if let Some(r) = rest.strip_prefix("o.value(") {
                if let (Some(k), Some(v)) = (&last, quoted_args(&format!(",{r}")).first()) {
                    out.get_mut(k).expect("option").push(v.clone());
                }
                i += 8;
                continue;
            }
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

/// The leading `, 'a', 'b'` arguments of a call, as far as they are
/// string literals.
fn quoted_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(r) = rest.trim_start().strip_prefix(',') {
        let r = r.trim_start();
        let Some(r) = r.strip_prefix('\'') else {
            break;
        };
        let Some(end) = r.find('\'') else { break };
        out.push(r[..end].to_string());
        rest = &r[end + 1..];
    }
    out
}

/// (section type, option) pairs `config show` prints for a config with
/// one section of every type: every option the program knows.
fn known_options() -> BTreeSet<(String, String)> {
    let m = Mta::with_config(
        "known",
        "",
        "config route 'r'\n\toption mail_host 'h.example:25'\n\
         config alias\n\toption name 'a'\n\tlist to 'root'\n\
         config user\n\toption name 'u'\n\toption password_hash '$5$s$h'\n",
    );
    let out = m.run("masqmail", &["config", "show"], b"");
    expect_code(&out, 0);
    let mut known = BTreeSet::new();
    let mut section = String::new();
    for line in stdout(&out).lines() {
        if let Some(r) = line.strip_prefix("config ") {
            section = r.split_whitespace().next().unwrap_or("").to_string();
        } else if let Some(r) = line
            .trim_start()
            .strip_prefix("option ")
            .or_else(|| line.trim_start().strip_prefix("list "))
        {
            let name = r.split_whitespace().next().unwrap_or("").to_string();
            known.insert((section.clone(), name));
        }
    }
    assert!(known.len() > 60, "{known:?}");
    known
}

/// Options the pages declare that are not UCI options (they write others).
const UI_ONLY: &[(&str, &str)] = &[("user", "_password")];

#[test]
fn every_option_the_luci_pages_write_is_known() {
    let ui = ui_options();
    let known = known_options();
    assert!(
        ui.len() > 60,
        "found only {} options in the views",
        ui.len()
    );
    let mut unknown = Vec::new();
    for (sec, opt) in ui.keys() {
        if UI_ONLY.contains(&(sec.as_str(), opt.as_str())) {
            continue;
        }
        if !known.contains(&(sec.clone(), opt.clone())) {
            unknown.push(format!("{sec}.{opt}"));
        }
    }
    assert!(
        unknown.is_empty(),
        "the pages write options config check does not know: {unknown:?}"
    );
    let users = fs::read_to_string(repo().join(VIEWS).join("users.js")).expect("users.js");
    assert!(
        users.contains("o.write = function") && users.contains("'password_hash', shacrypt.hash(")
    );
}

/// Every fixed choice a page offers is a value config check accepts.
#[test]
fn every_choice_the_luci_pages_offer_is_accepted() {
    let m = Mta::new("choices");
    let mut n = 0;
    for ((sec, opt), values) in ui_options() {
        for v in values.iter().filter(|v| !v.is_empty()) {
            // What a choice needs beside it to be complete.
            let extra = match (opt.as_str(), v.as_str()) {
                ("local_delivery", "mda") => "\toption mda '/bin/cat'\n",
                ("online_detect", "command") => "\toption online_query '/bin/true'\n",
                _ => "",
            };
            let section = match sec.as_str() {
                "masqmail" => format!("config masqmail 'main'\n\toption {opt} '{v}'\n{extra}"),
                "route" => format!("config route 'r'\n\toption {opt} '{v}'\n"),
                "alias" | "user" => continue,
                other => panic!("section type {other}"),
            };
            let p = m.dir.path().join(format!("c{n}.conf"));
            n += 1;
            fs::write(&p, section).expect("write");
            let out = m.run_raw(
                "masqmail",
                &["-C", p.to_str().expect("utf-8"), "config", "check"],
                b"",
            );
            assert_eq!(code(&out), 0, "{sec}.{opt} = '{v}': {}", stderr(&out));
        }
    }
    assert!(n > 20, "only {n} choices found");
}

// ------------------------------------------------------ default config

const DEFAULT_CONFIG: &str = "openwrt/masqmail/files/masqmail.config";

#[test]
fn default_config_passes_check_and_is_safe() {
    let m = Mta::new("default-config");
    let p = repo().join(DEFAULT_CONFIG);
    let out = m.run_raw(
        "masqmail",
        &["-C", p.to_str().expect("utf-8"), "config", "check"],
        b"",
    );
    expect_code(&out, 0);
    let out = m.run_raw(
        "masqmail",
        &["-C", p.to_str().expect("utf-8"), "config", "show"],
        b"",
    );
    expect_code(&out, 0);
    let shown = stdout(&out);
    // Loopback only; no relaying beyond loopback.
    let listen: Vec<&str> = shown
        .lines()
        .filter(|l| l.contains("listen_addresses"))
        .collect();
    assert_eq!(
        listen,
        ["\tlist listen_addresses '127.0.0.1:25'"],
        "{shown}"
    );
    assert!(shown.contains("\toption smtps_addresses ''"), "{shown}");
    let nets: Vec<&str> = shown.lines().filter(|l| l.contains("local_nets")).collect();
    assert_eq!(
        nets,
        [
            "\tlist local_nets '127.0.0.0/8'",
            "\tlist local_nets '::1/128'"
        ]
    );
    // The package's user; RAM spool, as documented.
    assert!(shown.contains("\toption mail_user 'masqmail'\n"), "{shown}");
    assert!(shown.contains("\toption spool_dir '/var/spool/masqmail'\n"));
    // One smarthost route, disabled.
    assert!(
        shown.contains("config route 'smarthost'\n\toption enabled '0'\n"),
        "{shown}"
    );
    assert_eq!(shown.matches("config route").count(), 1);
    // root's alias exists, to a configurable target, in the section the
    // LuCI page edits.
    assert!(
        shown.contains("\toption name 'root'\n\tlist to '\\root'\n"),
        "{shown}"
    );
    assert!(read(DEFAULT_CONFIG).contains("\nconfig alias 'root'\n"));
    // The package creates the user the config names.
    let mk = read("openwrt/masqmail/Makefile");
    assert!(mk.contains("USERID:=masqmail:masqmail\n"));
}

#[test]
fn package_makefile_matches_the_project() {
    let mk = read("openwrt/masqmail/Makefile");
    let cargo = read("Cargo.toml");
    let version = cargo
        .lines()
        .find_map(|l| {
            l.strip_prefix("version = \"")
                .and_then(|r| r.strip_suffix('"'))
        })
        .expect("version");
    assert!(
        mk.contains(&format!("PKG_VERSION:={version}\n")),
        "PKG_VERSION != {version}"
    );
    assert!(mk.contains("PKG_LICENSE:=GPL-2.0-or-later\n"));
    assert!(cargo.contains("license = \"GPL-2.0-or-later\""));
    for want in [
        "include $(INCLUDE_DIR)/package.mk\n",
        "include ../../lang/rust/rust-package.mk\n",
        "PKG_BUILD_DEPENDS:=rust/host\n",
        "CARGO_PKG_PROFILE:=openwrt\n",
        "DEPENDS:=$(RUST_ARCH_DEPENDS) +ca-bundle\n",
        "define Package/masqmail/conffiles\n/etc/config/masqmail\nendef\n",
        "300:/usr/sbin/sendmail:/usr/sbin/masqmail",
        "$(eval $(call BuildPackage,masqmail))",
    ] {
        assert!(mk.contains(want), "Makefile lacks {want:?}");
    }
    // The custom profile keeps what the feed's environment would change.
    let prof = &cargo[cargo.find("[profile.openwrt]").expect("[profile.openwrt]")..];
    for want in [
        "inherits = \"release\"",
        "panic = \"abort\"",
        "opt-level =",
        "overflow-checks = false",
        "lto = true",
    ] {
        assert!(prof.contains(want), "[profile.openwrt] lacks {want}");
    }
}

// ----------------------------------------------------------- hotplug

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The hook as shipped, with its two absolute paths pointed at this test:
/// /usr/sbin/masqmail → a wrapper that logs its arguments and runs the
/// built binary with the test config; /etc/init.d/masqmail → a stub whose
/// `enabled` answers `enabled`.
fn hook_for(m: &Mta, file: &str, enabled: bool) -> (PathBuf, PathBuf) {
    let dir = m.dir.path();
    let log = dir.join("flush.log");
    let wrapper = dir.join("masqmail-wrapper");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' -C '{}' \"$@\"\n",
            log.display(),
            BIN,
            m.conf.display()
        ),
    )
    .expect("wrapper");
    let init = dir.join("init-stub");
    fs::write(
        &init,
        format!(
            "#!/bin/sh\n[ \"$1\" = enabled ] && exit {}\nexit 1\n",
            if enabled { 0 } else { 1 }
        ),
    )
    .expect("init stub");
    for p in [&wrapper, &init] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let text = read(file);
    assert!(
        text.contains("/usr/sbin/masqmail flush") && text.contains("/etc/init.d/masqmail enabled")
    );
    let hook = dir.join("hook");
    fs::write(
        &hook,
        text.replace("/usr/sbin/masqmail", wrapper.to_str().expect("utf-8"))
            .replace("/etc/init.d/masqmail", init.to_str().expect("utf-8")),
    )
    .expect("hook");
    (hook, log)
}

/// Source the hook the way hotplug-call does (in a subshell, with the
/// event in the environment); returns how long it took.
fn run_hook(hook: &Path, env: &[(&str, &str)]) -> Duration {
    let t = Instant::now();
    let mut c = Command::new("sh");
    c.arg("-c").arg(format!("( . '{}' )", hook.display()));
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("hook");
    assert!(
        out.status.success(),
        "hook failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "the hook must be silent"
    );
    t.elapsed()
}

fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Route `wan` to the sink, plain SMTP (TLS is setup.rs's business).
fn route_config(port: u16) -> String {
    format!(
        "config route 'wan'\n\toption mail_host '127.0.0.1:{port}'\n\toption tls 'none'\n\
         \tlist resolve_list 'byname'\n",
    )
}

/// A daemon whose route `wan` is online (online_detect 'file') tried the
/// smarthost, got 451 and deferred the message for minutes; the ifup hook
/// makes it go out at once.
#[test]
fn ifup_hook_flushes_the_running_daemon() {
    let refuse = "451 4.3.0 not now".to_string();
    let smarthost = sink::Sink::start(sink::Behaviour::default());
    smarthost
        .behaviour
        .lock()
        .expect("lock")
        .rcpt_replies
        .insert("you@example.org".into(), refuse);
    let dir = TempDir::new("hotplug-online");
    let online = dir.path().join("online");
    fs::write(&online, "wan\n").expect("online");
    let m = Mta::with_config(
        "hotplug",
        &format!(
            "\toption online_detect 'file'\n\toption online_file '{}'\n\
             \tlist listen_addresses '127.0.0.1:{}'\n",
            online.display(),
            free_port()
        ),
        &route_config(smarthost.port),
    );
    let (hook, log) = hook_for(&m, "openwrt/masqmail/files/masqmail.hotplug", true);
    let _daemon = DaemonGuard::start(&m.conf, &m.spool);

    let out = m.sendmail(&["-t"], "To: you@example.org\nSubject: hotplug\n\nhi\n");
    expect_code(&out, 0);
    // Tried once and deferred (the sink said 451).
    assert!(
        wait_until(20, || m.mailq().contains("last error: 451")),
        "not deferred: {}",
        m.mailq()
    );
    assert!(smarthost.messages().is_empty());
    smarthost
        .behaviour
        .lock()
        .expect("lock")
        .rcpt_replies
        .clear();

    // Other events and the loopback interface do nothing.
    for env in [
        [("ACTION", "ifdown"), ("INTERFACE", "wan")],
        [("ACTION", "ifup"), ("INTERFACE", "loopback")],
        [("ACTION", "ifupdate"), ("INTERFACE", "wan")],
    ] {
        run_hook(&hook, &env);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(!log.exists(), "flushed on an event that needs none");

    let took = run_hook(
        &hook,
        &[("ACTION", "ifup"), ("INTERFACE", "wan"), ("DEVICE", "eth1")],
    );
    assert!(took < Duration::from_secs(1), "the hook took {took:?}");
    let got = smarthost.wait_for(1, 10);
    assert_eq!(got[0].rcpts, ["you@example.org"]);
    assert_eq!(fs::read_to_string(&log).expect("log"), "flush\n");
    assert!(
        wait_until(10, || m.mailq().contains("Mail queue is empty")),
        "{}",
        m.mailq()
    );

    // A new address on the interface flushes too.
    run_hook(
        &hook,
        &[
            ("ACTION", "ifupdate"),
            ("INTERFACE", "wan"),
            ("IFUPDATE_ADDRESSES", "1"),
        ],
    );
    assert!(wait_until(5, || fs::read_to_string(&log)
        .is_ok_and(|l| l == "flush\nflush\n")));
}

/// Without a daemon, the hook's flush runs the queue itself; with the
/// service disabled it does nothing.
#[test]
fn ifup_hook_without_a_daemon_runs_the_queue() {
    let smarthost = sink::Sink::start(sink::Behaviour::default());
    let dir = TempDir::new("hotplug-nodaemon-online");
    let online = dir.path().join("online");
    fs::write(&online, "wan\n").expect("online");
    let m = Mta::with_config(
        "hotplug-nodaemon",
        &format!(
            "\toption online_detect 'file'\n\toption online_file '{}'\n",
            online.display()
        ),
        &route_config(smarthost.port),
    );
    let out = m.sendmail(&["-t"], "To: you@example.org\nSubject: no daemon\n\nhi\n");
    expect_code(&out, 0);
    assert_eq!(m.queued_ids().len(), 1);

    let (hook, log) = hook_for(&m, "openwrt/masqmail/files/masqmail.hotplug", false);
    run_hook(&hook, &[("ACTION", "ifup"), ("INTERFACE", "wan")]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !log.exists() && smarthost.messages().is_empty(),
        "ran while disabled"
    );

    let (hook, _) = hook_for(&m, "openwrt/masqmail/files/masqmail.hotplug", true);
    let took = run_hook(&hook, &[("ACTION", "ifup"), ("INTERFACE", "wan")]);
    assert!(took < Duration::from_secs(1), "the hook took {took:?}");
    smarthost.wait_for(1, 10);
    assert!(
        wait_until(10, || m.mailq().contains("Mail queue is empty")),
        "{}",
        m.mailq()
    );

    // The NTP hook: only on a stratum event.
    let (ntp, log) = hook_for(&m, "openwrt/masqmail/files/masqmail.ntp-hotplug", true);
    let _ = fs::remove_file(&log);
    run_hook(&ntp, &[("ACTION", "periodic")]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!log.exists());
    run_hook(&ntp, &[("ACTION", "stratum")]);
    assert!(wait_until(5, || log.exists()));
}

/// The sysv script starts, reports, reloads and stops the daemon.
#[test]
fn sysv_script_runs_the_daemon() {
    let m = Mta::with_config(
        "sysv",
        &format!("\tlist listen_addresses '127.0.0.1:{}'\n", free_port()),
        "",
    );
    let pid_file = m.dir.path().join("masqmail.pid");
    let text = fs::read_to_string(&m.conf).expect("conf").replace(
        "config masqmail 'main'\n",
        &format!(
            "config masqmail 'main'\n\toption pid_file '{}'\n",
            pid_file.display()
        ),
    );
    fs::write(&m.conf, text).expect("conf");
    let script = m.dir.path().join("masqmail.sysv");
    fs::write(
        &script,
        read(SYSV_SCRIPT)
            .replace("PROG=/usr/sbin/masqmail", &format!("PROG={BIN}"))
            .replace(
                "CONF=/etc/masqmail/masqmail.conf",
                &format!("CONF={}", m.conf.display()),
            )
            .replace("/etc/default/masqmail", "/nonexistent/masqmail-defaults"),
    )
    .expect("script");
    let sysv = |verb: &str| run_ok(Command::new("sh").arg(&script).arg(verb));

    let (ok, out) = sysv("status");
    assert!(!ok && out.contains("not running"), "{out}");
    let (ok, out) = sysv("start");
    assert!(ok, "start: {out}");
    let (ok, out) = sysv("status");
    assert!(ok && out.contains("is running (pid"), "{out}");
    let pid = fs::read_to_string(&pid_file).expect("pid file");
    let (ok, out) = sysv("reload");
    assert!(ok, "reload: {out}");
    let (ok, out) = sysv("flush");
    assert!(ok, "flush: {out}");
    let (ok, out) = sysv("stop");
    assert!(ok, "stop: {out}");
    let pid: i32 = pid.trim().parse().expect("pid");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "still running"
    );
    let (ok, out) = sysv("status");
    assert!(!ok && out.contains("not running"), "{out}");
    let (ok, _) = sysv("bogus");
    assert!(!ok);
}

// ------------------------------------------------------------- .ipk

/// Where the cross builds are: the target dir of this build, the
/// checkout's target/, and cross/ci.sh's cache
/// (~/.cache/masqmail/cross-target).
fn cross_binary(target: &str) -> Option<PathBuf> {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|c| c.join("masqmail/cross-target"));
    [
        tmp.parent().map(Path::to_path_buf),
        Some(repo().join("target")),
        cache,
    ]
    .into_iter()
    .flatten()
    .map(|b| b.join("cross").join(target).join("masqmail"))
    .find(|p| p.is_file())
}

/// Build with openwrt/build-ipk.sh; the .ipk paths it printed.
fn build_ipk(args: &[&str], out: &Path, target_dir: Option<&Path>) -> Option<Vec<PathBuf>> {
    if !have("make", &["--version"]) {
        println!("SKIP .ipk build: no GNU make (apt-get install make)");
        return None;
    }
    let mut c = Command::new(repo().join("openwrt/build-ipk.sh"));
    c.args(args).arg("--out").arg(out);
    if let Some(t) = target_dir {
        c.env("CARGO_TARGET_DIR", t);
    }
    let (ok, text) = run_ok(&mut c);
    assert!(ok, "build-ipk.sh {args:?}: {text}");
    Some(
        text.lines()
            .filter(|l| l.ends_with(".ipk"))
            .map(PathBuf::from)
            .collect(),
    )
}

/// Unpack an .ipk: the outer members (checked), then data/ and control/.
fn unpack(ipk: &Path, into: &Path) {
    fs::create_dir_all(into).expect("dir");
    let (ok, list) = run_ok(Command::new("tar").arg("tzf").arg(ipk));
    assert!(ok, "{list}");
    assert_eq!(
        list,
        "./debian-binary\n./data.tar.gz\n./control.tar.gz\n",
        "{}",
        ipk.display()
    );
    let (ok, out) = run_ok(Command::new("tar").arg("xzf").arg(ipk).current_dir(into));
    assert!(ok, "{out}");
    assert_eq!(
        fs::read_to_string(into.join("debian-binary")).expect("debian-binary"),
        "2.0\n"
    );
    for part in ["data", "control"] {
        fs::create_dir_all(into.join(part)).expect("dir");
        let (ok, out) = run_ok(
            Command::new("tar")
                .arg("xzf")
                .arg(into.join(format!("{part}.tar.gz")))
                .current_dir(into.join(part)),
        );
        assert!(ok, "{out}");
        // Owned by root in the archive.
        let (ok, list) = run_ok(
            Command::new("tar")
                .args(["tzvf"])
                .arg(into.join(format!("{part}.tar.gz"))),
        );
        assert!(ok);
        for l in list.lines() {
            assert!(l.contains(" 0/0 "), "not root-owned: {l}");
        }
    }
}

/// "MODE PATH" (and " -> TARGET" for links) for every entry under `root`.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(root).expect("prefix").display().to_string();
            let md = fs::symlink_metadata(&p).expect("meta");
            if md.file_type().is_symlink() {
                out.push(format!(
                    "link {rel} -> {}",
                    fs::read_link(&p).expect("link").display()
                ));
            } else if md.is_dir() {
                out.push(format!("{:o} {rel}/", md.mode() & 0o7777));
                walk(root, &p, out);
            } else {
                out.push(format!("{:o} {rel}", md.mode() & 0o7777));
            }
        }
    }
    walk(root, root, &mut out);
    out
}

fn control_field(control: &str, name: &str) -> String {
    control
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in\n{control}"))
        .to_string()
}

const MASQMAIL_TREE: &[&str] = &[
    "755 etc/",
    "755 etc/config/",
    "600 etc/config/masqmail",
    "755 etc/hotplug.d/",
    "755 etc/hotplug.d/iface/",
    "644 etc/hotplug.d/iface/80-masqmail",
    "755 etc/hotplug.d/ntp/",
    "644 etc/hotplug.d/ntp/80-masqmail",
    "755 etc/init.d/",
    "755 etc/init.d/masqmail",
    "755 usr/",
    "755 usr/sbin/",
    "link usr/sbin/mailrm -> masqmail",
    "755 usr/sbin/masqmail",
    "link usr/sbin/runq -> masqmail",
    "link usr/sbin/smtpd -> masqmail",
];

/// Check an unpacked masqmail package; returns the control file.
fn check_masqmail_package(d: &Path, arch: &str, binary: &Path) -> String {
    assert_eq!(tree(&d.join("data")), MASQMAIL_TREE);
    // The files are the repository's, byte for byte.
    for (inst, src) in [
        ("etc/config/masqmail", DEFAULT_CONFIG),
        ("etc/init.d/masqmail", "init.d/masqmail"),
        (
            "etc/hotplug.d/iface/80-masqmail",
            "openwrt/masqmail/files/masqmail.hotplug",
        ),
        (
            "etc/hotplug.d/ntp/80-masqmail",
            "openwrt/masqmail/files/masqmail.ntp-hotplug",
        ),
    ] {
        assert_eq!(
            fs::read_to_string(d.join("data").join(inst)).expect(inst),
            read(src),
            "{inst}"
        );
    }
    assert_eq!(
        fs::read(d.join("data/usr/sbin/masqmail")).expect("bin"),
        fs::read(binary).expect("bin")
    );
    assert_eq!(
        tree(&d.join("control")),
        [
            "644 conffiles",
            "644 control",
            "755 postinst",
            "755 postinst-pkg",
            "755 prerm",
            "755 prerm-pkg"
        ]
    );
    let control = fs::read_to_string(d.join("control/control")).expect("control");
    assert_eq!(control_field(&control, "Package"), "masqmail");
    assert_eq!(
        control_field(&control, "Version"),
        format!("{}-r1", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(control_field(&control, "Architecture"), arch);
    assert_eq!(control_field(&control, "Depends"), "ca-bundle");
    assert_eq!(control_field(&control, "Require-User"), "masqmail:masqmail");
    assert_eq!(control_field(&control, "License"), "GPL-2.0-or-later");
    let alt = control_field(&control, "Alternatives");
    for link in [
        "/usr/sbin/sendmail",
        "/usr/lib/sendmail",
        "/usr/bin/mailq",
        "/usr/bin/newaliases",
    ] {
        assert!(
            alt.contains(&format!("300:{link}:/usr/sbin/masqmail")),
            "{alt}"
        );
    }
    let size: u64 = control_field(&control, "Installed-Size")
        .parse()
        .expect("size");
    assert!(size > fs::metadata(binary).expect("bin").len());
    assert!(
        control.contains("\nDescription: masqmail takes mail"),
        "{control}"
    );
    assert_eq!(
        fs::read_to_string(d.join("control/conffiles")).expect("conffiles"),
        "/etc/config/masqmail\n"
    );
    let postinst = fs::read_to_string(d.join("control/postinst")).expect("postinst");
    assert!(postinst.contains("[ \"${IPKG_NO_SCRIPT}\" = \"1\" ] && exit 0\n"));
    assert!(postinst.ends_with("default_postinst $0 $@\n"));
    assert!(fs::read_to_string(d.join("control/prerm"))
        .expect("prerm")
        .ends_with("default_prerm $0 $@\n"));
    for s in ["postinst", "prerm", "postinst-pkg", "prerm-pkg"] {
        let (ok, out) = run_ok(Command::new("sh").arg("-n").arg(d.join("control").join(s)));
        assert!(ok, "sh -n {s}: {out}");
        let text = fs::read_to_string(d.join("control").join(s)).expect(s);
        assert!(
            text.contains("IPKG_INSTROOT"),
            "{s} must tell an image build from a live system"
        );
    }
    control
}

/// The layout, packed around a stand-in for the binary (always possible,
/// and fast: gzip -9 of the 35 MB debug binary takes seconds; the real
/// binaries are packed and run by ipk_for_routers_runs_under_qemu).
#[test]
fn ipk_unpacks_to_the_expected_tree() {
    let dir = TempDir::new("ipk");
    let out = dir.path().join("out");
    let fake = dir.path().join("masqmail-stand-in");
    fs::write(&fake, "#!/bin/sh\necho masqmail stand-in\n").expect("stand-in");
    let Some(ipks) = build_ipk(
        &["--bin", fake.to_str().expect("utf-8"), "--arch", "x86_64"],
        &out,
        None,
    ) else {
        return;
    };
    let v = env!("CARGO_PKG_VERSION");
    assert_eq!(
        ipks,
        [
            out.join(format!("masqmail_{v}-r1_x86_64.ipk")),
            out.join(format!("luci-app-masqmail_{v}-r1_all.ipk"))
        ]
    );
    let d = dir.path().join("masqmail");
    unpack(&ipks[0], &d);
    check_masqmail_package(&d, "x86_64", &fake);
    // What the postinst would do on an image build: nothing that needs a
    // running system (IPKG_INSTROOT set).
    let (ok, said) = run_ok(
        Command::new("sh")
            .arg(d.join("control/postinst-pkg"))
            .env("IPKG_INSTROOT", dir.path()),
    );
    assert!(ok && said.is_empty(), "{said}");

    let l = dir.path().join("luci");
    unpack(&ipks[1], &l);
    let mut want = vec![
        "755 usr/".to_string(),
        "755 usr/share/".into(),
        "755 usr/share/luci/".into(),
        "755 usr/share/luci/menu.d/".into(),
        "644 usr/share/luci/menu.d/luci-app-masqmail.json".into(),
        "755 usr/share/rpcd/".into(),
        "755 usr/share/rpcd/acl.d/".into(),
        "644 usr/share/rpcd/acl.d/luci-app-masqmail.json".into(),
        "755 www/".into(),
        "755 www/luci-static/".into(),
        "755 www/luci-static/resources/".into(),
        "755 www/luci-static/resources/masqmail/".into(),
        "644 www/luci-static/resources/masqmail/shacrypt.js".into(),
        "755 www/luci-static/resources/view/".into(),
        "755 www/luci-static/resources/view/masqmail/".into(),
    ];
    for f in view_files() {
        want.push(format!(
            "644 www/luci-static/resources/view/masqmail/{}",
            f.file_name().expect("name").to_string_lossy()
        ));
    }
    assert_eq!(tree(&l.join("data")), want);
    let control = fs::read_to_string(l.join("control/control")).expect("control");
    assert_eq!(control_field(&control, "Package"), "luci-app-masqmail");
    assert_eq!(control_field(&control, "Architecture"), "all");
    assert_eq!(control_field(&control, "Depends"), "luci-base, masqmail");
}

/// The router packages from the cross builds; the binary inside runs
/// under qemu-user and checks the config it ships with.
#[test]
fn ipk_for_routers_runs_under_qemu() {
    for (target, arch, qemu) in [
        ("mipsel-unknown-linux-musl", "mipsel_24kc", "qemu-mipsel"),
        (
            "aarch64-unknown-linux-musl",
            "aarch64_cortex-a53",
            "qemu-aarch64",
        ),
    ] {
        let Some(bin) = cross_binary(target) else {
            println!("SKIP {arch} .ipk: no target/cross/{target}/masqmail (run cross/build.sh {target} first)");
            continue;
        };
        let found = [format!("{qemu}-static"), qemu.to_string()]
            .into_iter()
            .find(|q| have(q, &["--version"]));
        let Some(qemu) = found else {
            println!("SKIP {arch}: no {qemu}(-static) (apt-get install qemu-user-static)");
            continue;
        };
        let base = bin
            .parent()
            .and_then(Path::parent)
            .and_then(Path::parent)
            .expect("base");
        let dir = TempDir::new(arch);
        let out = dir.path().join("out");
        let Some(ipks) = build_ipk(&[target], &out, Some(base)) else {
            return;
        };
        let v = env!("CARGO_PKG_VERSION");
        assert_eq!(ipks[0], out.join(format!("masqmail_{v}-r1_{arch}.ipk")));
        let d = dir.path().join("pkg");
        unpack(&ipks[0], &d);
        check_masqmail_package(&d, arch, &bin);
        let data = d.join("data");
        let (ok, said) = run_ok(
            Command::new(&qemu)
                .arg(data.join("usr/sbin/masqmail"))
                .arg("version"),
        );
        assert!(
            ok && said.starts_with(&format!("masqmail {v} (+tls)")),
            "{arch}: {said}"
        );
        let (ok, said) = run_ok(
            Command::new(&qemu)
                .arg(data.join("usr/sbin/masqmail"))
                .arg("-C")
                .arg(data.join("etc/config/masqmail"))
                .args(["config", "check"]),
        );
        assert!(ok && said.ends_with(": OK\n"), "{arch}: {said}");
        // A multi-call link keeps its name under qemu: runq is sendmail -q.
        let (ok, said) = run_ok(
            Command::new(&qemu)
                .arg(data.join("usr/sbin/runq"))
                .arg("--help"),
        );
        assert!(ok, "{arch} runq --help: {said}");
        println!(
            "{arch}: {} bytes in the .ipk",
            fs::metadata(&ipks[0]).expect("ipk").len()
        );
    }
}

// ------------------------------------------- the views, run under node

/// tests/openwrt_luci.js runs the views against stand-ins for LuCI's
/// modules: the options the form API really saw, and the status page's
/// text for a daemon that runs, routes in the two shapes `queue --json`
/// may give, and failures.
#[test]
fn luci_views_run_under_node() {
    if !have("node", &["--version"]) {
        println!("SKIP: no node (apt-get install nodejs)");
        return;
    }
    let (ok, out) = run_ok(
        Command::new("node")
            .arg(repo().join("tests/openwrt_luci.js"))
            .arg(repo().join(LUCI)),
    );
    assert!(ok, "{out}");
    let j = JsonParser::parse(out.trim()).expect("harness output");

    // The options the pages declare are the ones the scan found.
    let Some(Json::Arr(opts)) = j.get("options") else {
        panic!("no options")
    };
    let mut seen = UiOptions::new();
    for o in opts {
        let s = |k: &str| o.get(k).and_then(Json::str).expect(k).to_string();
        let Some(Json::Arr(values)) = o.get("values") else {
            panic!("values")
        };
        let e = seen.entry((s("section"), s("option"))).or_default();
        e.extend(values.iter().map(|v| v.str().expect("value").to_string()));
        if s("option") == "_password" {
            let hash = o
                .get("stored")
                .and_then(|st| st.get("password_hash"))
                .and_then(Json::str)
                .expect("the new password is stored as password_hash");
            assert!(masqmail::util::shacrypt::verify(b"new pw", hash), "{hash}");
        }
    }
    assert_eq!(
        seen,
        ui_options(),
        "node's view of the forms vs the source scan"
    );

    let status = j.get("status").expect("status");
    let acl = json(ACL);
    let text = |case: &str| -> String {
        let c = status.get(case).expect(case);
        if let Some(Json::Arr(calls)) = c.get("calls") {
            for call in calls {
                let call = call.str().expect("call");
                let g = acl.get("luci-app-masqmail").expect("group");
                let granted = ["read", "write"].iter().any(|l| {
                    g.get(l)
                        .and_then(|x| x.get("file"))
                        .is_some_and(|f| f.get(call).is_some())
                });
                assert!(granted, "{case}: {call} is not in the ACL");
            }
        }
        c.get("text").and_then(Json::str).expect("text").to_string()
    };
    let t = text("running");
    for want in [
        "pid | 42",
        "Configuration | OK",
        "smarthost | online",
        "backup | disabled",
        "1xWKIM2mRh-0686",
        "<root@router.lan>",
        "you@example.org (root@router.lan) - tried 2 times, last error: 451 4.3.0 try later",
        "ghost@example.org - failed: 550 5.1.1 no such user",
    ] {
        assert!(t.contains(want), "running: no {want:?} in\n{t}");
    }
    assert!(
        !t.contains("done@example.org"),
        "a delivered recipient is not waiting"
    );
    let t = text("routes_array");
    assert!(t.contains("smarthost | offline | queued: 1"), "{t}");
    let t = text("routes_object");
    for want in [
        "smarthost | online (permanent)",
        "lte | offline",
        "The daemon is not running",
        "unknown option",
        "The queue is empty.",
        "1 file(s) set aside in corrupt/",
    ] {
        assert!(t.contains(want), "routes_object: no {want:?} in\n{t}");
    }
    let t = text("broken");
    assert!(
        t.contains("Cannot read the queue: masqmail: cannot read the queue"),
        "{t}"
    );
    assert!(t.contains("smarthost | daemon not running"), "{t}");
}
