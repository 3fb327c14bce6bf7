//! The line format and the hash chain.
//!
//! Each line is one compact JSON object whose members come in this order:
//! `seq`, `time`, `prev_hash`, the fields of [`AuditRecord`] in declaration
//! order (empty ones left out), and `hash` last. Let `body` be the line's
//! text with the final `,"hash":"…"` member removed, so that it ends with
//! `}`. Then:
//!
//! - `hash` is the lowercase hex SHA-256 of `body`. It detects edits to a
//!   line.
//! - `prev_hash` is the lowercase hex SHA-256 of the previous line's exact
//!   bytes, newline excluded. It detects deleted, inserted and reordered
//!   lines.
//! - `seq` is 1 for the first record ever written and goes up by one per
//!   record, across rotated files.
//! - Record 1 carries [`GENESIS_HASH`] (64 zeros) as its `prev_hash`.
//!
//! The chain is not keyed: anyone who can rewrite the whole file from some
//! point on can recompute every hash after it. It shows partial edits, and
//! the last `seq` and line hash can be stored elsewhere to anchor it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::AuditRecord;

/// The `prev_hash` of record 1: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const HASH_MEMBER_PREFIX: &[u8] = b",\"hash\":\"";
const HASH_HEX_LEN: usize = 64;
/// `,"hash":"` + 64 hex digits + `"}`.
const HASH_MEMBER_LEN: usize = HASH_MEMBER_PREFIX.len() + HASH_HEX_LEN + 2;

/// Position where the next record attaches to the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainHead {
    pub next_seq: u64,
    /// SHA-256 of the last line written, or the genesis value.
    pub last_line_hash: String,
}

impl ChainHead {
    pub fn genesis() -> Self {
        ChainHead {
            next_seq: 1,
            last_line_hash: GENESIS_HASH.to_owned(),
        }
    }

