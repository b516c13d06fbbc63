//! Inbound TLS (`server.tls_cert_file` / `tls_key_file`) with rustls: TLS
//! 1.2 and 1.3 only, ALPN `h2` and `http/1.1` (`connection` serves each). The certificate is looked up per
//! handshake from one swappable slot ([`Certificates`]), so a reload
//! (SIGHUP after cert-manager renewed the Secret) serves the new one to
//! new handshakes while open connections carry on with theirs.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::ServerTls;

/// The longest a client may take to finish its handshake: a silent one
/// holds a socket, nothing else.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The listener's certificate, swapped by a reload.
#[derive(Debug)]
pub struct Certificates(ArcSwap<CertifiedKey>);

impl Certificates {
    /// Serves `tls`'s certificate from the next handshake on.
    pub fn swap(&self, tls: &ServerTls) {
        self.0.store(tls.identity.clone());
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// The acceptor for `tls`, and the slot a reload swaps its certificate in.
pub(super) fn acceptor(tls: &ServerTls) -> Result<(TlsAcceptor, Arc<Certificates>), rustls::Error> {
    let certificates = Arc::new(Certificates(ArcSwap::new(tls.identity.clone())));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(certificates.clone());
    // HTTP/2 preferred, as every client that offers it expects.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), certificates))
}
