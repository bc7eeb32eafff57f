//! transport — how a message leaves: `smtp` (smarthost or MX). Local
//! mailboxes, MDAs and `pipe` routes are in `deliver::local`, since they
//! run commands and write files on this machine.

pub mod smtp;
