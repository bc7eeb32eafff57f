//! cli — how the program was called: the name it was called by (argv[0]),
//! sendmail-style flags, or a modern subcommand.

pub mod modern;
pub mod sendmail;

use sendmail::{Mode, SendmailArgs};

/// What to do, fully parsed.
#[derive(Debug)]
pub enum Invocation<'a> {
    Sendmail {
        args: SendmailArgs<'a>,
        /// Called as `rmail`.
        rmail: bool,
    },
    Modern {
        config: Option<&'a str>,
        cmd: modern::Sub<'a>,
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

/// Parse the whole command line. Errors are usage errors (exit 64).
pub fn parse(argv: &[String]) -> Result<Invocation<'_>, String> {
    let base = base_name(argv);
    let known = NAMES.iter().position(|(n, _)| *n == base);
    let mode = known.map_or(Mode::Submit, |k| NAMES[k].1);
    let rest = argv.get(1..).unwrap_or_default();

    // The short names (sendmail, mailq, …) never take subcommands.
    let short = known.is_some_and(|k| k > 0);
    let rmail = known == Some(2);
    if !rmail {
        // The words without `-C FILE` / `-CFILE` (which may stand anywhere
        // in a modern command line).
        let mut words: Vec<&str> = Vec::new();
        let mut config = None;
        let mut no_file = false;
        let mut i = 0;
        while let Some(a) = rest.get(i) {
            i += 1;
            match a.strip_prefix("-C") {
                Some("") => {
                    config = rest.get(i).map(String::as_str);
                    no_file = config.is_none();
                    i += 1;
                }
                Some(f) => config = Some(f),
                None => words.push(a),
            }
        }
        if let Some(&first) = words.first() {
            let help = first == "--help" || first == "-h" || (!short && first == "help");
            if help || (!short && modern::is_subcommand(first)) {
                if help {
                    words = vec!["--help"];
                    config = None;
                } else if no_file {
                    return Err("option -C needs a file".into());
                }
                return Ok(match modern::parse(base, &words) {
                    Ok(cmd) => Invocation::Modern { config, cmd },
                    Err(e) => Invocation::Help {
                        text: e.output,
                        code: if e.help { 0 } else { 64 },
                    },
                });
            }
        }
    }
    let args = sendmail::parse(rest, mode)?;
    Ok(Invocation::Sendmail { args, rmail })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_v(v: &[&str]) -> Invocation<'static> {
        parse(Vec::leak(
            v.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        ))
        .unwrap()
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
                assert_eq!(config, Some("x.conf"))
            }
            other => panic!("{other:?}"),
        }
        match parse_v(&["masqmail", "queue", "--json", "-Cy.conf"]) {
            Invocation::Modern {
                config,
                cmd: modern::Sub::Queue(q),
            } => {
                assert!(q.json);
                assert_eq!(config, Some("y.conf"));
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
