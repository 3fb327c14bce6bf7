//! The server side of startup: connect (with TLS when configured), send the
//! StartupMessage, and authenticate.
//!
//! Authentication is relayed unchanged between the two legs, except in one
//! case. When both legs use TLS and the server requests SASL, the proxy
//! requests the client's password with AuthenticationCleartextPassword
//! (the client leg is encrypted) and runs SCRAM with the server itself. It
//! uses SCRAM-SHA-256-PLUS bound to the server certificate
//! (`tls-server-end-point`) when the server offers it, else SCRAM-SHA-256
//! with the gs2 flag `n`. A relayed exchange cannot work there. A client on
//! TLS that gets no PLUS offer sends the gs2 flag `y`, which a TLS server must
//! reject as a downgrade, and the client proof covers the flag. The client sees
//! the server's AuthenticationOk or ErrorResponse, so a wrong password still
//! ends with the server's 28P01. A client that insists on channel binding
//! (libpq's `channel_binding=require`) refuses the cleartext request.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::io::{Stream, IoReader, IoWriter};
use super::Shared;
use crate::auth::messages::{self as auth_messages, SASL, SASL_CONTINUE, SASL_FINAL};
use crate::auth::scram::{SCRAM_SHA_256, SCRAM_SHA_256_PLUS};
use crate::auth::{ChannelBinding, Password, ScramClient, ServerSignature};
use crate::config::UpstreamTlsMode;
use crate::protocol::backend::{self, ProxyError};
use crate::protocol::frame::{Frame, FrameReader};
use crate::protocol::sqlstate;

/// Largest password, SASLInitialResponse or SASLResponse accepted from a client.
const MAX_AUTH_MESSAGE_BYTES: usize = 8 * 1024;

/// TLS state of the upstream connection.
#[derive(Debug, Clone)]
pub enum UpstreamTls {
    Disabled,
    /// `end_point_hash` is the `tls-server-end-point` channel binding data of
    /// the server certificate, or `None` when no hash is defined for its
    /// signature algorithm.
    Enabled { end_point_hash: Option<Vec<u8>> },
}

/// Opens the upstream connection, negotiating TLS per `upstream.tls.mode`.
pub async fn connect(shared: &Arc<Shared>) -> Result<(Stream, UpstreamTls), ProxyError> {
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
        return Ok((Stream::Plain(tcp), UpstreamTls::Disabled));
    }

    tcp.write_all(&crate::protocol::startup::encode_ssl_request()).await.map_err(|e| unavailable(e.to_string()))?;
    let answer = tcp.read_u8().await.map_err(|e| unavailable(e.to_string()))?;
    if answer != b'S' {
        return Err(unavailable("the upstream server does not accept TLS".to_string()));
    }
    let connector = shared.upstream_tls().ok_or_else(|| unavailable("upstream TLS is not configured".to_string()))?;
    let server_name = crate::tls::server_name(&config.upstream).map_err(|e| unavailable(e.to_string()))?;
    let tls = connector.connect(server_name, tcp).await.map_err(|e| unavailable(format!("TLS handshake failed: {e}")))?;
    let end_point_hash = end_point_hash(tls.get_ref().1);
    Ok((Stream::tls(tls), UpstreamTls::Enabled { end_point_hash }))
}

/// Computes the channel binding data of the server's leaf certificate.
fn end_point_hash(connection: &rustls::ClientConnection) -> Option<Vec<u8>> {
    let leaf = connection.peer_certificates()?.first()?;
    match crate::auth::tls_server_end_point(leaf.as_ref()) {
        Ok(hash) => Some(hash),
        Err(error) => {
            tracing::debug!(%error, "no channel binding data for the upstream certificate");
            None
        }
    }
}

/// Session setup failure.
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
    pub upstream_tls: UpstreamTls,
}

impl Legs<'_> {
    /// True when the proxy runs SCRAM itself for this request: both legs
    /// use TLS and the server requests SASL.
    fn authenticates_on_behalf(&self, code: i32) -> bool {
        code == SASL && self.client_tls && matches!(self.upstream_tls, UpstreamTls::Enabled { .. })
    }
}

