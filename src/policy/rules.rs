//! The rule engine: turns statement facts into a decision.
//!
//! Order, first match wins: always-denied statements, functions and
//! settings; protected tables; DDL (window plus `ddl.allow`/`ddl.deny`);
//! everything else passes. Nested statements (DO and function bodies,
//! PREPARE, EXPLAIN ANALYZE) are judged the same way, and any denial among
//! them denies the whole statement.

use std::collections::HashSet;

use super::matching::{FunctionPattern, ProtectedTable};
use super::settings::judge_setting;
use super::tags::{known_command_tags, normalize_tag, suggest_tag, DYNAMIC_SQL};
use super::{
    Access, Analysis, AnalyzeError, Decision, Denial, NestedContext, SessionContext, StatementClass, StatementFacts,
    WindowAccess,
};
use crate::config::Config;

const WINDOW_HINT: &str =
    "DDL and writes to protected tables need an open migration window: schemagate window open --database DB --for 30m --reason TEXT";
const MIXED_HINT: &str = "send each write to a protected table as a statement of its own; migration tools do";
const BODY_HINT: &str = "DO blocks, function bodies, rules, views and foreign tables must not reach protected tables; \
     the migration session may write them only with plain statements";
const SYSTEM_SCHEMAS: &[&str] = &["pg_catalog", "information_schema"];
const CREATES_PATH: &[&str] = &["CREATE VIEW", "CREATE MATERIALIZED VIEW", "CREATE RULE", "CREATE FOREIGN TABLE"];

/// The rules, in the order they are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AlwaysDenied,
    Protected,
    Ddl,
}

/// The context a statement is judged in: on its own, inside a body, or only planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Direct,
    Body,
    Planned,
}

/// The compiled rules of one `rules.yaml`. Immutable; share it with `Arc`.
#[derive(Debug, Clone)]
pub struct Policy {
    protected: Vec<ProtectedTable>,
    ddl_allow: HashSet<String>,
    ddl_deny: HashSet<String>,
    deny_statements: HashSet<String>,
    deny_functions: Vec<FunctionPattern>,
    search_path_schemas: Vec<String>,
}

