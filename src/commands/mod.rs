//! commands — what each invocation does, from parsed arguments to an exit
//! code. Loads the config, sets up logging, drops privileges, then hands
//! over to the pipeline modules.
//!
//! SECURITY
//!   Run by root without `run_as_user`, a command that touches the spool
//!   first creates it owned by `mail_user` and then becomes that user; it
//!   never writes the spool as root.

mod passwd;
mod queue_cmd;
mod submit;
mod testmail;
mod verify;

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cli::{self, modern, sendmail::Mode, Invocation};
use crate::config::{self, Config};
use crate::error::{CmdResult, Exit, Fail};
use crate::queue::Spool;

/// Run the program; returns the exit code.
pub fn main(argv: Vec<String>) -> i32 {
    let mut name = cli::base_name(&argv);
    let r = match cli::parse(&argv) {
        Err(msg) => Err(Fail::usage(msg)),
        Ok(Invocation::Help { text, code }) => {
            say(code != 0, &text);
            return code;
        }
        Ok(Invocation::Sendmail { args, rmail }) => run_sendmail(args, rmail),
        Ok(Invocation::Modern { config, cmd }) => {
            name = "masqmail";
            run_modern(config, cmd)
        }
    };
    match r {
        Ok(()) => 0,
        Err(f) => {
            say(true, &[name, ": ", &f.msg].concat());
            f.code as i32
        }
    }
}

/// Print a line to stdout, or to stderr when `err`.
fn say(err: bool, line: &str) {
    let _ = if err {
        writeln!(std::io::stderr(), "{line}")
    } else {
        writeln!(std::io::stdout(), "{line}")
    };
}

/// Write `text` to stdout; `what` names it in the error.
fn print_out(text: &str, what: &str) -> CmdResult {
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| Fail::new(Exit::IoErr, format!("{what}: {e}")))
}

/// Load the config for a command; the short form of the errors (the full
/// list is `masqmail config check`'s job).
pub fn load_config(path: Option<&Path>) -> Result<Config, Fail> {
    let path: PathBuf = path.map_or_else(config::default_path, Path::to_path_buf);
    config::load(&path).map_err(|errs| {
        let mut msg = String::new();
        if let Some(e) = errs.errors.first() {
            let _ = write!(msg, "{e}");
        }
        let n = errs.errors.len();
        if n > 1 {
            let _ = write!(msg, " ({} more; run 'masqmail config check')", n - 1);
        }
        Fail::new(Exit::Config, msg)
    })
}

fn setup_log(cfg: &Config, verbose: bool, debug: Option<u8>, daemon: bool) {
    crate::log::init(crate::log::Setup {
        level: debug.unwrap_or(cfg.main.log_level),
        verbose,
        stderr_fallback: daemon,
    });
}

/// Create the spool when missing and become the mail user.
pub fn drop_privileges(cfg: &Config) -> Result<(), Fail> {
    crate::privs::prepare_spool(cfg)?;
    crate::privs::become_mail_user(cfg)
}

/// The spool, created if missing (after dropping privileges).
pub fn open_spool(cfg: &Config) -> Result<Spool, Fail> {
    spool_as_mail_user(cfg, false)
}

/// The spool, created if missing, after becoming the mail user (with
/// root kept as the saved ID when `keep_root`: see
/// [`crate::privs::become_mail_user_keep_root`]).
fn spool_as_mail_user(cfg: &Config, keep_root: bool) -> Result<Spool, Fail> {
    crate::privs::prepare_spool(cfg)?;
    if keep_root {
        crate::privs::become_mail_user_keep_root(cfg)?;
    } else {
        crate::privs::become_mail_user(cfg)?;
    }
    let root = &cfg.main.spool_dir;
    Spool::open(root).map_err(|e| Fail::spool_io(&format!("spool {}", root.display()), &e))
}

#[cfg(feature = "tls")]
const VERSION: &str = concat!("masqmail ", env!("CARGO_PKG_VERSION"), " (+tls)");
#[cfg(not(feature = "tls"))]
const VERSION: &str = concat!("masqmail ", env!("CARGO_PKG_VERSION"), " (-tls)");

fn run_sendmail(args: cli::sendmail::SendmailArgs, rmail: bool) -> CmdResult {
    if args.mode == Mode::Version {
        say(false, VERSION);
        return Ok(());
    }
    let cfg = load_config(args.config.map(Path::new))?;
    setup_log(&cfg, args.verbose, args.debug, args.mode == Mode::Daemon);
    for (flag, value) in &args.ignored {
        log::debug!("ignored option -{flag}{value}");
    }
    match args.mode {
        Mode::Submit => submit::run(&cfg, &args, rmail),
        Mode::ListQueue => queue_cmd::list(&cfg, false),
        Mode::Remove => queue_cmd::remove(&cfg, &args.args),
        Mode::Verify => verify::addresses(&cfg, &args.args),
        Mode::NewAliases => verify::alias_file(&cfg),
        Mode::RunQueue => queue_cmd::run_queue(&cfg, args.route),
        Mode::Smtp => crate::receive::smtp::serve_stdio(&cfg),
        Mode::Daemon => {
            let path = args.config.map_or_else(config::default_path, PathBuf::from);
            crate::daemon::run(cfg, path, true)
        }
        Mode::Version => Ok(()),
    }
}

fn run_modern(config: Option<&str>, cmd: modern::Sub) -> CmdResult {
    use modern::{ConfigSub, QueueSub, Sub};
    let path = config.map_or_else(config::default_path, PathBuf::from);
    let mut daemon = false;
    match &cmd {
        Sub::Version(_) => {
            say(false, VERSION);
            return Ok(());
        }
        Sub::Passwd(p) => return passwd::run(p.user),
        Sub::Setup(a) => return crate::setup::run(config.map(PathBuf::from), a),
        Sub::Config(c) => {
            return match config::load(&path) {
                Err(errs) => {
                    let mut err = std::io::stderr().lock();
                    for e in &errs.errors {
                        let _ = writeln!(err, "{e}");
                    }
                    Err(Fail::new(
                        Exit::Config,
                        format!("{}: {} error(s)", path.display(), errs.errors.len()),
                    ))
                }
                Ok(cfg) => match c.sub {
                    ConfigSub::Check(_) => {
                        println!("{}: OK", path.display());
                        Ok(())
                    }
                    ConfigSub::Show(_) => print_out(&config::show(&cfg), "stdout"),
                },
            }
        }
        Sub::Daemon(d) => daemon = d.verbose,
        _ => {}
    }
    let cfg = load_config(Some(&path))?;
    setup_log(&cfg, daemon, None, matches!(cmd, Sub::Daemon(_)));
    match cmd {
        Sub::Testmail(t) => testmail::run(config, &cfg, t.to),
        Sub::Daemon(_) => crate::daemon::run(cfg, path, false),
        Sub::Flush(f) => queue_cmd::flush(&cfg, f.route),
        Sub::Status(_) => queue_cmd::status(&cfg),
        Sub::Queue(q) => match q.sub {
            Some(QueueSub::Rm(rm)) => queue_cmd::remove(&cfg, &rm.ids),
            None => queue_cmd::list(&cfg, q.json),
        },
        _ => Ok(()),
    }
}
