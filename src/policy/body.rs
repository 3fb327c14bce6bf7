//! Statements inside DO blocks and function or procedure bodies.
//!
//! SQL-language bodies are parsed as SQL. PL/pgSQL bodies go through
//! libpg_query's PL/pgSQL compiler, which returns every embedded SQL
//! statement and expression as text with its parse mode. Each one is parsed
//! again and becomes a nested statement. Any body that cannot be parsed marks
//! the statement unsupported, which denies it.

use pg_query::protobuf::{a_const, CreateFunctionStmt, DoStmt, Node, TypeName};
use pg_query::NodeEnum;
use serde_json::{Map, Value};

use super::facts::{nested_statements, statement_facts, Builder};
use super::objects::{add_named_object, strings};
use super::{analyze, AnalyzeError, NestedContext, StatementClass as C, StatementFacts};

/// Parse mode of a PL/pgSQL expression (`RAW_PARSE_PLPGSQL_EXPR`).
const PLPGSQL_EXPR_MODE: i32 = 2;

/// Stand-in declarations for the variables PL/pgSQL creates in trigger
/// functions. The trigger form is not compiled directly because libpg_query
/// 18.1 prints its trigger variables as invalid JSON.
const TRIGGER_DECLARATIONS: &str = "DECLARE new record; old record; tg_name name; tg_when text; tg_level text; \
     tg_op text; tg_relid oid; tg_relname name; tg_table_name name; tg_table_schema name; tg_nargs integer; \
     tg_argv text[];\n";
const EVENT_TRIGGER_DECLARATIONS: &str = "DECLARE tg_event text; tg_tag text;\n";

pub(super) fn do_block(stmt: &DoStmt, builder: Builder) -> Result<StatementFacts, AnalyzeError> {
    let mut facts = StatementFacts::new("DO", C::Block);
    facts.nested_context = NestedContext::Body;

    let language = option_text(&stmt.args, "language").unwrap_or_else(|| "plpgsql".to_string()).to_lowercase();
    if language != "plpgsql" {
        facts.unsupported = Some(format!("DO blocks in LANGUAGE {language} cannot be checked"));
        return Ok(facts);
    }
    let body = option_text(&stmt.args, "as").unwrap_or_default();
    if !body_is_checkable(&body, builder, &mut facts) {
        return Ok(facts);
    }

    let text = format!("DO {}", dollar_quote(&body));
    plpgsql_into(&text, builder, &mut facts)?;
    Ok(facts)
}

pub(super) fn create_function(stmt: &CreateFunctionStmt, builder: Builder) -> Result<StatementFacts, AnalyzeError> {
    let (tag, kind) = if stmt.is_procedure { ("CREATE PROCEDURE", "PROCEDURE") } else { ("CREATE FUNCTION", "FUNCTION") };
    let mut facts = StatementFacts::new(tag, C::Ddl);
    facts.nested_context = NestedContext::Body;
    add_named_object(&mut facts, kind, &strings(&stmt.funcname));

    let language = option_text(&stmt.options, "language")
        .or_else(|| stmt.sql_body.as_ref().map(|_| "sql".to_string()))
        .unwrap_or_default()
        .to_lowercase();
    let body = option_text(&stmt.options, "as").unwrap_or_default();

    match language.as_str() {
        "sql" => match stmt.sql_body.as_deref() {
            Some(sql_body) => {
                let inner = builder.deeper()?;
                for node in flatten_statements(sql_body) {
                    facts.nested.push(statement_facts(node, inner)?);
                }
            }
            None if body_is_checkable(&body, builder, &mut facts) => match nested_statements(&body, 0, builder)? {
                Ok(nested) => facts.nested = nested,
                Err(message) => facts.unsupported = Some(format!("the SQL function body does not parse: {message}")),
            },
            None => {}
        },
        "plpgsql" if body_is_checkable(&body, builder, &mut facts) => {
            match analyze::deparse(&NodeEnum::CreateFunctionStmt(Box::new(compilable_function(stmt)))) {
                Ok(text) => plpgsql_into(&text, builder, &mut facts)?,
                Err(message) => facts.unsupported = Some(format!("the function could not be prepared for checking: {message}")),
            }
        }
        "plpgsql" => {}
        other => facts.unsupported = Some(format!("function bodies in LANGUAGE {other} cannot be checked")),
    }
    Ok(facts)
}

