//! How sessions and users are written in Redis.
//!
//! - A session lives at `prefix + "s:" + hex(sha256(session id))`: a dump
//!   or `MONITOR` shows no usable session id. Its value is the openid, the
//!   absolute expiry and the user's generation when it was opened; Redis's
//!   own expiry enforces the idle timeout.
//! - A user lives at `prefix + "u:" + key`, as JSON, where the key is the
//!   openid for the `[wechat]` app (the single-app layout, unchanged) and
//!   `appid:openid` for `[[apps]]` entries, whose records also name their
//!   `app`; `gen` is raised by
//!   an operator's revocation, which ends every session of an older one.
//!   With a store key (`WXGATE_STORE_KEY`), the session_key, phone number,
//!   bound user id and WeChat profile (`prof`) are sealed with
//!   AES-256-GCM, a fresh random nonce per write, the user key and field
//!   name as associated data (a sealed value cannot be moved to another
//!   user, or to the same openid in another app).
//!   `kid`, a fingerprint of the session_key, lets a Lua script compare
//!   keys without seeing them. Timestamps are strings: Lua's cjson would
//!   print large numbers in exponent form.
//!
//! - A value the fleet shares (`fleet_secrets`) lives at `prefix + "c:" +
//!   name`, sealed the same way (the name and `v` as associated data).
//!
//! A record that fails to parse or to unseal is treated as missing (the
//! user logs in again), never as a crash.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::StoreKey;
use crate::config::secret::Secret;
use crate::domain::session::{AppTag, BoundId, Phone, SessionId, StoreError, UserRecord};

const SEALED: &str = "v1:";

#[derive(Serialize, Deserialize)]
pub(super) struct StoredSession {
    /// The user's key (the openid in the single-app layout).
    pub o: String,
    /// Absolute expiry, unix milliseconds.
    pub e: u64,
    /// The user's generation when the session was opened.
    #[serde(default)]
    pub g: u32,
}

#[derive(Serialize, Deserialize)]
struct StoredUser {
    /// The AppID, for records not in the single-app layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app: Option<String>,
    openid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unionid: Option<String>,
    key: String,
    kid: String,
    login: String,
    #[serde(default)]
    stale: bool,
    #[serde(default, rename = "gen")]
    generation: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phone: Option<String>,
    /// The bound user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uid: Option<String>,
    /// The WeChat profile, as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prof: Option<String>,
}

#[derive(Clone)]
pub(super) struct Codec {
    prefix: String,
    cipher: Option<Aes256Gcm>,
    /// The configured apps: a record of any other is treated as missing
    /// (its app was removed from the config). The one whose records carry
    /// no `app` is the `[wechat]` app.
    apps: Vec<AppTag>,
}

/// Hex of sha256(session id): the session's name in Redis and on the wire.
pub(super) fn session_hash(id: &SessionId) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fingerprint of a session_key, safe to store beside it.
pub(super) fn key_id(key: &Secret) -> String {
    hex(&Sha256::digest(key.expose().as_bytes())[..12])
}

impl Codec {
    pub(super) fn new(prefix: &str, key: Option<&StoreKey>, apps: Vec<AppTag>) -> Self {
        Self {
            prefix: prefix.to_owned(),
            cipher: key.and_then(|k| Aes256Gcm::new_from_slice(&k.0).ok()),
            apps,
        }
    }

    pub(super) fn session_key(&self, hash: &[u8; 32]) -> String {
        format!("{}s:{}", self.prefix, hex(hash))
    }

    /// A browser login in flight (`session::pending`), by its state's hash.
    pub(super) fn pending_key(&self, hash: &[u8; 32]) -> String {
        format!("{}p:{}", self.prefix, hex(hash))
    }

    pub(super) fn user_key(&self, key: &str) -> String {
        format!("{}u:{key}", self.prefix)
    }

    /// A value the fleet shares (`fleet_secrets`): an app's access token, its jsapi_ticket.
    pub(super) fn fleet_key(&self, name: &str) -> String {
        format!("{}c:{name}", self.prefix)
    }

    pub(super) fn channel(&self) -> String {
        format!("{}revoke", self.prefix)
    }

    pub(super) fn session(&self, user: &UserRecord, expires_ms: u64) -> String {
        serde_json::to_string(&StoredSession {
            o: user.key().to_owned(),
            e: expires_ms,
            g: user.generation,
        })
        .unwrap_or_default()
    }

    pub(super) fn parse_session(&self, text: &str) -> Option<StoredSession> {
        serde_json::from_str(text).ok()
    }

