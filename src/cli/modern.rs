//! The modern `masqmail SUBCOMMAND` interface (argh).

use argh::FromArgs;

const NOTE: &str = "\
Invoked as sendmail, mailq, runq, rmail, newaliases, mailrm, smtpd or
in.smtpd, masqmail acts as that command. sendmail-style flags work with
any name, e.g. `masqmail -t -i < message`:
  -t            take recipients from To:, Cc:, Bcc: (argument recipients are added)
  -i, -oi       a line with a single '.' does not end the message
  -f ADDR       envelope sender (-f '<>' for the null sender); -r is the same
  -F NAME       full name for a missing From:
  -odq -odb -odi  queue only / deliver in background / deliver now
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
75 temporary failure (nothing lost), 78 config error.";

#[derive(FromArgs, Debug)]
/// masqmail: a small mail transfer agent for routers and machines that are
/// only sometimes online.
#[argh(note = "{NOTE}")]
pub struct Top {
    #[argh(subcommand)]
    pub cmd: Sub,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Sub {
    Daemon(DaemonCmd),
    Flush(FlushCmd),
    Status(StatusCmd),
    Queue(QueueCmd),
    Config(ConfigCmd),
    Version(VersionCmd),
}

#[derive(FromArgs, Debug)]
/// Run the daemon in the foreground (for procd and systemd; -bd detaches).
#[argh(subcommand, name = "daemon")]
pub struct DaemonCmd {
    /// echo log lines to stderr
    #[argh(switch, short = 'v')]
    pub verbose: bool,
}

#[derive(FromArgs, Debug)]
/// Deliver queued mail now, ignoring retry backoff: for ROUTE, or for every
/// online route. Asks the running daemon; without one, runs the queue itself.
#[argh(subcommand, name = "flush")]
pub struct FlushCmd {
    /// the route to flush
    #[argh(positional)]
    pub route: Option<String>,
}

#[derive(FromArgs, Debug)]
/// Show the running daemon's state.
#[argh(subcommand, name = "status")]
pub struct StatusCmd {}

#[derive(FromArgs, Debug)]
/// List the queue (like mailq), or remove messages from it.
#[argh(subcommand, name = "queue")]
pub struct QueueCmd {
    /// print the queue as JSON (for scripts and LuCI)
    #[argh(switch)]
    pub json: bool,
    #[argh(subcommand)]
    pub sub: Option<QueueSub>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum QueueSub {
    Rm(QueueRm),
}

#[derive(FromArgs, Debug)]
/// Remove messages from the queue.
#[argh(subcommand, name = "rm")]
pub struct QueueRm {
    /// message IDs
    #[argh(positional)]
    pub ids: Vec<String>,
}

#[derive(FromArgs, Debug)]
/// Check or show the configuration.
#[argh(subcommand, name = "config")]
pub struct ConfigCmd {
    #[argh(subcommand)]
    pub sub: ConfigSub,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum ConfigSub {
    Check(ConfigCheck),
    Show(ConfigShow),
}

#[derive(FromArgs, Debug)]
/// Report every error in the config file, with file:line and a hint.
#[argh(subcommand, name = "check")]
pub struct ConfigCheck {}

#[derive(FromArgs, Debug)]
/// Print the effective configuration, defaults included, secrets masked.
#[argh(subcommand, name = "show")]
pub struct ConfigShow {}

#[derive(FromArgs, Debug)]
/// Print the version and the compiled-in features.
#[argh(subcommand, name = "version")]
pub struct VersionCmd {}

/// Is `word` a subcommand of the modern interface?
pub fn is_subcommand(word: &str) -> bool {
    matches!(
        word,
        "daemon" | "flush" | "status" | "queue" | "config" | "version" | "help"
    )
}
