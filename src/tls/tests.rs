use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;
use crate::certs::{self, GeneratedFiles};
use crate::config::{ListenTls, ListenTlsMode, Upstream, UpstreamTls, UpstreamTlsMode};

/// Bound on one in-memory handshake, so a stuck test fails instead of hanging.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

fn dev_certs(dir: &Path) -> GeneratedFiles {
    certs::generate(dir, &[], false).expect("generate dev certificates")
}

fn listen_tls(files: &GeneratedFiles, client_ca: bool) -> ListenTls {
    ListenTls {
        mode: ListenTlsMode::Require,
        cert: Some(files.server_cert.clone()),
        key: Some(files.server_key.clone()),
        client_ca: client_ca.then(|| files.ca_cert.clone()),
    }
}

fn upstream_tls(mode: UpstreamTlsMode, ca: Option<&Path>) -> UpstreamTls {
    UpstreamTls {
        mode,
        ca: ca.map(Path::to_path_buf),
        server_name: None,
    }
}

fn acceptor(files: &GeneratedFiles, client_ca: bool) -> Arc<ServerConfig> {
    server_config(&listen_tls(files, client_ca)).expect("server config")
}

fn connector(mode: UpstreamTlsMode, ca: Option<&PathBuf>) -> Arc<ClientConfig> {
    client_config(&upstream_tls(mode, ca.map(PathBuf::as_path))).expect("client config")
}

/// Builds a client config that presents `files`' client certificate and trusts its CA.
fn client_with_certificate(files: &GeneratedFiles) -> Arc<ClientConfig> {
    let roots = load_roots(&files.ca_cert).expect("roots");
    let chain = load_certs(&files.client_cert).expect("client chain");
    let key = load_private_key(&files.client_key).expect("client key");
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client auth");
    Arc::new(config)
}

struct Outcome {
    server: Result<Option<String>, std::io::Error>,
    server_alpn: Option<Vec<u8>>,
    client: Result<(), std::io::Error>,
}

/// Runs one TLS handshake over an in-memory pipe. `server` carries the
/// verified client certificate subject, if any.
async fn handshake(server: Arc<ServerConfig>, client: Arc<ClientConfig>, name: &str) -> Outcome {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let name = ServerName::try_from(name.to_string()).expect("server name");
    let acceptor = TlsAcceptor::from(server);
    let connector = TlsConnector::from(client);

    let both = async {
        tokio::join!(
            acceptor.accept(server_io),
            connector.connect(name, client_io)
        )
    };
    let (server, client) = tokio::time::timeout(HANDSHAKE_DEADLINE, both)
        .await
        .expect("handshake finished before the deadline");

    let server_alpn = server
        .as_ref()
        .ok()
        .and_then(|s| s.get_ref().1.alpn_protocol().map(<[u8]>::to_vec));
    Outcome {
        server: server.map(|stream| peer_subject(stream.get_ref().1)),
        server_alpn,
        client: client.map(|_| ()),
    }
}

fn assert_client_rejects(outcome: &Outcome, expected: &str) {
    let err = outcome
        .client
        .as_ref()
        .expect_err("client must reject the server");
    let text = err.to_string();
    assert!(text.contains(expected), "expected {expected:?} in {text:?}");
    assert!(
        outcome.server.is_err(),
        "server must see the handshake fail"
    );
}

#[test]
fn server_config_advertises_postgresql_alpn() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dev_certs(dir.path());

    let config = acceptor(&files, false);

    assert_eq!(config.alpn_protocols, vec![b"postgresql".to_vec()]);
}

#[test]
fn server_config_requires_mode_and_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dev_certs(dir.path());
    let mut tls = listen_tls(&files, false);

    tls.key = None;
    assert!(matches!(
        server_config(&tls),
        Err(TlsError::Missing("listen.tls.key"))
    ));

    tls.mode = ListenTlsMode::Disable;
    assert!(matches!(server_config(&tls), Err(TlsError::Disabled)));
}

#[test]
fn server_config_rejects_mismatched_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dev_certs(dir.path());
    let mut tls = listen_tls(&files, false);
    tls.key = Some(files.client_key.clone());

    let err = server_config(&tls).expect_err("key of another certificate");

    assert!(matches!(err, TlsError::Rustls(_)), "{err}");
}

#[test]
fn client_config_for_every_mode() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dev_certs(dir.path());
    let ca = Some(files.ca_cert.as_path());

    assert!(matches!(
        client_config(&upstream_tls(UpstreamTlsMode::Disable, ca)),
        Err(TlsError::Disabled)
    ));
    assert!(client_config(&upstream_tls(UpstreamTlsMode::Require, None)).is_ok());
    assert!(matches!(
        client_config(&upstream_tls(UpstreamTlsMode::VerifyCa, None)),
        Err(TlsError::Missing("upstream.tls.ca"))
    ));
    assert!(client_config(&upstream_tls(UpstreamTlsMode::VerifyCa, ca)).is_ok());
    assert!(client_config(&upstream_tls(UpstreamTlsMode::VerifyFull, ca)).is_ok());
    let public_roots =
        client_config(&upstream_tls(UpstreamTlsMode::VerifyFull, None)).expect("webpki roots");
    assert_eq!(public_roots.alpn_protocols, vec![b"postgresql".to_vec()]);
}

