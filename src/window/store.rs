//! The window state file: open windows as JSON, replaced atomically.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::WindowError;

const FORMAT_VERSION: u32 = 1;

/// On-disk form of the state file.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StateFile {
    pub version: u32,
    pub windows: Vec<StoredWindow>,
}

/// One open window as stored. Bound sessions are not stored because
/// sessions do not survive a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredWindow {
    pub id: String,
    pub database: String,
    /// Users named when the window was opened; empty means every migrator
    /// configured for the database.
    pub users: Vec<String>,
    pub opened_by: String,
    pub reason: String,
    /// Milliseconds since the Unix epoch.
    pub opened_at_ms: u64,
    pub expires_at_ms: u64,
    pub max_sessions: usize,
}

/// Reads the state file; a missing file means no windows.
pub(super) fn load(path: &Path) -> Result<Vec<StoredWindow>, WindowError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(state_error("read", path, &error)),
    };

    let file: StateFile = serde_json::from_str(&text).map_err(|error| {
        WindowError::State(format!(
            "{} is not a valid state file: {error}",
            path.display()
        ))
    })?;
    if file.version != FORMAT_VERSION {
        return Err(WindowError::State(format!(
            "{} has format version {}, expected {FORMAT_VERSION}",
            path.display(),
            file.version
        )));
    }
    Ok(file.windows)
}

/// Replaces the state file: writes a temporary file in the same directory,
/// syncs it and renames it over the old one, so a reader sees either the old
/// or the new content.
pub(super) fn save(path: &Path, windows: Vec<StoredWindow>) -> Result<(), WindowError> {
    let file = StateFile {
        version: FORMAT_VERSION,
        windows,
    };
    let mut text = serde_json::to_vec_pretty(&file)
        .map_err(|error| WindowError::State(format!("encode state: {error}")))?;
    text.push(b'\n');

    let temporary = temporary_path(path);
    write_synced(&temporary, &text).map_err(|error| state_error("write", &temporary, &error))?;
    if let Err(error) = fs::rename(&temporary, path) {
        let _ = fs::remove_file(&temporary);
        return Err(state_error("rename into", path, &error));
    }

    sync_parent(path);
    Ok(())
}

pub(super) fn to_millis(time: SystemTime) -> u64 {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

pub(super) fn from_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|name| name.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }

    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Syncs the directory so the rename itself survives a crash; failures are
/// ignored because some file systems do not support syncing directories.
fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if let Ok(directory) = fs::File::open(parent) {
        let _ = directory.sync_all();
    }
}

fn state_error(action: &str, path: &Path, error: &io::Error) -> WindowError {
    WindowError::State(format!("failed to {action} {}: {error}", path.display()))
}
