//! util — small helpers with no knowledge of mail: base64, time, running
//! other programs (spawn), and the hashes SMTP AUTH needs (MD5 and HMAC
//! for CRAM-MD5, SHA-2 and SHA-crypt for stored passwords).

pub mod base64;
pub mod digest;
pub mod hmac;
pub mod md5;
pub mod memory;
pub mod sha2;
pub mod shacrypt;
pub mod spawn;
pub mod time;
