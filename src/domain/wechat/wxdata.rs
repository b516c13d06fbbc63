//! WeChat's user-data cryptography: what only the session_key can do.
//!
//! - Encrypted data (`wx.getUserProfile`, legacy `getPhoneNumber`, WeRun,
//!   share info): AES-128-CBC with PKCS#7, key = base64-decoded session_key,
//!   16-byte iv, plaintext a JSON object carrying `watermark.appid`.
//! - `rawData` signature: `hex(sha1(rawData + session_key))`.
//! - `checksession` signature: `hex(hmac_sha256(key = the session_key's
//!   base64 TEXT, message = ""))` — the text, not the decoded bytes.
//!
//! Every failure after the input is known to be well-formed — bad padding,
//! plaintext that is not a JSON object — is one error, [`DecryptError::Stale`]:
//! different answers for padding and parsing would be a padding oracle.
//! In practice it means the data was encrypted with a newer session_key.

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::secret::Secret;
use crate::domain::session::Phone;

type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[allow(missing_docs)] // each variant's `#[error]` text describes it
pub enum DecryptError {
    /// The request itself is wrong (bad base64, iv length, block length).
    #[error("{0}")]
    Malformed(&'static str),
    /// Well-formed input that does not decrypt to a JSON object with this key.
    #[error("the data does not decrypt with the user's current session_key")]
    Stale,
    /// It decrypted, but for another mini-program.
    #[error("the data's watermark names another AppID")]
    WatermarkMismatch,
}

/// Decrypts `encrypted_data` and checks that its watermark names `appid`.
pub fn decrypt(
    session_key: &Secret,
    encrypted_data: &str,
    iv: &str,
    appid: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, DecryptError> {
    let ciphertext = STANDARD
        .decode(encrypted_data)
        .map_err(|_| DecryptError::Malformed("encryptedData is not valid base64"))?;
    let iv = STANDARD
        .decode(iv)
        .map_err(|_| DecryptError::Malformed("iv is not valid base64"))?;
    if iv.len() != 16 {
        return Err(DecryptError::Malformed("iv must decode to 16 bytes"));
    }
    if ciphertext.is_empty() || ciphertext.len() % 16 != 0 {
        return Err(DecryptError::Malformed(
            "encryptedData must decode to a non-empty multiple of 16 bytes",
        ));
    }
    // A session_key that is not 16 bytes of base64 cannot decrypt anything:
    // the user must log in again, exactly as with a rotated key.
    let key = STANDARD
        .decode(session_key.expose())
        .map_err(|_| DecryptError::Stale)?;
    let cipher = Aes128CbcDec::new_from_slices(&key, &iv).map_err(|_| DecryptError::Stale)?;
    let plaintext = cipher
        .decrypt_padded_vec_mut::<Pkcs7>(&ciphertext)
        .map_err(|_| DecryptError::Stale)?;
    let serde_json::Value::Object(object) =
        serde_json::from_slice(&plaintext).map_err(|_| DecryptError::Stale)?
    else {
        return Err(DecryptError::Stale);
    };
    let watermark = object
        .get("watermark")
        .and_then(|w| w.get("appid"))
        .and_then(|a| a.as_str());
    if watermark != Some(appid) {
        return Err(DecryptError::WatermarkMismatch);
    }
    Ok(object)
}

/// The phone number in a decrypted `getPhoneNumber` payload or a
/// `getuserphonenumber` `phone_info`: `phoneNumber`, `purePhoneNumber`,
/// `countryCode` (documented as a string, seen as a number too).
pub fn phone_of(object: &serde_json::Map<String, serde_json::Value>) -> Option<Phone> {
    let text = |key: &str| match object.get(key)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let phone = Phone {
        phone_number: text("phoneNumber")?,
        pure_phone_number: text("purePhoneNumber").unwrap_or_default(),
        country_code: text("countryCode").unwrap_or_default(),
    };
    // It may become a header value: printable ASCII only.
    phone.header_value().is_some().then_some(phone)
}

/// Whether `signature` is `hex(sha1(raw_data + session_key))`, compared in
/// constant time.
pub fn signature_matches(raw_data: &str, session_key: &Secret, signature: &str) -> bool {
    let expected = hex(&Sha1::new()
        .chain_update(raw_data)
        .chain_update(session_key.expose())
        .finalize());
    let given = signature.to_ascii_lowercase();
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

/// The `signature` parameter of `wxa/checksession`.
pub fn checksession_signature(session_key: &Secret) -> String {
    hmac_sha256_hex(session_key.expose().as_bytes(), b"")
}

fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(message);
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // The official WXBizDataCrypt demo vector.
    const APPID: &str = "wx4f4bc4dec97d474b";
    const SESSION_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
    const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
    const ENCRYPTED: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";
    const PLAINTEXT: &str = r#"{"openId":"oGZUI0egBJY1zhBYw2KhdUfwVJJE","nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/aSKcBBPpibyKNicHNTMM0qJVh8Kjgiak2AHWr8MHM4WgMEm7GFhsf8OYrySdbvAMvTsw3mo8ibKicsnfN5pRjl1p8HQ/0","unionId":"ocMvos6NjeKLIBqg5Mr9QjxrP1FA","watermark":{"timestamp":1477314187,"appid":"wx4f4bc4dec97d474b"}}"#;

    fn key(k: &str) -> Secret {
        Secret::new(k)
    }

    #[test]
    fn official_demo_vector_decrypts() {
        let object = decrypt(&key(SESSION_KEY), ENCRYPTED, IV, APPID).unwrap();
        let expected: serde_json::Value = serde_json::from_str(PLAINTEXT).unwrap();
        assert_eq!(serde_json::Value::Object(object), expected);
        assert_eq!(PLAINTEXT.len(), 393);
    }

    #[test]
    fn foreign_watermark() {
        assert_eq!(
            decrypt(&key(SESSION_KEY), ENCRYPTED, IV, "wxsomeoneelse"),
            Err(DecryptError::WatermarkMismatch)
        );
    }

    #[test]
    fn wrong_key_is_one_uniform_error() {
        // Another valid 16-byte key: padding fails (or, rarely, JSON does) —
        // either way the same answer.
        for other in [
            "AAAAAAAAAAAAAAAAAAAAAA==",
            "HyVFkGl5F5OQWJZZaNzBBg==",
            "o0q0otL8aEzpcZL/FT9WsQ==",
        ] {
            assert_eq!(
                decrypt(&key(other), ENCRYPTED, IV, APPID),
                Err(DecryptError::Stale)
            );
        }
        // A wrong iv corrupts only the first block: padding passes, JSON fails.
        assert_eq!(
            decrypt(
                &key(SESSION_KEY),
                ENCRYPTED,
                "AAAAAAAAAAAAAAAAAAAAAA==",
                APPID
            ),
            Err(DecryptError::Stale)
        );
        // A session_key that is not a 16-byte key.
        assert_eq!(
            decrypt(&key("c2hvcnQ="), ENCRYPTED, IV, APPID),
            Err(DecryptError::Stale)
        );
    }

    #[test]
    fn malformed_input_is_rejected_before_decrypting() {
        let cases = [
            ("not base64!", IV),
            (ENCRYPTED, "not base64!"),
            (ENCRYPTED, "AAAA"),
            ("", IV),
            ("AAAAAAAAAAAAAAAAAAAA", IV), // 15 bytes
        ];
        for (data, iv) in cases {
            assert!(
                matches!(
                    decrypt(&key(SESSION_KEY), data, iv, APPID),
                    Err(DecryptError::Malformed(_))
                ),
                "{data:.20} / {iv}"
            );
        }
    }

    #[test]
    fn phone_numbers_in_both_shapes() {
        let object = |v: serde_json::Value| v.as_object().unwrap().clone();
        let phone = phone_of(&object(serde_json::json!({
            "phoneNumber": "+1 2025550123", "purePhoneNumber": "2025550123", "countryCode": "1"
        })))
        .unwrap();
        assert_eq!(phone.country_code, "1");
        let numeric = phone_of(&object(
            serde_json::json!({"phoneNumber": "13800138000", "countryCode": 86}),
        ))
        .unwrap();
        assert_eq!(numeric.country_code, "86");
        assert!(phone_of(&object(serde_json::json!({"purePhoneNumber": "1"}))).is_none());
        assert!(phone_of(&object(serde_json::json!({"phoneNumber": "+86 138"}))).is_some());
        assert!(phone_of(&object(serde_json::json!({"phoneNumber": "138\n00"}))).is_none());
    }

    #[test]
    fn raw_data_signature_documented_example() {
        let raw = r#"{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}"#;
        let k = key("HyVFkGl5F5OQWJZZaNzBBg==");
        assert!(signature_matches(
            raw,
            &k,
            "75e81ceda165f4ffa64f4068af58c64b8f54b88c"
        ));
        assert!(signature_matches(
            raw,
            &k,
            "75E81CEDA165F4FFA64F4068AF58C64B8F54B88C"
        ));
        assert!(!signature_matches(
            raw,
            &k,
            "75e81ceda165f4ffa64f4068af58c64b8f54b88d"
        ));
        assert!(!signature_matches(raw, &k, ""));
        assert!(!signature_matches(
            &raw.replace("Band", "Bond"),
            &k,
            "75e81ceda165f4ffa64f4068af58c64b8f54b88c"
        ));
    }

    #[test]
    fn hmac_documented_example_uses_the_key_text() {
        let text_key = "o0q0otL8aEzpcZL/FT9WsQ==";
        assert_eq!(
            hmac_sha256_hex(text_key.as_bytes(), br#"{"foo":"bar"}"#),
            "654571f79995b2ce1e149e53c0a33dc39c0a74090db514261454e8dbe432aa0b"
        );
        let decoded = STANDARD.decode(text_key).unwrap();
        assert_ne!(
            hmac_sha256_hex(&decoded, br#"{"foo":"bar"}"#),
            "654571f79995b2ce1e149e53c0a33dc39c0a74090db514261454e8dbe432aa0b"
        );
        assert_eq!(
            checksession_signature(&key(text_key)),
            hmac_sha256_hex(text_key.as_bytes(), b"")
        );
    }
}
