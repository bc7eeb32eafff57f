//! The modern `masqmail SUBCOMMAND` interface.
//!
//! Parsed by hand, with the rules, messages and help texts of argh 0.1
//! (which parsed it before): options and positionals in any order, `--`
//! ends the options, `--help` or `help` anywhere before `--` asks for the
//! help of the command it stands in (a `help` before a subcommand asks
//! for that subcommand's), a repeated single-value option is an error, and
//! each mistake has argh's one message. One table describes every command;
//! one loop parses them all.

/// A parsed command line; see [`parse`].
#[derive(Debug)]
pub enum Sub<'a> {
    Daemon(DaemonCmd),
    Flush(FlushCmd<'a>),
    Status(StatusCmd),
    Queue(QueueCmd<'a>),
    Config(ConfigCmd),
    Setup(Box<SetupCmd>),
    Testmail(TestmailCmd<'a>),
    Passwd(PasswdCmd<'a>),
    Version(VersionCmd),
}

/// `daemon [-v]`: the daemon in the foreground.
#[derive(Debug)]
pub struct DaemonCmd {
    pub verbose: bool,
}

/// `flush [ROUTE]`.
#[derive(Debug)]
pub struct FlushCmd<'a> {
    pub route: Option<&'a str>,
}

/// `status`.
#[derive(Debug)]
pub struct StatusCmd {}

/// `queue [--json] [rm ID…]`.
#[derive(Debug)]
pub struct QueueCmd<'a> {
    pub json: bool,
    pub sub: Option<QueueSub<'a>>,
}

#[derive(Debug)]
pub enum QueueSub<'a> {
    Rm(QueueRm<'a>),
}

/// `queue rm ID…`.
#[derive(Debug)]
pub struct QueueRm<'a> {
    pub ids: Vec<&'a str>,
}

/// `config check|show`.
#[derive(Debug)]
pub struct ConfigCmd {
    pub sub: ConfigSub,
}

#[derive(Debug)]
pub enum ConfigSub {
    Check(ConfigCheck),
    Show(ConfigShow),
}

#[derive(Debug)]
pub struct ConfigCheck {}

#[derive(Debug)]
pub struct ConfigShow {}

/// `setup PRESET [SERVER] [--option value…]` (see its help text below).
#[derive(Debug)]
pub struct SetupCmd {
    pub preset: String,
    pub server: Option<String>,
    pub port: Option<u16>,
    pub tls: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub ca_file: Option<String>,
    pub fingerprint: Option<String>,
    pub lan: Vec<String>,
    pub host_name: Option<String>,
    pub spool: Option<String>,
    pub listen: Vec<String>,
    pub force: bool,
    pub print: bool,
}

/// `testmail [ADDRESS]`.
#[derive(Debug)]
pub struct TestmailCmd<'a> {
    pub to: Option<&'a str>,
}

/// `passwd [USER]`.
#[derive(Debug)]
pub struct PasswdCmd<'a> {
    pub user: Option<&'a str>,
}

/// `version`.
#[derive(Debug)]
pub struct VersionCmd {}

/// Is `word` a subcommand of the modern interface?
pub fn is_subcommand(word: &str) -> bool {
    word == "help" || TOP.subs.iter().any(|c| c.name == word)
}

/// Why parsing stopped: the text to print, and whether it is the help
/// asked for (exit 0, stdout) rather than a usage error (exit 64, stderr).
pub struct EarlyExit {
    pub output: String,
    pub help: bool,
}

/// A help text: what follows `Usage: COMMAND PATH` up to the `--help`
/// line, and what follows that line.
type Help = (&'static str, &'static str);

/// One command: its options (with their slot in [`Found`]), its
/// positionals (the first `required` of them required, the last one
/// repeating when `repeat`), its subcommands (one of them required when
/// `need_sub`).
struct Cmd {
    name: &'static str,
    help: Help,
    opts: &'static [(&'static str, u8)],
    pos: &'static [&'static str],
    required: usize,
    repeat: bool,
    subs: &'static [Cmd],
    need_sub: bool,
}

