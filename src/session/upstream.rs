//! The server side of startup: connect (with TLS when configured), send the
//! StartupMessage, and relay authentication unchanged between the two legs.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::io::{BoxedIo, IoReader, IoWriter};
use super::Shared;
use crate::config::UpstreamTlsMode;
use crate::protocol::backend::{self, ProxyError};
use crate::protocol::frame::{Frame, FrameReader};
use crate::protocol::sqlstate;

/// Largest password, SASLInitialResponse or SASLResponse accepted from a client.
const MAX_AUTH_MESSAGE_BYTES: usize = 8 * 1024;

/// Opens the upstream connection, negotiating TLS per `upstream.tls.mode`.
pub async fn connect(shared: &Arc<Shared>) -> Result<BoxedIo, ProxyError> {
    let config = shared.config();
    let address = config.upstream.address.clone();
    let unavailable = |detail: String| {
        tracing::warn!(upstream = %address, %detail, "upstream connection failed");
        ProxyError::fatal(sqlstate::CONNECTION_FAILURE, format!("schemagate could not connect to the upstream server: {detail}"))
    };

    let connect = TcpStream::connect(&address);
    let mut tcp = match tokio::time::timeout(config.upstream.connect_timeout, connect).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(error)) => return Err(unavailable(error.to_string())),
        Err(_) => return Err(unavailable("connection timed out".to_string())),
    };
    let _ = tcp.set_nodelay(true);
    if config.upstream.tls.mode == UpstreamTlsMode::Disable {
        return Ok(Box::new(tcp));
    }

    tcp.write_all(&crate::protocol::startup::encode_ssl_request()).await.map_err(|e| unavailable(e.to_string()))?;
    let answer = tcp.read_u8().await.map_err(|e| unavailable(e.to_string()))?;
    if answer != b'S' {
        return Err(unavailable("the upstream server does not accept TLS".to_string()));
    }
    let connector = shared.upstream_tls().ok_or_else(|| unavailable("upstream TLS is not configured".to_string()))?;
    let server_name = crate::tls::server_name(&config.upstream).map_err(|e| unavailable(e.to_string()))?;
    let tls = connector.connect(server_name, tcp).await.map_err(|e| unavailable(format!("TLS handshake failed: {e}")))?;
    Ok(Box::new(tls))
}

/// Why session setup failed.
pub enum SetupError {
    /// The server's own ErrorResponse already reached the client.
    Relayed(String),
    Proxy(ProxyError),
}

impl From<ProxyError> for SetupError {
    fn from(error: ProxyError) -> Self {
        SetupError::Proxy(error)
    }
}

/// Both legs during authentication.
pub struct Legs<'a> {
    pub client_reader: &'a mut FrameReader<IoReader>,
    pub client_writer: &'a mut IoWriter,
    pub server_reader: &'a mut FrameReader<IoReader>,
    pub server_writer: &'a mut IoWriter,
    pub client_tls: bool,
    pub upstream_tls: bool,
}

/// Relays the authentication exchange, then the server's ParameterStatus and
/// BackendKeyData, up to the first ReadyForQuery.
pub async fn authenticate(legs: Legs<'_>, client_key: impl FnOnce(i32, Vec<u8>) -> (i32, i32)) -> Result<(), SetupError> {
    let Legs { client_reader, client_writer, server_reader, server_writer, client_tls, upstream_tls } = legs;
    loop {
        let frame = next_server_frame(server_reader).await?;
        match frame.tag {
            b'R' => {
                let code = backend::authentication_code(frame.body()).ok_or_else(|| bad_server("short Authentication message"))?;
                if code == 0 {
                    write(client_writer, &frame.bytes).await?;
                    break;
                }
                let forwarded = authentication_request(code, &frame, client_tls)?;
                write(client_writer, &forwarded).await?;
                if code != 12 {
                    relay_client_response(client_reader, server_writer, code, upstream_tls).await?;
                }
            }
            b'E' => {
                write(client_writer, &frame.bytes).await?;
                return Err(SetupError::Relayed("the server rejected the login".into()));
            }
            b'N' | b'v' => write(client_writer, &frame.bytes).await?,
            other => return Err(bad_server(&format!("unexpected message type {:?} during authentication", other as char)).into()),
        }
    }
    after_authentication(client_writer, server_reader, client_key).await
}

/// Checks one Authentication request and returns the bytes to forward.
fn authentication_request(code: i32, frame: &Frame, client_tls: bool) -> Result<BytesMut, ProxyError> {
    match code {
        3 if !client_tls => Err(ProxyError::fatal(
            sqlstate::INVALID_AUTHORIZATION,
            "the server requested a cleartext password, which schemagate relays only over TLS: connect with sslmode=require",
        )),
        3 | 5 | 11 | 12 => Ok(frame.bytes.clone()),
        10 => {
            let (body, kept) = backend::strip_scram_plus(frame.body());
            if kept == 0 {
                return Err(ProxyError::fatal(
                    sqlstate::INVALID_AUTHORIZATION,
                    "the server offers only SCRAM-SHA-256-PLUS, which cannot pass through a TLS-terminating proxy",
                ));
            }
            let mut out = BytesMut::new();
            crate::protocol::frame::encode(b'R', &body, &mut out).map_err(|e| bad_server(&e.to_string()))?;
            Ok(out)
        }
        other => Err(ProxyError::fatal(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!("authentication method {other} is not supported through schemagate"),
        )),
    }
}

