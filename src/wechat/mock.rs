//! Dev mode: log any code in without WeChat.
//!
//! The openid is derived from the code (`sha256`), so the same code always
//! yields the same user and a newcomer can play with several users by
//! choosing codes. The config layer refuses mock mode on a non-loopback
//! address unless explicitly allowed, and start-up logs a loud warning.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use super::WeChatSession;
use crate::secret::Secret;

pub struct MockCode2Session;

impl MockCode2Session {
    pub fn exchange(&self, code: &str) -> WeChatSession {
        let digest = |label: &str| {
            Sha256::new()
                .chain_update(label)
                .chain_update(code)
                .finalize()
        };
        // Shaped like real ids: 28 characters starting with "o" (openid) or "u" (unionid).
        let mut openid = String::from("o");
        openid.push_str(&URL_SAFE_NO_PAD.encode(digest("wxgate-mock-openid:"))[..27]);
        let mut unionid = String::from("u");
        unionid.push_str(&URL_SAFE_NO_PAD.encode(digest("wxgate-mock-unionid:"))[..27]);
        WeChatSession {
            openid,
            unionid: Some(unionid),
            session_key: Secret::new(STANDARD.encode(&digest("wxgate-mock-key:")[..16])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_per_code() {
        let a = MockCode2Session.exchange("alice");
        assert_eq!(a.openid, MockCode2Session.exchange("alice").openid);
        assert_ne!(a.openid, MockCode2Session.exchange("bob").openid);
        assert_eq!(a.openid.len(), 28);
        assert_eq!(a.session_key.expose().len(), 24);
    }
}
