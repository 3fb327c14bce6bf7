//! Finds where an existing log's chain ends, so a restarted writer continues it.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::chain::{self, ChainHead};
use super::rotate;

/// Maximum length of the last line read back when resuming a chain.
const MAX_LINE_BYTES: u64 = 256 * 1024 * 1024;
const FIRST_WINDOW: u64 = 8 * 1024;

/// Error that prevents continuing the chain of an existing log.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "cannot continue the audit chain of {path}: {reason}; move the file aside and check it \
         with `schemagate audit verify`"
    )]
    Unusable { path: PathBuf, reason: String },
}

/// Returns the head after the last record of `path`, or of its rotated
/// predecessor `path.1` when `path` is missing or empty. Returns the genesis
/// head when neither contains a record.
pub(crate) fn resume_head(path: &Path) -> Result<ChainHead, ResumeError> {
    if let Some(head) = head_of_file(path)? {
        return Ok(head);
    }
    let previous = rotate::rotated_path(path, 1);
    Ok(head_of_file(&previous)?.unwrap_or_else(ChainHead::genesis))
}

/// Returns `None` for a missing, empty or non-regular file.
fn head_of_file(path: &Path) -> Result<Option<ChainHead>, ResumeError> {
    let read_error = |source| ResumeError::Read {
        path: path.to_owned(),
        source,
    };
    let unusable = |reason: String| ResumeError::Unusable {
        path: path.to_owned(),
        reason,
    };

    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_error(e)),
    };
    let metadata = file.metadata().map_err(read_error)?;
    if !metadata.is_file() || metadata.len() == 0 {
        return Ok(None);
    }

    let line = last_line(&mut file, metadata.len())
        .map_err(read_error)?
        .map_err(unusable)?;
    let fields =
        chain::check_line(&line).map_err(|problem| unusable(format!("last line: {problem}")))?;
    Ok(Some(ChainHead::after(&line, &fields)))
}

/// Reads the last line of a file of `len > 0` bytes, newline excluded.
/// The inner error describes why the tail is not a complete line.
fn last_line(file: &mut File, len: u64) -> io::Result<Result<Vec<u8>, String>> {
    let mut window = FIRST_WINDOW.min(len);
    loop {
        let start = len - window;
        file.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::with_capacity(window as usize);
        file.by_ref().take(window).read_to_end(&mut buf)?;

        if buf.last() != Some(&b'\n') {
            return Ok(Err(
                "the last line is incomplete (no trailing newline)".to_owned()
            ));
        }
        let content = &buf[..buf.len() - 1];
        if let Some(newline) = content.iter().rposition(|&b| b == b'\n') {
            return Ok(Ok(content[newline + 1..].to_vec()));
        }
        if start == 0 {
            return Ok(Ok(content.to_vec()));
        }
        if window >= MAX_LINE_BYTES {
            return Ok(Err(format!(
                "the last line is longer than {MAX_LINE_BYTES} bytes"
            )));
        }
        window = (window * 2).min(len).min(MAX_LINE_BYTES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_line_of(bytes: &[u8]) -> Result<Vec<u8>, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, bytes).expect("write");
        let mut file = File::open(&path).expect("open");
        last_line(&mut file, bytes.len() as u64).expect("read")
    }

    #[test]
    fn last_line_of_short_file() {
        assert_eq!(last_line_of(b"one\ntwo\n"), Ok(b"two".to_vec()));
        assert_eq!(last_line_of(b"only\n"), Ok(b"only".to_vec()));
    }

    #[test]
    fn last_line_longer_than_first_window() {
        let long = vec![b'x'; 3 * FIRST_WINDOW as usize + 5];
        let mut file = b"first\n".to_vec();
        file.extend_from_slice(&long);
        file.push(b'\n');

        assert_eq!(last_line_of(&file), Ok(long));
    }

    #[test]
    fn last_line_without_newline_is_incomplete() {
        assert!(last_line_of(b"one\ntw").is_err());
    }
}
