//! util — small helpers with no knowledge of mail: base64, time, the
//! memory allocator, connecting with a deadline (net), running other
//! programs (spawn), and the hashes SMTP AUTH needs (MD5 and HMAC
//! for CRAM-MD5, SHA-2 and SHA-crypt for stored passwords).

pub mod alloc;
pub mod base64;
pub mod digest;
pub mod hmac;
pub mod md5;
pub mod memory;
pub mod net;
pub mod sha2;
pub mod shacrypt;
pub mod spawn;
pub mod time;
pub mod vecmap;

/// The lower-case hex digit of the low four bits of `n`.
pub fn hex_digit(n: u8) -> u8 {
    b"0123456789abcdef"[usize::from(n & 15)]
}

/// A system call's error as the C library words it ("No such file or
/// directory (os error 2)"), the way std's I/O errors print. nix's own
/// Display of an errno would bring its table of texts (about 6 KB)
/// into the binary for the same words.
pub fn os_error(e: nix::errno::Errno) -> std::io::Error {
    e.into()
}

/// The C library's text for an errno alone, without std's "(os error N)":
/// "No such file or directory".
pub fn errno_text(e: nix::errno::Errno) -> String {
    // SAFETY: strerror returns a pointer to a NUL-terminated string that
    // musl keeps in a constant table (glibc: a static buffer for unknown
    // numbers, copied out at once here).
    let s = unsafe { std::ffi::CStr::from_ptr(libc::strerror(e as i32)) };
    s.to_string_lossy().into_owned()
}
