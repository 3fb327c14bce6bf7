//! Semantic checks that serde cannot express: files that must exist and
//! parse, value ranges, and keys that depend on each other. Every check adds
//! to one list, so an operator sees all problems in one run.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::tls;

const MIN_MESSAGE_BYTES: usize = 1024;
const MAX_MESSAGE_BYTES: usize = 1024 * 1024 * 1024;

/// Returns every semantic problem in `config`, each starting with its key.
///
/// Paths are used as they are, so call this on a config from
/// [`super::parse`] or [`super::load`], which resolve relative paths.
pub fn validate(config: &Config) -> Vec<String> {
    let mut errors = Vec::new();

    validate_listen(&config.listen, &mut errors);
    validate_upstream(&config.upstream, &mut errors);
    validate_limits(&config.limits, &mut errors);
    validate_protected_tables(&config.protected_tables, &mut errors);
    validate_migrators(config, &mut errors);
    validate_windows(&config.windows, &mut errors);
    validate_admin(config, &mut errors);
    validate_audit(&config.audit, &mut errors);

    errors
}

/// Returns the problems the policy engine finds in `ddl` and `always_deny`,
/// such as unknown command tags.
pub fn check_policy(config: &Config) -> Vec<String> {
    crate::policy::Policy::new(config).err().unwrap_or_default()
}

/// Splits `host:port`, accepting `[v6-address]:port`. Returns `None` when the
/// host is empty or the port is not a number from 1 to 65535.
pub fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };

    let port: u16 = port.parse().ok()?;
    if host.is_empty() || port == 0 {
        return None;
    }
    Some((host, port))
}

fn validate_listen(listen: &Listen, errors: &mut Vec<String>) {
    let tls = &listen.tls;
    if tls.mode == ListenTlsMode::Disable {
        return;
    }
    let mode = enum_name(&tls.mode);
    let before = errors.len();

    match &tls.cert {
        Some(path) => check_file(errors, "listen.tls.cert", tls::load_certs(path)),
        None => errors.push(format!(
            "listen.tls.cert: required when listen.tls.mode is {mode}"
        )),
    }
    match &tls.key {
        Some(path) => check_file(errors, "listen.tls.key", tls::load_private_key(path)),
        None => errors.push(format!(
            "listen.tls.key: required when listen.tls.mode is {mode}"
        )),
    }
    if let Some(path) = &tls.client_ca {
        check_file(errors, "listen.tls.client_ca", tls::load_roots(path));
    }

    // Each file is fine on its own. Building the acceptor also checks that
    // the key matches the certificate.
    if errors.len() == before {
        if let Err(err) = tls::server_config(tls) {
            errors.push(format!("listen.tls: {err}"));
        }
    }
}

fn validate_upstream(upstream: &Upstream, errors: &mut Vec<String>) {
    if split_host_port(&upstream.address).is_none() {
        errors.push(format!(
            "upstream.address: invalid address {:?}: expected host:port, for example 127.0.0.1:5432",
            upstream.address
        ));
    }
    check_positive(errors, "upstream.connect_timeout", upstream.connect_timeout);

    let tls = &upstream.tls;
    let verifies = matches!(
        tls.mode,
        UpstreamTlsMode::VerifyCa | UpstreamTlsMode::VerifyFull
    );
    match &tls.ca {
        Some(path) if verifies => check_file(errors, "upstream.tls.ca", tls::load_roots(path)),
        None if tls.mode == UpstreamTlsMode::VerifyCa => {
            errors.push("upstream.tls.ca: required when upstream.tls.mode is verify-ca".to_string())
        }
        _ => {}
    }

    let name_known = tls.server_name.is_some() || split_host_port(&upstream.address).is_some();
    let name_needed = tls.mode == UpstreamTlsMode::VerifyFull || tls.server_name.is_some();
    if name_needed && name_known {
        if let Err(err) = tls::server_name(upstream) {
            errors.push(format!("upstream.tls.server_name: {err}"));
        }
    }
}

