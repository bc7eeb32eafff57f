//! The sendmail-compatible command line (DESIGN §10), parsed by hand:
//! flags like `-oi`, `-bp`, `-Mrm` and clusters like `-ti` (busybox crond
//! calls `sendmail -ti`) do not fit a modern argument parser.

/// What the invocation asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Read a message from stdin and queue it (`-bm`, the default).
    Submit,
    /// `-bp`, `mailq`.
    ListQueue,
    /// `-bs`, `smtpd`, `in.smtpd`: SMTP on stdin/stdout.
    Smtp,
    /// `-bd`: the daemon, detached.
    Daemon,
    /// `-bi`, `newaliases`.
    NewAliases,
    /// `-bV`.
    Version,
    /// `-bv ADDR…`.
    Verify,
    /// `-q`, or `-qo [ROUTE]` (the route in [`SendmailArgs::route`]).
    RunQueue,
    /// `-Mrm ID…`, `mailrm`.
    Remove,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryMode {
    /// `-odq`: only queue.
    Queue,
    /// `-odb` (default): queue, and let the daemon or a runner deliver.
    Background,
    /// `-odi`: sendmail's "deliver before returning". Accepted; every mode
    /// queues and returns once the message is on disk (doc/masqmail.8.md).
    Interactive,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendmailArgs<'a> {
    pub mode: Mode,
    /// The route of `-qo ROUTE`.
    pub route: Option<&'a str>,
    pub config: Option<&'a str>,
    pub extract: bool,
    pub ignore_dots: bool,
    pub from: Option<&'a str>,
    pub full_name: Option<&'a str>,
    pub delivery: DeliveryMode,
    pub verbose: bool,
    pub debug: Option<u8>,
    /// `-q15m` and the like: accepted, the daemon is event driven.
    pub queue_interval: Option<&'a str>,
    /// Recipients, addresses for -bv, IDs for -Mrm.
    pub args: Vec<&'a str>,
    /// Flags accepted for compatibility and ignored (for the debug log):
    /// the flag letters and the value, `-` left off.
    pub ignored: Vec<(&'a str, &'a str)>,
}

impl SendmailArgs<'_> {
    pub fn new<'a>(mode: Mode) -> SendmailArgs<'a> {
        SendmailArgs {
            mode,
            route: None,
            config: None,
            extract: false,
            ignore_dots: false,
            from: None,
            full_name: None,
            delivery: DeliveryMode::Background,
            verbose: false,
            debug: None,
            queue_interval: None,
            args: Vec::new(),
            ignored: Vec::new(),
        }
    }
}

/// Flags that take a value (attached or as the next argument); those
/// after `d` take a value we ignore.
const WITH_VALUE: &str = "fFrCdBNRVXLhOp";
/// Single-letter flags without a value that mean nothing here.
const IGNORED_PLAIN: &str = "mnUGx";
/// The modes of `-bX`, in the order of [`MODES`].
const MODE_LETTERS: &str = "mpsdiVv";
const MODES: [Mode; 7] = [
    Mode::Submit,
    Mode::ListQueue,
    Mode::Smtp,
    Mode::Daemon,
    Mode::NewAliases,
    Mode::Version,
    Mode::Verify,
];

