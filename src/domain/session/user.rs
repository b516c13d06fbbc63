//! The user record: what wxgate knows about a WeChat user (its app, ids,
//! current session_key, bound business id, phone, profile), and the
//! changes a store applies to it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderValue;

use crate::config::secret::Secret;

/// What wxgate knows about a WeChat user.
///
/// Compact on purpose: the memory store holds one per user, a million of
/// them in a large deployment. The ids are checked visible ASCII at
/// construction, so they always make valid header values; the store key
/// (which ends with the openid) is an `Arc` that the store's user index
/// and every session share, as is the AppID; the phone number, which few
/// records carry, is boxed.
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// [`AppTag::user_key`]: `openid`, or `appid:openid`.
    key: Arc<str>,
    /// Where the openid starts in `key` (0 in the single-app layout).
    openid_at: u8,
    app: Arc<str>,
    unionid: Option<Box<str>>,
    /// The business system's own id for the user (`[binding]`), once bound.
    user_id: Option<BoundId>,
    /// The key of the user's newest login (empty for a browser's).
    pub session_key: Secret,
    /// Milliseconds since the Unix epoch (8 bytes rather than `SystemTime`'s 16).
    pub last_login: u64,
    /// WeChat said (checksession 87009) that `session_key` is no longer valid.
    pub key_stale: bool,
    /// Raised by an operator's "log this user out everywhere": a session
    /// opened under an older generation no longer resolves. (The memory
    /// store retires the user's slot instead; Redis compares generations.)
    pub generation: u32,
    /// The phone number, once known.
    pub phone: Option<Box<Phone>>,
    /// The WeChat profile (official accounts' `snsapi_userinfo` logins);
    /// never logged.
    pub profile: Option<Box<Profile>>,
}

/// The app a user record belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppTag {
    appid: Arc<str>,
    /// The `[wechat]` app: records keyed by openid alone, as when wxgate
    /// served one app, so stored sessions survive adding `[[apps]]`.
    single_app_keys: bool,
}

impl AppTag {
    /// `appid` is alphanumeric and at most [`crate::config::APPID_MAX`] long (checked at load).
    pub fn new(appid: &str, single_app_keys: bool) -> Self {
        Self {
            appid: Arc::from(appid),
            single_app_keys,
        }
    }

    /// The tag of a configured app.
    pub fn of(config: &crate::config::WechatConfig) -> Self {
        Self::new(&config.appid, config.single_app_keys)
    }

    /// The user's app.
    pub fn appid(&self) -> &str {
        &self.appid
    }

    /// The user's app, shared.
    pub fn appid_shared(&self) -> &Arc<str> {
        &self.appid
    }

    /// Whether this is the `[wechat]` app, whose records are keyed by the
    /// openid alone.
    pub fn single_app_keys(&self) -> bool {
        self.single_app_keys
    }

    /// The store key of the record of `openid` in this app: the openid
    /// itself in the single-app layout, else `appid:openid` (an openid has
    /// no `:`, so keys of different apps never meet).
    pub fn user_key(&self, openid: &str) -> String {
        if self.single_app_keys {
            openid.to_owned()
        } else {
            format!("{}:{openid}", self.appid)
        }
    }
}

/// A bound user id as the binding endpoint gave it: 1 to 128 visible ASCII
/// bytes, so it always makes a valid header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundId(Box<str>);

impl BoundId {
    /// The longest id accepted.
    pub const MAX_LEN: usize = 128;

    /// `id`, when it is 1 to [`Self::MAX_LEN`] visible ASCII characters.
    pub fn new(id: &str) -> Option<Self> {
        let fits = (1..=Self::MAX_LEN).contains(&id.len());
        (fits && id.bytes().all(|b| b.is_ascii_graphic())).then(|| Self(Box::from(id)))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user's phone number, as WeChat reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Phone {
    /// With the country code for numbers outside mainland China.
    pub phone_number: String,
    /// The number without the country code.
    pub pure_phone_number: String,
    /// The country code, without `+`.
    pub country_code: String,
}

impl Phone {
    /// The header form of the number; `None` if it is not printable ASCII.
    pub fn header_value(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&self.phone_number).ok()
    }
}

/// A user's public WeChat profile (`sns/userinfo`), as WeChat gives it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    #[serde(default)]
    /// The WeChat nickname.
    pub nickname: String,
    #[serde(default)]
    /// The avatar's URL.
    pub headimgurl: String,
}