/// Option slots: switches first, then options that take a value.
const VERBOSE: u8 = 0;
const JSON: u8 = 1;
const FORCE: u8 = 2;
const PRINT: u8 = 3;
const SWITCHES: u8 = 4;
const PORT: u8 = 4;
const TLS: u8 = 5;
const USER: u8 = 6;
const PASSWORD: u8 = 7;
const FROM: u8 = 8;
const TO: u8 = 9;
const CA_FILE: u8 = 10;
const FINGERPRINT: u8 = 11;
const LAN: u8 = 12;
const HOST_NAME: u8 = 13;
const SPOOL: u8 = 14;
const LISTEN: u8 = 15;

const fn cmd(name: &'static str, help: Help) -> Cmd {
    Cmd {
        name,
        help,
        opts: &[],
        pos: &[],
        required: 0,
        repeat: false,
        subs: &[],
        need_sub: false,
    }
}

static TOP: Cmd = Cmd {
    subs: &[
        Cmd {
            opts: &[("-v", VERBOSE), ("--verbose", VERBOSE)],
            ..cmd("daemon", DAEMON_HELP)
        },
        Cmd {
            pos: &["route"],
            ..cmd("flush", FLUSH_HELP)
        },
        cmd("status", STATUS_HELP),
        Cmd {
            opts: &[("--json", JSON)],
            subs: &[Cmd {
                pos: &["ids"],
                repeat: true,
                ..cmd("rm", QUEUE_RM_HELP)
            }],
            ..cmd("queue", QUEUE_HELP)
        },
        Cmd {
            subs: &[
                cmd("check", CONFIG_CHECK_HELP),
                cmd("show", CONFIG_SHOW_HELP),
            ],
            need_sub: true,
            ..cmd("config", CONFIG_HELP)
        },
        Cmd {
            opts: &[
                ("--port", PORT),
                ("--tls", TLS),
                ("--user", USER),
                ("--password", PASSWORD),
                ("--from", FROM),
                ("--to", TO),
                ("--ca-file", CA_FILE),
                ("--fingerprint", FINGERPRINT),
                ("--lan", LAN),
                ("--host-name", HOST_NAME),
                ("--spool", SPOOL),
                ("--listen", LISTEN),
                ("--force", FORCE),
                ("--print", PRINT),
            ],
            pos: &["preset", "server"],
            required: 1,
            ..cmd("setup", SETUP_HELP)
        },
        Cmd {
            pos: &["to"],
            ..cmd("testmail", TESTMAIL_HELP)
        },
        Cmd {
            pos: &["user"],
            ..cmd("passwd", PASSWD_HELP)
        },
        cmd("version", VERSION_HELP),
    ],
    need_sub: true,
    ..cmd("", TOP_HELP)
};

/// What the command line held: the subcommand names, the switches set,
/// the option values in order, the positionals of the last command.
struct Found<'a> {
    /// Each subcommand's place in its parent's `subs` (at most two deep),
    /// and how many there are.
    path: [usize; 2],
    depth: usize,
    switches: u32,
    /// `--port`, parsed.
    port: Option<u16>,
    /// By slot.
    values: Vec<Vec<String>>,
    pos: Vec<&'a str>,
}

impl Found<'_> {
    fn one(&mut self, slot: u8) -> Option<String> {
        self.values[slot as usize].pop()
    }

    fn all(&mut self, slot: u8) -> Vec<String> {
        std::mem::take(&mut self.values[slot as usize])
    }

    fn switch(&self, slot: u8) -> bool {
        self.switches & 1 << slot != 0
    }
}

fn usage_error(msg: String) -> EarlyExit {
    EarlyExit {
        output: msg,
        help: false,
    }
}

fn unrecognized(arg: &str) -> EarlyExit {
    usage_error(["Unrecognized argument: ", arg, "\n"].concat())
}

