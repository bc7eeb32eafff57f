//! Shared by the fuzz targets: the first byte of an input steers the
//! harness (chunk sizes, options), the rest is the data, so that seed
//! files stay readable: a seed is one control byte, then plain text.
#![allow(dead_code)]

/// A tiny generator seeded by the control byte.
pub struct Steer(u32);

impl Steer {
    pub fn new(b: u8) -> Steer {
        Steer(u32::from(b).wrapping_mul(2_654_435_761).max(1))
    }
    pub fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
    /// The size of the next chunk: 1..=max.
    pub fn chunk(&mut self, max: usize) -> usize {
        1 + (self.next() as usize % max.max(1))
    }
}

/// Split `data` into (control byte, rest).
pub fn split(data: &[u8]) -> Option<(u8, &[u8])> {
    let (&c, rest) = data.split_first()?;
    Some((c, rest))
}

/// `rest` cut into chunks of sizes the control byte decides (bit 7 set:
/// all in one chunk).
pub fn chunks(control: u8, rest: &[u8]) -> Vec<&[u8]> {
    if control & 0x80 != 0 {
        return vec![rest];
    }
    let mut s = Steer::new(control);
    let mut out = Vec::new();
    let mut at = 0;
    while at < rest.len() {
        let n = s.chunk(64).min(rest.len() - at);
        out.push(&rest[at..at + n]);
        at += n;
    }
    out
}
