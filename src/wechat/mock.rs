//! Dev mode: log any code in without WeChat.
//!
//! The openid is derived from the code (`sha256`), so the same code always
//! yields the same user and a newcomer can play with several users by
//! choosing codes; a phone-number code likewise yields a made-up number.
//! The config layer refuses mock mode on a non-loopback address unless
//! explicitly allowed, and start-up logs a loud warning.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use super::WeChatSession;
use crate::secret::Secret;
use crate::session::Phone;

pub struct MockWeChat;

fn digest(label: &str, code: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(label)
        .chain_update(code)
        .finalize()
        .into()
}

impl MockWeChat {
    pub fn code2session(&self, code: &str) -> WeChatSession {
        // Shaped like real ids: 28 characters starting with "o" (openid) or "u" (unionid).
        let mut openid = String::from("o");
        openid.push_str(&URL_SAFE_NO_PAD.encode(digest("wxgate-mock-openid:", code))[..27]);
        let mut unionid = String::from("u");
        unionid.push_str(&URL_SAFE_NO_PAD.encode(digest("wxgate-mock-unionid:", code))[..27]);
        WeChatSession {
            openid,
            unionid: Some(unionid),
            session_key: Secret::new(STANDARD.encode(&digest("wxgate-mock-key:", code)[..16])),
        }
    }

    pub fn phone_number(&self, code: &str) -> Phone {
        let digits: String = digest("wxgate-mock-phone:", code)[..8]
            .iter()
            .map(|b| char::from(b'0' + b % 10))
            .collect();
        let number = format!("138{digits}");
        Phone {
            phone_number: number.clone(),
            pure_phone_number: number,
            country_code: "86".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_per_code() {
        let a = MockWeChat.code2session("alice");
        assert_eq!(a.openid, MockWeChat.code2session("alice").openid);
        assert_ne!(a.openid, MockWeChat.code2session("bob").openid);
        assert_eq!(a.openid.len(), 28);
        assert_eq!(a.session_key.expose().len(), 24);
        assert_eq!(MockWeChat.phone_number("x").phone_number.len(), 11);
    }
}
