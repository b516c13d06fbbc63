//! `[assertion]`: the signed identity assertion wxgate puts on every
//! authenticated request it forwards (a JWT, RFC 7519, signed ES256), so a
//! backend can verify who the caller is instead of trusting a header.
//!
//! The keys are P-256 private keys in PEM files (`key_files`: PKCS#8
//! `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`, as `openssl ecparam` and
//! `openssl genpkey` write them); the first signs, all are published, so a
//! new key can be published one reload before it signs. Read at every
//! load: `check-config` refuses a key that is not P-256 (RSA, P-384,
//! Ed25519) by name, and a SIGHUP re-reads the files. No files: one key is
//! generated at start (fit for one replica only: each replica would sign
//! with its own).

// The typed sections' fields are their TOML keys, each documented once in
// docs/configuration.md (tests/it/docs.rs checks that every key the parser
// accepts is there): a doc comment per field would say it twice.
#![allow(missing_docs)]

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderName;
use p256::ecdsa::SigningKey;
use p256::pkcs8::DecodePrivateKey;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

use super::ConfigError;
use super::raw::RawAssertion;

/// The header the assertion travels in unless `assertion.header` says otherwise.
pub const DEFAULT_ASSERTION_HEADER: &str = "X-Wxgate-Assertion";

#[derive(Debug, Clone, PartialEq)]
pub struct AssertionConfig {
    pub header: HeaderName,
    /// `None`: `web.public_url`, else `"wxgate"` (resolved by [`Self::issuer_or`]).
    pub issuer: Option<String>,
    pub ttl: Duration,
    /// The keys of `key_files`, in order: the first signs. Empty: a key
    /// generated at start.
    pub keys: Vec<AssertionKey>,
}

impl AssertionConfig {
    /// `header`: `assertion.header`, checked with the identity headers.
    pub(super) fn from_raw(raw: RawAssertion, header: HeaderName) -> Result<Self, ConfigError> {
        let ttl = super::timeout("assertion.ttl", raw.ttl, "5m")?;
        if ttl < Duration::from_secs(30) || ttl > Duration::from_secs(24 * 3600) {
            return Err(ConfigError::invalid(
                "assertion.ttl",
                "must be between 30s and 24h: the token is reused until shortly before it \
                 expires, and a backend accepts it until then",
            ));
        }
        let issuer = raw.issuer.filter(|i| !i.is_empty());
        let mut keys = Vec::new();
        for path in raw.key_files.unwrap_or_default() {
            let key = AssertionKey::read(&path)?;
            if keys.iter().any(|k: &AssertionKey| k.kid == key.kid) {
                return Err(ConfigError::invalid(
                    "assertion.key_files",
                    format!("`{path}` holds a key listed already"),
                ));
            }
            keys.push(key);
        }
        Ok(Self {
            header,
            issuer,
            ttl,
            keys,
        })
    }

    /// The `iss` claim: `assertion.issuer`, else `public_url` (`[web]`),
    /// else `"wxgate"`.
    pub fn issuer_or(&self, public_url: Option<&str>) -> String {
        self.issuer
            .clone()
            .or_else(|| public_url.map(str::to_owned))
            .unwrap_or_else(|| "wxgate".to_owned())
    }
}

/// One P-256 key: it signs (the first of `key_files`) or is only published.
#[derive(Clone)]
pub struct AssertionKey {
    /// RFC 7638 thumbprint of the public key: the same key has the same
    /// `kid` on every replica.
    pub kid: String,
    pub signing: SigningKey,
    /// The public point's coordinates, base64url (the JWK's `x`, `y`).
    pub x: String,
    pub y: String,
}

impl fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the private key.
        f.debug_struct("AssertionKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl PartialEq for AssertionKey {
    fn eq(&self, other: &Self) -> bool {
        // The thumbprint names the public key, which names the private one.
        self.kid == other.kid
    }
}

/// What a PKCS#8 key that is not P-256 is, by its algorithm's OID.
fn pkcs8_kind(der: &[u8]) -> &'static str {
    let Ok(info) = p256::pkcs8::PrivateKeyInfo::try_from(der) else {
        return "a key that does not parse";
    };
    let curve = info
        .algorithm
        .parameters_oid()
        .map(|oid| oid.to_string())
        .unwrap_or_default();
    match (info.algorithm.oid.to_string().as_str(), curve.as_str()) {
        ("1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10", _) => "an RSA key",
        ("1.3.101.112" | "1.3.101.113", _) => "an Ed25519 or Ed448 key",
        ("1.2.840.10045.2.1", "1.3.132.0.34") => "an EC key on P-384",
        ("1.2.840.10045.2.1", "1.3.132.0.35") => "an EC key on P-521",
        ("1.2.840.10045.2.1", _) => "an EC key on another curve",
        _ => "a key of another kind",
    }
}

impl AssertionKey {
    /// The key in the PEM file at `path`.
    fn read(path: &str) -> Result<Self, ConfigError> {
        let key = "assertion.key_files";
        let pem = std::fs::read(path)
            .map_err(|e| ConfigError::invalid(key, format!("cannot read `{path}`: {e}")))?;
        let not_p256 = |what: &str| {
            ConfigError::invalid(
                key,
                format!(
                    "`{path}` holds {what}, not a P-256 private key: ES256 signs with P-256 \
                     (openssl ecparam -name prime256v1 -genkey -noout -out key.pem)"
                ),
            )
        };
        // The first private key in the file: `openssl ecparam -genkey`
        // writes an `EC PARAMETERS` block before it.
        let der = PrivateKeyDer::from_pem_slice(&pem)
            .map_err(|_| not_p256("no PEM private key (a certificate or a public key?)"))?;
        let secret = match &der {
            PrivateKeyDer::Pkcs1(_) => return Err(not_p256("an RSA key")),
            PrivateKeyDer::Sec1(sec1) => p256::SecretKey::from_sec1_der(sec1.secret_sec1_der())
                .map_err(|_| not_p256("an EC key on another curve"))?,
            PrivateKeyDer::Pkcs8(pkcs8) => {
                let der = pkcs8.secret_pkcs8_der();
                p256::SecretKey::from_pkcs8_der(der).map_err(|_| not_p256(pkcs8_kind(der)))?
            }
            _ => return Err(not_p256("a key of an unknown kind")),
        };
        Ok(Self::new(SigningKey::from(secret)))
    }

    /// A new random key (`[assertion]` without `key_files`).
    pub fn generate() -> Result<Self, getrandom::Error> {
        loop {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes)?;
            // Out of range (zero, or past the group order) once in 2^128 draws.
            if let Ok(signing) = SigningKey::from_slice(&bytes) {
                return Ok(Self::new(signing));
            }
        }
    }

    fn new(signing: SigningKey) -> Self {
        let point = signing.verifying_key().to_encoded_point(false);
        let coordinate =
            |c: Option<&p256::FieldBytes>| c.map(|c| URL_SAFE_NO_PAD.encode(c)).unwrap_or_default();
        let (x, y) = (coordinate(point.x()), coordinate(point.y()));
        // RFC 7638 §3.2: the required members, lexicographic, no spaces.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        Self { kid, signing, x, y }
    }
}
