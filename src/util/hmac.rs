//! hmac — keyed hashing for message authentication (RFC 2104).
//!
//! DESCRIPTION
//!   `H(K ^ opad, H(K ^ ipad, text))`, generic over any [`Digest`]; a key
//!   longer than the hash's block is hashed first (RFC 2104 §2). The SMTP
//!   client uses HMAC-MD5 for AUTH CRAM-MD5 (RFC 2195).
//!
//! SECURITY
//!   The key is a secret (`auth_secret`): it is only read, never copied
//!   beyond the two padded blocks on the stack, never printed. Pure
//!   computation; no panics on any input.

use super::digest::Digest;
use super::md5::Md5;

/// The largest block among our hashes (SHA-512's).
const MAX_BLOCK: usize = 128;

/// HMAC of `data` under `key` with the hash `D`.
pub fn hmac<D: Digest>(key: &[u8], data: &[u8]) -> D::Output {
    let block = D::BLOCK_LEN.min(MAX_BLOCK);
    let mut k = [0u8; MAX_BLOCK];
    if key.len() > block {
        let h = D::digest(key);
        let h = h.as_ref();
        if let Some(dst) = k.get_mut(..h.len()) {
            dst.copy_from_slice(h);
        }
    } else if let Some(dst) = k.get_mut(..key.len()) {
        dst.copy_from_slice(key);
    }
    let k = k.get(..block).unwrap_or(&[]);
    let mut ipad = [0u8; MAX_BLOCK];
    let mut opad = [0u8; MAX_BLOCK];
    for ((i, o), &b) in ipad.iter_mut().zip(opad.iter_mut()).zip(k) {
        *i = b ^ 0x36;
        *o = b ^ 0x5c;
    }
    let mut inner = D::new();
    inner.update(ipad.get(..block).unwrap_or(&[]));
    inner.update(data);
    let inner = inner.finish();
    let mut outer = D::new();
    outer.update(opad.get(..block).unwrap_or(&[]));
    outer.update(inner.as_ref());
    outer.finish()
}

/// HMAC-MD5 (RFC 2104 with MD5), as CRAM-MD5 needs it.
pub fn hmac_md5(key: &[u8], data: &[u8]) -> [u8; 16] {
    hmac::<Md5>(key, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::md5::hex;
    use crate::util::sha2::{Sha256, Sha512};

    /// RFC 2202 §2, the seven HMAC-MD5 test cases.
    #[test]
    fn rfc2202_hmac_md5() {
        let big = [0xaau8; 80];
        let v: [(&[u8], &[u8], &str); 7] = [
            (&[0x0b; 16], b"Hi There", "9294727a3638bb1c13f48ef8158bfc9d"),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "750c783e6ab0b503eaa86e310a5db738",
            ),
            (&[0xaa; 16], &[0xdd; 50], "56be34521d144c88dbb8c733f0e8b3f6"),
            (
                &[
                    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                    23, 24, 25,
                ],
                &[0xcd; 50],
                "697eaf0aca3a3aea3a75164746ffaa79",
            ),
            (
                &[0x0c; 16],
                b"Test With Truncation",
                "56461ef2342edc00f9bab995690efd4c",
            ),
            (
                &big,
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd",
            ),
            (
                &big,
                b"Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data",
                "6f630fad67cda0ee1fb1f562db3aa53e",
            ),
        ];
        for (key, data, want) in v {
            assert_eq!(hex(&hmac_md5(key, data)), want);
        }
    }

    /// RFC 2195 §2: the CRAM-MD5 example's digest.
    #[test]
    fn rfc2195_example() {
        let d = hmac_md5(
            b"tanstaaftanstaaf",
            b"<1896.697170952@postoffice.reston.mci.net>",
        );
        assert_eq!(hex(&d), "b913a602c7eda7a495b4e6e7334d3890");
    }

    /// RFC 4231 test cases 1 and 6: the generic code with the SHA-2 hashes.
    #[test]
    fn rfc4231_sha2() {
        assert_eq!(
            hex(&hmac::<Sha256>(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac::<Sha512>(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352\
             6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"
        );
    }
}
