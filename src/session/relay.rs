//! The relay loop after startup. Client messages are inspected, then
//! forwarded or substituted. Server messages are forwarded in batches, with
//! ParameterStatus checked and substituted errors rewritten.

use std::future::poll_fn;
use std::pin::pin;
use std::task::Poll;

use parking_lot::Mutex;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use super::io::{IoReader, IoWriter};
use super::judge::Judge;
use super::race::Branches;
use crate::metrics::{Direction, Metrics};
use crate::protocol::backend::{self, ProxyError};
use crate::protocol::frame::{complete_frame, FrameError, FrameReader, Message};
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

/// The two legs of a session, each split into its reading and writing half.
pub struct Legs<'a> {
    pub client_reader: &'a mut FrameReader<IoReader>,
    pub client_writer: &'a mut IoWriter,
    pub server_reader: &'a mut FrameReader<IoReader>,
    pub server_writer: &'a mut IoWriter,
}

/// Runs both directions until one ends or `terminate` fires.
pub async fn run(judge: &Mutex<Judge>, legs: Legs<'_>, terminate: &CancellationToken, metrics: &Metrics, session_id: u64) -> End {
    let mut upward = pin!(client_to_server(judge, legs.client_reader, legs.server_writer, metrics));
    let mut downward = pin!(server_to_client(judge, legs.server_reader, legs.client_writer, metrics, session_id));
    let mut terminated = pin!(terminate.cancelled());
    let branches = Branches::<3>::new();

    poll_fn(|cx| {
        branches.follow_task(cx);
        if let Poll::Ready(end) = branches.poll(0, upward.as_mut()) {
            return Poll::Ready(end);
        }
        if let Poll::Ready(end) = branches.poll(1, downward.as_mut()) {
            return Poll::Ready(end);
        }
        branches.poll(2, terminated.as_mut()).map(|()| End::Terminated)
    })
    .await
}

/// Judges client messages in place in the read buffer and writes what the
/// server gets, one batch per read.
async fn client_to_server(judge: &Mutex<Judge>, reader: &mut FrameReader<IoReader>, writer: &mut IoWriter, metrics: &Metrics) -> End {
    let mut out = BytesMut::with_capacity(8192);
    loop {
        match reader.fill().await {
            Ok(true) => {}
            Ok(false) => return End::ClientClosed,
            Err(error) => return client_frame_error(error),
        }

        let limit = reader.limit();
        let batch = judge_buffered(judge, reader.buffered(), limit, writer, &mut out).await;
        reader.consume(batch.consumed);
        if let Some(end) = batch.end {
            return end;
        }
        if writer.write_all(&out).await.is_err() {
            return End::ServerClosed;
        }
        metrics.bytes(Direction::ClientToServer, out.len() as u64);
        out.clear();
        if batch.terminate {
            return End::ClientClosed;
        }
    }
}

/// Outcome of judging one batch of buffered client messages.
struct Batch {
    consumed: usize,
    /// A Terminate message was among them.
    terminate: bool,
    end: Option<End>,
}

/// Judges every complete buffered message into `out`, writing `out` early
/// when it grows past [`FLUSH_THRESHOLD`].
async fn judge_buffered(judge: &Mutex<Judge>, buffered: &[u8], limit: usize, writer: &mut IoWriter, out: &mut BytesMut) -> Batch {
    let mut batch = Batch { consumed: 0, terminate: false, end: None };
    loop {
        let more = judge_until_flush(judge, buffered, limit, out, &mut batch);
        if !more || batch.end.is_some() {
            return batch;
        }
        if writer.write_all(out).await.is_err() {
            batch.end = Some(End::ServerClosed);
            return batch;
        }
        out.clear();
    }
}

