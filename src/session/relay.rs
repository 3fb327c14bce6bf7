//! The relay loop after startup. Client messages are inspected, then
//! forwarded or substituted. Server messages are forwarded in batches, with
//! ParameterStatus checked and substituted errors rewritten.

use parking_lot::Mutex;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::io::{IoReader, IoWriter};
use super::judge::Judge;
use crate::metrics::{Direction, Metrics};
use crate::protocol::backend::{self, ProxyError};
use crate::protocol::frame::{Frame, FrameError, FrameReader};
use crate::protocol::{frontend, sqlstate};

/// Bytes gathered before a write, so small messages go out together.
const FLUSH_THRESHOLD: usize = 64 * 1024;

/// Reason the relay ended.
pub enum End {
    ClientClosed,
    ServerClosed,
    /// The server sent a FATAL error, already relayed.
    ServerFatal,
    /// Ended by the admin API, window expiry or shutdown.
    Terminated,
    /// The proxy ends the session with this error.
    Fatal(ProxyError),
}

/// Runs both directions until one ends or `terminate` fires.
pub async fn run(
    judge: &Mutex<Judge>,
    client_reader: &mut FrameReader<IoReader>,
    client_writer: &mut IoWriter,
    server_reader: &mut FrameReader<IoReader>,
    server_writer: &mut IoWriter,
    terminate: &CancellationToken,
    metrics: &Metrics,
) -> End {
    tokio::select! {
        end = client_to_server(judge, client_reader, server_writer, metrics) => end,
        end = server_to_client(judge, server_reader, client_writer, metrics) => end,
        _ = terminate.cancelled() => End::Terminated,
    }
}

async fn client_to_server(judge: &Mutex<Judge>, reader: &mut FrameReader<IoReader>, writer: &mut IoWriter, metrics: &Metrics) -> End {
    let mut out = BytesMut::with_capacity(8192);
    loop {
        let frame = match reader.next_frame().await {
            Ok(Some(frame)) => frame,
            Ok(None) => return End::ClientClosed,
            Err(error) => return client_frame_error(error),
        };
        let mut terminate = frame.tag == b'X';
        if let Err(error) = judge.lock().client_message(frame, &mut out) {
            return End::Fatal(error);
        }
        loop {
            match reader.buffered_frame() {
                Ok(Some(frame)) => {
                    terminate |= frame.tag == b'X';
                    if let Err(error) = judge.lock().client_message(frame, &mut out) {
                        return End::Fatal(error);
                    }
                    if out.len() >= FLUSH_THRESHOLD && writer.write_all(&out).await.is_err() {
                        return End::ServerClosed;
                    } else if out.len() >= FLUSH_THRESHOLD {
                        out.clear();
                    }
                }
                Ok(None) => break,
                Err(error) => return client_frame_error(error),
            }
        }
        if writer.write_all(&out).await.is_err() {
            return End::ServerClosed;
        }
        metrics.bytes(Direction::ClientToServer, out.len() as u64);
        out.clear();
        if terminate {
            return End::ClientClosed;
        }
    }
}

fn client_frame_error(error: FrameError) -> End {
    match error {
        FrameError::TooLarge { size, limit } => End::Fatal(ProxyError::fatal(
            sqlstate::PROGRAM_LIMIT_EXCEEDED,
            format!("message of {size} bytes exceeds limits.max_message_bytes ({limit} bytes)"),
        )),
        FrameError::InvalidLength(length) => {
            End::Fatal(ProxyError::fatal(sqlstate::PROTOCOL_VIOLATION, format!("invalid message length {length}")))
        }
        FrameError::Io(_) => End::ClientClosed,
    }
}

