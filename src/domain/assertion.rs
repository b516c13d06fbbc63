//! The signed identity assertion (`[assertion]`): a JWT (RFC 7519) signed
//! ES256 (RFC 7518 §3.4) that says who the session's user is, for one
//! backend (`aud`), so the backend can verify instead of trust — as
//! Pomerium's `X-Pomerium-Jwt-Assertion` and Oathkeeper's `id_token` do.
//!
//! Claims: `iss`, `aud` (the upstream's `audience`), `sub` (the bound user
//! id, else the openid), `iat`, `exp`, `jti`, and wxgate's own `appid`,
//! `openid`, `unionid` (when known), `user_id` (when bound), `kind`
//! (`miniprogram`, `official_account`, `website`) and `sid` (a hash of the
//! session id: it tells sessions apart and names none).
//!
//! Signing costs far more than the rest of a request, so a session signs
//! once per audience and reuses its token (the session's `TokenSlot`)
//! until [`REFRESH_BEFORE`] of its lifetime is left. The keys are
//! published as a JWKS (RFC 7517): [`Assertions::jwks`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use p256::ecdsa::Signature;
use p256::ecdsa::signature::Signer;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{AppKinds, AssertionConfig, AssertionKey, UpstreamConfig, WechatConfig};
use crate::domain::session::Resolved;

/// A token is re-signed once this share of its lifetime is left (a fifth,
/// at most a minute), so a backend never gets one about to expire.
pub const REFRESH_BEFORE: (u32, Duration) = (5, Duration::from_secs(60));

/// Every signer's number: a cached token made by another is not reused.
static SIGNERS: AtomicU64 = AtomicU64::new(1);

/// Why an assertion could not be made (the request is refused: a backend
/// that verifies would refuse it without one).
#[derive(Debug, Clone, thiserror::Error)]
#[allow(missing_docs)] // each variant's `#[error]` text describes it
pub enum AssertionError {
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
    #[error("signing failed")]
    Sign,
}

/// The signer of one config: its keys, claims' sources and JWKS.
pub struct Assertions {
    header: HeaderName,
    issuer: Box<str>,
    ttl: Duration,
    refresh_before: Duration,
    /// The first signs; all are published.
    keys: Vec<AssertionKey>,
    /// The signing key's JWT header, base64url.
    jwt_header: String,
    /// The `aud` of each upstream, by index.
    audiences: Vec<Box<str>>,
    kinds: AppKinds,
    jwks: Bytes,
    number: u64,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
    appid: &'a str,
    openid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    unionid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    kind: &'static str,
    sid: String,
}

impl Assertions {
    /// The signer of `config`; `generated`: the key made at start, which
    /// signs when `key_files` names none.
    pub fn new(
        config: &AssertionConfig,
        generated: &AssertionKey,
        upstreams: &[UpstreamConfig],
        apps: &[WechatConfig],
        public_url: Option<&str>,
    ) -> Self {
        let keys = if config.keys.is_empty() {
            vec![generated.clone()]
        } else {
            config.keys.clone()
        };
        let jwt_header = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"alg": "ES256", "kid": keys[0].kid, "typ": "JWT"}).to_string(),
        );
        let jwks = serde_json::json!({
            "keys": keys.iter().map(|k| serde_json::json!({
                "kty": "EC",
                "crv": "P-256",
                "x": k.x,
                "y": k.y,
                "kid": k.kid,
                "use": "sig",
                "alg": "ES256",
            })).collect::<Vec<_>>()
        });
        let (share, most) = REFRESH_BEFORE;
        Self {
            header: config.header.clone(),
            issuer: config.issuer_or(public_url).into(),
            ttl: config.ttl,
            refresh_before: (config.ttl / share).min(most),
            keys,
            jwt_header,
            audiences: upstreams
                .iter()
                .map(|u| u.audience.as_str().into())
                .collect(),
            kinds: AppKinds::new(apps),
            jwks: Bytes::from(jwks.to_string()),
            number: SIGNERS.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The header the assertion travels in.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// The JWKS (RFC 7517 §5): every key, the signing one first.
    pub fn jwks(&self) -> Bytes {
        self.jwks.clone()
    }

    /// The `kid` that signs.
    pub fn signing_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// The assertion of `session` for the upstream `audience` (its index):
    /// the session's cached one while it holds, else a new one, cached.
    pub fn token(
        &self,
        session: &Resolved,
        audience: usize,
    ) -> Result<HeaderValue, AssertionError> {
        let now = Instant::now();
        if let Some(slot) = &session.tokens
            && let Some(token) = slot.get(audience, self.number, &session.user, now)
        {
            return Ok(token);
        }
        let token = self.sign(session, audience, SystemTime::now())?;
        if let Some(slot) = &session.tokens {
            let refresh_at = now + self.ttl.saturating_sub(self.refresh_before);
            slot.put(
                audience,
                self.number,
                Arc::clone(&session.user),
                refresh_at,
                token.clone(),
            );
        }
        Ok(token)
    }

    fn sign(
        &self,
        session: &Resolved,
        audience: usize,
        now: SystemTime,
    ) -> Result<HeaderValue, AssertionError> {
        let user = &session.user;
        let iat = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(AssertionError::Random)?;
        let user_id = user.user_id().map(|id| id.as_str());
        let appid = user.appid();
        let kind = self.kinds.of(appid);
        let claims = Claims {
            iss: &self.issuer,
            aud: self.audiences.get(audience).map_or("", |a| a),
            sub: user_id.unwrap_or(user.openid()),
            iat,
            exp: iat + self.ttl.as_secs(),
            jti: URL_SAFE_NO_PAD.encode(jti),
            appid,
            openid: user.openid(),
            unionid: user.unionid(),
            user_id,
            kind: kind.as_str(),
            sid: URL_SAFE_NO_PAD.encode(&Sha256::digest(session.id.as_bytes())[..16]),
        };
        let body = serde_json::to_vec(&claims).map_err(|_| AssertionError::Sign)?;
        let mut token = String::with_capacity(self.jwt_header.len() + body.len() * 4 / 3 + 100);
        token.push_str(&self.jwt_header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&body, &mut token);
        let signature: Signature = self.keys[0]
            .signing
            .try_sign(token.as_bytes())
            .map_err(|_| AssertionError::Sign)?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
        HeaderValue::from_maybe_shared(Bytes::from(token)).map_err(|_| AssertionError::Sign)
    }
}
