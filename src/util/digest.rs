//! digest — what MD5, SHA-256 and SHA-512 have in common.
//!
//! DESCRIPTION
//!   [`Digest`] is a Merkle–Damgård hash as HMAC (RFC 2104) and SHA-crypt
//!   use it: start, feed bytes, finish. [`Blocks`] is the input buffer all
//!   three hashes share: it collects bytes into whole blocks for the
//!   compression function and writes the final padding (RFC 1321 §3.1–3.2,
//!   FIPS 180-4 §5.1), which differs between them only in the length field's
//!   size and byte order.
//!
//! SECURITY
//!   Pure computation on bytes; no I/O, no unsafe, no panics on any input.

/// A hash function usable by HMAC and SHA-crypt.
pub trait Digest: Clone {
    /// The block size of the compression function, in bytes.
    const BLOCK_LEN: usize;
    /// The digest: `[u8; 16]`, `[u8; 32]` or `[u8; 64]`.
    type Output: AsRef<[u8]> + Copy;

    fn new() -> Self;
    fn update(&mut self, data: &[u8]);
    fn finish(self) -> Self::Output;

    /// The digest of `data` in one call.
    fn digest(data: &[u8]) -> Self::Output {
        let mut h = Self::new();
        h.update(data);
        h.finish()
    }
}

/// The length field written at the end of the padding.
#[derive(Clone, Copy)]
pub enum LengthField {
    /// 64-bit little-endian (MD5).
    Le64,
    /// 64-bit big-endian (SHA-256).
    Be64,
    /// 128-bit big-endian (SHA-512).
    Be128,
}

/// Buffers input into `N`-byte blocks.
#[derive(Clone)]
pub struct Blocks<const N: usize> {
    buf: [u8; N],
    used: usize,
    /// Bytes fed in total; the length field counts bits (mod 2^64 for the
    /// 64-bit fields, as the standards say).
    total: u64,
}

impl<const N: usize> Default for Blocks<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Blocks<N> {
    pub fn new() -> Self {
        Blocks {
            buf: [0; N],
            used: 0,
            total: 0,
        }
    }

    /// Feed bytes; `compress` is called for every completed block. Not
    /// inlined, and `dyn`: one copy per block size serves every hash.
    #[inline(never)]
    pub fn update(&mut self, mut data: &[u8], compress: &mut dyn FnMut(&[u8; N])) {
        self.total = self.total.wrapping_add(data.len() as u64);
        if self.used > 0 {
            let take = (N - self.used).min(data.len());
            let (head, rest) = data.split_at(take);
            if let Some(dst) = self.buf.get_mut(self.used..self.used + take) {
                dst.copy_from_slice(head);
            }
            self.used += take;
            data = rest;
            if self.used < N {
                return;
            }
            compress(&self.buf);
            self.used = 0;
        }
        while let Some((block, rest)) = data.split_first_chunk::<N>() {
            compress(block);
            data = rest;
        }
        if let Some(dst) = self.buf.get_mut(..data.len()) {
            dst.copy_from_slice(data);
        }
        self.used = data.len();
    }

    /// Append the padding: `0x80`, zeros, the message length in bits.
    pub fn finish(&mut self, field: LengthField, compress: &mut dyn FnMut(&[u8; N])) {
        let bits = u128::from(self.total) * 8;
        let field_len = match field {
            LengthField::Le64 | LengthField::Be64 => 8,
            LengthField::Be128 => 16,
        };
        let mut pad = [0u8; 256];
        pad[0] = 0x80;
        // Padding so that used + pad_len ≡ N - field_len (mod N).
        let pad_len = (2 * N - field_len - self.used - 1) % N + 1;
        let mut tail = [0u8; 16];
        match field {
            LengthField::Le64 => tail[..8].copy_from_slice(&(bits as u64).to_le_bytes()),
            LengthField::Be64 => tail[..8].copy_from_slice(&(bits as u64).to_be_bytes()),
            LengthField::Be128 => tail.copy_from_slice(&bits.to_be_bytes()),
        }
        self.update(pad.get(..pad_len).unwrap_or(&[]), compress);
        self.update(tail.get(..field_len).unwrap_or(&[]), compress);
        debug_assert_eq!(self.used, 0);
    }
}