impl Policy {
    /// Compiles the policy sections of `config`. Returns every problem found,
    /// for example an unknown command tag with the nearest valid one.
    pub fn new(config: &Config) -> Result<Policy, Vec<String>> {
        let mut errors = Vec::new();
        let known: HashSet<String> = known_command_tags().into_iter().collect();
        let mut tags = |list: &[String], key: &str| -> HashSet<String> {
            let mut set = HashSet::new();
            for tag in list {
                let normalized = normalize_tag(tag);
                if !known.contains(&normalized) {
                    errors.push(unknown_tag_message(tag, key));
                }
                set.insert(normalized);
            }
            set
        };
        let ddl_allow = tags(&config.ddl.allow, "ddl.allow");
        let ddl_deny = tags(&config.ddl.deny, "ddl.deny");
        let deny_statements = tags(&config.always_deny.statements, "always_deny.statements");

        let protected = parse_all(&config.protected_tables, ProtectedTable::parse, &mut errors);
        let deny_functions = parse_all(&config.always_deny.functions, FunctionPattern::parse, &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        // Names compare as the catalog stores them: lower case unless created quoted.
        let search_path_schemas = config.search_path_schemas.clone();
        Ok(Policy { protected, ddl_allow, ddl_deny, deny_statements, deny_functions, search_path_schemas })
    }

    /// Judges every statement of a text: the first denial wins; `uses_window`
    /// is set when any statement is allowed only because of a window.
    pub fn decide(&self, analysis: &Analysis, ctx: &SessionContext<'_>) -> Decision {
        if let Some(denied) = self.check_mixed_protected_write(analysis) {
            return Decision::Deny(denied);
        }
        let mut uses_window = false;
        for statement in &analysis.statements {
            match self.decide_statement(statement, ctx) {
                Decision::Allow { uses_window: used } => uses_window |= used,
                denied @ Decision::Deny(_) => return denied,
            }
        }
        Decision::Allow { uses_window }
    }

    /// Judges one statement, including the statements nested in it. Each rule
    /// is applied to the whole tree before the next one, so a body that writes
    /// a protected table is reported as such even if it also contains DDL.
    pub fn decide_statement(&self, facts: &StatementFacts, ctx: &SessionContext<'_>) -> Decision {
        let judged = [Phase::AlwaysDenied, Phase::Protected, Phase::Ddl]
            .into_iter()
            .try_fold(false, |uses_window, phase| Ok(uses_window | self.visit(facts, ctx, Mode::Direct, phase, &facts.tag)?));
        match judged {
            Ok(uses_window) => Decision::Allow { uses_window },
            Err(denial) => Decision::Deny(denial),
        }
    }

    /// Applies one rule to a statement, its nested statements and the
    /// prepared statement it executes. Returns whether a window was needed.
    fn visit(&self, f: &StatementFacts, ctx: &SessionContext<'_>, mode: Mode, phase: Phase, top: &str) -> Result<bool, Denial> {
        let mut uses_window = match phase {
            Phase::AlwaysDenied => {
                self.check_unsupported(f, top)?;
                self.check_functions(f, top)?;
                if mode != Mode::Planned {
                    self.check_always_denied(f, top)?;
                }
                false
            }
            _ if mode == Mode::Planned => return Ok(false),
            Phase::Protected => self.check_protected(f, ctx, mode, top)?,
            Phase::Ddl => self.check_ddl(f, ctx, top)?,
        };

        for nested in &f.nested {
            let nested_mode = match (mode, f.nested_context) {
                (Mode::Planned, _) | (_, NestedContext::Planned) => Mode::Planned,
                (Mode::Body, _) | (_, NestedContext::Body) => Mode::Body,
                (Mode::Direct, NestedContext::Executed) => Mode::Direct,
            };
            uses_window |= self.visit(nested, ctx, nested_mode, phase, top)?;
        }

        // A prepared statement is judged again, under the current window, whenever it runs.
        if mode != Mode::Planned {
            if let Some(prepared) = f.executes.as_ref().and_then(|name| ctx.prepared.get(name)) {
                uses_window |= self.visit(prepared, ctx, mode, phase, top)?;
            }
        }
        Ok(uses_window)
    }

    fn check_unsupported(&self, f: &StatementFacts, top: &str) -> Result<(), Denial> {
        match &f.unsupported {
            Some(reason) => {
                let message = format!("schemagate: {} cannot be checked: {reason} (rule unsupported)", f.tag);
                Err(denial("unsupported", message, Some("schemagate denies statements it cannot check"), top))
            }
            None => Ok(()),
        }
    }

    fn check_functions(&self, f: &StatementFacts, top: &str) -> Result<(), Denial> {
        let called = f.functions.iter().find(|name| self.deny_functions.iter().any(|p| p.matches_call(name)));
        let attribute = f.attribute_names.iter().find(|name| self.deny_functions.iter().any(|p| p.matches_call(name)));
        let Some(name) = called.or(attribute) else { return Ok(()) };

        let message = format!("schemagate: {} calling function {name} is denied (rule always_deny.functions)", f.tag);
        let hint = "functions that run SQL text, reach server files or programs, or signal other sessions are denied to every session";
        Err(denial("always_deny.functions", message, Some(hint), top))
    }

    fn check_always_denied(&self, f: &StatementFacts, top: &str) -> Result<(), Denial> {
        if self.deny_statements.contains(&f.tag) {
            let message = format!("schemagate: {} is always denied (rule always_deny.statements)", f.tag);
            return Err(denial("always_deny.statements", message, Some("this command is listed in always_deny.statements"), top));
        }
        if f.server_file_access {
            let message = format!("schemagate: {} to or from a server file or program is always denied (rule always_deny.statements)", f.tag);
            return Err(denial("always_deny.statements", message, Some("use COPY ... FROM STDIN or TO STDOUT instead"), top));
        }

        for change in &f.settings {
            if let Err(reason) = judge_setting(change, &self.search_path_schemas) {
                let name = change.name.as_deref().unwrap_or("a setting");
                let message = format!("schemagate: {} changing {name} is denied (rule always_deny.settings)", f.tag);
                return Err(denial("always_deny.settings", message, Some(&reason), top));
            }
        }
        let settings_write = f.relations.iter().any(|r| {
            r.name == "pg_settings" && r.access == Access::Write && r.schema.as_deref().is_none_or(|s| s == "pg_catalog")
        });
        if settings_write {
            let message = format!("schemagate: {} on pg_settings is denied (rule always_deny.settings)", f.tag);
            return Err(denial("always_deny.settings", message, Some("use SET for settings that are allowed"), top));
        }

        let system_relation = f
            .relations
            .iter()
            .find(|r| r.access != Access::Read && r.schema.as_deref().is_some_and(|s| SYSTEM_SCHEMAS.contains(&s)))
            .map(|r| r.qualified_name());
        let system_object = f
            .objects
            .iter()
            .find(|o| o.schema.as_deref().is_some_and(|s| SYSTEM_SCHEMAS.contains(&s)))
            .map(|o| format!("{} {}", o.kind, o.name));
        if let Some(object) = system_relation.or(system_object) {
            let message = format!("schemagate: {} on system object {object} is always denied (rule always_deny.statements)", f.tag);
            return Err(denial("always_deny.statements", message, Some("objects in pg_catalog and information_schema are never changed through schemagate"), top));
        }
        Ok(())
    }

    /// Denies a protected-table write hidden among other statements of one
    /// message: migration tools send their version-table writes alone, so a
    /// write mixed into a script's statements is tampering, even in a window.
    fn check_mixed_protected_write(&self, analysis: &Analysis) -> Option<Denial> {
        if analysis.statements.len() < 2 {
            return None;
        }
        analysis.statements.iter().find_map(|f| {
            let relation = f.relations.iter().find(|r| r.access != Access::Read && self.is_protected(r))?;
            let message = format!(
                "schemagate: {} on protected table {} inside a message of {} statements is denied (rule protected_tables)",
                f.tag,
                relation.qualified_name(),
                analysis.statements.len()
            );
            Some(denial("protected_tables", message, Some(MIXED_HINT), &f.tag))
        })
    }

    fn check_protected(&self, f: &StatementFacts, ctx: &SessionContext<'_>, mode: Mode, top: &str) -> Result<bool, Denial> {
        if CREATES_PATH.contains(&f.tag.as_str()) {
            if let Some(relation) = self.any_protected(f) {
                let message = format!(
                    "schemagate: {} referencing protected table {} is denied (rule protected_tables)",
                    f.tag,
                    relation.qualified_name()
                );
                return Err(denial("protected_tables", message, Some(BODY_HINT), top));
            }
        }

        if let Some(relation) = f.write_paths.iter().find(|r| self.is_protected(r)) {
            let message = format!(
                "schemagate: {} would let writes to other tables change protected table {} (inheritance, partitioning or a cascading foreign key) and is denied (rule protected_tables)",
                f.tag,
                relation.qualified_name()
            );
            return Err(denial("protected_tables", message, Some(BODY_HINT), top));
        }

        let touched = f.relations.iter().find(|r| r.access != Access::Read && self.is_protected(r));
        let Some(relation) = touched else { return Ok(false) };
        let message = format!(
            "schemagate: {} on protected table {} is denied (rule protected_tables)",
            f.tag,
            relation.qualified_name()
        );
        if mode == Mode::Body {
            return Err(denial("protected_tables", message, Some(BODY_HINT), top));
        }
        match ctx.window {
            WindowAccess::None => Err(denial("protected_tables", message, Some(WINDOW_HINT), top)),
            WindowAccess::Available | WindowAccess::Bound => Ok(true),
        }
    }

    fn check_ddl(&self, f: &StatementFacts, ctx: &SessionContext<'_>, top: &str) -> Result<bool, Denial> {
        let mut required = Vec::new();
        if f.dynamic_sql {
            required.push(DYNAMIC_SQL.to_string());
        }
        if f.class == StatementClass::Ddl && !f.temporary {
            required.extend(required_tags(f));
        }
        if required.is_empty() {
            return Ok(false);
        }

        // A bare tag covers all of its sub-commands, in both lists.
        let listed = |list: &HashSet<String>, name: &String| -> Option<String> {
            if list.contains(name) {
                Some(name.clone())
            } else if name != DYNAMIC_SQL && list.contains(&f.tag) {
                Some(f.tag.clone())
            } else {
                None
            }
        };
        if let Some(entry) = required.iter().find_map(|name| listed(&self.ddl_deny, name)) {
            let message = format!("schemagate: {entry} is denied (rule ddl.deny)");
            return Err(denial("ddl.deny", message, Some(&format!("{entry} is in ddl.deny")), top));
        }
        if let Some(name) = required.iter().find(|name| listed(&self.ddl_allow, name).is_none()) {
            let message = format!("schemagate: {name} is not allowed (rule ddl.allow)");
            return Err(denial("ddl.allow", message, Some(&format!("add \"{name}\" to ddl.allow in rules.yaml")), top));
        }
        if ctx.window == WindowAccess::None {
            let target = super::primary_objects(f).into_iter().next().map(|o| format!(" on {o}")).unwrap_or_default();
            let message = format!("schemagate: {}{target} is denied outside a migration window (rule ddl.allow)", required[0]);
            return Err(denial("ddl.allow", message, Some(WINDOW_HINT), top));
        }
        Ok(true)
    }

    fn is_protected(&self, relation: &super::RelationRef) -> bool {
        self.protected.iter().any(|p| p.matches(relation))
    }

    /// Finds any reference, of any access, to a protected table in `f` or its nested statements.
    fn any_protected<'f>(&self, f: &'f StatementFacts) -> Option<&'f super::RelationRef> {
        f.relations.iter().find(|r| self.is_protected(r)).or_else(|| f.nested.iter().find_map(|n| self.any_protected(n)))
    }
}

