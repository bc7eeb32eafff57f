//! Spool header files as read back from disk (a corrupt or hostile file
//! in the spool): decoding and checking the end line's seal never panic,
//! what decodes encodes to a file that decodes to the same, and that file
//! sealed is whole for its message and for no other.
#![no_main]

use libfuzzer_sys::fuzz_target;
use masqmail::queue::spoolfile::{check_seal, seal, Seal};
use masqmail::queue::HeaderFile;

const ID: &str = "1xWN7m166R-00vI";

fuzz_target!(|data: &[u8]| {
    let _ = check_seal(data, ID);
    if let Ok(hf) = HeaderFile::decode(data) {
        let mut enc = hf.encode();
        assert_eq!(
            HeaderFile::decode(&enc).as_ref(),
            Ok(&hf),
            "{}",
            String::from_utf8_lossy(&enc)
        );
        seal(&mut enc, ID);
        assert_eq!(check_seal(&enc, ID), Seal::Whole);
        assert!(matches!(check_seal(&enc, "1xWN7m166R-00vJ"), Seal::Broken(_)));
        assert_eq!(HeaderFile::decode(&enc).as_ref(), Ok(&hf));
    }
});
