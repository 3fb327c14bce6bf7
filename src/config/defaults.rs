//! Defaults for every key that `rules.yaml` may leave out.

use std::time::Duration;

use super::*;

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: Listen::default(),
            upstream: Upstream::default(),
            limits: Limits::default(),
            protected_tables: vec!["alembic_version".to_string()],
            search_path_schemas: ["$user", "public", "pg_temp"].iter().map(|s| s.to_string()).collect(),
            ddl: DdlRules::default(),
            always_deny: AlwaysDeny::default(),
            migrators: Vec::new(),
            windows: Windows::default(),
            admin: Admin::default(),
            audit: Audit::default(),
        }
    }
}

impl Default for Listen {
    fn default() -> Self {
        Listen {
            address: "127.0.0.1:6432".parse().expect("valid literal address"),
            tls: ListenTls::default(),
        }
    }
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream {
            address: "127.0.0.1:5432".to_string(),
            tls: UpstreamTls::default(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 64 * 1024 * 1024,
            startup_timeout: Duration::from_secs(10),
            max_connections: 1000,
            shutdown_timeout: Duration::from_secs(30),
            parse_cache_entries: 10_000,
        }
    }
}

impl Default for AlwaysDeny {
    fn default() -> Self {
        AlwaysDeny {
            statements: crate::policy::defaults::ALWAYS_DENY_STATEMENTS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            functions: crate::policy::defaults::ALWAYS_DENY_FUNCTIONS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

impl Default for Windows {
    fn default() -> Self {
        Windows {
            max_duration: Duration::from_secs(4 * 3600),
            sessions_per_window: 1,
            on_expiry: OnExpiry::Deny,
            state_file: None,
        }
    }
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            address: "127.0.0.1:6433".parse().expect("valid literal address"),
            token_file: None,
        }
    }
}
