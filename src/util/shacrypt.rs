//! shacrypt — password hashes `$5$` (SHA-256) and `$6$` (SHA-512).
//!
//! DESCRIPTION
//!   Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512"
//!   (https://www.akkadia.org/drepper/SHA-crypt.txt), the scheme of glibc's
//!   and libxcrypt's crypt(3): `$6$[rounds=N$]SALT$HASH`. The salt is at
//!   most 16 characters (longer ones are cut), rounds default to 5000 and
//!   are clamped to 1000 … 999 999 999; `rounds=` appears in the output
//!   only when it was given (even as `rounds=5000`), as the spec says.
//!   [`verify`] checks a password against a stored hash (the `password_hash`
//!   of a `config user` section); [`make`] creates one with a fresh salt.
//!
//! SECURITY
//!   Passwords and hashes are secrets: nothing here logs or prints them.
//!   The final comparison runs in time independent of where the strings
//!   differ. The work grows with the square of the password length (the
//!   spec's step 13 hashes the password once per byte), so [`verify`]
//!   refuses passwords longer than [`MAX_PASSWORD`] bytes without hashing:
//!   a remote client cannot burn the router's CPU with a huge AUTH line.
//!   The cost of `rounds=` is trusted: it comes from the administrator's
//!   configuration. Salts come from /dev/urandom. No unsafe, no panics.
//!
//! DIAGNOSTICS
//!   [`make`] fails only when /dev/urandom cannot be read or the password
//!   is longer than [`MAX_PASSWORD`]; [`verify`] answers false for a hash it
//!   cannot parse.

use std::io::{self, Read};

use super::digest::Digest;
use super::sha2::{Sha256, Sha512};

pub const ROUNDS_DEFAULT: u32 = 5000;
pub const ROUNDS_MIN: u32 = 1000;
pub const ROUNDS_MAX: u32 = 999_999_999;
pub const SALT_MAX: usize = 16;
/// Longest password [`verify`] and [`make`] accept, in bytes (libxcrypt's
/// limit too).
pub const MAX_PASSWORD: usize = 512;

/// The crypt(3) base64 alphabet (not RFC 4648's).
const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Byte order of the final encoding, three bytes per four characters
/// (the spec's step 22).
const PERM256: [[usize; 3]; 10] = [
    [0, 10, 20],
    [21, 1, 11],
    [12, 22, 2],
    [3, 13, 23],
    [24, 4, 14],
    [15, 25, 5],
    [6, 16, 26],
    [27, 7, 17],
    [18, 28, 8],
    [9, 19, 29],
];
const PERM512: [[usize; 3]; 21] = [
    [0, 21, 42],
    [22, 43, 1],
    [44, 2, 23],
    [3, 24, 45],
    [25, 46, 4],
    [47, 5, 26],
    [6, 27, 48],
    [28, 49, 7],
    [50, 8, 29],
    [9, 30, 51],
    [31, 52, 10],
    [53, 11, 32],
    [12, 33, 54],
    [34, 55, 13],
    [56, 14, 35],
    [15, 36, 57],
    [37, 58, 16],
    [59, 17, 38],
    [18, 39, 60],
    [40, 61, 19],
    [62, 20, 41],
];

/// Which hash: `$5$` or `$6$`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Sha256,
    Sha512,
}

impl Alg {
    fn prefix(self) -> &'static str {
        match self {
            Alg::Sha256 => "$5$",
            Alg::Sha512 => "$6$",
        }
    }
}

