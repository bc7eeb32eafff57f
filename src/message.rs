//! message — header fields of a message, as received and as spooled.
//!
//! DESCRIPTION
//!   A [`Header`] is one header field exactly as received (its first line
//!   and continuation lines, LF line ends), with its name. [`HeaderReader`]
//!   is the push parser every receiver feeds line by line: it tells where
//!   the header section ends and enforces the limits of DESIGN §7.
//!   Bytes are kept as bytes: 8-bit headers pass through unchanged.
//!
//! SECURITY
//!   Input is untrusted: the number of fields and their total size are
//!   bounded by the caller's limits, names are checked (RFC 5322 §3.6.8
//!   ftext), nothing panics.

use std::fmt;

/// One header field: `Name: value` plus its continuation lines, each line
/// ending in `\n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    raw: Vec<u8>,
    name_len: usize,
}

fn is_ftext(b: u8) -> bool {
    (33..=126).contains(&b) && b != b':'
}

/// The length of a valid field name at the start of `line` followed by a
/// colon (RFC 5322 ftext, optional whitespace before the colon, as in
/// obsolete syntax), or None.
fn field_name_len(line: &[u8]) -> Option<usize> {
    let n = line.iter().take_while(|&&b| is_ftext(b)).count();
    if n == 0 {
        return None;
    }
    let rest = line.get(n..)?;
    let ws = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    (rest.get(ws) == Some(&b':')).then_some(n)
}

impl Header {
    /// A field from its first line (without line end). None when the line is
    /// not `name: value`.
    pub fn from_line(line: &[u8]) -> Option<Header> {
        let name_len = field_name_len(line)?;
        let mut raw = line.to_vec();
        raw.push(b'\n');
        Some(Header { raw, name_len })
    }

    /// A field made by the program (`Message-ID`, `Date`, …); `value` may
    /// hold folded lines separated by `\n\t`.
    pub fn new(name: &str, value: &str) -> Header {
        let mut raw = Vec::with_capacity(name.len() + value.len() + 3);
        raw.extend_from_slice(name.as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(value.as_bytes());
        raw.push(b'\n');
        Header {
            raw,
            name_len: name.len(),
        }
    }

    /// Add a continuation line (starts with space or tab, no line end).
    pub fn push_continuation(&mut self, line: &[u8]) {
        self.raw.extend_from_slice(line);
        self.raw.push(b'\n');
    }

    pub fn name(&self) -> &str {
        std::str::from_utf8(self.raw.get(..self.name_len).unwrap_or(b"")).unwrap_or("")
    }

    pub fn is(&self, name: &str) -> bool {
        self.name().eq_ignore_ascii_case(name)
    }

    /// The value unfolded (line ends removed), leading whitespace trimmed,
    /// 8-bit bytes replaced where they are not UTF-8.
    pub fn value(&self) -> String {
        let after = self
            .raw
            .iter()
            .position(|&b| b == b':')
            .map_or(&self.raw[..0], |i| &self.raw[i + 1..]);
        let mut unfolded = Vec::with_capacity(after.len());
        for &b in after {
            if b != b'\n' && b != b'\r' {
                unfolded.push(b);
            }
        }
        String::from_utf8_lossy(&unfolded).trim().to_string()
    }

    /// The field as stored: every line ending in `\n`.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Never true for a parsed field; for completeness.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

/// Limits on a message's header section (DESIGN §7).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_line: usize,
    pub max_header_size: usize,
    pub max_headers: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    TooManyFields(usize),
    TooLarge(usize),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::TooManyFields(n) => write!(f, "more than {n} header fields"),
            HeaderError::TooLarge(n) => write!(f, "header section larger than {n} bytes"),
        }
    }
}

/// What the header reader did with a line.
#[derive(Debug, PartialEq, Eq)]
pub enum LineKind {
    /// Part of the header section.
    Header,
    /// The empty line ending the header section (not part of the body).
    EndOfHeaders,
    /// Not a header line: the header section ended without an empty line,
    /// and this line is the first line of the body.
    BodyStart,
}

/// Push parser for the header section; feed lines without their line end.
pub struct HeaderReader {
    limits: Limits,
    headers: Vec<Header>,
    size: usize,
}

impl HeaderReader {
    pub fn new(limits: Limits) -> HeaderReader {
        HeaderReader {
            limits,
            headers: Vec::new(),
            size: 0,
        }
    }

    pub fn feed(&mut self, line: &[u8]) -> Result<LineKind, HeaderError> {
        if line.is_empty() {
            return Ok(LineKind::EndOfHeaders);
        }
        self.size += line.len() + 1;
        if self.size > self.limits.max_header_size {
            return Err(HeaderError::TooLarge(self.limits.max_header_size));
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(last) = self.headers.last_mut() {
                last.push_continuation(line);
                return Ok(LineKind::Header);
            }
            return Ok(LineKind::BodyStart);
        }
        match Header::from_line(line) {
            Some(h) => {
                if self.headers.len() >= self.limits.max_headers {
                    return Err(HeaderError::TooManyFields(self.limits.max_headers));
                }
                self.headers.push(h);
                Ok(LineKind::Header)
            }
            None => Ok(LineKind::BodyStart),
        }
    }

    pub fn finish(self) -> Vec<Header> {
        self.headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_line: 1000,
        max_header_size: 200,
        max_headers: 4,
    };

    #[test]
    fn reads_fields_and_continuations() {
        let mut r = HeaderReader::new(L);
        assert_eq!(r.feed(b"Subject: hello"), Ok(LineKind::Header));
        assert_eq!(r.feed(b"\tworld"), Ok(LineKind::Header));
        assert_eq!(r.feed(b"X-Weird : v"), Ok(LineKind::Header));
        assert_eq!(r.feed(b""), Ok(LineKind::EndOfHeaders));
        let h = r.finish();
        assert_eq!(h[0].name(), "Subject");
        assert_eq!(h[0].value(), "hello\tworld");
        assert_eq!(h[0].raw(), b"Subject: hello\n\tworld\n");
        assert!(h[1].is("x-weird"));
        assert_eq!(h[1].value(), "v");
    }

    #[test]
    fn non_header_line_starts_body() {
        let mut r = HeaderReader::new(L);
        assert_eq!(r.feed(b"no colon here"), Ok(LineKind::BodyStart));
        let mut r = HeaderReader::new(L);
        assert_eq!(r.feed(b" leading space"), Ok(LineKind::BodyStart));
        assert_eq!(r.feed(b": empty name"), Ok(LineKind::BodyStart));
        assert_eq!(r.feed(b"Bad Name: x"), Ok(LineKind::BodyStart));
    }

    #[test]
    fn limits() {
        let mut r = HeaderReader::new(L);
        for _ in 0..4 {
            assert_eq!(r.feed(b"A: b"), Ok(LineKind::Header));
        }
        assert_eq!(r.feed(b"A: b"), Err(HeaderError::TooManyFields(4)));
        let mut r = HeaderReader::new(L);
        assert_eq!(r.feed(&[b'x'; 250]), Err(HeaderError::TooLarge(200)));
    }

    #[test]
    fn eight_bit_kept() {
        let h = Header::from_line(b"Subject: Gr\xfc\xdfe").unwrap();
        assert_eq!(h.raw(), b"Subject: Gr\xfc\xdfe\n");
        assert!(h.value().starts_with("Gr"));
    }
}
