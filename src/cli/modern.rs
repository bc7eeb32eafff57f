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
    Setup(Box<SetupCmd>),
    Testmail(TestmailCmd),
    Passwd(PasswdCmd),
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

const SETUP_NOTE: &str = "\
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
  masqmail setup direct --host-name mail.example.org";

#[derive(FromArgs, Debug)]
/// Write a working configuration for a common setup.
#[argh(subcommand, name = "setup", note = "{SETUP_NOTE}")]
pub struct SetupCmd {
    /// smarthost, lan-relay, direct or local
    #[argh(positional)]
    pub preset: String,
    /// provider name or host[:port] (smarthost, lan-relay)
    #[argh(positional)]
    pub server: Option<String>,
    /// server port (default: the provider's; else 587, 465 with --tls tls)
    #[argh(option)]
    pub port: Option<u16>,
    /// encryption: starttls, tls or none (default: the provider's, else
    /// starttls; tls on port 465)
    #[argh(option)]
    pub tls: Option<String>,
    /// login name at the server
    #[argh(option)]
    pub user: Option<String>,
    /// password at the server; '-' reads it from stdin
    #[argh(option)]
    pub password: Option<String>,
    /// send mail of local users as this address (default: --user, when it
    /// is an address)
    #[argh(option)]
    pub from: Option<String>,
    /// where mail for root goes (default: the --from address, else root's
    /// local mailbox)
    #[argh(option)]
    pub to: Option<String>,
    /// CA bundle that checks the server's certificate
    #[argh(option)]
    pub ca_file: Option<String>,
    /// pin the server's certificate by its SHA-256 fingerprint
    #[argh(option)]
    pub fingerprint: Option<String>,
    /// lan-relay: this machine's LAN address and prefix, e.g.
    /// 192.168.1.1/24 (repeatable; default: the lan interface of
    /// /etc/config/network)
    #[argh(option)]
    pub lan: Vec<String>,
    /// this machine's mail name (default: the system host name)
    #[argh(option)]
    pub host_name: Option<String>,
    /// queue directory (default /var/spool/masqmail)
    #[argh(option)]
    pub spool: Option<String>,
    /// SMTP listen address ip:port (repeatable; default 127.0.0.1:25)
    #[argh(option)]
    pub listen: Vec<String>,
    /// replace an existing config file
    #[argh(switch)]
    pub force: bool,
    /// print the config (password masked) instead of writing it
    #[argh(switch)]
    pub print: bool,
}

#[derive(FromArgs, Debug)]
/// Queue a test message to ADDRESS (default: root, i.e. where root's mail
/// goes) and say how to follow it.
#[argh(subcommand, name = "testmail")]
pub struct TestmailCmd {
    /// recipient (default: root)
    #[argh(positional)]
    pub to: Option<String>,
}

#[derive(FromArgs, Debug)]
/// Make the password hash of an SMTP AUTH account: reads the password from
/// stdin (asks twice on a terminal), prints the $6$ hash and a `config user`
/// section to paste into the config.
#[argh(subcommand, name = "passwd")]
pub struct PasswdCmd {
    /// the account's user name (for the printed section)
    #[argh(positional)]
    pub user: Option<String>,
}

#[derive(FromArgs, Debug)]
/// Print the version and the compiled-in features.
#[argh(subcommand, name = "version")]
pub struct VersionCmd {}

/// Is `word` a subcommand of the modern interface?
pub fn is_subcommand(word: &str) -> bool {
    matches!(
        word,
        "daemon"
            | "flush"
            | "status"
            | "queue"
            | "config"
            | "setup"
            | "testmail"
            | "passwd"
            | "version"
            | "help"
    )
}
