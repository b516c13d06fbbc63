//! `server.tls_cert_file` / `server.tls_key_file`: the certificate (a PEM
//! chain, leaf first) and private key (PKCS#8, PKCS#1 RSA or SEC1 EC) wxgate
//! answers TLS handshakes with. Both files are read and checked when the
//! config loads — at start (`check-config` too) and on every SIGHUP — so a
//! missing file, an unreadable one, a key that does not match the
//! certificate or an expired certificate is a clear error, and a reload with one is refused whole
//! while the running certificate keeps serving (cert-manager renews a
//! mounted Secret in place; SIGHUP swaps it for new handshakes).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::ConfigError;

const CERT: &str = "server.tls_cert_file";
const KEY: &str = "server.tls_key_file";

/// The listener's TLS identity, as loaded from its files.
#[derive(Clone)]
pub struct ServerTls {
    /// `server.tls_cert_file`.
    pub cert_file: PathBuf,
    /// `server.tls_key_file`.
    pub key_file: PathBuf,
    /// The chain and its signing key, for rustls.
    pub identity: Arc<CertifiedKey>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("ServerTls")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ServerTls {
    fn eq(&self, other: &Self) -> bool {
        self.cert_file == other.cert_file
            && self.key_file == other.key_file
            && self.identity.cert == other.identity.cert
    }
}

impl ServerTls {
    /// `None` when neither key is set; both or neither.
    pub(super) fn from_raw(
        cert: Option<String>,
        key: Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let (cert_file, key_file) = match (cert, key) {
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => (PathBuf::from(cert), PathBuf::from(key)),
            (Some(_), None) => {
                return Err(ConfigError::invalid(KEY, "is required with tls_cert_file"));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(CERT, "is required with tls_key_file"));
            }
        };
        let chain = read_chain(CERT, &cert_file)?;
        let key = read_key(KEY, &key_file)?;
        let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|_| {
            ConfigError::invalid(KEY, "is not an RSA, ECDSA (P-256, P-384) or Ed25519 key")
        })?;
        // An expired certificate fails every handshake: refused here, with its date.
        let leaf = chain.first().map(|c| c.as_ref()).unwrap_or_default();
        if let Some(end) = not_after(leaf)
            && SystemTime::now() > UNIX_EPOCH + end
        {
            return Err(ConfigError::invalid(
                CERT,
                format!(
                    "the certificate in {} expired on {} (UTC): renew it",
                    cert_file.display(),
                    utc_date(end)
                ),
            ));
        }
        let identity = CertifiedKey::new(chain, signer);
        identity.keys_match().map_err(|_| {
            ConfigError::invalid(
                KEY,
                format!(
                    "does not match the certificate in {} (the first certificate must be the one the key signs for)",
                    cert_file.display()
                ),
            )
        })?;
        Ok(Some(Self {
            cert_file,
            key_file,
            identity: Arc::new(identity),
        }))
    }
}

/// The PEM certificates in `path` (`key` names the setting in errors).
pub(super) fn read_chain(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let unreadable = |e: rustls::pki_types::pem::Error| {
        ConfigError::invalid(
            key,
            format!("cannot read PEM certificates from {}: {e}", path.display()),
        )
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(unreadable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    if chain.is_empty() {
        return Err(ConfigError::invalid(
            key,
            format!("{} holds no CERTIFICATE block", path.display()),
        ));
    }
    Ok(chain)
}

/// The PEM private key in `path` (never printed).
pub(super) fn read_key(
    key: &'static str,
    path: &Path,
) -> Result<PrivateKeyDer<'static>, ConfigError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        ConfigError::invalid(
            key,
            format!("cannot read a PEM private key from {}: {e}", path.display()),
        )
    })
}

/// `ca_file` of a private relay (`wechat.api_base`) or binding endpoint:
/// CA certificates trusted beside the built-in roots.
#[derive(Debug, Clone, PartialEq)]
pub struct CaFile {
    /// The file, as configured.
    pub path: PathBuf,
    /// Its certificates, DER.
    pub certificates: Vec<CertificateDer<'static>>,
}

impl CaFile {
    pub(super) fn load(
        key: &'static str,
        path: Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(path) = path.map(PathBuf::from) else {
            return Ok(None);
        };
        let certificates = read_chain(key, &path)?;
        Ok(Some(Self { path, certificates }))
    }
}

/// `builder`, trusting `ca_file`'s certificates too.
pub fn trusting(
    builder: reqwest::ClientBuilder,
    ca_file: Option<&CaFile>,
) -> Result<reqwest::ClientBuilder, reqwest::Error> {
    let Some(ca_file) = ca_file else {
        return Ok(builder);
    };
    ca_file
        .certificates
        .iter()
        .try_fold(builder, |builder, der| {
            Ok(builder.add_root_certificate(reqwest::Certificate::from_der(der)?))
        })
}

/// When a DER X.509 certificate stops being valid, since the epoch: its
/// `notAfter` (RFC 5280 §4.1.2.5). `None` when it cannot be read (rustls
/// then judges the certificate).
fn not_after(certificate: &[u8]) -> Option<std::time::Duration> {
    use der::asn1::{AnyRef, GeneralizedTime, UtcTime};
    use der::{Decode, Reader, Tag, TagNumber};
    AnyRef::from_der(certificate)
        .ok()?
        .sequence(|certificate| {
            let tbs = AnyRef::decode(certificate)?;
            skip_rest(certificate)?;
            tbs.sequence(|tbs| {
                let version = Tag::ContextSpecific {
                    constructed: true,
                    number: TagNumber::N0,
                };
                if tbs.peek_tag()? == version {
                    AnyRef::decode(tbs)?;
                }
                // serialNumber, signature, issuer
                for _ in 0..3 {
                    AnyRef::decode(tbs)?;
                }
                let validity = AnyRef::decode(tbs)?;
                skip_rest(tbs)?;
                validity.sequence(|validity| {
                    AnyRef::decode(validity)?; // notBefore
                    let end = match validity.peek_tag()? {
                        Tag::UtcTime => UtcTime::decode(validity)?.to_unix_duration(),
                        _ => GeneralizedTime::decode(validity)?.to_unix_duration(),
                    };
                    Ok(end)
                })
            })
        })
        .ok()
}

fn skip_rest(reader: &mut der::SliceReader<'_>) -> der::Result<()> {
    use der::{Decode, Reader};
    while !reader.is_finished() {
        der::asn1::AnyRef::decode(reader)?;
    }
    Ok(())
}

/// `YYYY-MM-DD` of a time since the epoch (UTC).
fn utc_date(since_epoch: std::time::Duration) -> String {
    der::DateTime::from_unix_duration(since_epoch).map_or_else(
        |_| format!("{}s after 1970", since_epoch.as_secs()),
        |date| format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day()),
    )
}
