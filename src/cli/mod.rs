//! cli — how the program was called: the name it was called by (argv[0]),
//! sendmail-style flags, or a modern subcommand.

pub mod modern;
pub mod sendmail;

use std::path::PathBuf;

use argh::FromArgs;

use sendmail::{Mode, SendmailArgs};

/// What to do, fully parsed.
#[derive(Debug)]
pub enum Invocation {
    Sendmail {
        /// The name to prefix error lines with (`sendmail`, `mailq`, …).
        name: String,
        args: SendmailArgs,
        /// Called as `rmail`.
        rmail: bool,
    },
    Modern {
        config: Option<PathBuf>,
        cmd: modern::Sub,
    },
    /// `--help` and the like: print and exit with the code.
    Help { text: String, code: i32 },
}

/// The mode a multi-call name stands for.
fn mode_for(name: &str) -> Option<(Mode, bool)> {
    Some(match name {
        "sendmail" | "masqmail" => (Mode::Submit, false),
        "rmail" => (Mode::Submit, true),
        "mailq" => (Mode::ListQueue, false),
        "runq" => (Mode::RunQueue { route: None }, false),
        "newaliases" => (Mode::NewAliases, false),
        "mailrm" => (Mode::Remove, false),
        "smtpd" | "in.smtpd" => (Mode::Smtp, false),
        _ => return None,
    })
}

/// Take `-C FILE` / `-CFILE` out of a modern command line (it may stand
/// anywhere).
fn take_config(args: &mut Vec<String>) -> Result<Option<PathBuf>, String> {
    let mut config = None;
    let mut i = 0;
    while i < args.len() {
        if args[i] == "-C" {
            if i + 1 >= args.len() {
                return Err("option -C needs a file".into());
            }
            config = Some(PathBuf::from(args.remove(i + 1)));
            args.remove(i);
        } else if let Some(f) = args[i].strip_prefix("-C") {
            config = Some(PathBuf::from(f));
            args.remove(i);
        } else {
            i += 1;
        }
    }
    Ok(config)
}

fn help(name: &str) -> Invocation {
    match modern::Top::from_args(&[name], &["--help"]) {
        Err(e) => Invocation::Help {
            text: e.output,
            code: 0,
        },
        Ok(_) => Invocation::Help {
            text: String::new(),
            code: 0,
        },
    }
}

/// Parse the whole command line. Errors are usage errors (exit 64).
pub fn parse(argv: Vec<String>) -> Result<Invocation, String> {
    let argv0 = argv.first().map(String::as_str).unwrap_or("masqmail");
    let base = argv0.rsplit('/').next().unwrap_or(argv0).to_string();
    let (mode, rmail) = mode_for(&base).unwrap_or((Mode::Submit, false));
    let mut rest: Vec<String> = argv.into_iter().skip(1).collect();

    // The short names (sendmail, mailq, …) never take subcommands.
    let short = mode_for(&base).is_some() && base != "masqmail";
    if base != "rmail" {
        let first = (0..rest.len())
            .find(|&i| !rest[i].starts_with("-C") && (i == 0 || rest[i - 1] != "-C"))
            .map(|i| rest[i].clone());
        if let Some(first) = first {
            if first == "--help" || first == "-h" || (!short && first == "help") {
                return Ok(help(&base));
            }
            if !short && modern::is_subcommand(&first) {
                let config = take_config(&mut rest)?;
                let strs: Vec<&str> = rest.iter().map(String::as_str).collect();
                return match modern::Top::from_args(&[&base], &strs) {
                    Ok(top) => Ok(Invocation::Modern {
                        config,
                        cmd: top.cmd,
                    }),
                    Err(e) => Ok(Invocation::Help {
                        text: e.output,
                        code: if e.status.is_ok() { 0 } else { 64 },
                    }),
                };
            }
        }
    }
    let args = sendmail::parse(&rest, mode)?;
    Ok(Invocation::Sendmail {
        name: base,
        args,
        rmail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_v(v: &[&str]) -> Invocation {
        parse(v.iter().map(|s| s.to_string()).collect()).unwrap()
    }

    #[test]
    fn names_pick_modes() {
        for (name, want) in [
            ("/usr/sbin/sendmail", Mode::Submit),
            ("mailq", Mode::ListQueue),
            ("runq", Mode::RunQueue { route: None }),
            ("newaliases", Mode::NewAliases),
            ("mailrm", Mode::Remove),
            ("in.smtpd", Mode::Smtp),
            ("whatever", Mode::Submit),
        ] {
            match parse_v(&[name]) {
                Invocation::Sendmail { args, .. } => assert_eq!(args.mode, want, "{name}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(matches!(
            parse_v(&["rmail", "a"]),
            Invocation::Sendmail { rmail: true, .. }
        ));
    }

    #[test]
    fn modern_with_config_anywhere() {
        match parse_v(&["masqmail", "-C", "x.conf", "config", "check"]) {
            Invocation::Modern {
                config,
                cmd: modern::Sub::Config(_),
            } => {
                assert_eq!(config, Some(PathBuf::from("x.conf")))
            }
            other => panic!("{other:?}"),
        }
        match parse_v(&["masqmail", "queue", "--json", "-Cy.conf"]) {
            Invocation::Modern {
                config,
                cmd: modern::Sub::Queue(q),
            } => {
                assert!(q.json);
                assert_eq!(config, Some(PathBuf::from("y.conf")));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_v(&["masqmail", "--help"]),
            Invocation::Help { code: 0, .. }
        ));
        assert!(matches!(
            parse_v(&["masqmail", "help"]),
            Invocation::Help { code: 0, .. }
        ));
        assert!(matches!(
            parse_v(&["masqmail", "config", "bogus"]),
            Invocation::Help { code: 64, .. }
        ));
        // A recipient named like a subcommand, for sendmail, stays a recipient.
        assert!(matches!(
            parse_v(&["sendmail", "queue"]),
            Invocation::Sendmail { .. }
        ));
    }
}
