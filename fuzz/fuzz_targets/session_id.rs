//! Session ids from the `X-Session-Id` header: any bytes, never a panic;
//! whatever parses is its own canonical encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wxgate::domain::session::SessionId;

fuzz_target!(|data: &[u8]| {
    if let Some(id) = SessionId::parse(data) {
        assert_eq!(id.encode().as_bytes(), data);
    }
});
