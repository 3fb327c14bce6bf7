//! Statement facts from the Postgres parse tree, and the rule engine that
//! turns them into a decision. No I/O here: `schemagate serve` and offline
//! checks call the same code.

use std::collections::HashMap;
use std::sync::Arc;

pub mod defaults;

/// Settings that change how the server reads statement text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParseOptions {
    pub standard_conforming_strings: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions { standard_conforming_strings: true }
    }
}

/// Every statement of one SQL text, in order.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    pub statements: Vec<StatementFacts>,
}

/// Why a SQL text could not be analyzed. The session denies such text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AnalyzeError {
    #[error("syntax error: {0}")]
    Syntax(String),
    #[error("statement too complex to check: {0}")]
    TooComplex(String),
}

/// How a statement touches a relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    Write,
    /// Row locks (`FOR UPDATE`, `FOR SHARE`, ...) and `LOCK TABLE` in a mode stronger than ACCESS SHARE.
    Lock,
    /// DDL, GRANT/REVOKE, triggers, rules, comments and ownership changes on the relation.
    Ddl,
}

/// A relation name as Postgres folds it; `schema` is `None` when unqualified.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelationRef {
    pub schema: Option<String>,
    pub name: String,
    pub access: Access,
}

/// The broad class of a statement, used by the decision order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementClass {
    Query,
    Dml,
    TransactionControl,
    /// SET, RESET, SHOW, DISCARD, LISTEN, NOTIFY and other session utilities.
    Session,
    Ddl,
}

/// Facts about one statement (and, in `nested`, the statements inside it).
#[derive(Debug, Clone)]
pub struct StatementFacts {
    /// Postgres command tag, for example `CREATE TABLE` or `ALTER TABLE`.
    pub tag: String,
    /// ALTER TABLE sub-commands such as `ADD COLUMN`, in the order written.
    pub subcommands: Vec<String>,
    pub class: StatementClass,
    pub relations: Vec<RelationRef>,
    /// Functions called, lower-cased; `schema.name` when qualified.
    pub functions: Vec<String>,
    /// PL/pgSQL `EXECUTE` of a string that is not a constant.
    pub dynamic_sql: bool,
    /// Creates only temporary objects.
    pub temporary: bool,
    /// Name given by SQL `PREPARE name AS ...`.
    pub prepares: Option<String>,
    /// Name run by SQL `EXECUTE name` (also inside EXPLAIN ANALYZE).
    pub executes: Option<String>,
    /// SQL `DEALLOCATE`: `Some(None)` for ALL, `Some(Some(name))` for one.
    pub deallocates: Option<Option<String>>,
    /// Statements found inside DO blocks, function bodies, PREPARE, EXPLAIN, CREATE RULE.
    pub nested: Vec<StatementFacts>,
    /// Set when the policy cannot understand the statement; denies it.
    pub unsupported: Option<String>,
}

/// What the window manager says about this session right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowAccess {
    /// Not a migrator, no open window, or the window has no free session slot.
    None,
    /// A migrator with an open window it may bind to at this statement.
    Available,
    /// Already bound to a window that is still open.
    Bound,
}

/// Session state the rules need besides the statement itself.
pub struct SessionContext<'a> {
    pub window: WindowAccess,
    /// Facts of SQL-level prepared statements by name, for EXECUTE.
    pub prepared: &'a HashMap<String, Arc<StatementFacts>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// `uses_window` is set when the statement is allowed only because of a window.
    Allow { uses_window: bool },
    Deny(Denial),
}

/// A refusal, sent to the client as an ErrorResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// Rule id, such as `always_deny.functions` or `ddl.allow`.
    pub rule: String,
    pub sqlstate: &'static str,
    pub message: String,
    pub hint: Option<String>,
    pub command_tag: String,
}

mod stub;
pub use stub::{Analyzer, Policy};
