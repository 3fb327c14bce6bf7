//! Size-based rotation: `audit.log` becomes `audit.log.1`, an existing
//! `audit.log.1` becomes `audit.log.2`, and so on. Rotated files are never
//! deleted here, so retention is left to the operator.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

/// Returns `path` with `.n` appended, e.g. `audit.log.2`.
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Lists `path` and its rotated files `path.N` … `path.1`, oldest first,
/// which is the order [`verify`](super::verify) expects. The numbered
/// files are taken from `.1` upward until the first missing number.
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..)
        .map(|n| rotated_path(path, n))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    if path.exists() {
        files.push(path.to_owned());
    }
    files
}

/// Renames `path.k` to `path.k+1` from the highest existing `k` down, then
/// `path` to `path.1`.
pub(crate) fn shift_files(path: &Path) -> io::Result<()> {
    let mut highest = 0;
    while rotated_path(path, highest + 1).exists() {
        highest += 1;
    }
    for k in (1..=highest).rev() {
        std::fs::rename(rotated_path(path, k), rotated_path(path, k + 1))?;
    }
    std::fs::rename(path, rotated_path(path, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_files_keeps_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "newest").expect("write");
        std::fs::write(rotated_path(&path, 1), "middle").expect("write");
        std::fs::write(rotated_path(&path, 2), "oldest").expect("write");

        shift_files(&path).expect("shift");

        assert!(!path.exists());
        let read = |n| std::fs::read_to_string(rotated_path(&path, n)).expect("read");
        assert_eq!(read(1), "newest");
        assert_eq!(read(2), "middle");
        assert_eq!(read(3), "oldest");
    }

    #[test]
    fn rotated_files_oldest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "").expect("write");
        std::fs::write(rotated_path(&path, 1), "").expect("write");
        std::fs::write(rotated_path(&path, 2), "").expect("write");

        let expected = vec![rotated_path(&path, 2), rotated_path(&path, 1), path.clone()];
        assert_eq!(rotated_files(&path), expected);
    }
}
