//! The client side of startup: SSLRequest, GSSENCRequest, direct TLS,
//! CancelRequest, and the StartupMessage itself.

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::io::Stream;
use super::Shared;
use crate::config::ListenTlsMode;
use crate::protocol::backend::ProxyError;
use crate::protocol::sqlstate;
use crate::protocol::startup::{read_packet, StartupError, StartupPacket};

/// First byte of a TLS handshake record, which starts a direct TLS connection.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The outcome of the client's startup packets.
pub enum Negotiated {
    Startup(ClientHello),
    /// A CancelRequest was handled; the connection ends without a reply.
    Cancelled,
}

/// A client that sent a StartupMessage, with the stream it arrived on.
pub struct ClientHello {
    pub stream: Stream,
    pub tls: bool,
    pub client_cert_subject: Option<String>,
    pub minor_version: u16,
    pub params: Vec<(String, String)>,
}

/// Early end of startup; `error` is sent to the client when a stream is left.
pub struct Rejection {
    pub error: Option<ProxyError>,
    pub stream: Option<Stream>,
    pub reason: String,
}

impl Rejection {
    fn close(reason: impl Into<String>) -> Self {
        Rejection { error: None, stream: None, reason: reason.into() }
    }

    fn fatal(stream: Stream, error: ProxyError) -> Self {
        Rejection { reason: error.message.clone(), error: Some(error), stream: Some(stream) }
    }
}

/// Runs the startup packet exchange until a StartupMessage or CancelRequest arrives.
pub async fn negotiate(shared: &Arc<Shared>, mut tcp: TcpStream) -> Result<Negotiated, Rejection> {
    let acceptor = shared.tls_acceptor();
    if acceptor.is_some() && starts_with_tls_record(&tcp).await {
        return direct_tls(shared, acceptor.expect("checked above"), tcp).await;
    }

    let mut gss_declined = false;
    loop {
        let packet = match read_packet(&mut tcp).await {
            Ok(packet) => packet,
            Err(error) => return Err(startup_failure(error, Stream::Plain(tcp))),
        };
        match packet {
            StartupPacket::SslRequest => {
                if has_pipelined_bytes(&tcp) {
                    return Err(violation(Stream::Plain(tcp), "received unencrypted data after SSL request"));
                }
                let Some(acceptor) = acceptor.clone() else {
                    tcp.write_all(b"N").await.map_err(|e| Rejection::close(e.to_string()))?;
                    continue;
                };
                tcp.write_all(b"S").await.map_err(|e| Rejection::close(e.to_string()))?;
                let tls = acceptor.accept(tcp).await.map_err(|e| Rejection::close(format!("TLS handshake failed: {e}")))?;
                return startup_inside_tls(shared, tls).await;
            }
            StartupPacket::GssEncRequest => {
                if gss_declined {
                    return Err(violation(Stream::Plain(tcp), "GSSENCRequest sent twice"));
                }
                if has_pipelined_bytes(&tcp) {
                    return Err(violation(Stream::Plain(tcp), "received unencrypted data after GSSAPI encryption request"));
                }
                gss_declined = true;
                tcp.write_all(b"N").await.map_err(|e| Rejection::close(e.to_string()))?;
            }
            StartupPacket::Cancel { pid, key } => {
                shared.cancels.forward(pid, &key).await;
                return Ok(Negotiated::Cancelled);
            }
            StartupPacket::Startup { version, params } => {
                if shared.config().listen.tls.mode == ListenTlsMode::Require {
                    let error = ProxyError::fatal(
                        sqlstate::INVALID_AUTHORIZATION,
                        "schemagate requires TLS for every connection: connect with sslmode=require or stronger",
                    );
                    return Err(Rejection::fatal(Stream::Plain(tcp), error));
                }
                return finish(Stream::Plain(tcp), false, None, version, params);
            }
        }
    }
}

/// Direct TLS (`sslnegotiation=direct`): the handshake comes first and must select ALPN `postgresql`.
async fn direct_tls(shared: &Arc<Shared>, acceptor: TlsAcceptor, tcp: TcpStream) -> Result<Negotiated, Rejection> {
    let tls = acceptor.accept(tcp).await.map_err(|e| Rejection::close(format!("direct TLS handshake failed: {e}")))?;
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    if alpn.as_deref() != Some(b"postgresql".as_slice()) {
        return Err(Rejection::close("direct TLS connection without ALPN \"postgresql\""));
    }
    startup_inside_tls(shared, tls).await
}

async fn startup_inside_tls(shared: &Arc<Shared>, mut tls: TlsStream<TcpStream>) -> Result<Negotiated, Rejection> {
    let subject = crate::tls::peer_subject(tls.get_ref().1);
    let packet = match read_packet(&mut tls).await {
        Ok(packet) => packet,
        Err(error) => return Err(startup_failure(error, Stream::tls(tls))),
    };
    match packet {
        StartupPacket::Startup { version, params } => finish(Stream::tls(tls), true, subject, version, params),
        StartupPacket::Cancel { pid, key } => {
            shared.cancels.forward(pid, &key).await;
            Ok(Negotiated::Cancelled)
        }
        StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
            Err(violation(Stream::tls(tls), "encryption request sent inside an encrypted connection"))
        }
    }
}

fn finish(
    stream: Stream,
    tls: bool,
    client_cert_subject: Option<String>,
    version: u32,
    params: Vec<(String, String)>,
) -> Result<Negotiated, Rejection> {
    let major = version >> 16;
    let minor = (version & 0xffff) as u16;
    if major != 3 {
        let error = ProxyError::fatal(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!("unsupported frontend protocol {major}.{minor}: schemagate supports 3.0"),
        );
        return Err(Rejection::fatal(stream, error));
    }
    Ok(Negotiated::Startup(ClientHello { stream, tls, client_cert_subject, minor_version: minor, params }))
}

async fn starts_with_tls_record(tcp: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(tcp.peek(&mut first).await, Ok(1) if first[0] == TLS_HANDSHAKE_RECORD)
}

/// Returns true when bytes arrived together with an encryption request. The
/// client sent them before it received the response, so TLS does not protect them.
fn has_pipelined_bytes(tcp: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(tcp.try_read(&mut probe), Ok(n) if n > 0)
}

fn violation(stream: Stream, message: &str) -> Rejection {
    Rejection::fatal(stream, ProxyError::fatal(sqlstate::PROTOCOL_VIOLATION, message))
}

fn startup_failure(error: StartupError, stream: Stream) -> Rejection {
    match error {
        StartupError::Io(error) => Rejection::close(format!("startup packet not received: {error}")),
        other => violation(stream, &other.to_string()),
    }
}
