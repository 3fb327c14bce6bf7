//! One client connection: startup, authentication relay, then the relay
//! loop with every statement judged by the policy.

mod deny;
mod io;
mod judge;
mod names;
mod negotiate;
mod params;
mod race;
mod relay;
mod shared;
mod upstream;

use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use shared::Shared;

use self::io::{Stream, IoReader, IoWriter};
use self::judge::Judge;
use self::negotiate::{ClientHello, Negotiated};
use self::relay::End;
use crate::audit::AuditRecord;
use crate::metrics::RefusalReason;
use crate::protocol::backend::{self, ProxyError};
use crate::protocol::frame::FrameReader;
use crate::protocol::sqlstate;
use crate::server::{CancelTarget, SessionInfo};
use crate::window::SessionIdentity;

/// Serves one accepted TCP connection to its end.
///
/// Startup and teardown run inside the session's tracing span. The relay
/// loop runs outside it, because entering a span on every poll costs more
/// than relaying a small message. Its events name the session themselves.
pub async fn handle_client(shared: Arc<Shared>, tcp: TcpStream, client_addr: SocketAddr, over_limit: bool, shutdown: CancellationToken) {
    let session_id = shared.next_session_id();
    let span = tracing::info_span!(
        "session",
        id = session_id,
        client = %client_addr,
        user = tracing::field::Empty,
        database = tracing::field::Empty,
        application_name = tracing::field::Empty,
    );
    let opened = open(shared, tcp, session_id, client_addr, over_limit, shutdown).instrument(span.clone()).await;
    let Some(mut session) = opened else { return };

    let end = session.relay().await;
    session.close(end).instrument(span).await;
}

/// Accepts the connection, negotiates and starts the upstream session.
async fn open(
    shared: Arc<Shared>,
    tcp: TcpStream,
    session_id: u64,
    client_addr: SocketAddr,
    over_limit: bool,
    shutdown: CancellationToken,
) -> Option<Session> {
    tracing::debug!("connection accepted");
    let _ = tcp.set_nodelay(true);
    let startup_timeout = shared.config().limits.startup_timeout;
    let negotiated = match tokio::time::timeout(startup_timeout, negotiate::negotiate(&shared, tcp)).await {
        Ok(Ok(negotiated)) => negotiated,
        Ok(Err(rejection)) => {
            reject(&shared, rejection).await;
            return None;
        }
        Err(_) => {
            shared.metrics.connection_refused(RefusalReason::StartupTimeout);
            tracing::info!("startup timed out");
            return None;
        }
    };
    let Negotiated::Startup(hello) = negotiated else { return None };
    if over_limit {
        let error = ProxyError::fatal(sqlstate::TOO_MANY_CONNECTIONS, "sorry, too many clients already (limits.max_connections)");
        send_fatal(hello.stream, &error).await;
        return None;
    }
    serve(shared, hello, session_id, client_addr, startup_timeout, shutdown).await
}

async fn reject(shared: &Shared, rejection: negotiate::Rejection) {
    tracing::info!(reason = %rejection.reason, "startup rejected");
    let reason = match rejection.error.as_ref().map(|e| e.sqlstate) {
        Some(sqlstate::INVALID_AUTHORIZATION) => RefusalReason::TlsRequired,
        Some(sqlstate::PROTOCOL_VIOLATION) => RefusalReason::ProtocolViolation,
        _ => RefusalReason::StartupRejected,
    };
    shared.metrics.connection_refused(reason);
    if let (Some(stream), Some(error)) = (rejection.stream, rejection.error) {
        send_fatal(stream, &error).await;
    }
}

