//! The audit log: one JSON object per line (JSON Lines), each carrying the
//! hash of the previous line. The line format and hash rules are described
//! in [`chain`]; [`verify`] checks a set of files offline.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;

use crate::config::{self, AuditFailureMode};

pub mod chain;
mod rotate;
mod tail;
mod verify;
mod writer;

pub use chain::{LineProblem, GENESIS_HASH};
pub use rotate::{rotated_files, rotated_path};
pub use tail::ResumeError;
pub use verify::{run_verify, verify, ChainProblem, VerifyError, VerifyReport};

use writer::Writer;

/// One audit event. Empty fields are left out of the JSON line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditRecord {
    /// `session_start`, `session_end`, `decision`, `window_opened`, `window_bound`,
    /// `window_expired`, `window_closed`, `window_refused`, `attack`.
    pub event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert_subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_id: Option<String>,
    /// `allow` or `deny`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_tag: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<String>,
    /// Normalized statement text with literals replaced, never the text as sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Reason given when the window was opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Operator who opened the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opened_by: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log write failed: {0}")]
    Write(#[from] std::io::Error),
    #[error("cannot open audit log {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Resume(#[from] ResumeError),
    #[error("cannot encode audit record: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The audit log writer; a disabled log (no `path`) accepts every record
/// and writes nothing.
///
/// Writes are synchronous file I/O under a mutex, even when called from
/// async tasks: a record is one `write` call (plus `fdatasync` for durable
/// records), which is short enough to do inline.
pub struct AuditLog {
    writer: Option<Mutex<Writer>>,
    log_allowed: bool,
    on_failure: AuditFailureMode,
    failures: AtomicU64,
}

impl AuditLog {
    /// Opens (or creates) the log at `config.path` and continues the chain
    /// of the records already in it, or in its rotated predecessor
    /// `path.1` when the file is missing or empty. The parent directory
    /// must exist. Fails when the last existing line is not a valid record.
    pub fn open(config: &config::Audit) -> Result<Arc<Self>, AuditError> {
        let writer = match &config.path {
            Some(path) => Some(Mutex::new(Writer::open(path, config.rotate_bytes)?)),
            None => None,
        };
        Ok(Arc::new(AuditLog {
            writer,
            log_allowed: config.log_allowed,
            on_failure: config.on_failure,
            failures: AtomicU64::new(0),
        }))
    }

    /// Appends `record` and hands it to the operating system before returning.
    pub fn write(&self, record: AuditRecord) -> Result<(), AuditError> {
        self.append(&record, Durability::Flushed)
    }

    /// Appends `record` and waits until its data is on disk (`fdatasync`).
    /// For decisions on DDL and protected-table writes, and window events.
    pub fn write_durable(&self, record: AuditRecord) -> Result<(), AuditError> {
        self.append(&record, Durability::Synced)
    }

    /// Opens the configured path again, after logrotate or an operator moved
    /// the file away (SIGHUP). The next record chains to the last one written
    /// before the move. On failure the log keeps writing to the old file.
    pub fn reopen(&self) -> Result<(), AuditError> {
        let Some(writer) = &self.writer else {
            return Ok(());
        };
        writer.lock().reopen()
    }

    /// Number of records that could not be written since the log was opened.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Returns whether allowed statements are logged, or only denials and events.
    pub fn log_allowed(&self) -> bool {
        self.log_allowed
    }

    /// Returns what the session does with a statement whose record cannot be written.
    pub fn on_failure(&self) -> AuditFailureMode {
        self.on_failure
    }

    /// Returns false while writes fail (since the last failed write, until one succeeds).
    pub fn is_writable(&self) -> bool {
        self.writer.as_ref().is_none_or(|writer| !writer.lock().failing)
    }

    /// Returns whether records go to a file.
    pub fn is_enabled(&self) -> bool {
        self.writer.is_some()
    }

    fn append(&self, record: &AuditRecord, durability: Durability) -> Result<(), AuditError> {
        let Some(writer) = &self.writer else {
            return Ok(());
        };

        let mut writer = writer.lock();
        let result = writer.append(record, durability);
        match &result {
            Ok(()) if writer.failing => {
                writer.failing = false;
                tracing::info!(path = %writer.path.display(), "audit log writes succeed again");
            }
            Ok(()) => {}
            Err(error) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                // Log the first failure of a run of failures only.
                if !writer.failing {
                    writer.failing = true;
                    tracing::error!(
                        path = %writer.path.display(),
                        %error,
                        event = record.event,
                        session_id = record.session_id,
                        "audit log write failed"
                    );
                }
            }
        }
        result
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// Written to the file; the operating system flushes it to disk later.
    Flushed,
    /// Written and `fdatasync`ed.
    Synced,
}

const RFC3339_MICROS: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
);

/// Returns the current UTC time as RFC 3339 with microseconds.
fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    // Every component of the format is present in an OffsetDateTime, so this does not fail.
    now.format(RFC3339_MICROS)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests;
