use std::path::Path;

use super::*;

fn example_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules.yaml")
}

#[test]
fn repository_example_passes_check() {
    let path = example_path();

    let config = check(&path).unwrap_or_else(|errors| panic!("{errors:#?}"));
    let text = summary(&path, &config);

    assert!(text.contains("configuration is valid"), "{text}");
    assert!(
        text.contains("listen: 127.0.0.1:6432 (tls disable)"),
        "{text}"
    );
    assert!(
        text.contains("upstream: 127.0.0.1:5432 (tls disable"),
        "{text}"
    );
    assert!(text.contains("protected tables: alembic_version"), "{text}");
    assert!(text.contains("CREATE TABLE"), "{text}");
    assert!(
        text.contains("ddl.deny (2): DROP TABLE, ALTER TABLE DROP COLUMN"),
        "{text}"
    );
    assert!(
        text.contains("migrator: migrator (databases: app;"),
        "{text}"
    );
    assert!(
        text.contains("windows: max_duration 4h, sessions_per_window 1, on_expiry deny"),
        "{text}"
    );
    assert!(text.contains("admin: 127.0.0.1:6433"), "{text}");
    assert!(text.contains("audit.jsonl"), "{text}");
    assert_eq!(run_check(&path), 0);
}

#[test]
fn check_lists_every_problem() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("rules.yaml");
    std::fs::write(
        &path,
        "limits:\n  max_connections: 0\nmigrators:\n  - user: ''\n",
    )
    .expect("write");

    let errors = check(&path).expect_err("invalid");

    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].contains("limits.max_connections"), "{errors:#?}");
    assert!(errors[1].contains("migrators[0].user"), "{errors:#?}");
    assert_eq!(run_check(&path), EXIT_INVALID);
}

#[test]
fn check_reports_parse_error_with_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("rules.yaml");
    std::fs::write(&path, "windows:\n  on_expiry: close\n").expect("write");

    let errors = check(&path).expect_err("invalid");

    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("rules.yaml:2:"), "{errors:#?}");
    assert!(errors[0].contains("windows.on_expiry"), "{errors:#?}");
    assert_eq!(run_check(&path), EXIT_INVALID);
}