/// Judges buffered messages under one lock of the judge until they run out
/// or `out` needs writing. Returns whether messages may remain.
fn judge_until_flush(judge: &Mutex<Judge>, buffered: &[u8], limit: usize, out: &mut BytesMut, batch: &mut Batch) -> bool {
    let mut judge = judge.lock();
    while out.len() < FLUSH_THRESHOLD {
        let (tag, total) = match complete_frame(&buffered[batch.consumed..], limit) {
            Ok(Some(frame)) => frame,
            Ok(None) => return false,
            Err(error) => {
                batch.end = Some(client_frame_error(error));
                return false;
            }
        };
        let message = Message { tag, bytes: &buffered[batch.consumed..batch.consumed + total] };
        batch.consumed += total;
        batch.terminate |= tag == b'X';
        if let Err(error) = judge.client_message(message, out) {
            batch.end = Some(End::Fatal(error));
            return false;
        }
    }
    true
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

/// Forwards server messages straight from the read buffer. Only ErrorResponse,
/// ParameterStatus and ReadyForQuery are inspected. Everything else, DataRow
/// above all, goes out without being split or copied.
async fn server_to_client(
    judge: &Mutex<Judge>,
    reader: &mut FrameReader<IoReader>,
    writer: &mut IoWriter,
    metrics: &Metrics,
    session_id: u64,
) -> End {
    loop {
        match reader.fill().await {
            Ok(true) => {}
            Ok(false) => return End::ServerClosed,
            Err(error) => return server_frame_error(error, session_id),
        }

        let forwarding = forward_buffered(judge, reader.buffered(), reader.limit(), writer, session_id);
        let (forwarded, result) = match forwarding.await {
            Ok(forwarded) => (forwarded, Ok(())),
            Err(Failure { forwarded, end }) => (forwarded, Err(end)),
        };
        reader.consume(forwarded);
        metrics.bytes(Direction::ServerToClient, forwarded as u64);
        if let Err(end) = result {
            return end;
        }
        if judge.lock().server_sent_fatal {
            return End::ServerFatal;
        }
    }
}

/// Reason forwarding stopped, with the number of buffered bytes handled before it.
struct Failure {
    forwarded: usize,
    end: End,
}

/// Writes every complete buffered frame to the client, replacing the ones
/// the judge substitutes. Returns the number of buffered bytes handled.
async fn forward_buffered(
    judge: &Mutex<Judge>,
    buffered: &[u8],
    limit: usize,
    writer: &mut IoWriter,
    session_id: u64,
) -> Result<usize, Failure> {
    let mut written = 0;
    let mut offset = 0;
    let mut outcome = Ok(());
    loop {
        let (tag, total) = match complete_frame(&buffered[offset..], limit) {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(error) => {
                outcome = Err(server_frame_error(error, session_id));
                break;
            }
        };
        match server_message(judge, tag, &buffered[offset + 5..offset + total]) {
            Ok(None) => {}
            Ok(Some(replacement)) => {
                write_or_end(writer, &buffered[written..offset], offset).await?;
                write_or_end(writer, &replacement, offset).await?;
                written = offset + total;
            }
            Err(error) => {
                outcome = Err(End::Fatal(error));
                break;
            }
        }
        offset += total;
    }

    write_or_end(writer, &buffered[written..offset], offset).await?;
    outcome.map(|()| offset).map_err(|end| Failure { forwarded: offset, end })
}

async fn write_or_end(writer: &mut IoWriter, bytes: &[u8], forwarded: usize) -> Result<(), Failure> {
    if bytes.is_empty() || writer.write_all(bytes).await.is_ok() {
        return Ok(());
    }
    Err(Failure { forwarded, end: End::ClientClosed })
}

fn server_frame_error(error: FrameError, session_id: u64) -> End {
    match error {
        FrameError::Io(_) => End::ServerClosed,
        other => {
            tracing::warn!(session = session_id, error = %other, "invalid frame from the upstream server");
            End::Fatal(ProxyError::fatal(sqlstate::PROTOCOL_VIOLATION, format!("invalid message from the upstream server: {other}")))
        }
    }
}

/// Inspects one server message. Returns the bytes the client gets in its
/// place when it is the error of a substituted statement.
fn server_message(judge: &Mutex<Judge>, tag: u8, body: &[u8]) -> Result<Option<BytesMut>, ProxyError> {
    match tag {
        b'E' => {
            let mut judge = judge.lock();
            if let Some(error) = judge.substitutions.take_for(body) {
                let mut replacement = BytesMut::new();
                error.encode(&mut replacement);
                return Ok(Some(replacement));
            }
            if is_fatal(body) {
                judge.server_sent_fatal = true;
            }
        }
        b'S' => check_parameter_status(body)?,
        b'Z' => {
            if let Some(status) = body.first() {
                judge.lock().transaction_status = *status;
            }
        }
        _ => {}
    }
    Ok(None)
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
    Err(ProxyError::fatal(
        sqlstate::INSUFFICIENT_PRIVILEGE,
        format!("the server reports {name} = {value}, which schemagate does not allow; the session ends"),
    ))
}

/// Validates the framing of Sync and Flush, which carry no body.
pub fn check_empty_body(frame: Message<'_>) -> Result<(), ProxyError> {
    if frame.body().is_empty() {
        return Ok(());
    }
    Err(ProxyError::fatal(sqlstate::PROTOCOL_VIOLATION, "invalid message format: Sync and Flush carry no data"))
}

/// Decodes the text of a Query message, or the error to send in its place.
pub fn query_text(frame: Message<'_>) -> Result<&[u8], ProxyError> {
    frontend::query_text(frame.body()).map_err(|e| ProxyError::error(sqlstate::PROTOCOL_VIOLATION, e.to_string()))
}

