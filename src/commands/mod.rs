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

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cli::{self, modern, sendmail::Mode, Invocation};
use crate::config::{self, Config};
use crate::error::{CmdResult, Exit, Fail};
use crate::queue::Spool;

/// Run the program; returns the exit code.
pub fn main(argv: Vec<String>) -> i32 {
    let argv0 = argv.first().cloned().unwrap_or_default();
    let name = argv0.rsplit('/').next().unwrap_or("masqmail").to_string();
    match cli::parse(argv) {
        Err(msg) => finish(&name, Err(Fail::usage(msg))),
        Ok(Invocation::Help { text, code }) => {
            if code == 0 {
                let _ = writeln!(std::io::stdout(), "{text}");
            } else {
                let _ = writeln!(std::io::stderr(), "{text}");
            }
            code
        }
        Ok(Invocation::Sendmail { name, args, rmail }) => {
            let r = run_sendmail(&name, args, rmail);
            finish(&name, r)
        }
        Ok(Invocation::Modern { config, cmd }) => finish("masqmail", run_modern(config, cmd)),
    }
}

fn finish(name: &str, r: CmdResult) -> i32 {
    match r {
        Ok(()) => 0,
        Err(f) => {
            let _ = writeln!(std::io::stderr(), "{name}: {}", f.msg);
            f.code as i32
        }
    }
}

/// Load the config for a command; the short form of the errors (the full
/// list is `masqmail config check`'s job).
pub fn load_config(path: Option<&Path>) -> Result<Config, Fail> {
    let path: PathBuf = path.map_or_else(config::default_path, Path::to_path_buf);
    config::load(&path).map_err(|errs| {
        let n = errs.errors.len();
        let first = errs
            .errors
            .first()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let more = if n > 1 {
            format!(" ({} more; run 'masqmail config check')", n - 1)
        } else {
            String::new()
        };
        Fail::new(Exit::Config, format!("{first}{more}"))
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
    drop_privileges(cfg)?;
    let root = &cfg.main.spool_dir;
    Spool::open(root).map_err(|e| Fail::spool_io(&format!("spool {}", root.display()), &e))
}

fn version_text() -> String {
    let tls = if cfg!(feature = "tls") {
        "+tls"
    } else {
        "-tls"
    };
    format!("masqmail {} ({tls})", env!("CARGO_PKG_VERSION"))
}

fn run_sendmail(_name: &str, args: cli::sendmail::SendmailArgs, rmail: bool) -> CmdResult {
    if args.mode == Mode::Version {
        println!("{}", version_text());
        return Ok(());
    }
    let cfg = load_config(args.config.as_deref())?;
    setup_log(&cfg, args.verbose, args.debug, args.mode == Mode::Daemon);
    for flag in &args.ignored {
        log::debug!("ignored option {flag}");
    }
    match args.mode {
        Mode::Submit => submit::run(&cfg, &args, rmail),
        Mode::ListQueue => queue_cmd::list(&cfg, false),
        Mode::Remove => queue_cmd::remove(&cfg, &args.args),
        Mode::Verify => verify::addresses(&cfg, &args.args),
        Mode::NewAliases => verify::alias_file(&cfg),
        Mode::RunQueue { route } => queue_cmd::run_queue(&cfg, route.clone()),
        Mode::Smtp => crate::receive::smtp::serve_stdio(&cfg),
        Mode::Daemon => {
            let path = args.config.clone().unwrap_or_else(config::default_path);
            crate::daemon::run(cfg, path, true)
        }
        Mode::Version => Ok(()),
    }
}

fn run_modern(config: Option<PathBuf>, cmd: modern::Sub) -> CmdResult {
    use modern::{ConfigSub, QueueSub, Sub};
    match cmd {
        Sub::Version(_) => {
            println!("{}", version_text());
            Ok(())
        }
        Sub::Passwd(p) => passwd::run(p.user.as_deref()),
        Sub::Config(c) => {
            let path = config.unwrap_or_else(config::default_path);
            match config::load(&path) {
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
                Ok(cfg) => {
                    match c.sub {
                        ConfigSub::Check(_) => println!("{}: OK", path.display()),
                        ConfigSub::Show(_) => print!("{}", config::show(&cfg)),
                    }
                    Ok(())
                }
            }
        }
        Sub::Setup(a) => crate::setup::run(config, &a),
        Sub::Testmail(t) => {
            let cfg = load_config(config.as_deref())?;
            setup_log(&cfg, false, None, false);
            testmail::run(config.as_deref(), &cfg, t.to.as_deref())
        }
        Sub::Daemon(d) => {
            let path = config.unwrap_or_else(config::default_path);
            let cfg = load_config(Some(&path))?;
            setup_log(&cfg, d.verbose, None, true);
            crate::daemon::run(cfg, path, false)
        }
        Sub::Flush(f) => {
            let cfg = load_config(config.as_deref())?;
            setup_log(&cfg, false, None, false);
            queue_cmd::flush(&cfg, f.route)
        }
        Sub::Status(_) => {
            let cfg = load_config(config.as_deref())?;
            setup_log(&cfg, false, None, false);
            queue_cmd::status(&cfg)
        }
        Sub::Queue(q) => {
            let cfg = load_config(config.as_deref())?;
            setup_log(&cfg, false, None, false);
            match q.sub {
                Some(QueueSub::Rm(rm)) => queue_cmd::remove(&cfg, &rm.ids),
                None => queue_cmd::list(&cfg, q.json),
            }
        }
    }
}
