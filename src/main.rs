//! masqmail — a small mail transfer agent for routers and machines that are
//! only sometimes online. One multi-call binary; see doc/masqmail.8.md.

mod config;
mod error;

fn main() {}