/// Parse `args` for [`TOP`] and its subcommands, called as `names` (the
/// program's name, then each subcommand met, space-separated).
fn parse_cmd<'a>(
    names: &mut String,
    mut args: &[&'a str],
    found: &mut Found<'a>,
) -> Result<(), EarlyExit> {
    let mut cmd = &TOP;
    // A `help` before a subcommand stands for that subcommand's.
    let mut help = false;
    let mut ended = false;
    let mut filled = 0;
    let mut i = 0;
    while let Some(&arg) = args.get(i) {
        i += 1;
        if !ended && (arg == "--help" || arg == "help") {
            help = true;
            continue;
        }
        if !ended && arg.starts_with('-') {
            if arg == "--" {
                ended = true;
                continue;
            }
            if help {
                return Err(usage_error(
                    "Trailing arguments are not allowed after `help`.".into(),
                ));
            }
            let Some(&(_, slot)) = cmd.opts.iter().find(|o| o.0 == arg) else {
                return Err(unrecognized(arg));
            };
            if slot < SWITCHES {
                found.switches |= 1 << slot;
                continue;
            }
            let Some(&value) = args.get(i) else {
                return Err(usage_error(
                    ["No value provided for option '", arg, "'.\n"].concat(),
                ));
            };
            i += 1;
            let values = &mut found.values[slot as usize];
            let dup = slot != LAN && slot != LISTEN && !values.is_empty();
            let why = if dup {
                Some("duplicate values provided".to_string())
            } else if slot == PORT {
                match value.parse::<u16>() {
                    Ok(p) => {
                        found.port = Some(p);
                        None
                    }
                    Err(e) => Some(e.to_string()),
                }
            } else {
                None
            };
            if let Some(why) = why {
                return Err(usage_error(
                    [
                        "Error parsing option '",
                        arg,
                        "' with value '",
                        value,
                        "': ",
                        &why,
                        "\n",
                    ]
                    .concat(),
                ));
            }
            values.push(value.to_string());
            continue;
        }
        if let Some(k) = cmd.subs.iter().position(|c| c.name == arg) {
            cmd = &cmd.subs[k];
            names.push(' ');
            names.push_str(cmd.name);
            if let Some(p) = found.path.get_mut(found.depth) {
                *p = k;
            }
            found.depth += 1;
            args = &args[i..];
            (ended, filled, i) = (false, 0, 0);
            continue;
        }
        if filled >= cmd.pos.len() {
            return Err(unrecognized(arg));
        }
        found.pos.push(arg);
        if !(cmd.repeat && filled + 1 == cmd.pos.len()) {
            filled += 1;
        }
    }
    if help {
        let (a, b) = cmd.help;
        let mut output = [
            "Usage: ",
            names,
            a,
            "  --help, help      display usage information\n",
        ]
        .concat();
        if !cmd.subs.is_empty() {
            output.push_str("\nCommands:");
            for c in cmd.subs {
                // A command's description: its help's second paragraph.
                describe(
                    &mut output,
                    c.name,
                    c.help.0.split("\n\n").nth(1).unwrap_or(""),
                );
            }
            output.push('\n');
        }
        output.push_str(b);
        return Err(EarlyExit { output, help: true });
    }
    let mut msg = String::new();
    if filled < cmd.required {
        msg.push_str("Required positional arguments not provided:");
        for name in &cmd.pos[filled..cmd.required] {
            msg.push_str("\n    ");
            msg.push_str(name);
        }
    }
    if cmd.need_sub {
        msg.push_str("One of the following subcommands must be present:\n    help");
        for c in cmd.subs {
            msg.push_str("\n    ");
            msg.push_str(c.name);
        }
    }
    if msg.is_empty() {
        return Ok(());
    }
    msg.push('\n');
    Err(usage_error(msg))
}