fn byte(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

/// Append `n` characters encoding the 24-bit value `b2 b1 b0`, low bits first.
fn b64_from_24bit(b2: u8, b1: u8, b0: u8, n: usize, out: &mut String) {
    let mut w = (u32::from(b2) << 16) | (u32::from(b1) << 8) | u32::from(b0);
    for _ in 0..n {
        out.push(char::from(ITOA64[(w & 0x3f) as usize]));
        w >>= 6;
    }
}

/// SHA-256 or SHA-512, chosen at run time, so that the spec's steps are
/// compiled once for both.
#[derive(Clone)]
enum Ctx {
    S256(Sha256),
    S512(Sha512),
}

/// A finished digest: 32 or 64 bytes.
#[derive(Clone, Copy)]
struct Out {
    buf: [u8; 64],
    len: usize,
}

impl Out {
    fn bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

impl Ctx {
    #[inline(never)]
    fn new(alg: Alg) -> Ctx {
        match alg {
            Alg::Sha256 => Ctx::S256(Sha256::new()),
            Alg::Sha512 => Ctx::S512(Sha512::new()),
        }
    }

    #[inline(never)]
    fn update(&mut self, data: &[u8]) {
        match self {
            Ctx::S256(h) => h.update(data),
            Ctx::S512(h) => h.update(data),
        }
    }

    #[inline(never)]
    fn finish(self) -> Out {
        let mut buf = [0u8; 64];
        let len = match self {
            Ctx::S256(h) => {
                buf[..32].copy_from_slice(&h.finish());
                32
            }
            Ctx::S512(h) => {
                buf.copy_from_slice(&h.finish());
                64
            }
        };
        Out { buf, len }
    }
}

/// Add `len` bytes made of repeated copies of `block` (the spec's steps 4
/// and 16, 11 and 20 all have this shape).
fn add_repeated(ctx: &mut Ctx, block: &[u8], len: usize) {
    if block.is_empty() {
        return;
    }
    let mut left = len;
    while left > block.len() {
        ctx.update(block);
        left -= block.len();
    }
    ctx.update(block.get(..left).unwrap_or(&[]));
}

/// The spec's steps 1–21: the raw digest after `rounds` rounds.
fn digest(alg: Alg, password: &[u8], salt: &[u8], rounds: u32) -> Out {
    // Steps 4–8: digest B = H(password salt password).
    let mut b = Ctx::new(alg);
    b.update(password);
    b.update(salt);
    b.update(password);
    let b = b.finish();
    // Steps 1–3, 9–12: digest A.
    let mut a = Ctx::new(alg);
    a.update(password);
    a.update(salt);
    add_repeated(&mut a, b.bytes(), password.len());
    let mut n = password.len();
    while n > 0 {
        if n & 1 == 1 {
            a.update(b.bytes());
        } else {
            a.update(password);
        }
        n >>= 1;
    }
    let mut result = a.finish();
    // Steps 13–16: the byte sequence P.
    let mut dp = Ctx::new(alg);
    for _ in 0..password.len() {
        dp.update(password);
    }
    let dp = dp.finish();
    let mut p = Vec::with_capacity(password.len());
    while p.len() < password.len() {
        let take = (password.len() - p.len()).min(dp.len);
        p.extend_from_slice(dp.bytes().get(..take).unwrap_or(&[]));
    }
    // Steps 17–20: the byte sequence S.
    let mut ds = Ctx::new(alg);
    for _ in 0..16 + usize::from(result.buf[0]) {
        ds.update(salt);
    }
    let ds = ds.finish();
    let s = ds.bytes().get(..salt.len()).unwrap_or(&[]);
    // Step 21: the rounds.
    for r in 0..rounds {
        let mut c = Ctx::new(alg);
        let odd = r & 1 == 1;
        c.update(if odd { &p } else { result.bytes() });
        if r % 3 != 0 {
            c.update(s);
        }
        if r % 7 != 0 {
            c.update(&p);
        }
        c.update(if odd { result.bytes() } else { &p });
        result = c.finish();
    }
    result
}

/// Cut a salt at its first `$` and at [`SALT_MAX`] bytes (on a character
/// boundary: salts are ASCII in practice).
fn cut_salt(salt: &str) -> &str {
    let s = salt.split('$').next().unwrap_or("");
    let mut end = s.len().min(SALT_MAX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// Hash `password` with `salt` (cut at `$` and at 16 bytes) and `rounds`
/// (None: the default 5000, not written in the result; Some: clamped to
/// 1000 … 999 999 999 and written as `rounds=N$`).
pub fn hash(alg: Alg, password: &[u8], salt: &str, rounds: Option<u32>) -> String {
    let salt = cut_salt(salt);
    let n = rounds.map_or(ROUNDS_DEFAULT, |r| r.clamp(ROUNDS_MIN, ROUNDS_MAX));
    let mut out = String::with_capacity(128);
    out.push_str(alg.prefix());
    if rounds.is_some() {
        out.push_str(&format!("rounds={n}$"));
    }
    out.push_str(salt);
    out.push('$');
    let d = digest(alg, password, salt.as_bytes(), n);
    let d = d.bytes();
    let (perm, tail): (&[[usize; 3]], _) = match alg {
        Alg::Sha256 => (&PERM256, [32, 31, 30, 3]),
        Alg::Sha512 => (&PERM512, [64, 64, 63, 2]),
    };
    for &[i, j, k] in perm {
        b64_from_24bit(byte(d, i), byte(d, j), byte(d, k), 4, &mut out);
    }
    let [i, j, k, n] = tail;
    b64_from_24bit(byte(d, i), byte(d, j), byte(d, k), n, &mut out);
    out
}

/// A parsed setting: `$5$` or `$6$`, optional `rounds=N$`, the salt.
struct Setting<'a> {
    alg: Alg,
    rounds: Option<u32>,
    salt: &'a str,
}

/// Parse `$id$[rounds=N$]salt[$…]`; None when it is not SHA-crypt or the
/// rounds are not a decimal number.
fn parse(s: &str) -> Option<Setting<'_>> {
    let (alg, rest) = if let Some(r) = s.strip_prefix("$5$") {
        (Alg::Sha256, r)
    } else if let Some(r) = s.strip_prefix("$6$") {
        (Alg::Sha512, r)
    } else {
        return None;
    };
    let (rounds, rest) = match rest.strip_prefix("rounds=") {
        Some(r) => {
            let (num, rest) = r.split_once('$')?;
            if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Saturate like strtoul; hash() clamps.
            let n = num
                .bytes()
                .fold(0u64, |n, d| {
                    n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                })
                .min(u64::from(u32::MAX)) as u32;
            (Some(n), rest)
        }
        None => (None, rest),
    };
    Some(Setting {
        alg,
        rounds,
        salt: cut_salt(rest),
    })
}

/// crypt(3) for SHA-crypt: hash `password` with the algorithm, rounds and
/// salt of `setting` (a full hash or just its `$id$…salt` prefix).
pub fn crypt(password: &[u8], setting: &str) -> Option<String> {
    let s = parse(setting)?;
    Some(hash(s.alg, password, s.salt, s.rounds))
}

/// Compare in time that depends only on the lengths.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Does `password` match the stored `hash`? False for anything that is not
/// a SHA-crypt hash and for passwords over [`MAX_PASSWORD`] bytes.
pub fn verify(password: &[u8], hash: &str) -> bool {
    if password.len() > MAX_PASSWORD {
        return false;
    }
    match crypt(password, hash) {
        Some(computed) => ct_eq(computed.as_bytes(), hash.as_bytes()),
        None => false,
    }
}

/// A fresh 16-character salt: 96 bits from /dev/urandom.
pub fn new_salt() -> io::Result<String> {
    let mut raw = [0u8; 12];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
    let mut out = String::with_capacity(SALT_MAX);
    for c in raw.chunks_exact(3) {
        b64_from_24bit(byte(c, 0), byte(c, 1), byte(c, 2), 4, &mut out);
    }
    Ok(out)
}

/// A new hash of `password` with a fresh salt and the default rounds.
pub fn make(alg: Alg, password: &[u8]) -> io::Result<String> {
    if password.len() > MAX_PASSWORD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("password longer than {MAX_PASSWORD} bytes"),
        ));
    }
    Ok(hash(alg, password, &new_salt()?, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: &str =
        "a very much longer text to encrypt.  This one even stretches over morethan one line.";

    /// The spec's own test vectors: setting, password, result. They cover
    /// the default rounds (5000, not printed), an explicit rounds=5000
    /// (printed), salts cut at 16, and rounds=10 raised to 1000.
    const VECTORS: &[(&str, &str, &str)] = &[
        ("$5$saltstring", "Hello world!",
         "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"),
        ("$5$rounds=10000$saltstringsaltstring", "Hello world!",
         "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"),
        ("$5$rounds=5000$toolongsaltstring", "This is just a test",
         "$5$rounds=5000$toolongsaltstrin$Un/5jzAHMgOGZ5.mWJpuVolil07guHPvOW8mGRcvxa5"),
        ("$5$rounds=1400$anotherlongsaltstring", LONG,
         "$5$rounds=1400$anotherlongsalts$Rx.j8H.h8HjEDGomFU8bDkXm3XIUnzyxf12oP84Bnq1"),
        ("$5$rounds=77777$short", "we have a short salt string but not a short password",
         "$5$rounds=77777$short$JiO1O3ZpDAxGJeaDIuqCoEFysAe1mZNJRs3pw0KQRd/"),
        ("$5$rounds=123456$asaltof16chars..", "a short string",
         "$5$rounds=123456$asaltof16chars..$gP3VQ/6X7UUEW3HkBn2w1/Ptq2jxPyzV/cZKmF/wJvD"),
        ("$5$rounds=10$roundstoolow", "the minimum number is still observed",
         "$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC"),
        ("$6$saltstring", "Hello world!",
         "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"),
        ("$6$rounds=10000$saltstringsaltstring", "Hello world!",
         "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."),
        ("$6$rounds=5000$toolongsaltstring", "This is just a test",
         "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0"),
        ("$6$rounds=1400$anotherlongsaltstring", LONG,
         "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1"),
        ("$6$rounds=77777$short", "we have a short salt string but not a short password",
         "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0"),
        ("$6$rounds=123456$asaltof16chars..", "a short string",
         "$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1"),
        ("$6$rounds=10$roundstoolow", "the minimum number is still observed",
         "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX."),
    ];

    /// Each vector once (the big round counts are slow in a debug build);
    /// verify on the cheap ones.
    fn check_vectors(prefix: &str) {
        for (setting, pw, want) in VECTORS.iter().filter(|v| v.0.starts_with(prefix)) {
            assert_eq!(
                crypt(pw.as_bytes(), setting).as_deref(),
                Some(*want),
                "{setting}"
            );
            if want.contains("$rounds=1000$") || !want.contains("rounds=") {
                assert!(verify(pw.as_bytes(), want), "{want}");
                assert!(!verify(b"wrong", want), "{want}");
            }
        }
    }

    #[test]
    fn spec_vectors_sha256() {
        check_vectors("$5$");
    }

    #[test]
    fn spec_vectors_sha512() {
        check_vectors("$6$");
    }

    #[test]
    fn hash_arguments() {
        // Default rounds are not written; explicit ones are, clamped.
        assert_eq!(
            hash(Alg::Sha256, b"Hello world!", "saltstring", None),
            "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"
        );
        assert!(hash(Alg::Sha512, b"x", "s", Some(10)).starts_with("$6$rounds=1000$s$"));
        // Salt cut at '$' and at 16.
        assert!(hash(Alg::Sha256, b"x", "ab$cd", None).starts_with("$5$ab$"));
        assert!(hash(Alg::Sha256, b"x", "0123456789abcdefXYZ", None)
            .starts_with("$5$0123456789abcdef$"));
    }

    #[test]
    fn verify_rejects_garbage() {
        for bad in [
            "",
            "$1$abc$def",
            "$5$",
            "$5$rounds=$salt$x",
            "$5$rounds=12a$salt$x",
            "$5$rounds=1000",
            "$6$saltstring$svn8",
            "plaintext",
        ] {
            assert!(!verify(b"Hello world!", bad), "{bad:?}");
        }
        let long = vec![b'a'; MAX_PASSWORD + 1];
        let h = hash(Alg::Sha256, &long, "salt", None);
        assert!(!verify(&long, &h));
    }

    #[test]
    fn made_hashes_verify() {
        let salt = new_salt().unwrap();
        assert_eq!(salt.len(), SALT_MAX);
        assert!(salt.bytes().all(|b| ITOA64.contains(&b)));
        assert_ne!(salt, new_salt().unwrap());
        let h = make(Alg::Sha512, b"hunter2").unwrap();
        assert!(h.starts_with("$6$") && h.len() == 3 + 16 + 1 + 86, "{h}");
        assert!(verify(b"hunter2", &h));
        assert!(!verify(b"hunter3", &h));
        assert!(make(Alg::Sha256, &[0; MAX_PASSWORD + 1]).is_err());
    }
}