/// The names that `ddl.allow` must cover: the tag, or `TAG SUB-COMMAND` for each sub-command.
fn required_tags(f: &StatementFacts) -> Vec<String> {
    if f.subcommands.is_empty() {
        return vec![f.tag.clone()];
    }
    f.subcommands.iter().map(|sub| format!("{} {sub}", f.tag)).collect()
}

fn parse_all<T>(entries: &[String], parse: fn(&str) -> Result<T, String>, errors: &mut Vec<String>) -> Vec<T> {
    entries.iter().filter_map(|entry| parse(entry).map_err(|e| errors.push(e)).ok()).collect()
}

fn unknown_tag_message(tag: &str, key: &str) -> String {
    match suggest_tag(tag) {
        Some(suggestion) => format!("unknown command tag \"{tag}\" in {key}; did you mean \"{suggestion}\"?"),
        None => format!("unknown command tag \"{tag}\" in {key}"),
    }
}

fn denial(rule: &str, message: String, hint: Option<&str>, command_tag: &str) -> Denial {
    Denial {
        rule: rule.to_string(),
        sqlstate: "42501",
        message,
        hint: hint.map(String::from),
        command_tag: command_tag.to_string(),
    }
}

/// Returns the denial for text that could not be analyzed: SQLSTATE 42601 for a
/// syntax error, 42501 for a statement too complex to check.
pub fn denial_for_error(error: &AnalyzeError) -> Denial {
    match error {
        AnalyzeError::Syntax(message) => Denial {
            rule: "parse".to_string(),
            sqlstate: "42601",
            message: format!("schemagate could not parse the statement: {message}"),
            hint: None,
            command_tag: String::new(),
        },
        AnalyzeError::TooComplex(message) => Denial {
            rule: "parse".to_string(),
            sqlstate: "42501",
            message: format!("schemagate could not check the statement: {message}"),
            hint: Some("split the statement or reduce its nesting".to_string()),
            command_tag: String::new(),
        },
    }
}
