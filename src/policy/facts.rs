//! Builds `StatementFacts` for one parsed statement: the command tag and
//! class from the statement type, the statement's own targets, and then a
//! generic walk over the rest of the tree.

use pg_query::protobuf::{CopyStmt, ExplainStmt, LockStmt, SelectStmt, VacuumStmt};
use pg_query::NodeEnum;
use serde_json::Value;

use super::objects::add_range_var;
use super::settings::{self, variable_set_change};
use super::{analyze, body, ddl, walk};
use super::{Access, AnalyzeError, NestedContext, ParseOptions, StatementClass as C, StatementFacts};

/// Nesting limit for statements inside statements (bodies, constant EXECUTE strings).
const MAX_NESTING: usize = 16;

/// Shared settings while building facts for one SQL text.
#[derive(Debug, Clone, Copy)]
pub(super) struct Builder {
    pub opts: ParseOptions,
    /// How many statement levels enclose the one being built.
    pub nesting: usize,
}

impl Builder {
    pub(super) fn deeper(self) -> Result<Builder, AnalyzeError> {
        if self.nesting >= MAX_NESTING {
            return Err(AnalyzeError::TooComplex(format!("statements nested more than {MAX_NESTING} levels deep")));
        }
        Ok(Builder { nesting: self.nesting + 1, ..self })
    }
}

/// Builds the facts of one statement node.
pub(super) fn statement_facts(node: &NodeEnum, builder: Builder) -> Result<StatementFacts, AnalyzeError> {
    let mut json = serde_json::to_value(node).map_err(|e| AnalyzeError::TooComplex(e.to_string()))?;
    let mut facts = classify(node, &json, builder)?;

    // Nested statements were analyzed on their own; the walk covers the rest.
    if let Some(fields) = json.as_object_mut().and_then(|m| m.values_mut().next()).and_then(Value::as_object_mut) {
        for key in ["query", "sql_body", "actions", "schema_elts"] {
            if nested_key(node, key) {
                fields.remove(key);
            }
        }
    }
    walk::collect(&json, &mut facts)?;
    Ok(facts)
}

/// Returns whether field `key` of this statement contains the statements analyzed as `nested`.
fn nested_key(node: &NodeEnum, key: &str) -> bool {
    matches!(
        (node, key),
        (NodeEnum::ExplainStmt(_) | NodeEnum::PrepareStmt(_), "query")
            | (NodeEnum::CreateFunctionStmt(_), "sql_body")
            | (NodeEnum::RuleStmt(_), "actions")
            | (NodeEnum::CreateSchemaStmt(_), "schema_elts")
    )
}

/// Parses SQL text found inside a statement (a function body, an EXECUTE
/// string, a PL/pgSQL expression) and builds facts for each statement in it.
/// `Ok(Err(reason))` when the text does not parse.
pub(super) fn nested_statements(
    sql: &str,
    mode: i32,
    builder: Builder,
) -> Result<Result<Vec<StatementFacts>, String>, AnalyzeError> {
    let builder = builder.deeper()?;
    let parsed = match analyze::parse_text(sql, mode, builder.opts) {
        Ok(parsed) => parsed,
        Err(AnalyzeError::Syntax(message)) => return Ok(Err(message)),
        Err(other) => return Err(other),
    };

    let mut out = Vec::new();
    for raw in &parsed.stmts {
        if let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) {
            out.push(statement_facts(node, builder)?);
        }
    }
    Ok(Ok(out))
}