#[tokio::test]
async fn verify_full_accepts_matching_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dev_certs(dir.path());
    let server = acceptor(&files, false);
    let client = connector(UpstreamTlsMode::VerifyFull, Some(&files.ca_cert));

    let outcome = handshake(server, client, "localhost").await;

    outcome.client.expect("client accepts localhost");
    assert_eq!(
        outcome.server.expect("server handshake"),
        None,
        "no client certificate"
    );
    assert_eq!(outcome.server_alpn.as_deref(), Some(&b"postgresql"[..]));
}

#[tokio::test]
async fn verify_full_accepts_ip_address() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dev_certs(dir.path());
    let server = acceptor(&files, false);
    let client = connector(UpstreamTlsMode::VerifyFull, Some(&files.ca_cert));

    let outcome = handshake(server, client, "127.0.0.1").await;

    outcome.client.expect("client accepts 127.0.0.1");
}

#[tokio::test]
async fn verify_full_rejects_other_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dev_certs(dir.path());
    let server = acceptor(&files, false);
    let client = connector(UpstreamTlsMode::VerifyFull, Some(&files.ca_cert));

    let outcome = handshake(server, client, "db.example.test").await;

    assert_client_rejects(&outcome, "not valid for name");
}

#[tokio::test]
async fn verify_full_rejects_unknown_ca() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dev_certs(&dir.path().join("a"));
    let other = dev_certs(&dir.path().join("b"));
    let server = acceptor(&files, false);
    let client = connector(UpstreamTlsMode::VerifyFull, Some(&other.ca_cert));

    let outcome = handshake(server, client, "localhost").await;

    assert_client_rejects(&outcome, "invalid peer certificate");
}

#[tokio::test]
async fn verify_ca_ignores_name_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dev_certs(&dir.path().join("a"));
    let other = dev_certs(&dir.path().join("b"));
    let server = acceptor(&files, false);

    let trusted = connector(UpstreamTlsMode::VerifyCa, Some(&files.ca_cert));
    let outcome = handshake(server.clone(), trusted, "db.example.test").await;
    outcome
        .client
        .expect("verify-ca accepts a trusted chain under any name");

    let untrusted = connector(UpstreamTlsMode::VerifyCa, Some(&other.ca_cert));
    let outcome = handshake(server, untrusted, "db.example.test").await;
    assert_client_rejects(&outcome, "invalid peer certificate");
}

#[tokio::test]
async fn require_accepts_any_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dev_certs(dir.path());
    let server = acceptor(&files, false);
    let client = connector(UpstreamTlsMode::Require, None);

    let outcome = handshake(server, client, "db.example.test").await;

    outcome
        .client
        .expect("require does not verify the certificate");
    outcome.server.expect("server handshake");
}

#[tokio::test]
async fn client_certificate_subject_is_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dev_certs(dir.path());
    let server = acceptor(&files, true);

    let outcome = handshake(server, client_with_certificate(&files), "localhost").await;

    outcome.client.expect("client handshake");
    let subject = outcome.server.expect("server handshake");
    assert_eq!(subject.as_deref(), Some("CN=migrator,O=schemagate dev"));
}

#[tokio::test]
async fn client_certificate_is_optional() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dev_certs(dir.path());
    let server = acceptor(&files, true);
    let client = connector(UpstreamTlsMode::VerifyFull, Some(&files.ca_cert));

    let outcome = handshake(server, client, "localhost").await;

    outcome.client.expect("client handshake");
    assert_eq!(
        outcome
            .server
            .expect("server accepts a client without certificate"),
        None
    );
}

#[tokio::test]
async fn foreign_client_certificate_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dev_certs(&dir.path().join("a"));
    let other = dev_certs(&dir.path().join("b"));
    let server = acceptor(&files, true);
    let mut foreign = other.clone();
    foreign.ca_cert = files.ca_cert.clone();

    let outcome = handshake(server, client_with_certificate(&foreign), "localhost").await;

    let err = outcome
        .server
        .expect_err("server must reject the client certificate");
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
}

#[test]
fn server_name_defaults_to_address_host() {
    let mut upstream = Upstream {
        address: "db.internal.test:5432".to_string(),
        ..Upstream::default()
    };
    assert_eq!(
        server_name(&upstream).expect("name"),
        ServerName::try_from("db.internal.test").expect("dns")
    );

    upstream.address = "[::1]:5432".to_string();
    assert_eq!(
        server_name(&upstream).expect("name"),
        ServerName::try_from("::1").expect("ip")
    );

    upstream.tls.server_name = Some("pg.example.test".to_string());
    assert_eq!(
        server_name(&upstream).expect("name"),
        ServerName::try_from("pg.example.test").expect("dns")
    );

    upstream.tls.server_name = Some("bad name!".to_string());
    assert!(matches!(
        server_name(&upstream),
        Err(TlsError::InvalidServerName { .. })
    ));
}

#[test]
fn pem_errors_name_the_problem() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dev_certs(dir.path());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .expect("write");

    assert!(matches!(load_certs(&garbage), Err(TlsError::Pem { .. })));
    assert!(matches!(
        load_certs(&files.server_key),
        Err(TlsError::NoItems { .. })
    ));
    assert!(matches!(
        load_private_key(&files.server_cert),
        Err(TlsError::NoItems { .. })
    ));
    assert!(matches!(
        load_certs(&dir.path().join("absent.pem")),
        Err(TlsError::Read { .. })
    ));
}

#[test]
fn subject_escapes_special_characters() {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Acme, Inc.");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ops+ci");
    let cert = params.self_signed(&key).expect("self-signed");

    assert_eq!(
        subject_of(cert.der().as_ref()).as_deref(),
        Some("CN=ops\\+ci,O=Acme\\, Inc.")
    );
}
