//! `masqmail testmail [ADDRESS]`: queue a short test message, as the
//! calling user, to ADDRESS or to root (so that it follows root's alias:
//! "does mail from this router reach me?"). LuCI's "Send test mail" runs
//! it without an argument.
//!
//! The message takes the way a cron job's mail takes: this program runs
//! itself as `sendmail -i` with the message on stdin (and the same `-C`),
//! which queues and scans it. A running daemon then delivers it at once;
//! without one it waits for `masqmail flush`, and testmail says so.

use std::io::Write;

use crate::addr;
use crate::config::Config;
use crate::error::{CmdResult, Exit, Fail};
use crate::util::spawn::{Spawn, Stdio};
use crate::util::time;

pub fn run(config: Option<&str>, cfg: &Config, to: Option<&str>) -> CmdResult {
    let host = cfg.main.host_name.as_str();
    let to = to.unwrap_or("root");
    let rcpt = match addr::parse_header_list(to, Some(host)) {
        (good, bad) if bad.is_empty() && good.len() == 1 => good[0].addr.to_string(),
        _ => return Err(Fail::usage(format!("bad recipient address '{to}'"))),
    };
    // A daemon listens on the control socket (root's: ask before sendmail
    // drops privileges).
    let control = crate::daemon::control::socket_path(&cfg.main.spool_dir);
    let daemon = std::os::unix::net::UnixStream::connect(control.as_path()).is_ok();

    // This very program (the link is followed by the kernel, even when
    // the file was replaced meanwhile).
    let mut cmd = Spawn::new("/proc/self/exe");
    cmd.arg0("sendmail");
    if let Some(c) = config {
        cmd.arg("-C").arg(c);
    }
    let mut child = cmd
        .args(["-i", "-F", "masqmail testmail", "--", &rcpt])
        .stdin(Stdio::Piped)
        .spawn()
        .map_err(|e| Fail::new(Exit::Software, format!("cannot run sendmail: {e}")))?;
    let now = time::short(&time::local(time::now()));
    let text = format!(
        "To: {rcpt}\nSubject: masqmail test message from {host}\n\n\
         This is a test message from masqmail {} on {host},\n\
         queued by `masqmail testmail` at {now}.\n\n\
         If you read this, mail from {host} reaches you.\n",
        env!("CARGO_PKG_VERSION"),
    );
    if let Some(mut stdin) = child.stdin.take() {
        // sendmail reports its own errors; a broken pipe shows in its
        // status. Closing stdin ends the message.
        let _ = stdin.write_all(text.as_bytes());
    }
    let status = child
        .wait()
        .map_err(|e| Fail::new(Exit::Software, format!("sendmail: {e}")))?;
    if !status.success() {
        return Err(Fail::new(Exit::TempFail, "the test message was not queued"));
    }
    println!("Test message to {rcpt} queued.");
    if daemon {
        println!("The daemon sends it when a route for it is online; `masqmail queue` shows it until then.");
    } else {
        println!("No daemon is running: `masqmail flush` sends it now.");
    }
    Ok(())
}
