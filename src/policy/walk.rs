//! A generic walk over every node of a parse tree.
//!
//! The tree is converted to `serde_json::Value`, since every pg_query node
//! type implements `Serialize`. The walk so reaches node types that the
//! statement-level code never names, such as a relation read inside a CTE, a
//! function call in a `DEFAULT` expression or a write inside `COPY (...) TO`.
//! Node-wrapped values appear as `{"TypeName": {...}}`; typed fields such as
//! `DeleteStmt.relation` appear without a type name and are recognized by
//! their field set.

use serde_json::{Map, Value};

use super::settings::set_config_change;
use super::{Access, AnalyzeError, RelationRef, StatementFacts};

/// Nesting limit of the JSON walk. The protobuf decoder already refuses trees
/// deeper than 100 messages, so this only guards against a future change there.
const MAX_DEPTH: usize = 2_000;

/// Adds to `facts` every relation, function call, `set_config` call, attribute
/// name and `EXECUTE` found anywhere under `value`.
pub(super) fn collect(value: &Value, facts: &mut StatementFacts) -> Result<(), AnalyzeError> {
    let mut walker = Walker { facts, settings_filters: Vec::new() };
    walker.visit(value, 0)
}

struct Walker<'f> {
    facts: &'f mut StatementFacts,
    /// For each enclosing SELECT: the setting name it filters `pg_settings` on.
    settings_filters: Vec<Option<String>>,
}

impl Walker<'_> {
    fn visit(&mut self, value: &Value, depth: usize) -> Result<(), AnalyzeError> {
        if depth > MAX_DEPTH {
            return Err(AnalyzeError::TooComplex(format!("parse tree nested deeper than {MAX_DEPTH} levels")));
        }
        match value {
            Value::Array(items) => {
                for item in items {
                    self.visit(item, depth + 1)?;
                }
                Ok(())
            }
            Value::Object(map) => self.visit_object(map, depth),
            _ => Ok(()),
        }
    }

    fn visit_object(&mut self, map: &Map<String, Value>, depth: usize) -> Result<(), AnalyzeError> {
        if let Some(relation) = range_var(map, Access::Read) {
            add_relation(self.facts, relation);
            return Ok(());
        }
        if is_func_call(map) {
            self.add_function_call(map);
        }

        for (key, child) in map {
            match key.as_str() {
                "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt" => {
                    self.mark(child.get("relation"), Access::Write);
                }
                "Constraint" => self.mark(child.get("pktable"), Access::Ddl),
                "ExecuteStmt" => {
                    if let Some(name) = child.get("name").and_then(Value::as_str) {
                        self.facts.executes = Some(name.to_string());
                    }
                }
                "AIndirection" => self.add_attribute_names(child.get("indirection"), 0),
                "ColumnRef" => self.add_attribute_names(child.get("fields"), 1),
                // Locked relation names may be aliases; `select_stmt` resolves them.
                "locking_clause" => continue,
                "SelectStmt" => {
                    self.select_stmt(child);
                    self.settings_filters.push(pg_settings_filter(child));
                    let result = self.visit(child, depth + 1);
                    self.settings_filters.pop();
                    result?;
                    continue;
                }
                _ => {}
            }
            self.visit(child, depth + 1)?;
        }
        Ok(())
    }

    fn mark(&mut self, value: Option<&Value>, access: Access) {
        if let Some(relation) = value.and_then(Value::as_object).and_then(|map| range_var(map, access)) {
            add_relation(self.facts, relation);
        }
    }

    fn add_function_call(&mut self, map: &Map<String, Value>) {
        let parts = string_list(map.get("funcname"));
        if parts.is_empty() {
            return;
        }
        let name = parts.join(".");
        if parts.last().map(String::as_str) == Some("set_config") {
            let filter = self.settings_filters.last().cloned().flatten();
            let args = map.get("args").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
            self.facts.settings.push(set_config_change(args, filter.as_deref()));
        }
        if !self.facts.functions.contains(&name) {
            self.facts.functions.push(name);
        }
    }

    /// Records the names in `x.name` notation, skipping the first `skip` parts.
    fn add_attribute_names(&mut self, list: Option<&Value>, skip: usize) {
        let parts = string_list(list);
        if parts.len() <= skip {
            return;
        }
        for part in &parts[skip..] {
            if !self.facts.attribute_names.contains(part) {
                self.facts.attribute_names.push(part.clone());
            }
        }
    }

    /// Records `SELECT ... INTO` as DDL and row locks as `Access::Lock`.
    fn select_stmt(&mut self, select: &Value) {
        if let Some(into) = select.get("into_clause").filter(|v| !v.is_null()) {
            self.mark(into.get("rel"), Access::Ddl);
        }

        let clauses = select.get("locking_clause").and_then(Value::as_array);
        let Some(clauses) = clauses.filter(|c| !c.is_empty()) else {
            return;
        };
        let mut from = Vec::new();
        find_range_vars(select.get("from_clause"), &mut from, 0);
        for relation in locked_relations(clauses, &from) {
            add_relation(self.facts, relation);
        }
    }
}

