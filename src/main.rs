//! masqmail — a small mail transfer agent for routers and machines that are
//! only sometimes online. One multi-call binary; see doc/masqmail.8.md.
//!
//! The module tree is the pipeline (DESIGN §2):
//!   receive  → queue (queue-in) → scan → queue (outgoing) → deliver → transport
//! with config, log, cli and commands around it.

mod addr;
mod cli;
mod commands;
mod config;
mod daemon;
mod deliver;
mod dns;
mod error;
mod log;
mod message;
mod online;
mod privs;
mod queue;
mod receive;
mod route;
mod scan;
mod smtp;
#[cfg(feature = "tls")]
mod tls;
mod transport;
mod util;

fn main() {
    util::time::init();
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let code = commands::main(argv);
    std::process::exit(code);
}
