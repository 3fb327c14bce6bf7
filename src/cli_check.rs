//! `schemagate check --config PATH`: validate a configuration without
//! starting the proxy, and show the policy it would enforce.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::{self, enum_name, Config, ConfigError};

/// Exit code for a configuration that cannot be used.
pub const EXIT_INVALID: i32 = 2;

/// Runs `schemagate check`: prints every problem to stderr and returns
/// [`EXIT_INVALID`], or prints a summary of the effective settings to stdout
/// and returns 0.
pub fn run_check(path: &Path) -> i32 {
    match check(path) {
        Ok(config) => {
            print!("{}", summary(path, &config));
            0
        }
        Err(messages) => {
            for message in &messages {
                eprintln!("{message}");
            }
            eprintln!("{}: {} problem(s) found", path.display(), messages.len());
            EXIT_INVALID
        }
    }
}

/// Parses and validates the file, including the policy engine's checks of
/// `ddl` and `always_deny`, and returns every problem as one line each.
pub fn check(path: &Path) -> Result<Config, Vec<String>> {
    let config = config::parse(path).map_err(|err| err.messages())?;

    let mut errors = config::validate(&config);
    errors.extend(config::check_policy(&config));
    if errors.is_empty() {
        return Ok(config);
    }

    let invalid = ConfigError::Invalid {
        path: path.display().to_string(),
        errors,
    };
    Err(invalid.messages())
}

/// Formats the effective settings, defaults filled in.
pub fn summary(path: &Path, config: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: configuration is valid", path.display());

    write_network(&mut out, config);
    write_policy(&mut out, config);
    write_operations(&mut out, config);
    out
}

fn write_network(out: &mut String, config: &Config) {
    let listen = &config.listen;
    let client_ca = match &listen.tls.client_ca {
        Some(path) => format!(", client certificates checked against {}", path.display()),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "listen: {} (tls {}{client_ca})",
        listen.address,
        enum_name(&listen.tls.mode)
    );

    let upstream = &config.upstream;
    let server_name = match &upstream.tls.server_name {
        Some(name) => format!(", server name {name}"),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "upstream: {} (tls {}{server_name}, connect timeout {})",
        upstream.address,
        enum_name(&upstream.tls.mode),
        humantime::format_duration(upstream.connect_timeout)
    );

    let limits = &config.limits;
    let _ = writeln!(
        out,
        "limits: max_message_bytes {}, max_connections {}, startup_timeout {}, shutdown_timeout {}, parse_cache_entries {}",
        limits.max_message_bytes,
        limits.max_connections,
        humantime::format_duration(limits.startup_timeout),
        humantime::format_duration(limits.shutdown_timeout),
        limits.parse_cache_entries
    );
}

fn write_policy(out: &mut String, config: &Config) {
    let _ = writeln!(
        out,
        "protected tables: {}",
        list_or(&config.protected_tables, "none")
    );
    let _ = writeln!(
        out,
        "ddl.allow ({}): {}",
        config.ddl.allow.len(),
        list_or(&config.ddl.allow, "none")
    );
    let _ = writeln!(
        out,
        "ddl.deny ({}): {}",
        config.ddl.deny.len(),
        list_or(&config.ddl.deny, "none")
    );
    let _ = writeln!(
        out,
        "always_deny: {} statement(s), {} function(s)",
        config.always_deny.statements.len(),
        config.always_deny.functions.len()
    );

    if config.migrators.is_empty() {
        let _ = writeln!(out, "migrators: none (all DDL is denied)");
    }
    for migrator in &config.migrators {
        let sources: Vec<String> = migrator.source.iter().map(|net| net.to_string()).collect();
        let _ = writeln!(
            out,
            "migrator: {} (databases: {}; certificate subject: {}; source: {})",
            migrator.user,
            list_or(&migrator.databases, "any"),
            migrator.client_cert_subject.as_deref().unwrap_or("any"),
            list_or(&sources, "any")
        );
    }
}

fn write_operations(out: &mut String, config: &Config) {
    let windows = &config.windows;
    let state = match &windows.state_file {
        Some(path) => path.display().to_string(),
        None => "none, windows are kept in memory only".to_string(),
    };
    let _ = writeln!(
        out,
        "windows: max_duration {}, sessions_per_window {}, on_expiry {}, state_file {state}",
        humantime::format_duration(windows.max_duration),
        windows.sessions_per_window,
        enum_name(&windows.on_expiry)
    );

    let admin = &config.admin;
    let token = match &admin.token_file {
        Some(path) => format!("token from {}", path.display()),
        None => "no token file".to_string(),
    };
    let _ = writeln!(out, "admin: {} ({token})", admin.address);

    let audit = &config.audit;
    let rotate = match audit.rotate_bytes {
        Some(bytes) => format!("at {bytes} bytes"),
        None => "never".to_string(),
    };
    let path = match &audit.path {
        Some(path) => path.display().to_string(),
        None => "none".to_string(),
    };
    let _ = writeln!(
        out,
        "audit: {path} (log_allowed {}, on_failure {}, rotate {rotate})",
        audit.log_allowed,
        enum_name(&audit.on_failure)
    );
}

/// Joins `items` with commas, or returns `empty` for an empty list.
fn list_or(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        return empty.to_string();
    }
    items.join(", ")
}

#[cfg(test)]
#[path = "cli_check_tests.rs"]
mod tests;
