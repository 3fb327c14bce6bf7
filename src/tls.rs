//! TLS configuration (placeholder until the real module lands).
use std::sync::Arc;

use crate::config::{ListenTls, Upstream, UpstreamTls};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

pub fn server_config(_tls: &ListenTls) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    Err(TlsError("TLS not built yet".into()))
}

pub fn client_config(_tls: &UpstreamTls) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    Err(TlsError("TLS not built yet".into()))
}

pub fn server_name(upstream: &Upstream) -> rustls::pki_types::ServerName<'static> {
    let host = upstream.address.rsplit_once(':').map(|(h, _)| h).unwrap_or("localhost").to_string();
    rustls::pki_types::ServerName::try_from(host).unwrap_or_else(|_| rustls::pki_types::ServerName::try_from("localhost").expect("valid name"))
}

pub fn peer_subject(_conn: &rustls::ServerConnection) -> Option<String> {
    None
}
