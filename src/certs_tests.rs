use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::tls;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn subject_alt_names(path: &Path) -> Vec<String> {
    let chain = tls::load_certs(path).expect("certificate");
    let (_, cert) = x509_parser::parse_x509_certificate(chain[0].as_ref()).expect("parses");
    let san = cert
        .subject_alternative_name()
        .expect("valid extension")
        .expect("has SAN");
    san.value
        .general_names
        .iter()
        .map(|name| name.to_string())
        .collect()
}

#[test]
fn generate_writes_all_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("certs");

    let files = generate(&out, &[], false).expect("generates");

    for path in files.all() {
        assert!(path.is_file(), "{} missing", path.display());
    }
    assert_eq!(tls::load_certs(&files.ca_cert).expect("CA").len(), 1);
    tls::load_roots(&files.ca_cert).expect("CA is a valid trust anchor");
    tls::load_private_key(&files.ca_key).expect("CA key");
    tls::load_private_key(&files.server_key).expect("server key");
    tls::load_private_key(&files.client_key).expect("client key");
}

#[test]
fn private_keys_are_owner_only() {
    let dir = tempfile::tempdir().expect("temp dir");

    let files = generate(dir.path(), &[], false).expect("generates");

    assert_eq!(mode(&files.ca_key), 0o600);
    assert_eq!(mode(&files.server_key), 0o600);
    assert_eq!(mode(&files.client_key), 0o600);
}

#[test]
fn existing_files_are_kept_without_force() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("server.pem"), "keep me").expect("write");

    let err = generate(dir.path(), &[], false).expect_err("must not overwrite");

    assert!(
        matches!(err, CertsError::Exists(ref path) if path.ends_with("server.pem")),
        "{err}"
    );
    assert!(err.to_string().contains("--force"), "{err}");
    let kept = std::fs::read_to_string(dir.path().join("server.pem")).expect("read");
    assert_eq!(kept, "keep me");
    assert!(
        !dir.path().join("ca.pem").exists(),
        "nothing else is written"
    );
}

#[test]
fn force_overwrites_and_restricts_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = generate(dir.path(), &[], false).expect("generates");
    let old_ca = std::fs::read(&first.ca_cert).expect("read");
    std::fs::set_permissions(&first.server_key, std::fs::Permissions::from_mode(0o644))
        .expect("chmod");

    let second = generate(dir.path(), &[], true).expect("overwrites");

    assert_ne!(std::fs::read(&second.ca_cert).expect("read"), old_ca);
    assert_eq!(mode(&second.server_key), 0o600);
}

#[test]
fn server_names_include_extra_hosts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hosts = vec![
        "db.example.test".to_string(),
        "10.1.2.3".to_string(),
        "localhost".to_string(),
    ];

    let files = generate(dir.path(), &hosts, false).expect("generates");
    let names = subject_alt_names(&files.server_cert);

    assert!(
        names.contains(&"DNSName(localhost)".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"IPAddress(7f:00:00:01)".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"DNSName(db.example.test)".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"IPAddress(0a:01:02:03)".to_string()),
        "{names:?}"
    );
    assert_eq!(names.len(), 4, "localhost is listed once: {names:?}");
}

#[test]
fn client_certificate_subject() {
    let dir = tempfile::tempdir().expect("temp dir");

    let files = generate(dir.path(), &[], false).expect("generates");
    let chain = tls::load_certs(&files.client_cert).expect("certificate");

    let subject = tls::subject_of(chain[0].as_ref());

    assert_eq!(subject.as_deref(), Some("CN=migrator,O=schemagate dev"));
}

#[test]
fn run_gen_certs_exit_codes() {
    let dir = tempfile::tempdir().expect("temp dir");

    assert_eq!(run_gen_certs(dir.path(), &[], false), 0);
    assert_eq!(run_gen_certs(dir.path(), &[], false), 1);
    assert_eq!(run_gen_certs(dir.path(), &[], true), 0);
}
