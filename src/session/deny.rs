//! Deny by substitution: a denied message is replaced by one that the server
//! rejects in the parser, so the server's transaction and protocol state end
//! exactly as if the server had raised the error itself. The server's
//! syntax error is then rewritten into the proxy's ErrorResponse.

use std::collections::BTreeMap;

use bytes::BytesMut;

use crate::protocol::backend::{error_fields, ProxyError};
use crate::protocol::frame::encode;

/// Denials sent upstream whose errors have not come back yet.
pub struct Substitutions {
    /// Random per-session marker, so a client cannot forge a substituted error.
    marker: String,
    next: u64,
    pending: BTreeMap<u64, ProxyError>,
}

/// Pending denials kept at most; older ones were skipped by the server after an earlier error.
const MAX_PENDING: usize = 1024;

impl Substitutions {
    pub fn new() -> Self {
        let marker = format!("schemagate_denied_{:016x}_", rand::random::<u64>());
        Substitutions { marker, next: 0, pending: BTreeMap::new() }
    }

    /// Registers `error` and returns the SQL text that fails to parse with its number.
    fn register(&mut self, error: ProxyError) -> String {
        let number = self.next;
        self.next += 1;
        self.pending.insert(number, error);
        while self.pending.len() > MAX_PENDING {
            self.pending.pop_first();
        }
        format!("{}{number}", self.marker)
    }

    /// Builds a Query message to send in place of a denied Query or FunctionCall.
    pub fn query(&mut self, error: ProxyError) -> BytesMut {
        let mut body = self.register(error).into_bytes();
        body.push(0);
        frame(b'Q', &body)
    }

    /// Builds a Parse message to send in place of a denied Parse (same name) or Bind (a reserved name).
    pub fn parse(&mut self, statement_name: &[u8], error: ProxyError) -> BytesMut {
        let text = self.register(error);
        let mut body = Vec::with_capacity(statement_name.len() + text.len() + 4);
        body.extend_from_slice(statement_name);
        body.push(0);
        body.extend_from_slice(text.as_bytes());
        body.push(0);
        body.extend_from_slice(&0i16.to_be_bytes());
        frame(b'P', &body)
    }

    /// Returns the proxy's error for a server ErrorResponse caused by a substitution, if it is one.
    pub fn take_for(&mut self, error_body: &[u8]) -> Option<ProxyError> {
        let fields = error_fields(error_body);
        let sqlstate = fields.iter().find(|(code, _)| *code == b'C').map(|(_, v)| *v)?;
        if sqlstate != b"42601" {
            return None;
        }
        let message = fields.iter().find(|(code, _)| *code == b'M').map(|(_, v)| *v)?;
        let message = std::str::from_utf8(message).ok()?;
        let start = message.find(&self.marker)? + self.marker.len();
        let digits: String = message[start..].chars().take_while(char::is_ascii_digit).collect();
        let number: u64 = digits.parse().ok()?;
        self.pending.remove(&number)
    }
}

fn frame(tag: u8, body: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(body.len() + 5);
    // Substituted bodies are a few dozen bytes, far below the length limit.
    let _ = encode(tag, body, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_error_maps_back_to_denial() {
        let mut substitutions = Substitutions::new();
        let query = substitutions.query(ProxyError::error("42501", "denied"));
        let text = std::str::from_utf8(&query[5..query.len() - 1]).unwrap().to_string();
        let server_error = format!("SERROR\0C42601\0Msyntax error at or near \"{text}\"\0\0");
        let denial = substitutions.take_for(server_error.as_bytes()).unwrap();
        assert_eq!(denial.message, "denied");
        assert!(substitutions.take_for(server_error.as_bytes()).is_none());
    }

    #[test]
    fn unrelated_syntax_error_untouched() {
        let mut substitutions = Substitutions::new();
        substitutions.query(ProxyError::error("42501", "denied"));
        let server_error = b"SERROR\0C42601\0Msyntax error at or near \"schemagate_denied_0000000000000000_0\"\0\0";
        assert!(substitutions.take_for(server_error).is_none());
    }
}