/// A change to a stored user record.
#[derive(Debug, Clone)]
pub enum UserUpdate {
    /// Keep this phone number.
    SetPhone(Phone),
    /// The user's bound id, from the binding endpoint.
    SetUserId(BoundId),
    /// Marks the key stale, but only if it is still `key`: a login that
    /// raced ahead with a fresh key must not be undone.
    KeyStale {
        /// The key WeChat declared invalid (a newer one stays).
        key: Secret,
    },
}

impl UserUpdate {
    /// Applies the update; `false` when it changes nothing.
    pub fn apply(&self, user: &mut UserRecord) -> bool {
        match self {
            Self::SetPhone(phone) => {
                let changed = user.phone.as_deref() != Some(phone);
                user.phone = Some(Box::new(phone.clone()));
                changed
            }
            Self::SetUserId(id) => {
                let changed = user.user_id.as_ref() != Some(id);
                user.user_id = Some(id.clone());
                changed
            }
            Self::KeyStale { key } => {
                let applies = user.session_key == *key && !user.key_stale;
                user.key_stale |= applies;
                applies
            }
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("WeChat returned an {0} outside [A-Za-z0-9_-]{{1,128}}")]
/// An openid or unionid outside `[A-Za-z0-9_-]{1,128}`.
pub struct InvalidIdentity(&'static str);

impl UserRecord {
    /// A record for a new login; refused when an id is malformed.
    pub fn new(
        app: &AppTag,
        openid: &str,
        unionid: Option<&str>,
        session_key: Secret,
    ) -> Result<Self, InvalidIdentity> {
        // WeChat's ids are of this alphabet; anything else (a `:` above
        // all) would collide with the per-app record key `appid:openid`.
        fn check<'a>(value: &'a str, what: &'static str) -> Result<&'a str, InvalidIdentity> {
            let valid = (1..=128).contains(&value.len())
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return Err(InvalidIdentity(what));
            }
            Ok(value)
        }
        let openid = check(openid, "openid")?;
        let openid_at = if app.single_app_keys {
            0
        } else {
            // An AppID is at most APPID_MAX (64) bytes, checked at load.
            u8::try_from(app.appid.len() + 1).map_err(|_| InvalidIdentity("appid"))?
        };
        Ok(Self {
            key: Arc::from(app.user_key(openid)),
            openid_at,
            app: app.appid.clone(),
            unionid: unionid
                .map(|u| check(u, "unionid").map(Box::from))
                .transpose()?,
            user_id: None,
            session_key,
            last_login: now_ms(),
            key_stale: false,
            generation: 0,
            phone: None,
            profile: None,
        })
    }

    /// This record after a new login: the new key and unionid; the old
    /// phone, bound id and generation.
    pub fn merged_into(&self, mut newer: UserRecord) -> UserRecord {
        if newer.phone.is_none() {
            newer.phone = self.phone.clone();
        }
        if newer.profile.is_none() {
            newer.profile = self.profile.clone();
        }
        if newer.unionid.is_none() {
            newer.unionid = self.unionid.clone();
        }
        if newer.user_id.is_none() {
            newer.user_id = self.user_id.clone();
        }
        newer.generation = self.generation;
        newer
    }

    /// The business system's id for the user, once bound.
    pub fn user_id(&self) -> Option<&BoundId> {
        self.user_id.as_ref()
    }

    /// This record, bound to `id` (a login that has just been bound).
    pub fn bound_to(mut self, id: BoundId) -> Self {
        self.user_id = Some(id);
        self
    }

    /// The user's openid.
    pub fn openid(&self) -> &str {
        &self.key[usize::from(self.openid_at)..]
    }

    /// The key the stores file this record under ([`AppTag::user_key`]).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The key as the memory store shares it between its indexes.
    pub(crate) fn key_shared(&self) -> &Arc<str> {
        &self.key
    }

    /// The AppID of the app the user logged in to.
    pub fn appid(&self) -> &str {
        &self.app
    }

    /// The user's app.
    pub fn app(&self) -> AppTag {
        AppTag {
            appid: self.app.clone(),
            single_app_keys: self.openid_at == 0,
        }
    }

    /// The user's unionid, when WeChat gave one.
    pub fn unionid(&self) -> Option<&str> {
        self.unionid.as_deref()
    }
}

/// Now, in milliseconds since the Unix epoch (0 for a clock set before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
