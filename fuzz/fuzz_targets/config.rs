//! The config parser on arbitrary text: no panic, a valid config has a
//! host, and every error says where it is (line and column from 1).
//!
//! Input: the file's text.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match switchboard_config::parse(text, "fuzz.xml", Path::new("/srv/switchboard")) {
        Ok(config) => assert!(!config.hosts.is_empty(), "a config without a host"),
        Err(e) => {
            assert!(
                e.line >= 1 && e.col >= 1,
                "an error without a position: {e}"
            );
            assert!(e.to_string().starts_with("fuzz.xml:"), "{e}");
        }
    }
});