/// Parse the arguments after argv[0]; `mode` is the default from the name.
pub fn parse(args: &[String], mode: Mode) -> Result<SendmailArgs<'_>, String> {
    let mut a = SendmailArgs::new(mode);
    let mut i = 0;
    // The next argument, taken.
    let next = |i: &mut usize| {
        *i += 1;
        args.get(*i - 1).map(String::as_str)
    };
    while let Some(arg) = next(&mut i) {
        let body = match arg.strip_prefix('-') {
            Some("-") => {
                while let Some(arg) = next(&mut i) {
                    a.args.push(arg);
                }
                break;
            }
            Some(b) if !b.is_empty() => b,
            _ => {
                a.args.push(arg);
                continue;
            }
        };
        for (at, c) in body.char_indices() {
            let end = at + c.len_utf8();
            let (flag, rest) = (&body[at..end], &body[end..]);
            match c {
                't' => a.extract = true,
                'i' => a.ignore_dots = true,
                'v' => a.verbose = true,
                c if IGNORED_PLAIN.contains(c) => a.ignored.push((flag, "")),
                c if WITH_VALUE.contains(c) => {
                    let value = match rest {
                        "" => next(&mut i)
                            .ok_or_else(|| ["option -", flag, " needs a value"].concat())?,
                        _ => rest,
                    };
                    match c {
                        'f' | 'r' => a.from = Some(value),
                        'F' => a.full_name = Some(value),
                        'C' => a.config = Some(value),
                        'd' => {
                            // masqmail's -d LEVEL; sendmail's -dX.Y debug
                            // flags are accepted with their number.
                            let end = value
                                .bytes()
                                .position(|b| matches!(b, b'.' | b',' | b'-'))
                                .unwrap_or(value.len());
                            let Ok(n) = value[..end].parse::<u8>() else {
                                return Err(["-d needs a level 0-9, not '", value, "'"].concat());
                            };
                            a.debug = Some(n.min(9));
                        }
                        _ => a.ignored.push((flag, value)),
                    }
                    break;
                }
                'b' => {
                    let m =
                        match MODE_LETTERS.find(rest) {
                            Some(k) if rest.len() == 1 => MODES[k],
                            _ if rest.is_empty() => return Err(
                                "option -b needs a mode letter (-bm, -bp, -bs, -bd, -bi, -bv, -bV)"
                                    .into(),
                            ),
                            _ => return Err(["unknown mode -b", rest].concat()),
                        };
                    a.mode = m;
                    break;
                }
                'o' => {
                    match rest {
                        "i" => a.ignore_dots = true,
                        "dq" => a.delivery = DeliveryMode::Queue,
                        "db" | "dd" => a.delivery = DeliveryMode::Background,
                        "di" => a.delivery = DeliveryMode::Interactive,
                        "" => return Err("option -o needs a letter (-oi, -odq, …)".into()),
                        _ => a.ignored.push((flag, rest)),
                    }
                    break;
                }
                'q' => {
                    a.route = None;
                    if let Some(r) = rest.strip_prefix('o') {
                        if !r.is_empty() {
                            a.route = Some(r);
                        } else if let Some(n) = args.get(i).filter(|n| !n.starts_with('-')) {
                            a.route = Some(n);
                            i += 1;
                        }
                        a.mode = Mode::RunQueue;
                    } else {
                        if !rest.is_empty() {
                            a.queue_interval = Some(rest);
                        }
                        if a.mode != Mode::Daemon {
                            a.mode = Mode::RunQueue;
                        }
                    }
                    break;
                }
                'M' => {
                    let what = match rest {
                        "" => next(&mut i).unwrap_or(""),
                        _ => rest,
                    };
                    if what != "rm" {
                        return Err(
                            ["unknown option -M", what, " (only -Mrm ID… is known)"].concat()
                        );
                    }
                    a.mode = Mode::Remove;
                    break;
                }
                _ => return Err(["unknown option -", flag].concat()),
            }
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<SendmailArgs<'static>, String> {
        let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(Vec::leak(v), Mode::Submit)
    }

    #[test]
    fn clusters_and_values() {
        let a = p(&["-ti"]).unwrap();
        assert!(a.extract && a.ignore_dots);
        let a = p(&["-oi", "-f", "bob@x", "-Fname", "-C", "c.conf", "a@b", "c@d"]).unwrap();
        assert!(a.ignore_dots);
        assert_eq!(a.from, Some("bob@x"));
        assert_eq!(a.full_name, Some("name"));
        assert_eq!(a.config, Some("c.conf"));
        assert_eq!(a.args, ["a@b", "c@d"]);
        let a = p(&["-tif", "x@y", "r@z"]).unwrap();
        assert_eq!(a.from, Some("x@y"));
        assert_eq!(a.args, ["r@z"]);
        let a = p(&["-f", "", "r"]).unwrap();
        assert_eq!(a.from, Some(""));
    }

    #[test]
    fn modes() {
        assert_eq!(p(&["-bp"]).unwrap().mode, Mode::ListQueue);
        assert_eq!(p(&["-bs"]).unwrap().mode, Mode::Smtp);
        assert_eq!(p(&["-bv", "a"]).unwrap().mode, Mode::Verify);
        assert_eq!(p(&["-Mrm", "ID1", "ID2"]).unwrap().args, ["ID1", "ID2"]);
        assert_eq!(p(&["-M", "rm", "ID1"]).unwrap().mode, Mode::Remove);
        let q = |args: &[&str]| {
            p(args)
                .map(|a| (a.mode, a.route.map(str::to_string)))
                .unwrap()
        };
        assert_eq!(q(&["-q"]), (Mode::RunQueue, None));
        assert_eq!(q(&["-qo", "isp"]), (Mode::RunQueue, Some("isp".into())));
        assert_eq!(q(&["-qoisp"]), (Mode::RunQueue, Some("isp".into())));
        assert_eq!(q(&["-qo"]), (Mode::RunQueue, None));
        assert_eq!(q(&["-qo", "-v"]), (Mode::RunQueue, None));
        assert_eq!(q(&["-qo", "isp", "-q"]), (Mode::RunQueue, None));
        let d = p(&["-bd", "-q15m"]).unwrap();
        assert_eq!(d.mode, Mode::Daemon);
        assert_eq!(d.queue_interval, Some("15m"));
        assert_eq!(p(&["-odq"]).unwrap().delivery, DeliveryMode::Queue);
        assert_eq!(p(&["-d", "7"]).unwrap().debug, Some(7));
        assert_eq!(p(&["-d0.1"]).unwrap().debug, Some(0));
    }

    #[test]
    fn ignored_and_errors() {
        let a = p(&[
            "-oem",
            "-oee",
            "-B8BITMIME",
            "-N",
            "never",
            "-m",
            "-U",
            "x@y",
        ])
        .unwrap();
        assert_eq!(a.args, ["x@y"]);
        assert_eq!(a.ignored.len(), 6);
        assert!(p(&["-Z"]).is_err());
        assert!(p(&["-f"]).is_err());
        assert!(p(&["-bx"]).is_err());
        assert!(p(&["-Mxx"]).is_err());
        assert!(p(&["-d", "high"]).is_err());
        assert_eq!(p(&["--", "-weird@x"]).unwrap().args, ["-weird@x"]);
    }
}
