//! dns — a small blocking stub resolver for MX delivery: MX, A and AAAA.
//!
//! DESCRIPTION
//!   `wire` encodes queries and decodes replies (RFC 1035 §4); `resolv`
//!   reads the servers and options from resolv.conf.

#![allow(dead_code)] // queue-out (issue 6) wires the resolver in.

pub mod resolv;
pub mod wire;
