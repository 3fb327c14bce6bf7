use std::path::PathBuf;

use super::*;
use crate::certs::{self, GeneratedFiles};

fn dev_certs(dir: &Path) -> GeneratedFiles {
    certs::generate(dir, &[], false).expect("generate dev certificates")
}

fn has_error(errors: &[String], prefix: &str) -> bool {
    errors.iter().any(|error| error.starts_with(prefix))
}

#[test]
fn default_config_is_valid() {
    assert_eq!(validate(&Config::default()), Vec::<String>::new());
}

#[test]
fn every_semantic_error_is_listed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::default();
    config.listen.tls.mode = ListenTlsMode::Require;
    config.upstream.address = "db.internal.test".to_string();
    config.limits.max_message_bytes = 512;
    config.limits.max_connections = 0;
    config.windows.sessions_per_window = 0;
    config.windows.max_duration = Duration::ZERO;
    config.admin.token_file = Some(dir.path().join("absent-token"));
    config.audit.path = Some(dir.path().join("no-such-dir/audit.jsonl"));
    config.migrators.push(Migrator {
        user: " ".to_string(),
        databases: vec!["app".to_string()],
        client_cert_subject: None,
        source: Vec::new(),
    });

    let errors = validate(&config);

    let expected = [
        "listen.tls.cert: required when listen.tls.mode is require",
        "listen.tls.key: required when listen.tls.mode is require",
        "upstream.address: ",
        "limits.max_message_bytes: 512 is out of range",
        "limits.max_connections: ",
        "windows.sessions_per_window: ",
        "windows.max_duration: ",
        "admin.token_file: cannot read ",
        "audit.path: directory ",
        "migrators[0].user: ",
    ];
    for prefix in expected {
        assert!(
            has_error(&errors, prefix),
            "{prefix:?} missing from {errors:#?}"
        );
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

#[test]
fn listen_tls_with_generated_files_is_valid() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dev_certs(dir.path());
    let mut config = Config::default();
    config.listen.tls = ListenTls {
        mode: ListenTlsMode::Allow,
        cert: Some(files.server_cert.clone()),
        key: Some(files.server_key.clone()),
        client_ca: Some(files.ca_cert.clone()),
    };

    assert_eq!(validate(&config), Vec::<String>::new());
}

#[test]
fn listen_tls_file_problems_name_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dev_certs(dir.path());
    let not_pem = dir.path().join("not-pem.txt");
    std::fs::write(&not_pem, "hello").expect("write");
    let mut config = Config::default();
    config.listen.tls = ListenTls {
        mode: ListenTlsMode::Require,
        cert: Some(files.server_key.clone()),
        key: Some(dir.path().join("absent.key")),
        client_ca: Some(not_pem),
    };

    let errors = validate(&config);

    assert!(has_error(&errors, "listen.tls.cert: "), "{errors:#?}");
    assert!(
        errors[0].contains("no CERTIFICATE block found"),
        "{errors:#?}"
    );
    assert!(
        has_error(&errors, "listen.tls.key: cannot read "),
        "{errors:#?}"
    );
    assert!(has_error(&errors, "listen.tls.client_ca: "), "{errors:#?}");
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

#[test]
fn listen_tls_key_must_match_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dev_certs(dir.path());
    let mut config = Config::default();
    config.listen.tls = ListenTls {
        mode: ListenTlsMode::Require,
        cert: Some(files.server_cert.clone()),
        key: Some(files.client_key.clone()),
        client_ca: None,
    };

    let errors = validate(&config);

    assert!(has_error(&errors, "listen.tls: "), "{errors:#?}");
}

#[test]
fn listen_tls_disable_ignores_files() {
    let mut config = Config::default();
    config.listen.tls.cert = Some(PathBuf::from("/nonexistent/server.pem"));

    assert_eq!(validate(&config), Vec::<String>::new());
}

