use std::path::{Path, PathBuf};

use super::*;

fn audit_config(path: &Path) -> config::Audit {
    config::Audit {
        path: Some(path.to_owned()),
        ..config::Audit::default()
    }
}

fn decision(session_id: u64) -> AuditRecord {
    AuditRecord {
        event: "decision",
        session_id: Some(session_id),
        decision: Some("allow"),
        command_tag: Some("SELECT".to_owned()),
        ..AuditRecord::default()
    }
}

fn write_records(log: &AuditLog, count: u64) {
    for i in 0..count {
        log.write(decision(i)).expect("write record");
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read log");
    text.lines().map(str::to_owned).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).expect("rewrite log");
}

/// Writes ten records to a fresh log and returns its directory and path.
fn log_of_ten() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    let log = AuditLog::open(&audit_config(&path)).expect("open");
    write_records(&log, 10);
    (dir, path)
}

fn broken_at(result: Result<VerifyReport, VerifyError>) -> (u64, Option<u64>, ChainProblem) {
    match result {
        Err(VerifyError::Broken {
            line, seq, problem, ..
        }) => (line, seq, problem),
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

#[test]
fn record_has_all_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    let log = AuditLog::open(&audit_config(&path)).expect("open");
    let record = AuditRecord {
        event: "decision",
        session_id: Some(42),
        client_addr: Some("127.0.0.1:5000".to_owned()),
        client_cert_subject: Some("CN=migrator".to_owned()),
        user: Some("app".to_owned()),
        database: Some("shop".to_owned()),
        application_name: Some("alembic".to_owned()),
        window_id: Some("w-1".to_owned()),
        decision: Some("deny"),
        rule: Some("ddl.allow".to_owned()),
        command_tag: Some("DROP TABLE".to_owned()),
        objects: vec!["public.orders".to_owned()],
        statement: Some("DROP TABLE orders".to_owned()),
        fingerprint: Some("abc123".to_owned()),
        sqlstate: Some("42501".to_owned()),
        detail: Some("outside a migration window".to_owned()),
        reason: Some("add orders index".to_owned()),
        opened_by: Some("alice".to_owned()),
    };

    log.write_durable(record).expect("write");

    let lines = read_lines(&path);
    assert_eq!(lines.len(), 1);
    let value: serde_json::Value = serde_json::from_str(&lines[0]).expect("json");
    assert_eq!(value["seq"], 1);
    assert_eq!(value["prev_hash"], GENESIS_HASH);
    assert_eq!(value["event"], "decision");
    assert_eq!(value["session_id"], 42);
    assert_eq!(value["client_addr"], "127.0.0.1:5000");
    assert_eq!(value["client_cert_subject"], "CN=migrator");
    assert_eq!(value["user"], "app");
    assert_eq!(value["database"], "shop");
    assert_eq!(value["application_name"], "alembic");
    assert_eq!(value["window_id"], "w-1");
    assert_eq!(value["decision"], "deny");
    assert_eq!(value["rule"], "ddl.allow");
    assert_eq!(value["command_tag"], "DROP TABLE");
    assert_eq!(value["objects"], serde_json::json!(["public.orders"]));
    assert_eq!(value["statement"], "DROP TABLE orders");
    assert_eq!(value["fingerprint"], "abc123");
    assert_eq!(value["sqlstate"], "42501");
    assert_eq!(value["detail"], "outside a migration window");
    assert_eq!(value["reason"], "add orders index");
    assert_eq!(value["opened_by"], "alice");

    let hash = value["hash"].as_str().expect("hash is a string");
    assert_eq!(hash.len(), 64);
    assert!(hash
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
}

#[test]
fn time_is_rfc3339_utc_micros() {
    let (_dir, path) = log_of_ten();
    let value: serde_json::Value = serde_json::from_str(&read_lines(&path)[0]).expect("json");
    let time = value["time"].as_str().expect("time is a string");

    // 2024-01-02T03:04:05.123456Z
    assert_eq!(time.len(), 27, "{time}");
    assert_eq!(&time[10..11], "T");
    assert_eq!(&time[19..20], ".");
    assert!(time.ends_with('Z'));
    let parsed = time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339);
    assert!(parsed.is_ok(), "{time}");
}

#[test]
fn empty_fields_left_out() {
    let (_dir, path) = log_of_ten();
    let value: serde_json::Value = serde_json::from_str(&read_lines(&path)[0]).expect("json");

    assert!(value.get("user").is_none());
    assert!(value.get("objects").is_none());
}

#[test]
fn chain_verifies() {
    let (_dir, path) = log_of_ten();

    let report = verify(std::slice::from_ref(&path)).expect("chain intact");

    assert_eq!(report.records, 10);
    assert_eq!(report.first_seq, Some(1));
    assert_eq!(report.last_seq, Some(10));
    assert_eq!(run_verify(&[path]), 0);
}

#[test]
fn edited_line_detected() {
    let (_dir, path) = log_of_ten();
    let mut lines = read_lines(&path);
    lines[4] = lines[4].replace("\"decision\":\"allow\"", "\"decision\":\"deny\"");
    write_lines(&path, &lines);

    let (line, seq, problem) = broken_at(verify(std::slice::from_ref(&path)));

    assert_eq!(line, 5);
    assert_eq!(seq, Some(5));
    assert_eq!(problem, ChainProblem::Line(LineProblem::HashMismatch));
    assert_eq!(run_verify(&[path]), 1);
}

#[test]
fn rehashed_edit_detected_by_next_record() {
    let (_dir, path) = log_of_ten();
    let mut lines = read_lines(&path);
    lines[4] = rehash(&lines[4].replace("\"decision\":\"allow\"", "\"decision\":\"deny\""));
    write_lines(&path, &lines);

    let (line, seq, problem) = broken_at(verify(&[path]));

    assert_eq!(line, 6);
    assert_eq!(seq, Some(6));
    assert_eq!(problem, ChainProblem::PrevHashMismatch { previous: 5 });
}

/// Recomputes the `hash` member of an edited line, as a forger would.
fn rehash(line: &str) -> String {
    let cut = line.rfind(",\"hash\":\"").expect("hash member");
    let body = format!("{}}}", &line[..cut]);
    let hash = chain::sha256_hex(body.as_bytes());
    format!("{},\"hash\":\"{hash}\"}}", &line[..cut])
}

#[test]
fn deleted_line_detected() {
    let (_dir, path) = log_of_ten();
    let mut lines = read_lines(&path);
    lines.remove(4);
    write_lines(&path, &lines);

    let (line, seq, problem) = broken_at(verify(&[path]));

    assert_eq!(line, 5);
    assert_eq!(seq, Some(5));
    assert_eq!(
        problem,
        ChainProblem::SequenceGap {
            expected: 5,
            found: 6
        }
    );
}

#[test]
fn swapped_lines_detected() {
    let (_dir, path) = log_of_ten();
    let mut lines = read_lines(&path);
    lines.swap(3, 4);
    write_lines(&path, &lines);

    let (line, seq, problem) = broken_at(verify(&[path]));

    assert_eq!(line, 4);
    assert_eq!(seq, Some(4));
    assert_eq!(
        problem,
        ChainProblem::SequenceGap {
            expected: 4,
            found: 5
        }
    );
}

#[test]
fn renumbered_swap_detected() {
    let (_dir, path) = log_of_ten();
    let mut lines = read_lines(&path);
    lines.swap(3, 4);
    lines[3] = rehash(&lines[3].replacen("\"seq\":5", "\"seq\":4", 1));
    lines[4] = rehash(&lines[4].replacen("\"seq\":4", "\"seq\":5", 1));
    write_lines(&path, &lines);

    let (line, seq, problem) = broken_at(verify(&[path]));

    assert_eq!(line, 4);
    assert_eq!(seq, Some(4));
    assert_eq!(problem, ChainProblem::PrevHashMismatch { previous: 3 });
}

#[test]
fn first_record_needs_genesis() {
    let (_dir, path) = log_of_ten();
    let mut lines = read_lines(&path);
    lines[0] = rehash(&lines[0].replace(GENESIS_HASH, &"1".repeat(64)));
    write_lines(&path, &lines);

    let (line, seq, problem) = broken_at(verify(&[path]));

    assert_eq!(line, 1);
    assert_eq!(seq, None);
    assert_eq!(problem, ChainProblem::NotGenesis);
}

#[test]
fn torn_last_line_detected() {
    let (_dir, path) = log_of_ten();
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, &text[..text.len() - 20]).expect("truncate");

    let (line, seq, problem) = broken_at(verify(&[path]));

    assert_eq!(line, 10);
    assert_eq!(seq, Some(10));
    assert_eq!(problem, ChainProblem::Incomplete);
}