async fn server_to_client(judge: &Mutex<Judge>, reader: &mut FrameReader<IoReader>, writer: &mut IoWriter, metrics: &Metrics) -> End {
    let mut out = BytesMut::with_capacity(8192);
    loop {
        let frame = match reader.next_frame().await {
            Ok(Some(frame)) => frame,
            Ok(None) => return End::ServerClosed,
            Err(error) => return server_frame_error(error),
        };
        if let Err(error) = server_message(judge, frame, &mut out) {
            let _ = writer.write_all(&out).await;
            return End::Fatal(error);
        }
        loop {
            match reader.buffered_frame() {
                Ok(Some(frame)) => {
                    if let Err(error) = server_message(judge, frame, &mut out) {
                        let _ = writer.write_all(&out).await;
                        return End::Fatal(error);
                    }
                    if out.len() >= FLUSH_THRESHOLD {
                        if writer.write_all(&out).await.is_err() {
                            return End::ClientClosed;
                        }
                        out.clear();
                    }
                }
                Ok(None) => break,
                Err(error) => return server_frame_error(error),
            }
        }
        if writer.write_all(&out).await.is_err() {
            return End::ClientClosed;
        }
        metrics.bytes(Direction::ServerToClient, out.len() as u64);
        out.clear();
        if judge.lock().server_sent_fatal {
            return End::ServerFatal;
        }
    }
}

fn server_frame_error(error: FrameError) -> End {
    match error {
        FrameError::Io(_) => End::ServerClosed,
        other => {
            tracing::warn!(error = %other, "invalid frame from the upstream server");
            End::Fatal(ProxyError::fatal(sqlstate::PROTOCOL_VIOLATION, format!("invalid message from the upstream server: {other}")))
        }
    }
}

/// Inspects one server message and appends what the client gets.
fn server_message(judge: &Mutex<Judge>, frame: Frame, out: &mut BytesMut) -> Result<(), ProxyError> {
    match frame.tag {
        b'E' => {
            let mut judge = judge.lock();
            if let Some(error) = judge.substitutions.take_for(frame.body()) {
                error.encode(out);
                return Ok(());
            }
            if is_fatal(frame.body()) {
                judge.server_sent_fatal = true;
            }
        }
        b'S' => check_parameter_status(frame.body())?,
        b'Z' => {
            if let Some(status) = frame.body().first() {
                judge.lock().transaction_status = *status;
            }
        }
        _ => {}
    }
    out.extend_from_slice(&frame.bytes);
    Ok(())
}

fn is_fatal(body: &[u8]) -> bool {
    backend::error_fields(body)
        .iter()
        .any(|(code, value)| *code == b'S' && (*value == b"FATAL" || *value == b"PANIC"))
}

/// Ends the session when the server reports a setting that changes how the proxy must parse.
pub fn check_parameter_status(body: &[u8]) -> Result<(), ProxyError> {
    let Some((name, value)) = backend::parameter_status(body) else {
        return Err(ProxyError::fatal(sqlstate::PROTOCOL_VIOLATION, "invalid ParameterStatus from the upstream server"));
    };
    let safe = match name {
        "client_encoding" => value.eq_ignore_ascii_case("UTF8"),
        "standard_conforming_strings" => value == "on",
        _ => true,
    };
    if safe {
        return Ok(());
    }
    tracing::warn!(parameter = name, value, "server reported a parsing-relevant setting change; ending the session");
    Err(ProxyError::fatal(
        sqlstate::INSUFFICIENT_PRIVILEGE,
        format!("the server reports {name} = {value}, which schemagate does not allow; the session ends"),
    ))
}

/// Validates the framing of Sync and Flush, which carry no body.
pub fn check_empty_body(frame: &Frame) -> Result<(), ProxyError> {
    if frame.body().is_empty() {
        return Ok(());
    }
    Err(ProxyError::fatal(sqlstate::PROTOCOL_VIOLATION, "invalid message format: Sync and Flush carry no data"))
}

/// Decodes the text of a Query message, or the error to send in its place.
pub fn query_text(frame: &Frame) -> Result<&[u8], ProxyError> {
    frontend::query_text(frame.body()).map_err(|e| ProxyError::error(sqlstate::PROTOCOL_VIOLATION, e.to_string()))
}