/// With `standard_conforming_strings` off, the server reads backslashes in
/// the body's SQL differently from the PL/pgSQL parser used here.
fn body_is_checkable(body: &str, builder: Builder, facts: &mut StatementFacts) -> bool {
    if !builder.opts.standard_conforming_strings && body.contains('\\') {
        facts.unsupported =
            Some("bodies containing backslashes cannot be checked while standard_conforming_strings is off".to_string());
        return false;
    }
    true
}

/// Returns a copy of a PL/pgSQL function that libpg_query can compile: a
/// trigger function becomes a plain function that declares the trigger variables.
fn compilable_function(stmt: &CreateFunctionStmt) -> CreateFunctionStmt {
    let return_type = stmt.return_type.as_ref().map(|t| strings(&t.names)).unwrap_or_default();
    let declarations = match return_type.last().map(String::as_str) {
        Some("trigger") => TRIGGER_DECLARATIONS,
        Some("event_trigger") => EVENT_TRIGGER_DECLARATIONS,
        _ => return stmt.clone(),
    };

    let mut copy = stmt.clone();
    copy.return_type = Some(TypeName { names: vec![string_node("record")], typemod: -1, ..Default::default() });
    for option in &mut copy.options {
        let Some(NodeEnum::DefElem(def)) = option.node.as_mut() else { continue };
        if def.defname != "as" {
            continue;
        }
        if let Some(NodeEnum::List(list)) = def.arg.as_mut().and_then(|a| a.node.as_mut()) {
            if let Some(NodeEnum::String(body)) = list.items.first_mut().and_then(|n| n.node.as_mut()) {
                body.sval = with_declarations(&body.sval, declarations);
            }
        }
    }
    copy
}

/// Puts extra declarations at the start of a block, after its label if it has one.
fn with_declarations(body: &str, declarations: &str) -> String {
    let trimmed = body.trim_start();
    if trimmed.starts_with("<<") {
        if let Some(end) = trimmed.find(">>") {
            let (label, rest) = trimmed.split_at(end + 2);
            return format!("{label}\n{declarations}{rest}");
        }
    }
    format!("{declarations}{body}")
}

fn string_node(text: &str) -> Node {
    Node { node: Some(NodeEnum::String(pg_query::protobuf::String { sval: text.to_string() })) }
}

/// Returns the statement nodes of a `BEGIN ATOMIC` or `RETURN` body.
fn flatten_statements(node: &Node) -> Vec<&NodeEnum> {
    match node.node.as_ref() {
        Some(NodeEnum::List(list)) => list.items.iter().flat_map(flatten_statements).collect(),
        Some(other) => vec![other],
        None => Vec::new(),
    }
}

/// Returns the text of option `name` (`LANGUAGE`, `AS`) of DO or CREATE FUNCTION.
fn option_text(options: &[Node], name: &str) -> Option<String> {
    options.iter().find_map(|option| match option.node.as_ref() {
        Some(NodeEnum::DefElem(def)) if def.defname == name => match def.arg.as_ref()?.node.as_ref()? {
            NodeEnum::String(s) => Some(s.sval.clone()),
            NodeEnum::List(list) => strings(&list.items).into_iter().next(),
            _ => None,
        },
        _ => None,
    })
}

/// Quotes text with a dollar tag that does not occur in it.
fn dollar_quote(body: &str) -> String {
    let mut tag = String::from("$schemagate$");
    let mut counter = 0;
    while body.contains(&tag) {
        counter += 1;
        tag = format!("$schemagate{counter}$");
    }
    format!("{tag}{body}{tag}")
}

/// Compiles PL/pgSQL in `text` and adds every embedded statement to `facts.nested`.
fn plpgsql_into(text: &str, builder: Builder, facts: &mut StatementFacts) -> Result<(), AnalyzeError> {
    let compiled = match analyze::parse_plpgsql(text) {
        Ok(compiled) => compiled,
        Err(message) => {
            facts.unsupported = Some(format!("the PL/pgSQL body does not parse: {message}"));
            return Ok(());
        }
    };
    let mut scan = BodyScan { builder, facts };
    scan.visit(&compiled, 0)
}