#[test]
fn unreadable_file_exits_two() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.log");

    assert!(matches!(
        verify(std::slice::from_ref(&missing)),
        Err(VerifyError::Read { .. })
    ));
    assert_eq!(run_verify(&[missing]), 2);
    assert_eq!(run_verify(&[]), 2);
}

#[test]
fn reopen_existing_file_continues_chain() {
    let (_dir, path) = log_of_ten();

    let log = AuditLog::open(&audit_config(&path)).expect("reopen existing");
    write_records(&log, 3);

    let lines = read_lines(&path);
    assert_eq!(lines.len(), 13);
    assert!(lines[10].starts_with("{\"seq\":11,"), "{}", lines[10]);
    let report = verify(&[path]).expect("chain intact");
    assert_eq!(report.records, 13);
}

#[test]
fn open_rejects_torn_last_line() {
    let (_dir, path) = log_of_ten();
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, &text[..text.len() - 20]).expect("truncate");

    let result = AuditLog::open(&audit_config(&path));

    assert!(matches!(
        result,
        Err(AuditError::Resume(ResumeError::Unusable { .. }))
    ));
}

#[test]
fn open_rejects_edited_last_line() {
    let (_dir, path) = log_of_ten();
    let mut lines = read_lines(&path);
    lines[9] = lines[9].replace("\"decision\":\"allow\"", "\"decision\":\"deny\"");
    write_lines(&path, &lines);

    let result = AuditLog::open(&audit_config(&path));

    assert!(matches!(
        result,
        Err(AuditError::Resume(ResumeError::Unusable { .. }))
    ));
}

