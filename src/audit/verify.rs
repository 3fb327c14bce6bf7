//! Offline check of one hash chain spread over several files.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::chain::{self, LineProblem, GENESIS_HASH};

/// Summary of a chain that checked out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub records: u64,
    /// `seq` of the first record given; 1 when the chain starts at genesis.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// SHA-256 of the last line; store it elsewhere to detect later truncation.
    pub last_line_hash: Option<String>,
}

/// Defect found in the first broken record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainProblem {
    #[error(transparent)]
    Line(#[from] LineProblem),
    #[error("sequence gap: expected {expected}, found {found}")]
    SequenceGap { expected: u64, found: u64 },
    #[error("sequence goes backwards: expected {expected}, found {found}")]
    SequenceBackwards { expected: u64, found: u64 },
    #[error("prev_hash does not match record {previous}")]
    PrevHashMismatch { previous: u64 },
    #[error("record 1 does not carry the genesis prev_hash (64 zeros)")]
    NotGenesis,
    #[error("the line has no trailing newline (incomplete write)")]
    Incomplete,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    /// `seq` is the sequence number the chain expects at this line. It is
    /// `None` only when the very first line given is broken.
    #[error("{}:{line}: {}{problem}", path.display(), seq.map(|s| format!("record {s}: ")).unwrap_or_default())]
    Broken {
        path: PathBuf,
        line: u64,
        seq: Option<u64>,
        problem: ChainProblem,
    },
}

/// Checks `paths`, oldest first, as one chain: every line parses, its `hash`
/// recomputes, `seq` goes up by one and `prev_hash` is the SHA-256 of the
/// line before. Stops at the first broken record.
///
/// A chain whose first record has `seq` 1 must start from the genesis hash.
/// One that starts later (older files not given) is checked from there on,
/// and `first_seq` is where it starts. Lines removed from the very end, or before
/// the first record given, cannot be detected from the files alone.
pub fn verify(paths: &[PathBuf]) -> Result<VerifyReport, VerifyError> {
    let mut walker = ChainWalker::default();
    for path in paths {
        walker.walk_file(path)?;
    }
    Ok(walker.report)
}

#[derive(Default)]
struct ChainWalker {
    report: VerifyReport,
}

impl ChainWalker {
    fn walk_file(&mut self, path: &Path) -> Result<(), VerifyError> {
        let read_error = |source| VerifyError::Read {
            path: path.to_owned(),
            source,
        };
        let mut reader = BufReader::new(File::open(path).map_err(read_error)?);
        let mut line = Vec::new();
        let mut number = 0u64;

        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).map_err(read_error)? == 0 {
                return Ok(());
            }
            number += 1;
            let broken = |seq, problem| VerifyError::Broken {
                path: path.to_owned(),
                line: number,
                seq,
                problem,
            };
            let expected = self.report.last_seq.map(|s| s.saturating_add(1));

            // Only the last line of a file can lack the newline, after a torn write.
            if line.pop() != Some(b'\n') {
                return Err(broken(expected, ChainProblem::Incomplete));
            }
            self.check_next(&line)
                .map_err(|problem| broken(expected, problem))?;
        }
    }

    fn check_next(&mut self, line: &[u8]) -> Result<(), ChainProblem> {
        let fields = chain::check_line(line)?;

        match self.report.last_seq {
            Some(last) => {
                let expected = last.saturating_add(1);
                if fields.seq > expected {
                    return Err(ChainProblem::SequenceGap {
                        expected,
                        found: fields.seq,
                    });
                }
                if fields.seq < expected {
                    return Err(ChainProblem::SequenceBackwards {
                        expected,
                        found: fields.seq,
                    });
                }
                if Some(&fields.prev_hash) != self.report.last_line_hash.as_ref() {
                    return Err(ChainProblem::PrevHashMismatch { previous: last });
                }
            }
            None => {
                if fields.seq == 0 {
                    return Err(ChainProblem::SequenceBackwards {
                        expected: 1,
                        found: 0,
                    });
                }
                if fields.seq == 1 && fields.prev_hash != GENESIS_HASH {
                    return Err(ChainProblem::NotGenesis);
                }
                self.report.first_seq = Some(fields.seq);
            }
        }

        self.report.records += 1;
        self.report.last_seq = Some(fields.seq);
        self.report.last_line_hash = Some(chain::sha256_hex(line));
        Ok(())
    }
}

/// Runs [`verify`] and prints the outcome for `schemagate audit verify`.
/// Returns the process exit code: 0 when the chain is intact, 1 when a record
/// is broken, 2 when a file cannot be read or none was given.
pub fn run_verify(paths: &[PathBuf]) -> i32 {
    if paths.is_empty() {
        eprintln!("error: no audit log files given; list them oldest first");
        return 2;
    }

    match verify(paths) {
        Ok(report) => {
            println!("{}", ok_message(&report));
            0
        }
        Err(e @ VerifyError::Broken { .. }) => {
            eprintln!("FAILED: {e}");
            1
        }
        Err(e @ VerifyError::Read { .. }) => {
            eprintln!("error: {e}");
            2
        }
    }
}

fn ok_message(report: &VerifyReport) -> String {
    let mut message = format!("OK: {} records, chain intact", report.records);
    if let Some(first) = report.first_seq.filter(|&s| s > 1) {
        message.push_str(&format!(
            " from record {first} (records before it were not among the files given)"
        ));
    }
    if let (Some(last), Some(hash)) = (report.last_seq, &report.last_line_hash) {
        message.push_str(&format!("\nlast record: {last}, line hash {hash}"));
    }
    message
}