fn validate_limits(limits: &Limits, errors: &mut Vec<String>) {
    if !(MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES).contains(&limits.max_message_bytes) {
        errors.push(format!(
            "limits.max_message_bytes: {} is out of range: expected 1024 (1 KiB) to 1073741824 (1 GiB)",
            limits.max_message_bytes
        ));
    }
    if limits.max_connections < 1 {
        errors.push("limits.max_connections: must be at least 1".to_string());
    }
    check_positive(errors, "limits.startup_timeout", limits.startup_timeout);
}

fn validate_protected_tables(tables: &[String], errors: &mut Vec<String>) {
    for (index, table) in tables.iter().enumerate() {
        let parts: Vec<&str> = table.split('.').collect();
        if parts.len() > 2 || parts.iter().any(|part| part.trim().is_empty()) {
            errors.push(format!(
                "protected_tables[{index}]: invalid table name {table:?}: expected name or schema.name"
            ));
        }
    }
}

fn validate_migrators(config: &Config, errors: &mut Vec<String>) {
    let verifies_clients =
        config.listen.tls.mode != ListenTlsMode::Disable && config.listen.tls.client_ca.is_some();

    for (index, migrator) in config.migrators.iter().enumerate() {
        if migrator.user.trim().is_empty() {
            errors.push(format!("migrators[{index}].user: must not be empty"));
        }
        if migrator.databases.iter().any(|db| db.trim().is_empty()) {
            errors.push(format!(
                "migrators[{index}].databases: names must not be empty"
            ));
        }
        if matches!(&migrator.client_cert_subject, Some(subject) if subject.trim().is_empty()) {
            errors.push(format!(
                "migrators[{index}].client_cert_subject: must not be empty; leave the key out to accept any certificate"
            ));
        }
        // Without a verified client certificate no session has a subject, so
        // this migrator could never match.
        if migrator.client_cert_subject.is_some() && !verifies_clients {
            errors.push(format!(
                "migrators[{index}].client_cert_subject: needs listen.tls.mode allow or require with listen.tls.client_ca set"
            ));
        }
    }
}

fn validate_windows(windows: &Windows, errors: &mut Vec<String>) {
    check_positive(errors, "windows.max_duration", windows.max_duration);
    if windows.sessions_per_window < 1 {
        errors.push("windows.sessions_per_window: must be at least 1".to_string());
    }
    if let Some(path) = &windows.state_file {
        check_parent_dir(errors, "windows.state_file", path);
    }
}

fn validate_admin(config: &Config, errors: &mut Vec<String>) {
    let admin = &config.admin;
    if admin.address == config.listen.address {
        errors.push(format!(
            "admin.address: {} is also listen.address; use a different port",
            admin.address
        ));
    }

    let Some(path) = &admin.token_file else {
        return;
    };
    match std::fs::read_to_string(path) {
        Ok(token) if token.trim().is_empty() => {
            errors.push(format!("admin.token_file: {} is empty", path.display()));
        }
        Ok(_) => {}
        Err(err) => errors.push(format!(
            "admin.token_file: cannot read {}: {err}",
            path.display()
        )),
    }
}

fn validate_audit(audit: &Audit, errors: &mut Vec<String>) {
    if let Some(path) = &audit.path {
        check_parent_dir(errors, "audit.path", path);
        if path.is_dir() {
            errors.push(format!(
                "audit.path: {} is a directory; name a file",
                path.display()
            ));
        }
    }
    if audit.rotate_bytes == Some(0) {
        errors.push(
            "audit.rotate_bytes: must be at least 1; leave the key out to never rotate".to_string(),
        );
    }
}

fn check_file<T>(errors: &mut Vec<String>, key: &str, result: Result<T, tls::TlsError>) {
    if let Err(err) = result {
        errors.push(format!("{key}: {err}"));
    }
}

fn check_positive(errors: &mut Vec<String>, key: &str, value: Duration) {
    if value.is_zero() {
        errors.push(format!("{key}: must be greater than zero"));
    }
}

fn check_parent_dir(errors: &mut Vec<String>, key: &str, path: &Path) {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        errors.push(format!(
            "{key}: directory {} does not exist",
            parent.display()
        ));
    }
}

/// Returns the YAML spelling of a unit enum value, such as `require`.
pub(crate) fn enum_name<T: serde::Serialize>(value: &T) -> String {
    serde_norway::to_string(value)
        .map(|text| text.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