/// A line of a command list, as argh lays it out: the name from column
/// 2, the description from column 20 (every name here is shorter),
/// wrapped at 80 columns. (The texts are ASCII: bytes are columns.)
fn describe(out: &mut String, name: &str, text: &str) {
    const PAD: &str = "                    ";
    out.push_str("\n  ");
    out.push_str(name);
    let mut col = 2 + name.len();
    let mut first = true;
    for word in text.split(' ') {
        if !first && col + 1 + word.len() > 80 {
            out.push('\n');
            col = 0;
            first = true;
        }
        if first {
            out.push_str(&PAD[col.min(20)..]);
            col = 20;
        } else {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += word.len();
        first = false;
    }
}

/// Parse the modern command line `args` (after the program's name, which
/// is `name`).
pub fn parse<'a>(name: &str, args: &[&'a str]) -> Result<Sub<'a>, EarlyExit> {
    let mut f = Found {
        path: [0; 2],
        depth: 0,
        switches: 0,
        port: None,
        values: std::iter::repeat_with(Vec::new).take(16).collect(),
        pos: Vec::new(),
    };
    parse_cmd(&mut name.to_string(), args, &mut f)?;
    let pos = std::mem::take(&mut f.pos);
    let first = pos.first().copied();
    // By their place in TOP.subs.
    let cmd = match f.path[0] {
        0 => Sub::Daemon(DaemonCmd {
            verbose: f.switch(VERBOSE),
        }),
        1 => Sub::Flush(FlushCmd { route: first }),
        2 => Sub::Status(StatusCmd {}),
        3 => Sub::Queue(QueueCmd {
            json: f.switch(JSON),
            sub: (f.depth > 1).then_some(QueueSub::Rm(QueueRm { ids: pos })),
        }),
        4 => Sub::Config(ConfigCmd {
            sub: if f.depth > 1 && f.path[1] == 0 {
                ConfigSub::Check(ConfigCheck {})
            } else {
                ConfigSub::Show(ConfigShow {})
            },
        }),
        5 => Sub::Setup(Box::new(SetupCmd {
            preset: first.unwrap_or_default().to_string(),
            server: pos.get(1).map(|s| s.to_string()),
            port: f.port,
            tls: f.one(TLS),
            user: f.one(USER),
            password: f.one(PASSWORD),
            from: f.one(FROM),
            to: f.one(TO),
            ca_file: f.one(CA_FILE),
            fingerprint: f.one(FINGERPRINT),
            lan: f.all(LAN),
            host_name: f.one(HOST_NAME),
            spool: f.one(SPOOL),
            listen: f.all(LISTEN),
            force: f.switch(FORCE),
            print: f.switch(PRINT),
        })),
        6 => Sub::Testmail(TestmailCmd { to: first }),
        7 => Sub::Passwd(PasswdCmd { user: first }),
        _ => Sub::Version(VersionCmd {}),
    };
    Ok(cmd)
}

// The help texts, as argh laid them out.

const TOP_HELP: Help = (
    r#" <command> [<args>]

masqmail: a small mail transfer agent for routers and machines that are only sometimes online.

Options:
"#,
    r#"
Notes:
  Invoked as sendmail, mailq, runq, rmail, newaliases, mailrm, smtpd or
in.smtpd, masqmail acts as that command. sendmail-style flags work with
any name, e.g. `masqmail -t -i < message`:
  -t            take recipients from To:, Cc:, Bcc: (argument recipients are added)
  -i, -oi       a line with a single '.' does not end the message
  -f ADDR       envelope sender (-f '<>' for the null sender); -r is the same
  -F NAME       full name for a missing From:
  -odq -odb -odi  accepted; each queues (a running daemon delivers at once)
  -bm           read a message from stdin (default)
  -bp           list the queue (mailq)
  -bs           SMTP on stdin/stdout (smtpd, inetd)
  -bd           daemon, detached, with a pid file
  -bi           check the alias file (newaliases)
  -bv ADDR...   show where each address would go
  -bV           print the version
  -q            run the whole queue once (runq)
  -qo [ROUTE]   run the queue for one route
  -Mrm ID...    remove messages from the queue (mailrm)
  -C FILE       config file (any command, anywhere on the line)
  -v            echo log lines to stderr
  -d LEVEL      log level 0-9
Ignored for compatibility: -oem -oee -oep -B TYPE -N DSN -R RET -V ENVID -m -U.
Exit codes are sysexits(3): 0 ok, 64 usage, 65 bad data, 67 unknown user,
69 unavailable, 70 internal, 73 cannot create, 74 I/O error,
75 temporary failure (nothing lost), 78 config error.
"#,
);