    pub(super) fn user(&self, user: &UserRecord) -> Result<String, StoreError> {
        let openid = user.key();
        let login = user.last_login;
        let app = user.app();
        let stored = StoredUser {
            app: (!app.single_app_keys()).then(|| app.appid().to_owned()),
            openid: user.openid().to_owned(),
            unionid: user.unionid().map(str::to_owned),
            key: self.seal(openid, "key", user.session_key.expose())?,
            kid: key_id(&user.session_key),
            login: login.to_string(),
            stale: user.key_stale,
            generation: user.generation,
            phone: user
                .phone
                .as_ref()
                .map(|p| self.phone(openid, p))
                .transpose()?,
            uid: user
                .user_id()
                .map(|id| self.user_id(openid, id))
                .transpose()?,
            prof: user
                .profile
                .as_ref()
                .map(|p| {
                    let json = serde_json::to_string(p)
                        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                    self.seal(openid, "prof", &json)
                })
                .transpose()?,
        };
        serde_json::to_string(&stored).map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// The phone field of the record under `key`, as stored (sealed when a store key is set).
    pub(super) fn phone(&self, key: &str, phone: &Phone) -> Result<String, StoreError> {
        let json =
            serde_json::to_string(phone).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        self.seal(key, "phone", &json)
    }

    /// The bound-id field as stored (sealed when a store key is set).
    pub(super) fn user_id(&self, key: &str, id: &BoundId) -> Result<String, StoreError> {
        self.seal(key, "uid", id.as_str())
    }

    /// `None` when the record is unreadable: treated as missing.
    pub(super) fn parse_user(&self, text: &str) -> Option<UserRecord> {
        let stored: StoredUser = serde_json::from_str(text).ok()?;
        // No `app`: the single-app layout, the `[wechat]` app's.
        let single = stored.app.is_none();
        let appid = stored.app.as_deref();
        let app = self.apps.iter().find(|app| {
            app.single_app_keys() == single && (single || Some(app.appid()) == appid)
        })?;
        let user_key = app.user_key(&stored.openid);
        let key = self.open(&user_key, "key", &stored.key)?;
        let mut user = UserRecord::new(
            app,
            &stored.openid,
            stored.unionid.as_deref(),
            Secret::new(key),
        )
        .ok()?;
        user.last_login = stored.login.parse().unwrap_or(0);
        user.key_stale = stored.stale;
        user.generation = stored.generation;
        // Unreadable: the user is bound again at the next login.
        if let Some(id) = stored
            .uid
            .and_then(|id| self.open(&user_key, "uid", &id))
            .and_then(|id| BoundId::new(&id))
        {
            user = user.bound_to(id);
        }
        // An unreadable phone (say, sealed under a retired store key) is dropped, not fatal.
        user.phone = stored
            .phone
            .and_then(|p| self.open(&user_key, "phone", &p))
            .and_then(|json| serde_json::from_str(&json).ok())
            .map(Box::new);
        user.profile = stored
            .prof
            .and_then(|p| self.open(&user_key, "prof", &p))
            .and_then(|json| serde_json::from_str(&json).ok())
            .map(Box::new);
        Some(user)
    }

    /// `key` (the user key) and `field` are the associated data.
    pub(super) fn seal(
        &self,
        key: &str,
        field: &str,
        plaintext: &str,
    ) -> Result<String, StoreError> {
        let Some(cipher) = &self.cipher else {
            return Ok(plaintext.to_owned());
        };
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(StoreError::Random)?;
        let aad = format!("{key}/{field}");
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Unavailable("sealing failed".to_owned()))?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("{SEALED}{}", STANDARD.encode(bytes)))
    }

    pub(super) fn open(&self, key: &str, field: &str, stored: &str) -> Option<String> {
        match (&self.cipher, stored.strip_prefix(SEALED)) {
            (None, None) => Some(stored.to_owned()),
            (Some(cipher), Some(encoded)) => {
                let bytes = STANDARD.decode(encoded).ok()?;
                if bytes.len() < 12 {
                    return None;
                }
                let (nonce, sealed) = bytes.split_at(12);
                let aad = format!("{key}/{field}");
                let plain = cipher
                    .decrypt(
                        Nonce::from_slice(nonce),
                        Payload {
                            msg: sealed,
                            aad: aad.as_bytes(),
                        },
                    )
                    .ok()?;
                String::from_utf8(plain).ok()
            }
            // Sealed without a key to open it, or plaintext where sealing is required.
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apps() -> Vec<AppTag> {
        vec![AppTag::new("wxone", true), AppTag::new("wxshop", false)]
    }

    fn user() -> UserRecord {
        user_of(&AppTag::new("wxone", true))
    }

    fn user_of(app: &AppTag) -> UserRecord {
        let mut u = UserRecord::new(
            app,
            "o1",
            Some("u1"),
            Secret::new("c2Vzc2lvbmtleTEyMzQ1Ng=="),
        )
        .unwrap();
        u.phone = Some(Box::new(Phone {
            phone_number: "13800138000".into(),
            pure_phone_number: "13800138000".into(),
            country_code: "86".into(),
        }));
        u.generation = 3;
        u.bound_to(BoundId::new("member-1042").unwrap())
    }

    #[test]
    fn round_trip_plain_and_sealed() {
        for key in [None, Some(StoreKey([7; 32]))] {
            let codec = Codec::new("p:", key.as_ref(), apps());
            let text = codec.user(&user()).unwrap();
            assert_eq!(
                text.contains("c2Vzc2lvbmtleTEyMzQ1Ng=="),
                key.is_none(),
                "{text}"
            );
            assert_eq!(text.contains("13800138000"), key.is_none(), "{text}");
            assert_eq!(text.contains("member-1042"), key.is_none(), "{text}");
            let back = codec.parse_user(&text).unwrap();
            assert_eq!(back.user_id(), user().user_id());
            assert_eq!(back.generation, 3);
            assert_eq!(back.session_key, user().session_key);
            assert_eq!(back.phone, user().phone);
            assert_eq!(back.unionid(), Some("u1"));
        }
    }

    #[test]
    fn unreadable_records_are_missing_not_errors() {
        let sealed = Codec::new("p:", Some(&StoreKey([7; 32])), apps());
        let text = sealed.user(&user()).unwrap();
        assert!(
            Codec::new("p:", Some(&StoreKey([8; 32])), apps())
                .parse_user(&text)
                .is_none()
        );
        assert!(Codec::new("p:", None, apps()).parse_user(&text).is_none());
        let plain = Codec::new("p:", None, apps()).user(&user()).unwrap();
        assert!(sealed.parse_user(&plain).is_none());
        assert!(sealed.parse_user("{not json").is_none());
        // A sealed key moved to another user's record does not open.
        let moved = text.replace("\"openid\":\"o1\"", "\"openid\":\"o2\"");
        assert!(sealed.parse_user(&moved).is_none());
    }

    #[test]
    fn records_of_other_apps_carry_their_app() {
        let shop = AppTag::new("wxshop", false);
        for store_key in [None, Some(StoreKey([7; 32]))] {
            let codec = Codec::new("p:", store_key.as_ref(), apps());
            let text = codec.user(&user_of(&shop)).unwrap();
            assert!(text.contains("\"app\":\"wxshop\""), "{text}");
            let back = codec.parse_user(&text).unwrap();
            assert_eq!(
                (back.appid(), back.openid(), back.key()),
                ("wxshop", "o1", "wxshop:o1")
            );
            assert_eq!(back.user_id(), user().user_id());
            // The single-app layout writes no app, and reads back as the [wechat] app.
            let text = codec.user(&user()).unwrap();
            assert!(!text.contains("\"app\""), "{text}");
            let back = codec.parse_user(&text).unwrap();
            assert_eq!((back.appid(), back.key()), ("wxone", "o1"));
            // Without a [wechat] app, such a record belongs to no configured app;
            // nor does one of an app removed from the config.
            let shop_only = Codec::new("p:", store_key.as_ref(), vec![shop.clone()]);
            assert!(shop_only.parse_user(&text).is_none());
            let one_only = Codec::new("p:", store_key.as_ref(), vec![AppTag::new("wxone", true)]);
            assert!(
                one_only
                    .parse_user(&codec.user(&user_of(&shop)).unwrap())
                    .is_none()
            );
        }
        // Sealed under one app, a record moved to another does not open.
        let sealed = Codec::new("p:", Some(&StoreKey([7; 32])), apps());
        let text = sealed.user(&user_of(&shop)).unwrap();
        let moved = text.replace("\"app\":\"wxshop\"", "\"app\":\"wxclub\"");
        assert!(sealed.parse_user(&moved).is_none());
    }

    #[test]
    fn nonces_differ_per_write() {
        let codec = Codec::new("p:", Some(&StoreKey([7; 32])), apps());
        assert_ne!(codec.user(&user()).unwrap(), codec.user(&user()).unwrap());
    }
}