#[test]
fn rotation_by_size_keeps_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    let mut config = audit_config(&path);
    config.rotate_bytes = Some(1000);
    let log = AuditLog::open(&config).expect("open");

    write_records(&log, 30);

    let files = rotated_files(&path);
    assert!(files.len() >= 3, "expected several files, got {files:?}");
    for file in &files {
        let len = std::fs::metadata(file).expect("metadata").len();
        assert!(len <= 1000, "{} has {len} bytes", file.display());
    }
    let report = verify(&files).expect("chain intact across files");
    assert_eq!(report.records, 30);
    assert_eq!(report.first_seq, Some(1));
}

#[test]
fn rotated_files_out_of_order_detected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    let mut config = audit_config(&path);
    config.rotate_bytes = Some(1000);
    let log = AuditLog::open(&config).expect("open");
    write_records(&log, 30);

    let mut files = rotated_files(&path);
    files.reverse();

    assert!(matches!(verify(&files), Err(VerifyError::Broken { .. })));
}

#[test]
fn reopen_after_rename_keeps_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    let moved = dir.path().join("audit.log.old");
    let log = AuditLog::open(&audit_config(&path)).expect("open");
    write_records(&log, 3);

    std::fs::rename(&path, &moved).expect("rename");
    log.reopen().expect("reopen");
    write_records(&log, 4);

    assert_eq!(read_lines(&moved).len(), 3);
    let new_lines = read_lines(&path);
    assert_eq!(new_lines.len(), 4);
    assert!(new_lines[0].starts_with("{\"seq\":4,"), "{}", new_lines[0]);
    let report = verify(&[moved, path.clone()]).expect("chain intact across files");
    assert_eq!(report.records, 7);

    let newer_only = verify(&[path]).expect("newer file alone is intact");
    assert_eq!(newer_only.first_seq, Some(4));
    assert_eq!(newer_only.records, 4);
}

#[test]
fn open_continues_rotated_predecessor() {
    let (_dir, path) = log_of_ten();
    let rotated = rotated_path(&path, 1);
    std::fs::rename(&path, &rotated).expect("rename");

    let log = AuditLog::open(&audit_config(&path)).expect("open");
    write_records(&log, 2);

    let report = verify(&[rotated, path]).expect("chain intact across files");
    assert_eq!(report.records, 12);
}

#[test]
fn full_disk_write_fails_and_counts() {
    let log = AuditLog::open(&audit_config(Path::new("/dev/full"))).expect("open /dev/full");

    let first = log.write(decision(1));
    let second = log.write_durable(decision(2));

    assert!(matches!(first, Err(AuditError::Write(_))), "{first:?}");
    assert!(second.is_err());
    assert_eq!(log.failures(), 2);
}

#[test]
fn failed_write_keeps_chain_position() {
    let log = AuditLog::open(&audit_config(Path::new("/dev/full"))).expect("open /dev/full");
    let _ = log.write(decision(1));

    let head = log.writer.as_ref().expect("enabled").lock().head().clone();

    assert_eq!(head.next_seq, 1);
    assert_eq!(head.last_line_hash, GENESIS_HASH);
}

#[test]
fn open_fails_when_parent_is_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let parent = dir.path().join("not-a-directory");
    std::fs::write(&parent, "").expect("write");

    let result = AuditLog::open(&audit_config(&parent.join("audit.log")));

    assert!(matches!(result, Err(AuditError::Open { .. })));
}

#[test]
fn disabled_log_accepts_records() {
    let log = AuditLog::open(&config::Audit::default()).expect("open");

    assert!(!log.is_enabled());
    assert!(log.write(decision(1)).is_ok());
    assert!(log.write_durable(decision(2)).is_ok());
    assert!(log.reopen().is_ok());
    assert_eq!(log.failures(), 0);
}

#[test]
fn broken_chain_message_names_place() {
    let (_dir, path) = log_of_ten();
    let mut lines = read_lines(&path);
    lines.remove(6);
    write_lines(&path, &lines);

    let error = verify(std::slice::from_ref(&path)).expect_err("chain is broken");

    let expected = format!("{}:7: record 7: sequence gap: expected 7, found 8", path.display());
    assert_eq!(error.to_string(), expected);
}

#[test]
fn concurrent_writers_keep_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    let mut config = audit_config(&path);
    config.rotate_bytes = Some(4096);
    let log = AuditLog::open(&config).expect("open");

    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| write_records(&log, 50));
        }
    });

    let report = verify(&rotated_files(&path)).expect("chain intact");
    assert_eq!(report.records, 200);
    assert_eq!(report.last_seq, Some(200));
}
