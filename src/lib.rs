//! masqmail — a small mail transfer agent for routers and machines that are
//! only sometimes online. One multi-call binary; see doc/masqmail.8.md.
//!
//! The module tree is the pipeline (DESIGN §2):
//!   receive  → queue (queue-in) → scan → queue (outgoing) → deliver → transport
//! with config, log, cli, commands, daemon and online detection around it.
//! The library exists for the binary, the fuzz targets and the benchmarks;
//! it is not a stable API.

pub mod addr;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod deliver;
pub mod dns;
pub mod error;
pub mod log;
pub mod message;
pub mod online;
pub mod passwd;
pub mod privs;
pub mod queue;
pub mod receive;
pub mod route;
pub mod scan;
pub mod setup;
pub mod smtp;
#[cfg(feature = "tls")]
pub mod tls;
pub mod transport;
pub mod util;

/// Run the program with these arguments; returns the exit code.
pub fn run(argv: Vec<String>) -> i32 {
    util::time::init();
    commands::main(argv)
}