const DAEMON_HELP: Help = (
    r#" [-v]

Run the daemon in the foreground (for procd and systemd; -bd detaches).

Options:
  -v, --verbose     echo log lines to stderr
"#,
    r#""#,
);

const FLUSH_HELP: Help = (
    r#" [--] [<route>]

Deliver queued mail now, ignoring retry backoff: for ROUTE, or for every online route. Asks the running daemon; without one, runs the queue itself.

Positional Arguments:
  route             the route to flush

Options:
"#,
    r#""#,
);

const STATUS_HELP: Help = (
    r#"

Show the running daemon's state.

Options:
"#,
    r#""#,
);

const QUEUE_HELP: Help = (
    r#" [--json] [<command>] [<args>]

List the queue (like mailq), or remove messages from it.

Options:
  --json            print the queue as JSON (for scripts and LuCI)
"#,
    r#""#,
);

const QUEUE_RM_HELP: Help = (
    r#" [--] [<ids...>]

Remove messages from the queue.

Positional Arguments:
  ids               message IDs

Options:
"#,
    r#""#,
);

const CONFIG_HELP: Help = (
    r#" <command> [<args>]

Check or show the configuration.

Options:
"#,
    r#""#,
);

const CONFIG_CHECK_HELP: Help = (
    r#"

Report every error in the config file, with file:line and a hint.

Options:
"#,
    r#""#,
);

const CONFIG_SHOW_HELP: Help = (
    r#"

Print the effective configuration, defaults included, secrets masked.

Options:
"#,
    r#""#,
);

const SETUP_HELP: Help = (
    r#" [--port <port>] [--tls <tls>] [--user <user>] [--password <password>] [--from <from>] [--to <to>] [--ca-file <ca-file>] [--fingerprint <fingerprint>] [--lan <lan...>] [--host-name <host-name>] [--spool <spool>] [--listen <listen...>] [--force] [--print] [--] <preset> [<server>]

Write a working configuration for a common setup.

Positional Arguments:
  preset            smarthost, lan-relay, direct or local
  server            provider name or host[:port] (smarthost, lan-relay)

Options:
  --port            server port (default: the provider's; else 587, 465 with
                    --tls tls)
  --tls             encryption: starttls, tls or none (default: the provider's,
                    else starttls; tls on port 465)
  --user            login name at the server
  --password        password at the server; '-' reads it from stdin
  --from            send mail of local users as this address (default: --user,
                    when it is an address)
  --to              where mail for root goes (default: the --from address, else
                    root's local mailbox)
  --ca-file         CA bundle that checks the server's certificate
  --fingerprint     pin the server's certificate by its SHA-256 fingerprint
  --lan             lan-relay: this machine's LAN address and prefix, e.g.
                    192.168.1.1/24 (repeatable; default: the lan interface of
                    /etc/config/network)
  --host-name       this machine's mail name (default: the system host name)
  --spool           queue directory (default /var/spool/masqmail)
  --listen          SMTP listen address ip:port (repeatable; default
                    127.0.0.1:25)
  --force           replace an existing config file
  --print           print the config (password masked) instead of writing it
"#,
    r#"
Notes:
  Presets:
  smarthost SERVER   all mail through your provider's server (STARTTLS or
                     TLS, with a login)
  lan-relay SERVER   the same, and LAN devices may send through this machine
                     (it listens on its --lan addresses, port 25)
  direct             straight to each recipient's mail server (port 25; needs
                     a fixed public address whose reverse DNS is --host-name)
  local              no route: mail stays on this machine
