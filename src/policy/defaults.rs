//! Safe defaults for `always_deny`, and a suggested `ddl.allow` list.

/// Command tags denied to every session: role and privilege changes, server
/// configuration and code loading, and connections to other servers, because
/// a loopback server would run SQL that never passes through the proxy.
pub const ALWAYS_DENY_STATEMENTS: &[&str] = &[
    "CREATE ROLE",
    "ALTER ROLE",
    "DROP ROLE",
    "GRANT ROLE",
    "REVOKE ROLE",
    "ALTER SYSTEM",
    "LOAD",
    "CREATE SERVER",
    "ALTER SERVER",
    "CREATE USER MAPPING",
    "ALTER USER MAPPING",
    "IMPORT FOREIGN SCHEMA",
    "CREATE SUBSCRIPTION",
    "ALTER SUBSCRIPTION",
];

/// Functions denied to every session, matched in every schema (`*` is a
/// wildcard). They run SQL text the proxy cannot see, read or write files and
/// programs on the server, or control the server and other sessions. Because
/// `pg_cancel_backend` and `pg_terminate_backend` are here, applications cannot
/// cancel or end other backends through schemagate; the CancelRequest message
/// still cancels a client's own query.
pub const ALWAYS_DENY_FUNCTIONS: &[&str] = &[
    // Run SQL text.
    "query_to_xml",
    "query_to_xml_and_xmlschema",
    "query_to_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "ts_stat",
    "ts_rewrite",
    "dblink*",
    // Server files and programs.
    "pg_read_file",
    "pg_read_binary_file",
    "pg_stat_file",
    "pg_ls_dir",
    "pg_ls_*dir",
    "lo_import",
    "lo_export",
    "pg_file_*",
    "pg_logdir_ls",
    // Server and session control.
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_logfile_rotate",
    "pg_promote",
    "pg_terminate_backend",
    "pg_cancel_backend",
];

/// A `ddl.allow` list that covers what Alembic migrations emit on
/// PostgreSQL. Not applied by default: an empty `ddl.allow` allows no DDL, and
/// `rules.yaml` lists what a deployment accepts.
pub const DEFAULT_DDL_ALLOW: &[&str] = &[
    "CREATE TABLE",
    "ALTER TABLE",
    "DROP TABLE",
    "CREATE INDEX",
    "ALTER INDEX",
    "DROP INDEX",
    "CREATE TYPE",
    "ALTER TYPE",
    "DROP TYPE",
    "CREATE SEQUENCE",
    "ALTER SEQUENCE",
    "DROP SEQUENCE",
    "COMMENT",
    "CREATE VIEW",
    "ALTER VIEW",
    "DROP VIEW",
    "CREATE MATERIALIZED VIEW",
    "DROP MATERIALIZED VIEW",
    "REFRESH MATERIALIZED VIEW",
    "CREATE FUNCTION",
    "DROP FUNCTION",
    "CREATE TRIGGER",
    "DROP TRIGGER",
    "CREATE SCHEMA",
];