fn classify(node: &NodeEnum, json: &Value, builder: Builder) -> Result<StatementFacts, AnalyzeError> {
    use NodeEnum as N;
    let fields = json.as_object().and_then(|m| m.values().next()).unwrap_or(&Value::Null);
    let mut facts = match node {
        N::SelectStmt(s) => select_facts(s),
        N::InsertStmt(_) => StatementFacts::new("INSERT", C::Dml),
        N::UpdateStmt(_) => StatementFacts::new("UPDATE", C::Dml),
        N::DeleteStmt(_) => StatementFacts::new("DELETE", C::Dml),
        N::MergeStmt(_) => StatementFacts::new("MERGE", C::Dml),
        N::CallStmt(_) => StatementFacts::new("CALL", C::Dml),
        N::ReturnStmt(_) | N::PlassignStmt(_) => StatementFacts::new("SELECT", C::Query),
        N::CopyStmt(s) => copy_facts(s),
        N::TruncateStmt(s) => relation_list_facts("TRUNCATE TABLE", C::Dml, &s.relations, Access::Write),
        N::LockStmt(s) => lock_facts(s),
        N::ExplainStmt(s) => explain_facts(s, builder)?,
        N::PrepareStmt(s) => {
            let mut facts = StatementFacts::new("PREPARE", C::Session);
            facts.prepares = Some(s.name.clone());
            if let Some(query) = s.query.as_ref().and_then(|q| q.node.as_ref()) {
                facts.nested.push(statement_facts(query, builder.deeper()?)?);
            }
            facts
        }
        N::ExecuteStmt(s) => {
            let mut facts = StatementFacts::new("EXECUTE", C::Session);
            facts.executes = Some(s.name.clone());
            facts
        }
        N::DeallocateStmt(s) => {
            let tag = if s.isall { "DEALLOCATE ALL" } else { "DEALLOCATE" };
            let mut facts = StatementFacts::new(tag, C::Session);
            facts.deallocates = Some(Some(s.name.clone()).filter(|_| !s.isall));
            facts
        }
        N::TransactionStmt(s) => StatementFacts::new(transaction_tag(s.kind), C::TransactionControl),
        N::ConstraintsSetStmt(_) => StatementFacts::new("SET CONSTRAINTS", C::TransactionControl),
        N::VariableSetStmt(_) => {
            // VAR_RESET and VAR_RESET_ALL; every other kind is written with SET.
            let is_reset = matches!(fields.get("kind").and_then(Value::as_i64), Some(5 | 6));
            let mut facts = StatementFacts::new(if is_reset { "RESET" } else { "SET" }, C::Session);
            facts.settings.push(variable_set_change(fields, false));
            facts
        }
        N::VariableShowStmt(_) => StatementFacts::new("SHOW", C::Session),
        N::DiscardStmt(s) => StatementFacts::new(discard_tag(s.target), C::Session),
        N::ListenStmt(_) => StatementFacts::new("LISTEN", C::Session),
        N::UnlistenStmt(_) => StatementFacts::new("UNLISTEN", C::Session),
        N::NotifyStmt(_) => StatementFacts::new("NOTIFY", C::Session),
        N::DeclareCursorStmt(_) => StatementFacts::new("DECLARE CURSOR", C::Query),
        N::FetchStmt(s) => StatementFacts::new(if s.ismove { "MOVE" } else { "FETCH" }, C::Query),
        N::ClosePortalStmt(s) => {
            let tag = if s.portalname.is_empty() { "CLOSE CURSOR ALL" } else { "CLOSE CURSOR" };
            StatementFacts::new(tag, C::Session)
        }
        N::VacuumStmt(s) => vacuum_facts(s),
        N::DoStmt(s) => body::do_block(s, builder)?,
        N::CreateFunctionStmt(s) => body::create_function(s, builder)?,
        N::AlterDatabaseSetStmt(_) | N::AlterRoleSetStmt(_) => {
            let tag = if matches!(node, N::AlterRoleSetStmt(_)) { "ALTER ROLE" } else { "ALTER DATABASE" };
            let mut facts = StatementFacts::new(tag, C::Ddl);
            facts.settings.push(variable_set_change(fields.get("setstmt").unwrap_or(&Value::Null), true));
            facts
        }
        _ => match ddl::ddl_facts(node, builder)? {
            Some(facts) => facts,
            None => {
                let mut facts = StatementFacts::new("UNKNOWN", C::Ddl);
                facts.unsupported = Some("the statement type is not recognized by schemagate".to_string());
                facts
            }
        },
    };
    facts.write_paths = super::paths::write_paths(node);
    if matches!(node, N::CreateFunctionStmt(_) | N::AlterFunctionStmt(_)) {
        // `SET name = value` clauses apply whenever the routine runs, so they
        // are judged like a session SET.
        facts.settings.extend(settings::routine_set_changes(fields));
    }
    Ok(facts)
}

fn select_facts(select: &SelectStmt) -> StatementFacts {
    let Some(into) = select.into_clause.as_ref() else {
        return StatementFacts::new("SELECT", C::Query);
    };
    let mut facts = StatementFacts::new("SELECT INTO", C::Ddl);
    facts.temporary = into.rel.as_ref().is_some_and(ddl::is_temporary);
    facts
}

fn copy_facts(copy: &CopyStmt) -> StatementFacts {
    let mut facts = StatementFacts::new("COPY", C::Dml);
    let access = if copy.is_from { Access::Write } else { Access::Read };
    add_range_var(&mut facts, copy.relation.as_ref(), access);
    facts.server_file_access = copy.is_program || !copy.filename.is_empty();
    facts
}

