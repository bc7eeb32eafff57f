//! cli — how the program was called: the name it was called by (argv[0]),
//! sendmail-style flags, or a modern subcommand.

pub mod modern;
pub mod sendmail;

use std::path::PathBuf;

use sendmail::{Mode, SendmailArgs};

/// What to do, fully parsed.
#[derive(Debug)]
pub enum Invocation {
    Sendmail {
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

/// The multi-call names and the modes they stand for (`masqmail` is
/// `sendmail` that also takes subcommands).
const NAMES: [(&str, Mode); 9] = [
    ("masqmail", Mode::Submit),
    ("sendmail", Mode::Submit),
    ("rmail", Mode::Submit),
    ("mailq", Mode::ListQueue),
    ("runq", Mode::RunQueue),
    ("newaliases", Mode::NewAliases),
    ("mailrm", Mode::Remove),
    ("smtpd", Mode::Smtp),
    ("in.smtpd", Mode::Smtp),
];

/// The name the program was called by (argv[0] without its directory).
pub fn base_name(argv: &[String]) -> &str {
    let argv0 = argv.first().map_or("masqmail", String::as_str);
    argv0.rsplit('/').next().unwrap_or(argv0)
}

/// Take `-C FILE` / `-CFILE` out of a modern command line (it may stand
/// anywhere).
fn take_config(args: &mut Vec<&str>) -> Result<Option<PathBuf>, String> {
    let mut config = None;
    let mut i = 0;
    while let Some(&a) = args.get(i) {
        let Some(f) = a.strip_prefix("-C") else {
            i += 1;
            continue;
        };
        args.remove(i);
        config = Some(PathBuf::from(if f.is_empty() {
            if i >= args.len() {
                return Err("option -C needs a file".into());
            }
            args.remove(i)
        } else {
            f
        }));
    }
    Ok(config)
}

/// The modern parser's answer as an invocation.
fn modern(base: &str, args: &[&str], config: Option<PathBuf>) -> Invocation {
    match modern::parse(base, args) {
        Ok(top) => Invocation::Modern {
            config,
            cmd: top.cmd,
        },
        Err(e) => Invocation::Help {
            text: e.output,
            code: if e.help { 0 } else { 64 },
        },
    }
}

/// Parse the whole command line. Errors are usage errors (exit 64).
pub fn parse(argv: &[String]) -> Result<Invocation, String> {
    let base = base_name(argv);
    let known = NAMES.iter().position(|(n, _)| *n == base);
    let mode = known.map_or(Mode::Submit, |k| NAMES[k].1);
    let rest = argv.get(1..).unwrap_or_default();

    // The short names (sendmail, mailq, …) never take subcommands.
    let short = known.is_some_and(|k| k > 0);
    let rmail = known == Some(2);
    if !rmail {
        // The first word that is not -C FILE.
        let mut skip = false;
        let first = rest.iter().find(|a| {
            let s = skip;
            skip = *a == "-C";
            !s && !a.starts_with("-C")
        });
        if let Some(first) = first {
            let help = first == "--help" || first == "-h" || (!short && first == "help");
            if help || (!short && modern::is_subcommand(first)) {
                let (strs, config) = if help {
                    (vec!["--help"], None)
                } else {
                    let mut strs: Vec<&str> = rest.iter().map(String::as_str).collect();
                    let config = take_config(&mut strs)?;
                    (strs, config)
                };
                return Ok(modern(base, &strs, config));
            }
        }
    }
    let args = sendmail::parse(rest, mode)?;
    Ok(Invocation::Sendmail { args, rmail })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_v(v: &[&str]) -> Invocation {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn names_pick_modes() {
        for (name, want) in [
            ("/usr/sbin/sendmail", Mode::Submit),
            ("mailq", Mode::ListQueue),
            ("runq", Mode::RunQueue),
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
