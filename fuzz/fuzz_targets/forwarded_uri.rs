//! `X-Forwarded-Uri` as a front proxy sends it: any text, never a panic;
//! a path comes out with no query or fragment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wxgate::domain::route::forwarded_path;

fuzz_target!(|data: &[u8]| {
    let Ok(uri) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(path) = forwarded_path(uri) {
        assert!(
            path.starts_with('/') && !path.contains(['?', '#']),
            "{uri:?}"
        );
    }
});