    /// Returns the head that follows `line`, a line already checked by [`check_line`].
    pub fn after(line: &[u8], fields: &ChainFields) -> Self {
        ChainHead {
            next_seq: fields.seq.saturating_add(1),
            last_line_hash: sha256_hex(line),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    time: &'a str,
    prev_hash: &'a str,
    #[serde(flatten)]
    record: &'a AuditRecord,
}

/// One encoded record: the line with its trailing newline, and the head that follows it.
pub(crate) struct EncodedLine {
    pub bytes: Vec<u8>,
    pub next: ChainHead,
}

/// Encodes `record` as the next line after `head`.
pub(crate) fn encode_line(
    head: &ChainHead,
    time: &str,
    record: &AuditRecord,
) -> Result<EncodedLine, serde_json::Error> {
    let body = serde_json::to_vec(&Body {
        seq: head.next_seq,
        time,
        prev_hash: &head.last_line_hash,
        record,
    })?;
    let hash = sha256_hex(&body);

    // `body` is a non-empty JSON object, so it ends with `}` and has members before it.
    let mut bytes = Vec::with_capacity(body.len() + HASH_MEMBER_LEN + 1);
    bytes.extend_from_slice(&body[..body.len() - 1]);
    bytes.extend_from_slice(HASH_MEMBER_PREFIX);
    bytes.extend_from_slice(hash.as_bytes());
    bytes.extend_from_slice(b"\"}");

    let next = ChainHead {
        next_seq: head.next_seq + 1,
        last_line_hash: sha256_hex(&bytes),
    };
    bytes.push(b'\n');
    Ok(EncodedLine { bytes, next })
}

/// The chain members of a line, read back for checking.
#[derive(Debug, Deserialize)]
pub(crate) struct ChainFields {
    pub seq: u64,
    pub prev_hash: String,
    // Read so that a second `hash` member is rejected as a duplicate field.
    #[allow(dead_code)]
    hash: String,
}

/// Defect of a single line, judged without its neighbours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    #[error("not a valid audit record: {0}")]
    Invalid(String),
    #[error("the hash member is missing or not the last member")]
    HashNotLast,
    #[error("hash mismatch")]
    HashMismatch,
}

/// Parses `line` (newline excluded) and checks its own `hash`.
pub(crate) fn check_line(line: &[u8]) -> Result<ChainFields, LineProblem> {
    let fields: ChainFields =
        serde_json::from_slice(line).map_err(|e| LineProblem::Invalid(e.to_string()))?;

    let Some(split) = line.len().checked_sub(HASH_MEMBER_LEN) else {
        return Err(LineProblem::HashNotLast);
    };
    let (head, member) = line.split_at(split);
    let expected_member_shape = member.starts_with(HASH_MEMBER_PREFIX) && member.ends_with(b"\"}");
    let written_hash = &member[HASH_MEMBER_PREFIX.len()..HASH_MEMBER_PREFIX.len() + HASH_HEX_LEN];
    if !expected_member_shape || written_hash != fields.hash.as_bytes() {
        return Err(LineProblem::HashNotLast);
    }

    let mut body = Vec::with_capacity(head.len() + 1);
    body.extend_from_slice(head);
    body.push(b'}');
    if sha256_hex(&body).as_bytes() != written_hash {
        return Err(LineProblem::HashMismatch);
    }
    Ok(fields)
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AuditRecord {
        AuditRecord {
            event: "decision",
            session_id: Some(7),
            ..AuditRecord::default()
        }
    }

    #[test]
    fn encoded_line_layout() {
        let head = ChainHead::genesis();
        let line = encode_line(&head, "2024-01-02T03:04:05.000006Z", &record()).expect("encode");
        let text = std::str::from_utf8(&line.bytes).expect("utf-8");

        assert!(text.starts_with(
            "{\"seq\":1,\"time\":\"2024-01-02T03:04:05.000006Z\",\"prev_hash\":\"0000"
        ));
        assert!(text.contains("\"event\":\"decision\",\"session_id\":7,\"hash\":\""));
        assert!(text.ends_with("\"}\n"));
        assert_eq!(line.next.next_seq, 2);
    }

    #[test]
    fn hash_covers_body_without_hash_member() {
        let line = encode_line(&ChainHead::genesis(), "t", &record()).expect("encode");
        let text = std::str::from_utf8(&line.bytes).expect("utf-8").trim_end();
        let (body_start, hash_member) = text.split_at(text.len() - HASH_MEMBER_LEN);
        let body = format!("{body_start}}}");

        assert_eq!(&hash_member[9..9 + 64], sha256_hex(body.as_bytes()));
        assert_eq!(line.next.last_line_hash, sha256_hex(text.as_bytes()));
    }

    #[test]
    fn check_line_accepts_encoded_line() {
        let line = encode_line(&ChainHead::genesis(), "t", &record()).expect("encode");
        let fields = check_line(&line.bytes[..line.bytes.len() - 1]).expect("valid line");

        assert_eq!(fields.seq, 1);
        assert_eq!(fields.prev_hash, GENESIS_HASH);
    }

    #[test]
    fn check_line_rejects_edit() {
        let line = encode_line(&ChainHead::genesis(), "t", &record()).expect("encode");
        let text = String::from_utf8(line.bytes).expect("utf-8");
        let edited = text
            .trim_end()
            .replace("\"session_id\":7", "\"session_id\":8");

        assert_eq!(
            check_line(edited.as_bytes()).err(),
            Some(LineProblem::HashMismatch)
        );
    }

    #[test]
    fn check_line_rejects_moved_hash_member() {
        let hash = "a".repeat(64);
        let line = format!("{{\"hash\":\"{hash}\",\"seq\":1,\"prev_hash\":\"{GENESIS_HASH}\"}}");

        assert_eq!(
            check_line(line.as_bytes()).err(),
            Some(LineProblem::HashNotLast)
        );
    }

    #[test]
    fn check_line_rejects_duplicate_hash() {
        let line = encode_line(&ChainHead::genesis(), "t", &record()).expect("encode");
        let text = String::from_utf8(line.bytes).expect("utf-8");
        let hash_member = &text.trim_end()[text.trim_end().len() - HASH_MEMBER_LEN..];
        let doubled = format!("{{\"hash\":\"x\",{}", &text.trim_end()[1..]);

        assert!(hash_member.starts_with(",\"hash\""));
        assert!(matches!(
            check_line(doubled.as_bytes()),
            Err(LineProblem::Invalid(_))
        ));
    }
}
