//! TLS for both sides of the proxy: the acceptor that clients reach and the
//! connector to the upstream server. Every configuration is built with the
//! `ring` provider passed explicitly, so no process-wide default is needed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::config::{
    split_host_port, ListenTls, ListenTlsMode, Upstream, UpstreamTls, UpstreamTlsMode,
};

mod subject;
mod verify;

pub use subject::{peer_subject, subject_of};

/// ALPN protocol name that PostgreSQL 17 and later clients and servers use.
pub const ALPN_POSTGRESQL: &[u8] = b"postgresql";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}", path = .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid PEM: {reason}", path = .path.display())]
    Pem { path: PathBuf, reason: String },
    #[error("{path}: no {expected} found", path = .path.display())]
    NoItems {
        path: PathBuf,
        expected: &'static str,
    },
    #[error("{path}: invalid CA certificate: {source}", path = .path.display())]
    BadCaCertificate {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("{0} is required for this TLS mode")]
    Missing(&'static str),
    #[error("TLS mode is disable")]
    Disabled,
    #[error("invalid server name {name:?}: expected a DNS name or an IP address")]
    InvalidServerName { name: String },
    #[error("cannot build certificate verifier: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Returns the crypto provider every configuration here uses.
///
/// rustls 0.23.48 deprecates the `ring` provider because it offers no
/// post-quantum key exchange. The project uses `ring` as its only provider
/// (no aws-lc-rs), so the warning is allowed here, in this one place.
#[allow(deprecated)]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the acceptor configuration for client connections.
///
/// With `client_ca` set, clients are asked for a certificate that must chain
/// to it when presented, but clients without one are still accepted.
pub fn server_config(tls: &ListenTls) -> Result<Arc<ServerConfig>, TlsError> {
    if tls.mode == ListenTlsMode::Disable {
        return Err(TlsError::Disabled);
    }
    let cert_path = tls
        .cert
        .as_deref()
        .ok_or(TlsError::Missing("listen.tls.cert"))?;
    let key_path = tls
        .key
        .as_deref()
        .ok_or(TlsError::Missing("listen.tls.key"))?;
    let chain = load_certs(cert_path)?;
    let key = load_private_key(key_path)?;

    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &tls.client_ca {
        Some(ca) => {
            let roots = Arc::new(load_roots(ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                .allow_unauthenticated()
                .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };

    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(Arc::new(config))
}

/// Builds the connector configuration for the upstream server.
///
/// - `require` encrypts but accepts any certificate (handshake signatures are
///   still checked, so the peer must hold the certificate's private key).
/// - `verify-ca` checks the chain against `ca` but not the host name.
/// - `verify-full` checks chain and host name, against `ca` or, without one,
///   the Mozilla root store bundled by `webpki-roots`.
pub fn client_config(tls: &UpstreamTls) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;

    let mut config = match tls.mode {
        UpstreamTlsMode::Disable => return Err(TlsError::Disabled),
        UpstreamTlsMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verify::AnyServerCert::new(provider)))
            .with_no_client_auth(),
        UpstreamTlsMode::VerifyCa => {
            let ca = tls
                .ca
                .as_deref()
                .ok_or(TlsError::Missing("upstream.tls.ca"))?;
            let roots = Arc::new(load_roots(ca)?);
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider).build()?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verify::ChainOnly::new(inner)))
                .with_no_client_auth()
        }
        UpstreamTlsMode::VerifyFull => {
            let roots = match tls.ca.as_deref() {
                Some(ca) => load_roots(ca)?,
                None => RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };

    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(Arc::new(config))
}

/// Returns the name to send as SNI and, in `verify-full`, to check the
/// certificate against: `upstream.tls.server_name`, else the host part of
/// `upstream.address`.
pub fn server_name(upstream: &Upstream) -> Result<ServerName<'static>, TlsError> {
    let name = match &upstream.tls.server_name {
        Some(name) => name.clone(),
        None => match split_host_port(&upstream.address) {
            Some((host, _port)) => host.to_string(),
            None => upstream.address.clone(),
        },
    };
    ServerName::try_from(name.clone()).map_err(|_| TlsError::InvalidServerName { name })
}

/// Reads a PEM certificate chain, leaf first.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem_error(path, err))?;
    if certs.is_empty() {
        return Err(TlsError::NoItems {
            path: path.to_path_buf(),
            expected: "CERTIFICATE block",
        });
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|err| match err {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoItems {
            path: path.to_path_buf(),
            expected: "PRIVATE KEY block",
        },
        other => pem_error(path, other),
    })
}

/// Reads a PEM bundle of CA certificates into a trust store.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots
            .add(cert)
            .map_err(|source| TlsError::BadCaCertificate {
                path: path.to_path_buf(),
                source,
            })?;
    }
    Ok(roots)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Describes a PEM error without quoting file content, because the file may
/// hold a private key.
fn pem_error(path: &Path, err: rustls::pki_types::pem::Error) -> TlsError {
    use rustls::pki_types::pem::Error;

    let reason = match err {
        Error::MissingSectionEnd { .. } => "a section has no END line".to_string(),
        Error::IllegalSectionStart { .. } => "malformed BEGIN line".to_string(),
        Error::Base64Decode(_) => "invalid base64 in a section".to_string(),
        Error::SectionTooLarge => "a section is larger than 256 MB".to_string(),
        other => other.to_string(),
    };
    TlsError::Pem {
        path: path.to_path_buf(),
        reason,
    }
}

#[cfg(test)]
mod tests;
