//! An upstream reached over HTTPS (`url = "https://…"`): in another
//! namespace, another cluster or a managed service, often behind a private
//! CA or asking for a client certificate. As Pomerium's route options:
//! `ca_file` (else the system's roots), `tls_server_name` (SNI and the name
//! verified, for a URL whose host is an IP address or not the certificate's
//! name), `client_cert_file` / `client_key_file` (mutual TLS). Everything
//! is read and checked when the config loads; a change needs a restart, as
//! the upstream's URL does.
//!
//! ALPN offers `http/1.1` only: the backend is spoken to in HTTP/1.1,
//! whatever the client spoke.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::ServerName;

use super::ConfigError;
use super::tls::{read_chain, read_key};

/// The settings' names in one table, for errors.
pub(super) struct TlsKeys {
    pub url: &'static str,
    pub ca_file: &'static str,
    pub server_name: &'static str,
    pub client_cert: &'static str,
    pub client_key: &'static str,
}

/// What an `https://` upstream's connections are made with.
#[derive(Clone)]
pub struct UpstreamTls {
    /// The name sent as SNI and verified in the certificate.
    pub server_name: ServerName<'static>,
    /// rustls's settings: the roots, the client certificate.
    pub client: Arc<rustls::ClientConfig>,
    /// The files as configured, for comparing two configs.
    files: [Option<PathBuf>; 3],
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl PartialEq for UpstreamTls {
    fn eq(&self, other: &Self) -> bool {
        self.server_name == other.server_name && self.files == other.files
    }
}

/// The raw settings of one upstream's TLS.
pub(super) struct RawTls {
    pub ca_file: Option<String>,
    pub server_name: Option<String>,
    pub client_cert_file: Option<String>,
    pub client_key_file: Option<String>,
}

impl UpstreamTls {
    /// `https`: the URL's scheme is `https`; `host`: its host. Settings
    /// given for an `http://` URL are a mistake, named.
    pub(super) fn from_raw(
        raw: RawTls,
        keys: &TlsKeys,
        https: bool,
        host: &str,
    ) -> Result<Option<Self>, ConfigError> {
        if !https {
            let set = [
                (raw.ca_file.is_some(), keys.ca_file),
                (raw.server_name.is_some(), keys.server_name),
                (raw.client_cert_file.is_some(), keys.client_cert),
                (raw.client_key_file.is_some(), keys.client_key),
            ];
            return match set.iter().find(|(given, _)| *given) {
                Some((_, key)) => Err(ConfigError::invalid(
                    key,
                    format!("applies to an https:// {} only", keys.url),
                )),
                None => Ok(None),
            };
        }
        let name = raw.server_name.clone().unwrap_or_else(|| {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned()
        });
        let server_name = ServerName::try_from(name.clone()).map_err(|_| {
            ConfigError::invalid(keys.server_name, format!("`{name}` is not a host name"))
        })?;
        let roots = roots(keys.ca_file, raw.ca_file.as_deref())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::invalid(keys.url, e.to_string()))?
            .with_root_certificates(roots);
        let mut client = match (&raw.client_cert_file, &raw.client_key_file) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = read_chain(keys.client_cert, cert.as_ref())?;
                let key_der = read_key(keys.client_key, key.as_ref())?;
                builder.with_client_auth_cert(chain, key_der).map_err(|_| {
                    ConfigError::invalid(
                        keys.client_key,
                        "is not a key of the client certificate, or not an RSA, ECDSA or Ed25519 key",
                    )
                })?
            }
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    keys.client_key,
                    "is required with client_cert_file",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    keys.client_cert,
                    "is required with client_key_file",
                ));
            }
        };
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Self {
            server_name,
            client: Arc::new(client),
            files: [
                raw.ca_file.map(PathBuf::from),
                raw.client_cert_file.map(PathBuf::from),
                raw.client_key_file.map(PathBuf::from),
            ],
        }))
    }
}

/// `ca_file`'s certificates, else the system's roots.
fn roots(key: &'static str, ca_file: Option<&str>) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    let certificates = match ca_file {
        Some(path) => read_chain(key, path.as_ref())?,
        None => rustls_native_certs::load_native_certs().certs,
    };
    let (added, _) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        let what = ca_file.map_or_else(
            || {
                "the system has no CA certificates (install ca-certificates, or set ca_file)"
                    .to_owned()
            },
            |path| format!("{path} holds no usable CA certificate"),
        );
        return Err(ConfigError::invalid(key, what));
    }
    Ok(roots)
}