#[test]
fn upstream_tls_modes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dev_certs(dir.path());
    let mut config = Config::default();

    config.upstream.tls.mode = UpstreamTlsMode::VerifyCa;
    let errors = validate(&config);
    assert!(
        has_error(&errors, "upstream.tls.ca: required"),
        "{errors:#?}"
    );

    config.upstream.tls.ca = Some(files.ca_cert.clone());
    assert_eq!(validate(&config), Vec::<String>::new());

    config.upstream.tls.mode = UpstreamTlsMode::VerifyFull;
    config.upstream.tls.ca = None;
    assert_eq!(
        validate(&config),
        Vec::<String>::new(),
        "bundled roots serve verify-full"
    );

    config.upstream.tls.ca = Some(files.client_key.clone());
    assert!(has_error(&validate(&config), "upstream.tls.ca: "));

    config.upstream.tls.ca = None;
    config.upstream.tls.server_name = Some("not a host name".to_string());
    assert!(has_error(
        &validate(&config),
        "upstream.tls.server_name: invalid server name"
    ));
}

#[test]
fn message_size_bounds_are_inclusive() {
    let mut config = Config::default();

    for (bytes, valid) in [
        (1023, false),
        (1024, true),
        (1 << 30, true),
        ((1 << 30) + 1, false),
    ] {
        config.limits.max_message_bytes = bytes;
        let errors = validate(&config);
        assert_eq!(errors.is_empty(), valid, "{bytes}: {errors:?}");
    }
}

#[test]
fn admin_token_file_must_not_be_empty() {
    let dir = tempfile::tempdir().expect("temp dir");
    let token = dir.path().join("token");
    std::fs::write(&token, "  \n").expect("write");
    let mut config = Config::default();
    config.admin.token_file = Some(token.clone());

    assert!(has_error(&validate(&config), "admin.token_file: "));

    std::fs::write(&token, "s3cret\n").expect("write");
    let errors = validate(&config);
    assert_eq!(errors, Vec::<String>::new());
}

#[test]
fn certificate_subject_needs_client_ca() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = dev_certs(dir.path());
    let mut config = Config::default();
    config.migrators.push(Migrator {
        user: "migrator".to_string(),
        databases: Vec::new(),
        client_cert_subject: Some("CN=migrator,O=schemagate dev".to_string()),
        source: Vec::new(),
    });

    let errors = validate(&config);
    assert!(
        has_error(&errors, "migrators[0].client_cert_subject: needs"),
        "{errors:#?}"
    );

    config.listen.tls = ListenTls {
        mode: ListenTlsMode::Require,
        cert: Some(files.server_cert.clone()),
        key: Some(files.server_key.clone()),
        client_ca: Some(files.ca_cert.clone()),
    };
    assert_eq!(validate(&config), Vec::<String>::new());
}

#[test]
fn admin_and_listen_addresses_differ() {
    let mut config = Config::default();
    config.admin.address = config.listen.address;

    assert!(has_error(&validate(&config), "admin.address: "));
}

#[test]
fn protected_table_names() {
    let config = Config {
        protected_tables: vec!["public.alembic_version".into(), "".into(), "a.b.c".into()],
        ..Config::default()
    };

    let errors = validate(&config);

    assert!(has_error(&errors, "protected_tables[1]: "), "{errors:#?}");
    assert!(has_error(&errors, "protected_tables[2]: "), "{errors:#?}");
    assert_eq!(errors.len(), 2, "{errors:#?}");
}

#[test]
fn audit_rotate_bytes_zero_rejected() {
    let mut config = Config::default();
    config.audit.rotate_bytes = Some(0);

    assert!(has_error(&validate(&config), "audit.rotate_bytes: "));
}

#[test]
fn split_host_port_cases() {
    assert_eq!(split_host_port("db:5432"), Some(("db", 5432)));
    assert_eq!(split_host_port("127.0.0.1:6432"), Some(("127.0.0.1", 6432)));
    assert_eq!(split_host_port("[::1]:5432"), Some(("::1", 5432)));
    assert_eq!(split_host_port("::1:5432"), None);
    assert_eq!(split_host_port("db"), None);
    assert_eq!(split_host_port(":5432"), None);
    assert_eq!(split_host_port("db:0"), None);
    assert_eq!(split_host_port("db:65536"), None);
    assert_eq!(split_host_port("db:port"), None);
}