/// Resolves `FOR UPDATE OF name` against the FROM list. A clause without
/// names, or a name that matches no plain relation (a subquery alias), locks
/// every relation in the FROM list.
fn locked_relations(clauses: &[Value], from: &[(RelationRef, Option<String>)]) -> Vec<RelationRef> {
    let mut locked = Vec::new();
    for clause in clauses {
        let names: Vec<String> = clause
            .pointer("/node/LockingClause/locked_rels")
            .and_then(Value::as_array)
            .map(|rels| rels.iter().filter_map(|r| r.pointer("/node/RangeVar/relname")?.as_str().map(String::from)).collect())
            .unwrap_or_default();

        let matches = |(relation, alias): &(RelationRef, Option<String>), name: &String| {
            alias.as_ref() == Some(name) || (alias.is_none() && &relation.name == name)
        };
        let all = names.is_empty() || names.iter().any(|name| !from.iter().any(|entry| matches(entry, name)));
        for entry in from {
            if all || names.iter().any(|name| matches(entry, name)) {
                locked.push(RelationRef { access: Access::Lock, ..entry.0.clone() });
            }
        }
    }
    locked
}

/// Collects every relation under a FROM list with its alias.
fn find_range_vars(value: Option<&Value>, out: &mut Vec<(RelationRef, Option<String>)>, depth: usize) {
    let Some(value) = value else { return };
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Array(items) => items.iter().for_each(|item| find_range_vars(Some(item), out, depth + 1)),
        Value::Object(map) => {
            if let Some(relation) = range_var(map, Access::Lock) {
                let alias = map.get("alias").and_then(|a| a.get("aliasname")).and_then(Value::as_str).map(String::from);
                out.push((relation, alias));
                return;
            }
            map.values().for_each(|child| find_range_vars(Some(child), out, depth + 1));
        }
        _ => {}
    }
}

/// Returns the setting name of `... FROM pg_settings WHERE name = '<const>'`,
/// the form pg_dump 17 uses to call `set_config(name, ...)`.
fn pg_settings_filter(select: &Value) -> Option<String> {
    let from = select.get("from_clause")?.as_array()?;
    let [only] = from.as_slice() else { return None };
    let relation = only.pointer("/node/RangeVar")?;
    let schema = relation.get("schemaname")?.as_str()?;
    if relation.get("relname")?.as_str()? != "pg_settings" || !(schema.is_empty() || schema == "pg_catalog") {
        return None;
    }

    let condition = select.pointer("/where_clause/node/AExpr")?;
    if string_list(condition.get("name")) != ["="] || condition.get("kind")?.as_i64()? != 1 {
        return None;
    }
    let (left, right) = (condition.get("lexpr")?, condition.get("rexpr")?);
    let constant = match (is_name_column(left), is_name_column(right)) {
        (true, false) => right,
        (false, true) => left,
        _ => return None,
    };
    constant.pointer("/node/AConst/val/Sval/sval")?.as_str().map(str::to_ascii_lowercase)
}

fn is_name_column(value: &Value) -> bool {
    let fields = string_list(value.pointer("/node/ColumnRef/fields"));
    fields == ["name"] || fields == ["pg_settings", "name"]
}

/// Returns the relation of a RangeVar object (recognized by its fields).
pub(super) fn range_var(map: &Map<String, Value>, access: Access) -> Option<RelationRef> {
    if !(map.contains_key("relpersistence") && map.contains_key("inh")) {
        return None;
    }
    let name = map.get("relname")?.as_str()?.to_string();
    let schema = map.get("schemaname").and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from);
    Some(RelationRef { schema, name, access })
}

fn is_func_call(map: &Map<String, Value>) -> bool {
    map.contains_key("funcname") && map.contains_key("funcformat")
}

/// Returns the `sval` of every String node in a list.
pub(super) fn string_list(value: Option<&Value>) -> Vec<String> {
    let Some(items) = value.and_then(Value::as_array) else {
        return Vec::new();
    };
    items.iter().filter_map(|item| item.pointer("/node/String/sval")?.as_str().map(String::from)).collect()
}

/// Adds a relation reference unless the same one is already recorded. A read
/// of a relation that the statement already writes, locks or changes adds nothing.
pub(super) fn add_relation(facts: &mut StatementFacts, relation: RelationRef) {
    let known = facts.relations.iter().any(|r| {
        r.schema == relation.schema && r.name == relation.name && (r.access == relation.access || relation.access == Access::Read)
    });
    if !known {
        facts.relations.push(relation);
    }
}
