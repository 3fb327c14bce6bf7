//! Statement facts from the Postgres parse tree, and the rule engine that
//! turns them into a decision. No I/O here: `schemagate serve` and offline
//! checks call the same code.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

mod analyze;
mod cache_key;
mod local_cache;
mod body;
mod ddl;
pub mod defaults;
mod facts;
mod matching;
mod objects;
mod paths;
mod rules;
mod settings;
mod tags;
mod walk;

pub use analyze::{fingerprint, normalize, Analyzer};
pub use rules::{denial_for_error, Policy};
pub use settings::split_identifier_list;
pub use tags::{known_command_tags, suggest_tag};

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
    /// The analyzed SQL text, for audit records.
    pub text: String,
    /// Set once the text is known to be allowed without any window or session state.
    pub allowed_anywhere: AllowedMark,
}

/// The policy generation under which an analysis was allowed with no window
/// and no reference to session state such as SQL-level prepared statements.
/// Such a decision applies to every session until the next reload, so the
/// proxy can skip judging the text again.
#[derive(Debug, Default)]
pub struct AllowedMark(AtomicU64);

impl AllowedMark {
    /// Marks the analysis as allowed under `generation`.
    pub fn set(&self, generation: u64) {
        self.0.store(generation.wrapping_add(1), Ordering::Release);
    }

    pub fn is_set_for(&self, generation: u64) -> bool {
        self.0.load(Ordering::Acquire) == generation.wrapping_add(1)
    }
}

impl Clone for AllowedMark {
    fn clone(&self) -> Self {
        AllowedMark(AtomicU64::new(self.0.load(Ordering::Acquire)))
    }
}

/// Failure to analyze a SQL text. The session denies such text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AnalyzeError {
    #[error("syntax error: {0}")]
    Syntax(String),
    #[error("statement too complex to check: {0}")]
    TooComplex(String),
}

/// Kind of access a statement makes to a relation.
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
    /// A DO block: judged by the statements inside it, not by its tag.
    Block,
}

/// The relation of the statements in `StatementFacts::nested` to their parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NestedContext {
    /// Run now, as if sent on their own: PREPARE, EXPLAIN ANALYZE, CREATE SCHEMA elements.
    Executed,
    /// Planned but not run: plain EXPLAIN. Only always-denied functions count.
    Planned,
    /// Code that runs inside the server where the proxy cannot watch it: DO
    /// blocks, function and procedure bodies, rule actions. Writes to protected
    /// tables from here are denied even to a migration session.
    Body,
}

/// The statement form that changes a run-time setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingRoute {
    /// `SET` (session level).
    Set,
    /// `SET LOCAL`.
    SetLocal,
    /// `RESET name` or `SET name TO DEFAULT`.
    Reset,
    /// `RESET ALL`.
    ResetAll,
    /// `set_config(name, value, is_local)`.
    SetConfig,
    /// `SET` clause of a function or procedure, applied whenever it runs.
    Routine,
    /// `ALTER ROLE ... SET` / `ALTER DATABASE ... SET`: defaults for later sessions.
    StoredDefault,
}

/// One setting change found in a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingChange {
    /// Lower-cased setting name; `None` when it is not a constant (`set_config(expr, ...)`).
    pub name: Option<String>,
    /// Values as the server receives them: one entry per `SET` list item, or the
    /// single `set_config` string. Empty for RESET and DEFAULT.
    pub values: Vec<String>,
    /// False when a value is not a constant, so its content is unknown.
    pub values_known: bool,
    pub route: SettingRoute,
}

/// A non-relation object that a DDL statement names (function, type, schema, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    /// Postgres object type as written in DDL, for example `FUNCTION` or `SCHEMA`.
    pub kind: &'static str,
    /// Schema when qualified; for a `SCHEMA` object, the schema itself.
    pub schema: Option<String>,
    pub name: String,
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
    /// Tables that later writes to other tables would change: inheritance and
    /// partition parents, and tables given foreign keys with writing actions.
    pub write_paths: Vec<RelationRef>,
    /// The relation of `nested` to this statement.
    pub nested_context: NestedContext,
    /// Settings changed by SET, RESET, `set_config` or stored role/database defaults.
    pub settings: Vec<SettingChange>,
    /// Non-relation objects named by DDL (functions, types, schemas, ...).
    pub objects: Vec<ObjectRef>,
    /// Names used in attribute notation (`x.name`), which Postgres may run as
    /// the call `name(x)`; checked against always-denied functions.
    pub attribute_names: Vec<String>,
    /// `COPY` to or from a file or program on the database server.
    pub server_file_access: bool,
}

impl StatementFacts {
    /// Creates facts with a tag and class and nothing else.
    pub fn new(tag: impl Into<String>, class: StatementClass) -> Self {
        StatementFacts {
            tag: tag.into(),
            subcommands: Vec::new(),
            class,
            relations: Vec::new(),
            functions: Vec::new(),
            dynamic_sql: false,
            temporary: false,
            prepares: None,
            executes: None,
            deallocates: None,
            nested: Vec::new(),
            unsupported: None,
            write_paths: Vec::new(),
            nested_context: NestedContext::Executed,
            settings: Vec::new(),
            objects: Vec::new(),
            attribute_names: Vec::new(),
            server_file_access: false,
        }
    }

    /// Returns the statement that SQL `PREPARE` stores under `prepares`, which
    /// the session keeps to judge a later `EXECUTE` of that name.
    pub fn prepared_body(&self) -> Option<&StatementFacts> {
        self.prepares.as_ref()?;
        self.nested.first()
    }
}

/// Returns the objects a statement acts on, for audit records: relations as
/// `schema.name` or `name`, then other DDL objects, without duplicates.
pub fn primary_objects(facts: &StatementFacts) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |text: String| {
        if !out.contains(&text) {
            out.push(text);
        }
    };

    for relation in &facts.relations {
        push(relation.qualified_name());
    }
    for object in &facts.objects {
        match (&object.schema, object.kind) {
            (Some(_), "SCHEMA") | (None, _) => push(object.name.clone()),
            (Some(schema), _) => push(format!("{schema}.{}", object.name)),
        }
    }
    for nested in &facts.nested {
        for text in primary_objects(nested) {
            push(text);
        }
    }
    out
}

impl RelationRef {
    /// Returns `schema.name`, or `name` when the reference was unqualified.
    pub fn qualified_name(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{schema}.{}", self.name),
            None => self.name.clone(),
        }
    }
}


/// Window rights of a session at this moment, from the window manager.
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

