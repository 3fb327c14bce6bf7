//! The open log file and the chain head, kept together under one lock.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::chain::{self, ChainHead};
use super::{now_rfc3339, rotate, tail, AuditError, AuditRecord, Durability};

pub(super) struct Writer {
    pub path: PathBuf,
    file: File,
    /// Bytes in `file`, used for rotation and to cut off a torn write.
    file_bytes: u64,
    head: ChainHead,
    rotate_bytes: Option<u64>,
    /// Set while writes fail, so that only the first failure is logged.
    pub failing: bool,
    /// Set while rotation fails, so that only the first failure is logged.
    rotation_failing: bool,
}

impl Writer {
    pub fn open(path: &Path, rotate_bytes: Option<u64>) -> Result<Self, AuditError> {
        let (file, file_bytes) = open_append(path)?;
        let head = tail::resume_head(path)?;
        Ok(Writer {
            path: path.to_owned(),
            file,
            file_bytes,
            head,
            rotate_bytes,
            failing: false,
            rotation_failing: false,
        })
    }

    pub fn append(
        &mut self,
        record: &AuditRecord,
        durability: Durability,
    ) -> Result<(), AuditError> {
        let time = now_rfc3339();
        let line = chain::encode_line(&self.head, &time, record)?;
        self.rotate_if_needed(line.bytes.len() as u64);

        if let Err(e) = self.file.write_all(&line.bytes) {
            self.cut_torn_write();
            return Err(e.into());
        }
        // The line is in the file now, so the chain moves on even if the sync fails.
        self.file_bytes += line.bytes.len() as u64;
        self.head = line.next;

        if durability == Durability::Synced {
            self.file.sync_data()?;
        }
        Ok(())
    }

    #[cfg(test)]
    pub fn head(&self) -> &ChainHead {
        &self.head
    }

    pub fn reopen(&mut self) -> Result<(), AuditError> {
        if let Err(error) = self.file.sync_data() {
            tracing::warn!(path = %self.path.display(), %error, "audit log sync before reopen failed");
        }
        let (file, file_bytes) = open_append(&self.path)?;
        self.file = file;
        self.file_bytes = file_bytes;
        tracing::info!(path = %self.path.display(), next_seq = self.head.next_seq, "audit log reopened");
        Ok(())
    }

    /// Rotates before a line of `line_len` bytes would take the file past
    /// `rotate_bytes`. A file is never left empty, so one oversized record
    /// still gets written. When rotation fails the record goes to the
    /// current file and rotation is tried again on the next record.
    fn rotate_if_needed(&mut self, line_len: u64) {
        let Some(limit) = self.rotate_bytes else {
            return;
        };
        if self.file_bytes == 0 || self.file_bytes.saturating_add(line_len) <= limit {
            return;
        }

        match self.rotate() {
            Ok(()) => {
                self.rotation_failing = false;
                tracing::info!(path = %self.path.display(), next_seq = self.head.next_seq, "audit log rotated");
            }
            Err(error) if !self.rotation_failing => {
                self.rotation_failing = true;
                tracing::error!(path = %self.path.display(), %error, "audit log rotation failed");
            }
            Err(_) => {}
        }
    }

    fn rotate(&mut self) -> Result<(), AuditError> {
        self.file.sync_data()?;
        rotate::shift_files(&self.path)?;
        let (file, file_bytes) = open_append(&self.path)?;
        self.file = file;
        self.file_bytes = file_bytes;
        Ok(())
    }

    /// Truncates the bytes a failed write may have left, so the next record
    /// starts on a fresh line. Fails quietly on files that cannot be
    /// truncated, such as devices.
    fn cut_torn_write(&mut self) {
        let Ok(metadata) = self.file.metadata() else {
            return;
        };
        if metadata.is_file() && metadata.len() > self.file_bytes {
            if let Err(error) = self.file.set_len(self.file_bytes) {
                tracing::warn!(path = %self.path.display(), %error, "cannot remove a partly written audit record");
            }
        }
    }
}

/// Opens `path` for appending, creating it, and returns its current length.
fn open_append(path: &Path) -> Result<(File, u64), AuditError> {
    let open_error = |source: io::Error| AuditError::Open {
        path: path.to_owned(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(open_error)?;
    let len = file.metadata().map_err(open_error)?.len();
    Ok((file, len))
}
