//! log — the `log` facade's back end: syslog facility mail, or stderr.
//!
//! DESCRIPTION
//!   One line per event, always starting with the message ID when there is
//!   one (`0ABCdefGHI-00a1: …`, like Postfix's queue-id lines). Lines go to
//!   `/dev/log` as RFC 3164 datagrams (OpenWrt's logd, `logread`); where
//!   that socket is missing they go to stderr only when the caller asks for
//!   it (`masqmail daemon` under procd or systemd). `-v` echoes every line
//!   to stderr as well.
//!
//! SECURITY
//!   Callers never pass secrets. Control characters in a line are replaced
//!   so that one event stays one line.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::util::time;

const FACILITY_MAIL: u8 = 2;
const SYSLOG_PATH: &str = "/dev/log";

struct Logger {
    ident: &'static str,
    syslog: Mutex<Option<UnixDatagram>>,
    stderr: bool,
}

/// How to log, from `log_level`, `-d`, `-v` and the kind of command.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    pub level: u8,
    /// Echo every line to stderr (`-v`).
    pub verbose: bool,
    /// Log to stderr when `/dev/log` is missing (the daemon).
    pub stderr_fallback: bool,
}

/// `log_level` (0–9, syslog severities: 3 error, 4 warning, 5 notice,
/// 6 info, 7 debug, 8–9 more debug) onto `log` levels. The default 5
/// logs every message's arrival and delivery.
pub fn level_filter(level: u8) -> LevelFilter {
    match level {
        0 => LevelFilter::Off,
        1..=3 => LevelFilter::Error,
        4 => LevelFilter::Warn,
        5..=6 => LevelFilter::Info,
        7 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

fn severity(l: Level) -> u8 {
    match l {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// `s` with control characters as spaces (one line for a log or a
/// stored reply).
pub fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let msg = one_line(&record.args().to_string());
        let mut sent = false;
        if let Ok(guard) = self.syslog.lock() {
            if let Some(sock) = guard.as_ref() {
                let pri = FACILITY_MAIL * 8 + severity(record.level());
                let stamp = time::syslog_stamp(&time::local(time::now()));
                let line = format!(
                    "<{pri}>{stamp} {}[{}]: {msg}",
                    self.ident,
                    std::process::id()
                );
                sent = sock.send(line.as_bytes()).is_ok();
            }
        }
        if self.stderr || (!sent && self.stderr_fallback()) {
            // One write per line: the daemon's workers share its stderr,
            // and writeln! on unbuffered stderr writes each piece apart
            // (lines of two processes came out mixed).
            let line = format!("{}: {msg}\n", self.ident);
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

impl Logger {
    fn stderr_fallback(&self) -> bool {
        FALLBACK.load(std::sync::atomic::Ordering::Relaxed)
    }
}

static FALLBACK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Install the logger once; later calls only change the level and flags.
pub fn init(setup: Setup) {
    FALLBACK.store(setup.stderr_fallback, std::sync::atomic::Ordering::Relaxed);
    let sock = UnixDatagram::unbound()
        .and_then(|s| s.connect(SYSLOG_PATH).map(|()| s))
        .ok();
    let logger = Logger {
        ident: "masqmail",
        syslog: Mutex::new(sock),
        stderr: setup.verbose,
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(level_filter(setup.level));
    }
}

/// Change the level after a config (re)load.
pub fn set_level(level: u8) {
    log::set_max_level(level_filter(level));
}
