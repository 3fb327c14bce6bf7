//! schemagate: a PostgreSQL wire-protocol proxy that enforces
//! migration-time privileges.

#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod cli_admin;
pub mod config;
pub mod policy;
pub mod server;
pub mod window;
