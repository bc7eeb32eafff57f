//! receive — the receiver modules that feed queue-in.
//!
//! `local` is the sendmail/rmail command: a message on stdin. Each receiver
//! speaks one protocol and hands an envelope, header fields and a body
//! stream to `queue::queue_in`; adding a protocol touches nothing else.

pub mod local;
pub mod smtp;

use std::fmt;
use std::io::{self, BufRead};

#[derive(Debug)]
pub enum LineError {
    TooLong(usize),
    Nul,
    Io(io::Error),
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::TooLong(n) => write!(f, "line longer than {n} bytes"),
            LineError::Nul => f.write_str("NUL byte in message"),
            LineError::Io(e) => write!(f, "read error: {e}"),
        }
    }
}

/// Read one line into `buf` (cleared first) without its line end; `\r\n`
/// and `\n` both end a line, a lone `\r` is data. Returns false at the end
/// of input with nothing read. Refuses lines over `max` bytes and NUL.
pub fn read_line(r: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> Result<bool, LineError> {
    buf.clear();
    let mut any = false;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LineError::Io(e)),
        };
        if chunk.is_empty() {
            break;
        }
        any = true;
        let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], i + 1),
            None => (chunk, chunk.len()),
        };
        let found_nl = done > part.len();
        if part.contains(&0) {
            return Err(LineError::Nul);
        }
        if buf.len() + part.len() > max + 1 {
            return Err(LineError::TooLong(max));
        }
        buf.extend_from_slice(part);
        r.consume(done);
        if found_nl {
            break;
        }
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    if buf.len() > max {
        return Err(LineError::TooLong(max));
    }
    Ok(any)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Result<Vec<Vec<u8>>, String> {
        let mut r = io::BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        while read_line(&mut r, &mut buf, max).map_err(|e| e.to_string())? {
            out.push(buf.clone());
        }
        Ok(out)
    }

    #[test]
    fn line_ends() {
        let got = lines(b"a\r\nbb\ncc\rdd\n\nlast", 10).unwrap();
        let want: Vec<&[u8]> = vec![b"a", b"bb", b"cc\rdd", b"", b"last"];
        assert_eq!(got, want);
        assert_eq!(lines(b"", 10).unwrap().len(), 0);
        assert_eq!(lines(b"\n", 10).unwrap(), vec![b"".to_vec()]);
    }

    #[test]
    fn limits_and_nul() {
        assert_eq!(lines(b"0123456789\r\n", 10).unwrap().len(), 1);
        assert!(lines(b"01234567890\n", 10)
            .unwrap_err()
            .contains("longer than 10"));
        assert!(lines(b"ab\0c\n", 10).unwrap_err().contains("NUL"));
    }
}