SERVER is host[:port] or a provider: gmail, outlook, office365, fastmail,
yahoo, aol, icloud, gmx, webde, mailbox, posteo, zoho.
Writes the config file (-C FILE, else /etc/config/masqmail on OpenWrt, else
/etc/masqmail/masqmail.conf) only if it passes `config check`; an existing
file is replaced only with --force. Examples:
  masqmail setup smarthost gmail --user me@gmail.com --password - --force
  masqmail setup lan-relay smtp.example.net:587 --user me --password - --lan 192.168.1.1/24
  masqmail setup direct --host-name mail.example.org
"#,
);

const TESTMAIL_HELP: Help = (
    r#" [--] [<to>]

Queue a test message to ADDRESS (default: root, i.e. where root's mail goes) and say how to follow it.

Positional Arguments:
  to                recipient (default: root)

Options:
"#,
    r#""#,
);

const PASSWD_HELP: Help = (
    r#" [--] [<user>]

Make the password hash of an SMTP AUTH account: reads the password from stdin (asks twice on a terminal), prints the $6$ hash and a `config user` section to paste into the config.

Positional Arguments:
  user              the account's user name (for the printed section)

Options:
"#,
    r#""#,
);

const VERSION_HELP: Help = (
    r#"

Print the version and the compiled-in features.

Options:
"#,
    r#""#,
);

#[cfg(test)]
mod tests {
    use super::*;

    fn err(args: &[&str]) -> (String, bool) {
        let e = parse("masqmail", args).expect_err("an early exit");
        (e.output, e.help)
    }

    #[test]
    fn commands_and_options() {
        let Sub::Queue(q) = parse("m", &["queue", "--json", "rm", "a", "--", "-b"])
            .ok()
            .unwrap()
        else {
            panic!("not queue");
        };
        assert!(q.json);
        let Some(QueueSub::Rm(rm)) = q.sub else {
            panic!("not rm")
        };
        assert_eq!(rm.ids, ["a", "-b"]);
        let args = [
            "setup",
            "--lan",
            "a",
            "lan-relay",
            "--port",
            "587",
            "--lan",
            "b",
            "srv",
            "--force",
            "--host-name",
            "h",
        ];
        let Sub::Setup(s) = parse("m", &args).ok().unwrap() else {
            panic!("not setup");
        };
        assert_eq!(
            (s.preset.as_str(), s.server.as_deref()),
            ("lan-relay", Some("srv"))
        );
        assert_eq!(
            (s.port, s.lan, s.force, s.print),
            (
                Some(587),
                vec!["a".to_string(), "b".to_string()],
                true,
                false
            )
        );
        assert_eq!(s.host_name.as_deref(), Some("h"));
        assert!(matches!(
            parse("m", &["daemon", "-v"]).ok().unwrap(),
            Sub::Daemon(DaemonCmd { verbose: true })
        ));
    }

    #[test]
    fn argh_messages() {
        let usage = |args: &[&str], want: &str| assert_eq!(err(args), (want.to_string(), false));
        usage(&["flush", "a", "b"], "Unrecognized argument: b\n");
        usage(&["setup", "x", "--port", "99999"], "Error parsing option '--port' with value '99999': number too large to fit in target type\n");
        usage(
            &["setup", "x", "--user", "a", "--user", "b"],
            "Error parsing option '--user' with value 'b': duplicate values provided\n",
        );
        usage(
            &["setup", "x", "--tls"],
            "No value provided for option '--tls'.\n",
        );
        usage(
            &["setup"],
            "Required positional arguments not provided:\n    preset\n",
        );
        usage(
            &["config"],
            "One of the following subcommands must be present:\n    help\n    check\n    show\n",
        );
        usage(
            &["queue", "help", "--json"],
            "Trailing arguments are not allowed after `help`.",
        );
        let (text, help) = err(&["queue", "help", "rm"]);
        assert!(help);
        assert!(
            text.starts_with("Usage: masqmail queue rm [--] [<ids...>]\n\nRemove messages"),
            "{text}"
        );
        assert!(
            text.ends_with("  --help, help      display usage information\n"),
            "{text}"
        );
    }
}
