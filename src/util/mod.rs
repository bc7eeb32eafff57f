//! util — small helpers with no knowledge of mail: base64, time.

pub mod base64;
pub mod time;
