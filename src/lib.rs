//! schemagate: a PostgreSQL wire-protocol proxy that enforces
//! migration-time privileges.

#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod auth;
pub mod certs;
pub mod cli_check;
pub mod cli_admin;
pub mod config;
pub mod metrics;
pub mod policy;
pub mod protocol;
pub mod server;
pub mod session;
pub mod tls;
pub mod window;
