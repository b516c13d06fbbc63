//! Certificates made by openssl for the TLS tests (a CA of the test's own,
//! a server certificate, a client certificate, an expired one), and a TLS
//! client of the test's own (rustls) that trusts them. scripts/test
//! installs openssl.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

/// Runs openssl in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be on PATH (scripts/test installs it)");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A CA of the test's own and a certificate it signed for `localhost` and
/// 127.0.0.1, made by openssl in `dir`: `ca.pem`, `server.pem`, `server.key`.
pub fn test_ca(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let ca = [
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=wxgate test CA",
    ];
    openssl(dir, &[&["req", "-x509"][..], &EC, &ca].concat());
    let server = [
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ];
    openssl(dir, &[&["req"][..], &EC, &server].concat());
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    sign(dir, "server", "ext");
}

/// `test_ca` in a fresh folder of its own, named after `name`.
pub fn certs(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("wxgate-certs-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    test_ca(&dir);
    dir
}

/// `NAME.csr` signed by `dir`'s CA into `NAME.pem`, with the extensions in `ext`.
fn sign(dir: &Path, name: &str, ext: &str) {
    let (csr, pem) = (format!("{name}.csr"), format!("{name}.pem"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            ext,
        ],
    );
}

/// A client certificate `client.pem` / `client.key` (CN `wxgate-client`)
/// signed by `dir`'s CA.
pub fn client_certificate(dir: &Path) {
    let client = [
        "-keyout",
        "client.key",
        "-out",
        "client.csr",
        "-subj",
        "/CN=wxgate-client",
    ];
    openssl(dir, &[&["req"][..], &EC, &client].concat());
    std::fs::write(dir.join("client-ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    sign(dir, "client", "client-ext");
}

/// `expired.pem` / `expired.key` in `dir`: valid 2020-01-01 to 2020-01-02,
/// signed by `dir`'s CA (`openssl ca` sets the dates).
pub fn expired_certificate(dir: &Path) {
    std::fs::create_dir_all(dir.join("issued")).unwrap();
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("serial"), "1000\n").unwrap();
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = x\n[x]\ndir = .\ndatabase = index.txt\nnew_certs_dir = issued\n\
         serial = serial\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n",
    )
    .unwrap();
    let key = [
        "-keyout",
        "expired.key",
        "-out",
        "expired.csr",
        "-subj",
        "/CN=localhost",
    ];
    openssl(dir, &[&["req"][..], &EC, &key].concat());
    openssl(
        dir,
        &[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-in",
            "expired.csr",
            "-out",
            "expired.pem",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200102000000Z",
        ],
    );
}

/// A TLS connection to 127.0.0.1:`port` as `localhost`, trusting the CAs
/// of `cas` and offering `alpn`.
pub async fn connect(
    port: u16,
    cas: &[&Path],
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots
            .add(CertificateDer::from_pem_file(ca.join("ca.pem")).unwrap())
            .unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// `check-config` on `text` refuses it, naming `key` and saying `says`.
pub fn assert_refused(text: &str, key: &str, says: &str) -> String {
    let out = super::process::check_config(text);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "accepted:\n{text}");
    assert!(
        stderr.contains(key) && stderr.contains(says),
        "{text}\n{stderr}"
    );
    stderr
}

/// `check-config` accepts `text`.
pub fn assert_accepted(text: &str) {
    let out = super::process::check_config(text);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