/// Forwards the client's password or SASL message, checking its type and size.
async fn relay_client_response(
    client_reader: &mut FrameReader<IoReader>,
    server_writer: &mut IoWriter,
    code: i32,
    upstream_tls: bool,
) -> Result<(), ProxyError> {
    client_reader.set_limit(MAX_AUTH_MESSAGE_BYTES);
    let frame = client_reader
        .next_frame()
        .await
        .map_err(|e| ProxyError::fatal(sqlstate::PROTOCOL_VIOLATION, format!("invalid authentication response: {e}")))?
        .ok_or_else(|| ProxyError::fatal(sqlstate::PROTOCOL_VIOLATION, "client closed the connection during authentication"))?;
    if frame.tag != b'p' {
        return Err(ProxyError::fatal(
            sqlstate::PROTOCOL_VIOLATION,
            format!("expected a password response, got message type {:?}", frame.tag as char),
        ));
    }
    if code == 10 {
        check_sasl_initial_response(frame.body(), upstream_tls)?;
    }
    server_writer.write_all(&frame.bytes).await.map_err(|e| upstream_lost(&e.to_string()))
}

/// Rejects SCRAM gs2 headers that cannot work through the proxy.
///
/// `p=` asks for channel binding, which was never offered to the client. A
/// `y` flag tells a TLS server that the client saw no PLUS offer, and the
/// server then fails the login as a possible downgrade attack.
fn check_sasl_initial_response(body: &[u8], upstream_tls: bool) -> Result<(), ProxyError> {
    let mechanism_end = body.iter().position(|b| *b == 0).unwrap_or(body.len());
    let rest = body.get(mechanism_end + 1..).unwrap_or_default();
    if rest.len() < 4 {
        return Err(ProxyError::fatal(sqlstate::PROTOCOL_VIOLATION, "malformed SASLInitialResponse"));
    }
    let length = (&rest[..4]).get_i32();
    let data = &rest[4..];
    if length < -1 || (length >= 0 && length as usize != data.len()) {
        return Err(ProxyError::fatal(sqlstate::PROTOCOL_VIOLATION, "malformed SASLInitialResponse length"));
    }
    match data.first() {
        Some(b'p') => Err(ProxyError::fatal(sqlstate::INVALID_AUTHORIZATION, "SCRAM channel binding was not offered by schemagate")),
        Some(b'y') if upstream_tls => Err(ProxyError::fatal(
            sqlstate::INVALID_AUTHORIZATION,
            "SCRAM channel binding cannot pass through schemagate when both legs use TLS: connect with channel_binding=disable",
        )),
        _ => Ok(()),
    }
}

/// Relays ParameterStatus and replaces the server's BackendKeyData with the proxy's own.
async fn after_authentication(
    client_writer: &mut IoWriter,
    server_reader: &mut FrameReader<IoReader>,
    client_key: impl FnOnce(i32, Vec<u8>) -> (i32, i32),
) -> Result<(), SetupError> {
    let mut out = BytesMut::new();
    let mut upstream_key = None;
    let mut client_key = Some(client_key);
    loop {
        let frame = next_server_frame(server_reader).await?;
        match frame.tag {
            b'S' => {
                super::relay::check_parameter_status(frame.body())?;
                out.extend_from_slice(&frame.bytes);
            }
            b'K' => {
                let body = frame.body();
                if body.len() < 8 {
                    return Err(bad_server("short BackendKeyData").into());
                }
                let pid = (&body[..4]).get_i32();
                let key = body[4..].to_vec();
                if let Some(register) = client_key.take() {
                    let (client_pid, client_secret) = register(pid, key.clone());
                    backend::backend_key_data(client_pid, client_secret, &mut out);
                }
                upstream_key = Some((pid, key));
            }
            b'Z' => {
                out.extend_from_slice(&frame.bytes);
                write(client_writer, &out).await?;
                if upstream_key.is_none() {
                    return Err(bad_server("no BackendKeyData before ReadyForQuery").into());
                }
                return Ok(());
            }
            b'E' => {
                out.extend_from_slice(&frame.bytes);
                write(client_writer, &out).await?;
                return Err(SetupError::Relayed("the server refused the session".into()));
            }
            b'N' => out.extend_from_slice(&frame.bytes),
            other => return Err(bad_server(&format!("unexpected message type {:?} after authentication", other as char)).into()),
        }
    }
}

async fn next_server_frame(server_reader: &mut FrameReader<IoReader>) -> Result<Frame, ProxyError> {
    match server_reader.next_frame().await {
        Ok(Some(frame)) => Ok(frame),
        Ok(None) => Err(upstream_lost("connection closed")),
        Err(error) => Err(bad_server(&error.to_string())),
    }
}

async fn write(writer: &mut IoWriter, bytes: &[u8]) -> Result<(), ProxyError> {
    writer.write_all(bytes).await.map_err(|e| ProxyError::fatal(sqlstate::CONNECTION_FAILURE, format!("client write failed: {e}")))
}

fn bad_server(detail: &str) -> ProxyError {
    tracing::warn!(%detail, "protocol violation from the upstream server");
    ProxyError::fatal(sqlstate::PROTOCOL_VIOLATION, format!("invalid message from the upstream server: {detail}"))
}

pub fn upstream_lost(detail: &str) -> ProxyError {
    ProxyError::fatal(sqlstate::CONNECTION_FAILURE, format!("the upstream server closed the connection unexpectedly: {detail}"))
}

/// Upper bound on an upstream frame: Postgres never sends a message past 1 GiB.
pub const MAX_SERVER_MESSAGE_BYTES: usize = 1 << 30;