struct BodyScan<'f> {
    builder: Builder,
    facts: &'f mut StatementFacts,
}

impl BodyScan<'_> {
    fn visit(&mut self, value: &Value, depth: usize) -> Result<(), AnalyzeError> {
        if depth > 500 {
            return Err(AnalyzeError::TooComplex("PL/pgSQL body nested too deeply".to_string()));
        }
        match value {
            Value::Array(items) => items.iter().try_for_each(|item| self.visit(item, depth + 1)),
            Value::Object(map) => self.visit_object(map, depth),
            _ => Ok(()),
        }
    }

    fn visit_object(&mut self, map: &Map<String, Value>, depth: usize) -> Result<(), AnalyzeError> {
        for (key, child) in map {
            match key.as_str() {
                "PLpgSQL_stmt_dynexecute" | "PLpgSQL_stmt_dynfors" => self.dynamic(child.get("query"))?,
                "PLpgSQL_stmt_open" | "PLpgSQL_stmt_return_query" => {
                    if let Some(query) = child.get("dynquery") {
                        self.dynamic(Some(query))?;
                    }
                }
                "PLpgSQL_expr" => self.expression(child)?,
                _ => {}
            }
            self.visit(child, depth + 1)?;
        }
        Ok(())
    }

    /// Parses one embedded statement or expression as a nested statement.
    fn expression(&mut self, expr: &Value) -> Result<(), AnalyzeError> {
        let Some(query) = expr.get("query").and_then(Value::as_str) else { return Ok(()) };
        let mode = expr.get("parseMode").and_then(Value::as_i64).unwrap_or(0);
        let mode = i32::try_from(mode).unwrap_or(i32::MAX);
        self.add_nested(query, mode)
    }

    /// `EXECUTE <expr>`: a string constant is analyzed as SQL; anything else is dynamic SQL.
    fn dynamic(&mut self, query: Option<&Value>) -> Result<(), AnalyzeError> {
        let text = query.and_then(|q| q.pointer("/PLpgSQL_expr/query")).and_then(Value::as_str).unwrap_or_default();
        match constant_string(text, self.builder)? {
            Some(sql) => self.add_nested(&sql, 0),
            None => {
                self.facts.dynamic_sql = true;
                Ok(())
            }
        }
    }

    fn add_nested(&mut self, sql: &str, mode: i32) -> Result<(), AnalyzeError> {
        match nested_statements(sql, mode, self.builder)? {
            Ok(nested) => self.facts.nested.extend(nested),
            Err(message) => {
                self.facts.unsupported.get_or_insert(format!("an embedded statement does not parse: {message}"));
            }
        }
        Ok(())
    }
}

/// Returns the string if a PL/pgSQL expression is a single string literal.
fn constant_string(expression: &str, builder: Builder) -> Result<Option<String>, AnalyzeError> {
    let parsed = match analyze::parse_text(expression, PLPGSQL_EXPR_MODE, builder.opts) {
        Ok(parsed) => parsed,
        Err(AnalyzeError::Syntax(_)) => return Ok(None),
        Err(other) => return Err(other),
    };
    let [raw] = parsed.stmts.as_slice() else { return Ok(None) };
    let Some(NodeEnum::SelectStmt(select)) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) else {
        return Ok(None);
    };
    let [target] = select.target_list.as_slice() else { return Ok(None) };
    if !select.from_clause.is_empty() || select.where_clause.is_some() {
        return Ok(None);
    }

    let Some(NodeEnum::ResTarget(target)) = target.node.as_ref() else { return Ok(None) };
    let mut value = target.val.as_ref().and_then(|v| v.node.as_ref());
    if let Some(NodeEnum::TypeCast(cast)) = value {
        value = cast.arg.as_ref().and_then(|v| v.node.as_ref());
    }
    match value {
        Some(NodeEnum::AConst(constant)) => match &constant.val {
            Some(a_const::Val::Sval(s)) => Ok(Some(s.sval.clone())),
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}