fn relation_list_facts(tag: &str, class: C, nodes: &[pg_query::protobuf::Node], access: Access) -> StatementFacts {
    let mut facts = StatementFacts::new(tag, class);
    for node in nodes {
        if let Some(NodeEnum::RangeVar(relation)) = node.node.as_ref() {
            add_range_var(&mut facts, Some(relation), access);
        }
    }
    facts
}

/// `LOCK TABLE` in ACCESS SHARE mode only reads (pg_dump takes it); any
/// stronger mode blocks writers and counts as a lock.
fn lock_facts(lock: &LockStmt) -> StatementFacts {
    const ACCESS_SHARE: i32 = 1;
    let access = if lock.mode == ACCESS_SHARE { Access::Read } else { Access::Lock };
    relation_list_facts("LOCK TABLE", C::Dml, &lock.relations, access)
}

/// `VACUUM FULL` rewrites the table under an ACCESS EXCLUSIVE lock; plain
/// VACUUM and ANALYZE take a lock that does not block reads or writes.
fn vacuum_facts(vacuum: &VacuumStmt) -> StatementFacts {
    let tag = if vacuum.is_vacuumcmd { "VACUUM" } else { "ANALYZE" };
    let full = vacuum.options.iter().any(|o| matches!(o.node.as_ref(), Some(NodeEnum::DefElem(d)) if d.defname == "full"));
    let access = if full { Access::Lock } else { Access::Read };

    let mut facts = StatementFacts::new(tag, C::Session);
    for rel in &vacuum.rels {
        if let Some(NodeEnum::VacuumRelation(v)) = rel.node.as_ref() {
            add_range_var(&mut facts, v.relation.as_ref(), access);
        }
    }
    facts
}

/// `EXPLAIN ANALYZE` runs its statement; plain `EXPLAIN` only plans it.
fn explain_facts(explain: &ExplainStmt, builder: Builder) -> Result<StatementFacts, AnalyzeError> {
    let analyze = explain.options.iter().any(|o| match o.node.as_ref() {
        Some(NodeEnum::DefElem(d)) if d.defname == "analyze" => !is_false_option(d.arg.as_deref()),
        _ => false,
    });

    let mut facts = StatementFacts::new("EXPLAIN", C::Query);
    facts.nested_context = if analyze { NestedContext::Executed } else { NestedContext::Planned };
    if let Some(query) = explain.query.as_ref().and_then(|q| q.node.as_ref()) {
        let inner = statement_facts(query, builder.deeper()?)?;
        if analyze {
            facts.executes = inner.executes.clone();
        }
        facts.nested.push(inner);
    }
    Ok(facts)
}

/// Returns whether an option value is an explicit false (`false`, `off`, `0`), as the
/// server's `defGetBoolean` reads it. Anything else counts as true.
fn is_false_option(arg: Option<&pg_query::protobuf::Node>) -> bool {
    match arg.and_then(|a| a.node.as_ref()) {
        Some(NodeEnum::String(s)) => matches!(s.sval.to_ascii_lowercase().as_str(), "false" | "off"),
        Some(NodeEnum::Integer(i)) => i.ival == 0,
        Some(NodeEnum::Boolean(b)) => !b.boolval,
        _ => false,
    }
}

fn transaction_tag(kind: i32) -> &'static str {
    use pg_query::protobuf::TransactionStmtKind as K;
    match K::try_from(kind).unwrap_or(K::Undefined) {
        K::TransStmtBegin => "BEGIN",
        K::TransStmtStart => "START TRANSACTION",
        K::TransStmtCommit => "COMMIT",
        K::TransStmtRollback | K::TransStmtRollbackTo => "ROLLBACK",
        K::TransStmtSavepoint => "SAVEPOINT",
        K::TransStmtRelease => "RELEASE",
        K::TransStmtPrepare => "PREPARE TRANSACTION",
        K::TransStmtCommitPrepared => "COMMIT PREPARED",
        K::TransStmtRollbackPrepared => "ROLLBACK PREPARED",
        K::Undefined => "BEGIN",
    }
}

fn discard_tag(target: i32) -> &'static str {
    use pg_query::protobuf::DiscardMode as D;
    match D::try_from(target).unwrap_or(D::Undefined) {
        D::DiscardPlans => "DISCARD PLANS",
        D::DiscardSequences => "DISCARD SEQUENCES",
        D::DiscardTemp => "DISCARD TEMP",
        D::DiscardAll | D::Undefined => "DISCARD ALL",
    }
}
