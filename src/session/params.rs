//! Validation of client startup parameters.
//!
//! Only settings that cannot change how statements are parsed or who runs
//! them may be set at startup. Everything else is rejected before it reaches
//! the server.

use crate::protocol::backend::ProxyError;
use crate::protocol::sqlstate;
use crate::protocol::startup::{escape_option_value, options_settings, split_options};

/// Settings a client may set through startup parameters or `options`.
const ALLOWED_SETTINGS: &[&str] = &[
    "application_name",
    "datestyle",
    "timezone",
    "intervalstyle",
    "extra_float_digits",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "idle_session_timeout",
    "transaction_isolation",
    "default_transaction_isolation",
    "default_transaction_read_only",
    "synchronize_seqscans",
    "geqo",
    "jit",
    "work_mem",
];

/// Startup parameters after validation, ready to send upstream.
#[derive(Debug, Clone)]
pub struct StartupParams {
    pub user: String,
    pub database: String,
    pub application_name: String,
    /// Parameters for the upstream StartupMessage, `options` rebuilt from validated settings.
    pub upstream: Vec<(String, String)>,
    /// `_pq_.` protocol options the proxy does not support, for NegotiateProtocolVersion.
    pub unsupported_protocol_options: Vec<String>,
}

/// Checks every startup parameter; the error is sent to the client as FATAL.
pub fn validate(params: Vec<(String, String)>) -> Result<StartupParams, ProxyError> {
    let mut user = None;
    let mut database = None;
    let mut application_name = String::new();
    let mut upstream = Vec::new();
    let mut settings = Vec::new();
    let mut unsupported = Vec::new();

    for (name, value) in params {
        match name.as_str() {
            "user" => user = Some(value),
            "database" => database = Some(value),
            "replication" => check_replication(&value)?,
            "options" => settings.extend(parse_options(&value)?),
            "client_encoding" => check_client_encoding(&value)?,
            _ if name.starts_with("_pq_.") => unsupported.push(name),
            _ => {
                check_setting(&name.to_ascii_lowercase())?;
                if name == "application_name" {
                    application_name = value.clone();
                }
                upstream.push((name, value));
            }
        }
    }

    let user = user.filter(|u| !u.is_empty()).ok_or_else(|| {
        ProxyError::fatal(sqlstate::INVALID_AUTHORIZATION, "no PostgreSQL user name specified in startup packet")
    })?;
    let database = database.filter(|d| !d.is_empty()).unwrap_or_else(|| user.clone());
    upstream.insert(0, ("user".to_string(), user.clone()));
    upstream.insert(1, ("database".to_string(), database.clone()));
    upstream.push(("client_encoding".to_string(), "UTF8".to_string()));
    if !settings.is_empty() {
        upstream.push(("options".to_string(), rebuild_options(&settings)));
    }
    Ok(StartupParams { user, database, application_name, upstream, unsupported_protocol_options: unsupported })
}

fn check_replication(value: &str) -> Result<(), ProxyError> {
    match value.to_ascii_lowercase().as_str() {
        "false" | "off" | "no" | "0" => Ok(()),
        _ => Err(ProxyError::fatal(
            sqlstate::FEATURE_NOT_SUPPORTED,
            "replication connections are not supported through schemagate",
        )),
    }
}

fn check_client_encoding(value: &str) -> Result<(), ProxyError> {
    // Postgres drops every character that is not a letter or digit before
    // looking an encoding name up, so asyncpg's "'utf-8'" means UTF8.
    let normalized: String = value.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_lowercase();
    if normalized == "utf8" || normalized == "unicode" {
        return Ok(());
    }
    Err(ProxyError::fatal(
        sqlstate::FEATURE_NOT_SUPPORTED,
        format!("client_encoding {value:?} is not supported: schemagate serves UTF8 clients only"),
    ))
}

fn check_setting(name: &str) -> Result<(), ProxyError> {
    if ALLOWED_SETTINGS.contains(&name) {
        return Ok(());
    }
    Err(ProxyError::fatal(
        sqlstate::INSUFFICIENT_PRIVILEGE,
        format!("startup parameter \"{name}\" is not allowed through schemagate"),
    )
    .with_hint(Some(format!("allowed startup settings: {}", ALLOWED_SETTINGS.join(", ")))))
}

fn parse_options(value: &str) -> Result<Vec<(String, String)>, ProxyError> {
    let settings = options_settings(&split_options(value))
        .map_err(|message| ProxyError::fatal(sqlstate::INSUFFICIENT_PRIVILEGE, message))?;
    for (name, _) in &settings {
        check_setting(name)?;
    }
    Ok(settings)
}

fn rebuild_options(settings: &[(String, String)]) -> String {
    settings
        .iter()
        .map(|(name, value)| format!("-c {name}={}", escape_option_value(value)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn role_in_options_rejected() {
        let result = validate(params(&[("user", "app"), ("options", "-c role=migrator")]));
        assert_eq!(result.unwrap_err().sqlstate, "42501");
    }

    #[test]
    fn standard_conforming_strings_rejected_everywhere() {
        assert!(validate(params(&[("user", "app"), ("options", "--standard_conforming_strings=off")])).is_err());
        assert!(validate(params(&[("user", "app"), ("standard_conforming_strings", "off")])).is_err());
    }

    #[test]
    fn non_utf8_encoding_rejected() {
        assert!(validate(params(&[("user", "app"), ("client_encoding", "SJIS")])).is_err());
        assert!(validate(params(&[("user", "app"), ("client_encoding", "utf-8")])).is_ok());
        assert!(validate(params(&[("user", "app"), ("client_encoding", "'utf-8'")])).is_ok());
    }

    #[test]
    fn replication_rejected() {
        let error = validate(params(&[("user", "app"), ("replication", "database")])).unwrap_err();
        assert_eq!(error.sqlstate, "0A000");
    }

    #[test]
    fn datestyle_option_rebuilt() {
        let validated = validate(params(&[("user", "app"), ("options", r"-c DateStyle=ISO,\ MDY")])).unwrap();
        let options = validated.upstream.iter().find(|(k, _)| k == "options").unwrap();
        assert_eq!(options.1, r"-c datestyle=ISO,\ MDY");
    }

    #[test]
    fn missing_user_rejected() {
        assert_eq!(validate(params(&[("database", "app")])).unwrap_err().sqlstate, "28000");
    }
}
