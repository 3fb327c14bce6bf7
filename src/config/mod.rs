//! The `rules.yaml` model: listener, upstream, limits, policy rules, migrators,
//! windows, admin and audit settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod load;
mod validate;

pub use load::{load, parse, ConfigError, Location};
pub(crate) use validate::enum_name;
pub use validate::{check_policy, split_host_port, validate};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: Listen,
    pub upstream: Upstream,
    pub limits: Limits,
    pub protected_tables: Vec<String>,
    /// Schemas a session may put in `search_path` (pg_catalog is also accepted as the first entry).
    pub search_path_schemas: Vec<String>,
    pub ddl: DdlRules,
    pub always_deny: AlwaysDeny,
    pub migrators: Vec<Migrator>,
    pub windows: Windows,
    pub admin: Admin,
    pub audit: Audit,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    pub address: SocketAddr,
    pub tls: ListenTls,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenTls {
    pub mode: ListenTlsMode,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListenTlsMode {
    #[default]
    Disable,
    Allow,
    Require,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Upstream {
    /// `host:port` of the PostgreSQL server.
    pub address: String,
    pub tls: UpstreamTls,
    #[serde(with = "humantime_serde_compat")]
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamTls {
    pub mode: UpstreamTlsMode,
    pub ca: Option<PathBuf>,
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamTlsMode {
    #[default]
    Disable,
    Require,
    VerifyCa,
    VerifyFull,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_message_bytes: usize,
    #[serde(with = "humantime_serde_compat")]
    pub startup_timeout: Duration,
    pub max_connections: usize,
    #[serde(with = "humantime_serde_compat")]
    pub shutdown_timeout: Duration,
    pub parse_cache_entries: usize,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DdlRules {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlwaysDeny {
    pub statements: Vec<String>,
    pub functions: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Migrator {
    pub user: String,
    #[serde(default)]
    pub databases: Vec<String>,
    #[serde(default)]
    pub client_cert_subject: Option<String>,
    #[serde(default)]
    pub source: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Windows {
    #[serde(with = "humantime_serde_compat")]
    pub max_duration: Duration,
    pub sessions_per_window: usize,
    pub on_expiry: OnExpiry,
    /// File that keeps open windows across restarts; none keeps them in memory only.
    pub state_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnExpiry {
    #[default]
    Deny,
    Terminate,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    pub address: SocketAddr,
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Audit {
    pub path: Option<PathBuf>,
    pub log_allowed: bool,
    pub on_failure: AuditFailureMode,
    pub rotate_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditFailureMode {
    #[default]
    Deny,
    Allow,
}

mod defaults;
mod humantime_serde_compat;
