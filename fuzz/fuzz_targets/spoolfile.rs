//! Spool header files as read back from disk (a corrupt or hostile file
//! in the spool): decoding never panics, and what decodes encodes to a
//! file that decodes to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use masqmail::queue::HeaderFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(hf) = HeaderFile::decode(data) {
        let enc = hf.encode();
        assert_eq!(
            HeaderFile::decode(&enc).as_ref(),
            Ok(&hf),
            "{}",
            String::from_utf8_lossy(&enc)
        );
    }
});