async fn send_fatal(mut stream: Stream, error: &ProxyError) {
    let _ = stream.write_all(&error.to_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A session past authentication: both legs and the judge of its statements.
struct Session {
    shared: Arc<Shared>,
    identity: SessionIdentity,
    application_name: String,
    client_reader: FrameReader<IoReader>,
    client_writer: IoWriter,
    server_reader: FrameReader<IoReader>,
    server_writer: IoWriter,
    cancel_key: (i32, i32),
    terminate: CancellationToken,
    judge: Mutex<Judge>,
}

impl Session {
    async fn relay(&mut self) -> End {
        let metrics = self.shared.metrics.clone();
        let session_id = self.identity.session_id;
        let legs = relay::Legs {
            client_reader: &mut self.client_reader,
            client_writer: &mut self.client_writer,
            server_reader: &mut self.server_reader,
            server_writer: &mut self.server_writer,
        };
        relay::run(&self.judge, legs, &self.terminate, &metrics, session_id).await
    }

    async fn close(mut self, end: End) {
        let shared = &self.shared;
        audit_attack(shared, &end, &self.identity);
        finish(end, &mut self.client_writer, &mut self.server_writer).await;

        let session_id = self.identity.session_id;
        shared.cancels.remove(self.cancel_key.0, self.cancel_key.1);
        shared.registry.remove(session_id);
        shared.windows.release(session_id);
        audit_session(shared, "session_end", &self.identity, &self.application_name);
        tracing::info!("session ended");
    }
}

/// Validates startup parameters, connects upstream and relays authentication.
async fn serve(
    shared: Arc<Shared>,
    hello: ClientHello,
    session_id: u64,
    client_addr: SocketAddr,
    startup_timeout: std::time::Duration,
    shutdown: CancellationToken,
) -> Option<Session> {
    let ClientHello { stream, tls, client_cert_subject, minor_version, params } = hello;
    let params = match params::validate(params) {
        Ok(params) => params,
        Err(error) => {
            shared.metrics.connection_refused(RefusalReason::StartupRejected);
            tracing::info!(reason = %error.message, "startup parameters rejected");
            send_fatal(stream, &error).await;
            return None;
        }
    };
    let span = tracing::Span::current();
    span.record("user", params.user.as_str());
    span.record("database", params.database.as_str());
    span.record("application_name", params.application_name.as_str());

    let limit = shared.config().limits.max_message_bytes;
    let (client_read, mut client_writer) = stream.split();
    let mut client_reader = FrameReader::new(client_read, limit);
    if minor_version > 0 || !params.unsupported_protocol_options.is_empty() {
        let mut out = BytesMut::new();
        backend::negotiate_protocol_version(params.unsupported_protocol_options.clone(), &mut out);
        if client_writer.write_all(&out).await.is_err() {
            return None;
        }
    }

    let identity = SessionIdentity {
        session_id,
        user: params.user.clone(),
        database: params.database.clone(),
        client_addr,
        client_cert_subject: client_cert_subject.clone(),
    };
    let setup = tokio::time::timeout(startup_timeout, start_upstream(&shared, &params, &mut client_reader, &mut client_writer, tls));
    let (server_reader, server_writer, cancel_key) = match setup.await {
        Ok(Ok(connected)) => connected,
        Ok(Err(upstream::SetupError::Relayed(reason))) => {
            tracing::info!(%reason, "session setup failed");
            return None;
        }
        Ok(Err(upstream::SetupError::Proxy(error))) => {
            if error.sqlstate == sqlstate::CONNECTION_FAILURE {
                shared.metrics.connection_refused(RefusalReason::UpstreamUnavailable);
            }
            tracing::info!(reason = %error.message, "session setup failed");
            let _ = client_writer.write_all(&error.to_bytes()).await;
            return None;
        }
        Err(_) => {
            tracing::info!("authentication timed out");
            return None;
        }
    };
    client_reader.set_limit(limit);

    let terminate = shutdown.child_token();
    shared.registry.insert(session_info(&identity, &params.application_name), terminate.clone());
    audit_session(&shared, "session_start", &identity, &params.application_name);
    tracing::info!("session started");

    let judge = Mutex::new(Judge::new(shared.clone(), identity.clone(), params.application_name.clone()));
    Some(Session {
        shared,
        identity,
        application_name: params.application_name,
        client_reader,
        client_writer,
        server_reader,
        server_writer,
        cancel_key,
        terminate,
        judge,
    })
}

type Upstream = (FrameReader<IoReader>, IoWriter, (i32, i32));

async fn start_upstream(
    shared: &Arc<Shared>,
    params: &params::StartupParams,
    client_reader: &mut FrameReader<IoReader>,
    client_writer: &mut IoWriter,
    client_tls: bool,
) -> Result<Upstream, upstream::SetupError> {
    let connect_started = std::time::Instant::now();
    let (server, upstream_tls) = upstream::connect(shared).await?;
    shared.metrics.upstream_connected(connect_started.elapsed());
    let (server_read, mut server_writer) = server.split();
    let mut server_reader = FrameReader::new(server_read, upstream::MAX_SERVER_MESSAGE_BYTES);
    let startup = crate::protocol::startup::encode_startup(&params.upstream);
    server_writer.write_all(&startup).await.map_err(|e| upstream::upstream_lost(&e.to_string()))?;

    let address = shared.config().upstream.address.clone();
    let mut cancel_key = (0, 0);
    let legs = upstream::Legs {
        client_reader,
        client_writer,
        server_reader: &mut server_reader,
        server_writer: &mut server_writer,
        client_tls,
        upstream_tls,
    };
    upstream::authenticate(legs, |pid, key| {
        cancel_key = shared.cancels.register(CancelTarget { upstream_address: address, upstream_pid: pid, upstream_key: key });
        cancel_key
    })
    .await?;
    Ok((server_reader, server_writer, cancel_key))
}

/// Tells the client why the session ends and closes the upstream connection.
async fn finish(end: End, client_writer: &mut IoWriter, server_writer: &mut IoWriter) {
    let error = match end {
        End::ClientClosed | End::ServerFatal => None,
        End::ServerClosed => Some(upstream::upstream_lost("the server ended the session")),
        End::Terminated => Some(ProxyError::fatal(sqlstate::ADMIN_SHUTDOWN, "terminating connection due to administrator command (schemagate)")),
        End::Fatal(error) => Some(error),
    };
    if let Some(error) = error {
        tracing::info!(reason = %error.message, sqlstate = error.sqlstate, "ending session");
        let _ = client_writer.write_all(&error.to_bytes()).await;
    }
    let _ = client_writer.shutdown().await;
    let _ = server_writer.write_all(b"X\0\0\0\x04").await;
    let _ = server_writer.shutdown().await;
}

fn session_info(identity: &SessionIdentity, application_name: &str) -> SessionInfo {
    SessionInfo {
        id: identity.session_id,
        client_addr: identity.client_addr.to_string(),
        user: identity.user.clone(),
        database: identity.database.clone(),
        application_name: application_name.to_string(),
        window_id: None,
        started_at: crate::server::now_rfc3339(),
    }
}

fn audit_session(shared: &Shared, event: &'static str, identity: &SessionIdentity, application_name: &str) {
    let record = AuditRecord {
        event,
        session_id: Some(identity.session_id),
        client_addr: Some(identity.client_addr.to_string()),
        client_cert_subject: identity.client_cert_subject.clone(),
        user: Some(identity.user.clone()),
        database: Some(identity.database.clone()),
        application_name: Some(application_name.to_string()),
        ..AuditRecord::default()
    };
    if let Err(error) = shared.audit.write(record) {
        tracing::error!(session = identity.session_id, %error, "audit log write failed");
    }
}

/// Records protocol violations, oversize messages and settings changed behind the proxy's back.
fn audit_attack(shared: &Shared, end: &End, identity: &SessionIdentity) {
    let End::Fatal(error) = end else { return };
    let kind = match error.sqlstate {
        sqlstate::PROTOCOL_VIOLATION => "protocol_violation",
        sqlstate::PROGRAM_LIMIT_EXCEEDED => "oversize_message",
        sqlstate::INSUFFICIENT_PRIVILEGE => "setting_changed",
        _ => return,
    };
    let record = AuditRecord {
        event: "attack",
        session_id: Some(identity.session_id),
        client_addr: Some(identity.client_addr.to_string()),
        client_cert_subject: identity.client_cert_subject.clone(),
        user: Some(identity.user.clone()),
        database: Some(identity.database.clone()),
        rule: Some(kind.to_string()),
        sqlstate: Some(error.sqlstate.to_string()),
        detail: Some(error.message.clone()),
        ..AuditRecord::default()
    };
    if let Err(write_error) = shared.audit.write_durable(record) {
        shared.metrics.audit_failure();
        tracing::error!(session = identity.session_id, error = %write_error, "audit log write failed");
    }
}