/// Authenticates the client to the server, then relays the server's
/// ParameterStatus and BackendKeyData up to the first ReadyForQuery.
pub async fn authenticate(mut legs: Legs<'_>, client_key: impl FnOnce(i32, Vec<u8>) -> (i32, i32)) -> Result<(), SetupError> {
    let mut completed_on_behalf = false;
    loop {
        let frame = next_server_frame(legs.server_reader).await?;
        match frame.tag {
            b'R' => {
                let code = backend::authentication_code(frame.body()).ok_or_else(|| bad_server("short Authentication message"))?;
                if code == 0 {
                    write(legs.client_writer, &frame.bytes).await?;
                    break;
                }
                if completed_on_behalf {
                    return Err(bad_server(&format!("authentication request {code} after a completed SCRAM exchange")).into());
                }
                if legs.authenticates_on_behalf(code) {
                    authenticate_on_behalf(&mut legs, &frame.body()[4..]).await?;
                    completed_on_behalf = true;
                    continue;
                }
                relay_request(&mut legs, code, &frame).await?;
            }
            b'E' => {
                write(legs.client_writer, &frame.bytes).await?;
                return Err(SetupError::Relayed("the server rejected the login".into()));
            }
            b'N' | b'v' => write(legs.client_writer, &frame.bytes).await?,
            other => return Err(bad_server(&format!("unexpected message type {:?} during authentication", other as char)).into()),
        }
    }
    after_authentication(legs.client_writer, legs.server_reader, client_key).await
}

/// Forwards one Authentication request to the client and the client's response to the server.
async fn relay_request(legs: &mut Legs<'_>, code: i32, frame: &Frame) -> Result<(), ProxyError> {
    let forwarded = authentication_request(code, frame, legs.client_tls)?;
    write(legs.client_writer, &forwarded).await?;
    if code == SASL_FINAL {
        return Ok(());
    }
    let upstream_tls = matches!(legs.upstream_tls, UpstreamTls::Enabled { .. });
    relay_client_response(legs.client_reader, legs.server_writer, code, upstream_tls).await
}

/// Logs in to the server with SCRAM, using the password the client sends in
/// response to AuthenticationCleartextPassword. `mechanisms` is the
/// AuthenticationSASL payload after the request code.
async fn authenticate_on_behalf(legs: &mut Legs<'_>, mechanisms: &[u8]) -> Result<(), SetupError> {
    let channel_binding = choose_channel_binding(mechanisms, &legs.upstream_tls)?;
    write(legs.client_writer, &auth_messages::authentication_cleartext_password()).await?;
    let password = read_password(legs.client_reader).await?;

    let client = ScramClient::new(password, channel_binding);
    tracing::debug!(mechanism = client.mechanism(), "authenticating to the upstream server on the client's behalf");
    let initial = auth_messages::sasl_initial_response(client.mechanism(), client.client_first_message().as_bytes());
    send_to_server(legs.server_writer, &initial).await?;

    let server_first = next_sasl_message(legs, SASL_CONTINUE).await?;
    let (client_final, server_signature) = derive_client_final(client, server_first).await?;
    send_to_server(legs.server_writer, &auth_messages::sasl_response(client_final.as_bytes())).await?;

    let server_final = next_sasl_message(legs, SASL_FINAL).await?;
    server_signature.verify(&server_final).map_err(scram_failed)?;
    Ok(())
}

/// Picks SCRAM-SHA-256-PLUS when the server offers it and the certificate
/// hash is known, else SCRAM-SHA-256 with the gs2 flag `n`.
fn choose_channel_binding(mechanisms: &[u8], upstream_tls: &UpstreamTls) -> Result<ChannelBinding, ProxyError> {
    let offered = auth_messages::sasl_mechanisms(mechanisms);
    let offers = |name: &str| offered.contains(&name.as_bytes());

    if let UpstreamTls::Enabled { end_point_hash: Some(hash) } = upstream_tls {
        if offers(SCRAM_SHA_256_PLUS) {
            return Ok(ChannelBinding::TlsServerEndPoint(hash.clone()));
        }
    }
    if offers(SCRAM_SHA_256) {
        return Ok(ChannelBinding::Unsupported);
    }
    Err(ProxyError::fatal(
        sqlstate::INVALID_AUTHORIZATION,
        "the upstream server offers no SASL mechanism schemagate supports (SCRAM-SHA-256, or SCRAM-SHA-256-PLUS with a certificate signed with RSA or ECDSA)",
    ))
}

/// Reads the client's PasswordMessage.
async fn read_password(client_reader: &mut FrameReader<IoReader>) -> Result<Password, ProxyError> {
    let frame = next_password_message(client_reader).await?;
    Password::from_message_body(frame.body())
        .map_err(|e| ProxyError::fatal(sqlstate::PROTOCOL_VIOLATION, format!("invalid password message: {e}")))
}

