//! Backend messages the proxy sends or inspects itself.

use bytes::{Buf, BytesMut};
use pgwire::messages::response::{ErrorResponse, ReadyForQuery, TransactionStatus};
use pgwire::messages::startup::{BackendKeyData, NegotiateProtocolVersion, SecretKey};
use pgwire::messages::Message;

/// Severity of an ErrorResponse the proxy builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
}

/// An ErrorResponse the proxy sends in its own name.
#[derive(Debug, Clone)]
pub struct ProxyError {
    pub severity: Severity,
    pub sqlstate: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

impl ProxyError {
    pub fn fatal(sqlstate: &'static str, message: impl Into<String>) -> Self {
        ProxyError { severity: Severity::Fatal, sqlstate, message: message.into(), hint: None }
    }

    pub fn error(sqlstate: &'static str, message: impl Into<String>) -> Self {
        ProxyError { severity: Severity::Error, sqlstate, message: message.into(), hint: None }
    }

    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }

    /// Appends the ErrorResponse to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let severity = match self.severity {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        };
        let mut fields = vec![
            (b'S', severity.to_string()),
            (b'V', severity.to_string()),
            (b'C', self.sqlstate.to_string()),
            (b'M', self.message.clone()),
        ];
        if let Some(hint) = &self.hint {
            fields.push((b'H', hint.clone()));
        }
        encode_message(&ErrorResponse::new(fields), out);
    }

    pub fn to_bytes(&self) -> BytesMut {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out
    }
}

pub fn ready_for_query(status: u8, out: &mut BytesMut) {
    let status = match status {
        b'T' => TransactionStatus::Transaction,
        b'E' => TransactionStatus::Error,
        _ => TransactionStatus::Idle,
    };
    encode_message(&ReadyForQuery::new(status), out);
}

pub fn backend_key_data(pid: i32, key: i32, out: &mut BytesMut) {
    encode_message(&BackendKeyData::new(pid, SecretKey::I32(key)), out);
}

/// NegotiateProtocolVersion offering 3.0 and listing the options not understood.
pub fn negotiate_protocol_version(unsupported_options: Vec<String>, out: &mut BytesMut) {
    let message = NegotiateProtocolVersion::new(super::PROTOCOL_3_0 as i32, unsupported_options);
    encode_message(&message, out);
}

fn encode_message<M: Message>(message: &M, out: &mut BytesMut) {
    // pgwire fails only for bodies past i32::MAX bytes; these messages carry a few short strings.
    if let Err(error) = message.encode(out) {
        tracing::error!(%error, "failed to encode a backend message");
    }
}

/// Fields of an ErrorResponse or NoticeResponse body, by field code.
pub fn error_fields(body: &[u8]) -> Vec<(u8, &[u8])> {
    let mut fields = Vec::new();
    let mut rest = body;
    while let Some((&code, after)) = rest.split_first() {
        if code == 0 {
            break;
        }
        let Some(end) = after.iter().position(|b| *b == 0) else { break };
        fields.push((code, &after[..end]));
        rest = &after[end + 1..];
    }
    fields
}

/// Returns the SQLSTATE of an ErrorResponse body, if present.
pub fn error_sqlstate(body: &[u8]) -> Option<&[u8]> {
    error_fields(body).into_iter().find(|(code, _)| *code == b'C').map(|(_, value)| value)
}

/// Name and value of a ParameterStatus body.
pub fn parameter_status(body: &[u8]) -> Option<(&str, &str)> {
    let end = body.iter().position(|b| *b == 0)?;
    let name = std::str::from_utf8(&body[..end]).ok()?;
    let rest = &body[end + 1..];
    let value_end = rest.iter().position(|b| *b == 0)?;
    let value = std::str::from_utf8(&rest[..value_end]).ok()?;
    Some((name, value))
}

/// Authentication request code of an `R` message body.
pub fn authentication_code(body: &[u8]) -> Option<i32> {
    if body.len() < 4 {
        return None;
    }
    Some((&body[..4]).get_i32())
}

/// Rebuilds an AuthenticationSASL body without `SCRAM-SHA-256-PLUS`.
///
/// Channel binding ties SCRAM to the client's own TLS connection. When the
/// proxy terminates that TLS, the server's binding data can never match, so
/// offering PLUS would only make clients fail.
pub fn strip_scram_plus(body: &[u8]) -> (BytesMut, usize) {
    let mut out = BytesMut::new();
    out.extend_from_slice(&body[..4]);
    let mut kept = 0;
    for mechanism in body[4..].split(|b| *b == 0).filter(|m| !m.is_empty()) {
        if mechanism == b"SCRAM-SHA-256-PLUS" {
            continue;
        }
        out.extend_from_slice(mechanism);
        out.extend_from_slice(&[0]);
        kept += 1;
    }
    out.extend_from_slice(&[0]);
    (out, kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_response_has_sqlstate_and_hint() {
        let bytes = ProxyError::error("42501", "denied").with_hint(Some("open a window".into())).to_bytes();
        assert_eq!(bytes[0], b'E');
        let fields = error_fields(&bytes[5..]);
        assert!(fields.contains(&(b'C', b"42501".as_slice())));
        assert!(fields.contains(&(b'H', b"open a window".as_slice())));
    }

    #[test]
    fn scram_plus_removed() {
        let body = b"\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0";
        let (out, kept) = strip_scram_plus(body);
        assert_eq!(kept, 1);
        assert_eq!(&out[..], b"\0\0\0\x0aSCRAM-SHA-256\0\0");
    }
}
