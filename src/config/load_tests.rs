use std::path::{Path, PathBuf};

use super::*;
use crate::config::{ListenTlsMode, UpstreamTlsMode};

/// Writes `text` as `rules.yaml` in a fresh directory.
fn write_config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("rules.yaml");
    std::fs::write(&path, text).expect("write config");
    (dir, path)
}

fn parse_error(text: &str) -> (Location, String, String) {
    let (_dir, path) = write_config(text);
    match parse(&path) {
        Err(err @ ConfigError::Parse { .. }) => {
            let display = err.to_string();
            let ConfigError::Parse {
                location, message, ..
            } = err
            else {
                unreachable!()
            };
            (location, message, display)
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn repository_example_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules.yaml");

    let config = load(&path).unwrap_or_else(|err| panic!("rules.yaml does not load:\n{err}"));

    assert_eq!(config.listen.address.to_string(), "127.0.0.1:6432");
    assert_eq!(config.listen.tls.mode, ListenTlsMode::Disable);
    assert_eq!(config.upstream.tls.mode, UpstreamTlsMode::Disable);
    assert_eq!(config.protected_tables, vec!["alembic_version".to_string()]);
    assert!(config.ddl.allow.iter().any(|tag| tag == "CREATE TABLE"));
    assert!(!config.ddl.allow.iter().any(|tag| tag == "DROP TABLE"));
    assert!(config.ddl.deny.iter().any(|tag| tag == "DROP TABLE"));
    assert_eq!(config.migrators.len(), 1);
    assert_eq!(config.migrators[0].user, "migrator");
    assert_eq!(config.windows.max_duration.as_secs(), 4 * 3600);
    assert_eq!(config.admin.address.to_string(), "127.0.0.1:6433");
}

#[test]
fn repository_example_matches_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules.yaml");
    let example = load(&path).expect("rules.yaml loads");
    let defaults = Config::default();

    assert_eq!(example.listen.address, defaults.listen.address);
    assert_eq!(example.upstream.address, defaults.upstream.address);
    assert_eq!(
        example.upstream.connect_timeout,
        defaults.upstream.connect_timeout
    );
    assert_eq!(
        example.limits.max_message_bytes,
        defaults.limits.max_message_bytes
    );
    assert_eq!(
        example.limits.startup_timeout,
        defaults.limits.startup_timeout
    );
    assert_eq!(
        example.limits.max_connections,
        defaults.limits.max_connections
    );
    assert_eq!(
        example.limits.shutdown_timeout,
        defaults.limits.shutdown_timeout
    );
    assert_eq!(
        example.limits.parse_cache_entries,
        defaults.limits.parse_cache_entries
    );
    assert_eq!(example.protected_tables, defaults.protected_tables);
    assert_eq!(
        example.always_deny.statements,
        defaults.always_deny.statements
    );
    assert_eq!(
        example.always_deny.functions,
        defaults.always_deny.functions
    );
    assert_eq!(example.windows.max_duration, defaults.windows.max_duration);
    assert_eq!(
        example.windows.sessions_per_window,
        defaults.windows.sessions_per_window
    );
    assert_eq!(example.windows.on_expiry, defaults.windows.on_expiry);
    assert_eq!(example.admin.address, defaults.admin.address);
    assert_eq!(example.audit.on_failure, defaults.audit.on_failure);
    assert_eq!(example.audit.log_allowed, defaults.audit.log_allowed);
}

#[test]
fn syntax_error_reports_line() {
    let text = "listen:\n  address: 127.0.0.1:6432\n  tls:\n    mode: disable\n   cert: server.pem\nlimits:\n  max_connections: 5\n";

    let (location, message, display) = parse_error(text);

    assert_eq!(location.line, Some(5), "{display}");
    assert_eq!(location.column, Some(4), "{display}");
    assert!(message.contains("did not find expected key"), "{message}");
    assert!(
        display.contains("rules.yaml:5:4: "),
        "no file name and line in {display}"
    );
    assert!(
        !message.contains("at line 5 column 4"),
        "location repeated in {message}"
    );
}

#[test]
fn tab_indentation_reports_line() {
    let text = "listen:\n  address: 127.0.0.1:6432\nupstream:\n\taddress: 127.0.0.1:5432\n";

    let (location, _message, display) = parse_error(text);

    assert_eq!(location.line, Some(4), "{display}");
}

#[test]
fn unknown_key_names_key_and_line() {
    let text = "listen:\n  address: 127.0.0.1:6432\n  tls:\n    mode: disable\n    certificate: server.pem\n";

    let (location, message, display) = parse_error(text);

    assert!(message.contains("listen.tls"), "{message}");
    assert!(message.contains("unknown field `certificate`"), "{message}");
    assert!(
        message.contains("cert"),
        "expected keys are listed: {message}"
    );
    assert_eq!(location.line, Some(5), "{display}");
    assert_eq!(location.column, Some(5), "{display}");
}

#[test]
fn unknown_top_level_key_rejected() {
    let (location, message, _display) = parse_error("upstreams:\n  address: db:5432\n");

    assert!(message.contains("unknown field `upstreams`"), "{message}");
    assert_eq!(location.line, Some(1));
}

#[test]
fn bad_enum_names_key_and_variants() {
    let text = "listen:\n  tls:\n    mode: requir\n";

    let (location, message, display) = parse_error(text);

    assert!(message.starts_with("listen.tls.mode: "), "{message}");
    assert!(message.contains("requir"), "{message}");
    for variant in ["disable", "allow", "require"] {
        assert!(
            message.contains(variant),
            "{variant} missing from {message}"
        );
    }
    assert_eq!(location.line, Some(3), "{display}");
    assert!(display.contains("rules.yaml:3:"), "{display}");
}

#[test]
fn bad_duration_names_key() {
    let (location, message, _display) = parse_error("windows:\n  max_duration: four hours\n");

    assert!(message.starts_with("windows.max_duration: "), "{message}");
    assert!(message.contains("4h"), "examples are given: {message}");
    assert_eq!(location.line, Some(2));
}

#[test]
fn bad_list_item_names_index() {
    let text = "migrators:\n  - user: migrator\n    source: [not-a-network]\n";

    let (_location, message, _display) = parse_error(text);

    assert!(message.contains("migrators[0].source[0]"), "{message}");
}

#[test]
fn parse_error_omits_other_content() {
    let text = "admin:\n  token_file: secret-token-path\nlisten:\n  tls:\n    mode: requir\n";

    let (_location, _message, display) = parse_error(text);

    assert!(!display.contains("secret-token-path"), "{display}");
}

#[test]
fn empty_file_uses_defaults() {
    let (_dir, path) = write_config("");

    let config = load(&path).expect("empty file loads");

    assert_eq!(config.listen.address, Config::default().listen.address);
    assert!(config.migrators.is_empty());
}

#[test]
fn missing_file_is_read_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("absent.yaml");

    let err = load(&path).expect_err("missing file");

    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    assert!(err.to_string().contains("absent.yaml"), "{err}");
}

#[test]
fn relative_paths_resolve_against_config_dir() {
    let text = "listen:\n  tls:\n    cert: certs/server.pem\n    key: /abs/server.key\naudit:\n  path: audit.jsonl\n";
    let (dir, path) = write_config(text);

    let config = parse(&path).expect("parses");

    assert_eq!(
        config.listen.tls.cert,
        Some(dir.path().join("certs/server.pem"))
    );
    assert_eq!(
        config.listen.tls.key,
        Some(PathBuf::from("/abs/server.key"))
    );
    assert_eq!(config.audit.path, Some(dir.path().join("audit.jsonl")));
}

#[test]
fn invalid_config_lists_every_message() {
    let (_dir, path) =
        write_config("limits:\n  max_connections: 0\nwindows:\n  sessions_per_window: 0\n");

    let err = load(&path).expect_err("invalid values");
    let messages = err.messages();

    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages
        .iter()
        .all(|line| line.starts_with(&path.display().to_string())));
    assert!(
        messages[0].contains("limits.max_connections"),
        "{messages:?}"
    );
    assert!(
        messages[1].contains("windows.sessions_per_window"),
        "{messages:?}"
    );
}