/// Reads the server's SASL message with request `code` and returns its
/// data. NoticeResponse goes to the client, and so does an ErrorResponse,
/// which ends the login.
async fn next_sasl_message(legs: &mut Legs<'_>, code: i32) -> Result<Vec<u8>, SetupError> {
    loop {
        let frame = next_server_frame(legs.server_reader).await?;
        match frame.tag {
            b'R' if backend::authentication_code(frame.body()) == Some(code) => return Ok(frame.body()[4..].to_vec()),
            b'E' => {
                write(legs.client_writer, &frame.bytes).await?;
                return Err(SetupError::Relayed("the server rejected the login".into()));
            }
            b'N' => write(legs.client_writer, &frame.bytes).await?,
            other => {
                let detail = format!("expected authentication request {code}, got message type {:?}", other as char);
                return Err(bad_server(&detail).into());
            }
        }
    }
}

/// Runs the PBKDF2 key derivation on a blocking thread, because a server
/// may ask for up to `MAX_ITERATIONS` rounds.
async fn derive_client_final(client: ScramClient, server_first: Vec<u8>) -> Result<(String, ServerSignature), ProxyError> {
    match tokio::task::spawn_blocking(move || client.handle_server_first(&server_first)).await {
        Ok(result) => result.map_err(scram_failed),
        Err(error) => {
            tracing::error!(%error, "SCRAM key derivation task failed");
            Err(ProxyError::fatal(sqlstate::INVALID_AUTHORIZATION, "SCRAM authentication with the upstream server failed"))
        }
    }
}

fn scram_failed(error: crate::auth::ScramError) -> ProxyError {
    tracing::warn!(%error, "SCRAM authentication with the upstream server failed");
    ProxyError::fatal(sqlstate::INVALID_AUTHORIZATION, format!("SCRAM authentication with the upstream server failed: {error}"))
}

async fn send_to_server(server_writer: &mut IoWriter, bytes: &[u8]) -> Result<(), ProxyError> {
    server_writer.write_all(bytes).await.map_err(|e| upstream_lost(&e.to_string()))
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
    let frame = next_password_message(client_reader).await?;
    if code == SASL {
        check_sasl_initial_response(frame.body(), upstream_tls)?;
    }
    send_to_server(server_writer, &frame.bytes).await
}

/// Reads a PasswordMessage, SASLInitialResponse or SASLResponse (all type `p`)
/// of at most `MAX_AUTH_MESSAGE_BYTES`.
async fn next_password_message(client_reader: &mut FrameReader<IoReader>) -> Result<Frame, ProxyError> {
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
    Ok(frame)
}

/// Rejects SCRAM gs2 headers that cannot work through the proxy.
///
/// `p=` requests channel binding, which was never offered to the client. A
/// `y` flag informs a TLS server that the client received no PLUS offer, and the
/// server then fails the login as a possible downgrade attack. The relay
/// meets that flag only when the client leg is plaintext, because with TLS
/// on both legs the proxy runs SCRAM itself.
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
            "the SCRAM gs2 flag y cannot pass through schemagate to a TLS upstream server: connect over TLS or with channel_binding=disable",
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
                return Err(SetupError::Relayed("the server rejected the session after authentication".into()));
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


#[cfg(test)]
mod tests {
    use super::*;

    const PLUS_AND_PLAIN: &[u8] = b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0";

    fn tls_with_hash() -> UpstreamTls {
        UpstreamTls::Enabled { end_point_hash: Some(vec![7; 32]) }
    }

    #[test]
    fn plus_chosen_when_offered_and_hash_known() {
        let binding = choose_channel_binding(PLUS_AND_PLAIN, &tls_with_hash()).expect("a mechanism");
        assert!(matches!(binding, ChannelBinding::TlsServerEndPoint(hash) if hash == vec![7; 32]));
    }

    #[test]
    fn plain_scram_without_certificate_hash() {
        let upstream = UpstreamTls::Enabled { end_point_hash: None };
        let binding = choose_channel_binding(PLUS_AND_PLAIN, &upstream).expect("a mechanism");
        assert!(matches!(binding, ChannelBinding::Unsupported));
    }

    #[test]
    fn plain_scram_when_plus_not_offered() {
        let binding = choose_channel_binding(b"SCRAM-SHA-256\0\0", &tls_with_hash()).expect("a mechanism");
        assert!(matches!(binding, ChannelBinding::Unsupported));
    }

    #[test]
    fn unknown_mechanisms_rejected() {
        let error = choose_channel_binding(b"OAUTHBEARER\0\0", &tls_with_hash()).expect_err("no mechanism");
        assert_eq!(error.sqlstate, sqlstate::INVALID_AUTHORIZATION);

        let upstream = UpstreamTls::Enabled { end_point_hash: None };
        let error = choose_channel_binding(b"SCRAM-SHA-256-PLUS\0\0", &upstream).expect_err("no hash for PLUS");
        assert_eq!(error.sqlstate, sqlstate::INVALID_AUTHORIZATION);
    }
}
