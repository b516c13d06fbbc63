//! `encryptedData` and `iv` from a client: any text, never a panic, and
//! nothing but an error without the right key and watermark.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wxgate::config::secret::Secret;
use wxgate::domain::wechat::wxdata;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (encrypted, iv) = text.split_once('|').unwrap_or((text, ""));
    let key = Secret::new("MDEyMzQ1Njc4OWFiY2RlZg==");
    if let Ok(object) = wxdata::decrypt(&key, encrypted, iv, "wxapp") {
        // Only a real watermark gets through.
        assert_eq!(object["watermark"]["appid"], "wxapp");
    }
});
