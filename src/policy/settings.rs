//! Setting changes (`SET`, `RESET`, `set_config`, stored defaults) and the
//! rule that keeps parsing- and privilege-relevant settings fixed.

use serde_json::Value;

use super::walk::string_list;
use super::{SettingChange, SettingRoute};

// VariableSetKind values as pg_query's protobuf numbers them.
const VAR_SET_VALUE: i64 = 1;
const VAR_SET_DEFAULT: i64 = 2;
const VAR_SET_CURRENT: i64 = 3;
const VAR_RESET: i64 = 5;
const VAR_RESET_ALL: i64 = 6;

/// Builds the change made by a `VariableSetStmt` (given as its JSON fields).
/// `StoredDefault` is used for the statement inside `ALTER ROLE/DATABASE ... SET`.
pub(super) fn variable_set_change(stmt: &Value, stored: bool) -> SettingChange {
    let kind = stmt.get("kind").and_then(Value::as_i64).unwrap_or(0);
    let name = stmt.get("name").and_then(Value::as_str).map(str::to_ascii_lowercase);
    let is_local = stmt.get("is_local").and_then(Value::as_bool).unwrap_or(false);

    let route = match kind {
        _ if stored => SettingRoute::StoredDefault,
        VAR_SET_DEFAULT | VAR_SET_CURRENT | VAR_RESET => SettingRoute::Reset,
        VAR_RESET_ALL => SettingRoute::ResetAll,
        _ if is_local => SettingRoute::SetLocal,
        _ => SettingRoute::Set,
    };

    let mut values = Vec::new();
    let mut values_known = true;
    if kind == VAR_SET_VALUE {
        for arg in stmt.get("args").and_then(Value::as_array).into_iter().flatten() {
            match constant_text(arg) {
                Some(text) => values.push(text),
                None => values_known = false,
            }
        }
    }
    SettingChange { name, values, values_known, route }
}

/// Builds the changes made by the `SET` clauses of `CREATE FUNCTION` or
/// `ALTER FUNCTION/PROCEDURE/ROUTINE` (the statement's JSON fields).
pub(super) fn routine_set_changes(fields: &Value) -> Vec<SettingChange> {
    let mut changes = Vec::new();
    let clauses = ["options", "actions"].iter().filter_map(|key| fields.get(*key).and_then(Value::as_array));
    for clause in clauses.flatten() {
        let Some(stmt) = clause.pointer("/node/DefElem/arg/node/VariableSetStmt") else { continue };
        let mut change = variable_set_change(stmt, false);
        if matches!(change.route, SettingRoute::Set | SettingRoute::SetLocal) {
            change.route = SettingRoute::Routine;
        }
        changes.push(change);
    }
    changes
}

/// Builds the change made by a `set_config(name, value, is_local)` call.
/// `filter` is the setting name of an enclosing `FROM pg_settings WHERE name = '...'`,
/// used when the first argument is the `name` column.
pub(super) fn set_config_change(args: &[Value], filter: Option<&str>) -> SettingChange {
    let name = args.first().and_then(|arg| {
        if let Some(text) = constant_text(arg) {
            return Some(text.to_ascii_lowercase());
        }
        let column = string_list(arg.pointer("/node/ColumnRef/fields"));
        let is_name_column = column == ["name"] || column == ["pg_settings", "name"];
        filter.filter(|_| is_name_column).map(String::from)
    });
    let value = args.get(1).and_then(constant_text);

    SettingChange {
        name,
        values_known: value.is_some(),
        values: value.into_iter().collect(),
        route: SettingRoute::SetConfig,
    }
}

/// Returns the text of a constant argument: a string or number literal,
/// possibly with a type cast.
fn constant_text(node: &Value) -> Option<String> {
    let inner = node.get("node").unwrap_or(node);
    if let Some(cast) = inner.get("TypeCast") {
        return constant_text(cast.get("arg")?);
    }
    let value = inner.get("AConst")?.get("val")?;
    if let Some(text) = value.pointer("/Sval/sval").and_then(Value::as_str) {
        return Some(text.to_string());
    }
    if let Some(number) = value.pointer("/Ival/ival") {
        return Some(number.as_i64().unwrap_or(0).to_string());
    }
    if let Some(text) = value.pointer("/Fval/fval").and_then(Value::as_str) {
        return Some(text.to_string());
    }
    value.pointer("/Boolval/boolval").and_then(Value::as_bool).map(|b| b.to_string())
}

/// Checks one setting change; `Err` carries the reason it is denied.
pub(super) fn judge_setting(change: &SettingChange, search_path_schemas: &[String]) -> Result<(), String> {
    match change.route {
        SettingRoute::Reset | SettingRoute::ResetAll => return Ok(()),
        SettingRoute::StoredDefault => {
            return Err("changing stored setting defaults of a role or database is not allowed".into());
        }
        SettingRoute::Set | SettingRoute::SetLocal | SettingRoute::SetConfig | SettingRoute::Routine => {}
    }
    let Some(name) = change.name.as_deref() else {
        return Err("set_config with a setting name that is not a constant cannot be checked".into());
    };

    let watched = matches!(
        name,
        "search_path" | "client_encoding" | "standard_conforming_strings" | "backslash_quote" | "role" | "session_authorization"
    );
    if !watched {
        return Ok(());
    }
    if !change.values_known || change.values.is_empty() {
        return Err(format!("{name} is set to a value that is not a constant"));
    }

    match name {
        "search_path" => judge_search_path(change, search_path_schemas),
        "client_encoding" => judge_values(change, is_utf8, "client_encoding may only be UTF8"),
        "standard_conforming_strings" => judge_values(
            change,
            |v| parse_bool(v) == Some(true),
            "standard_conforming_strings must stay on",
        ),
        "backslash_quote" => judge_values(
            change,
            |v| v.eq_ignore_ascii_case("safe_encoding") || parse_bool(v) == Some(false),
            "backslash_quote may only be off or safe_encoding",
        ),
        "role" => judge_values(change, |v| v.eq_ignore_ascii_case("none"), "switching to another role is not allowed"),
        _ => Err("switching the session authorization is not allowed".into()),
    }
}

fn judge_values(change: &SettingChange, ok: impl Fn(&str) -> bool, reason: &str) -> Result<(), String> {
    if change.values.iter().all(|value| ok(value.trim())) {
        Ok(())
    } else {
        Err(reason.to_string())
    }
}

/// Allows only `"$user"`, `public` and `pg_temp`, plus `pg_catalog` as the first entry.
fn judge_search_path(change: &SettingChange, allowed: &[String]) -> Result<(), String> {
    let entries = if change.route == SettingRoute::SetConfig {
        split_identifier_list(&change.values[0]).ok_or("search_path value is not a valid list")?
    } else {
        // The server quotes each SET list item as one identifier.
        change.values.iter().filter(|v| !v.is_empty()).cloned().collect()
    };

    for (index, entry) in entries.iter().enumerate() {
        let safe = allowed.iter().any(|schema| schema == entry) || (index == 0 && entry == "pg_catalog");
        if !safe {
            return Err(format!(
                "search_path may only contain the schemas in search_path_schemas ({}), with pg_catalog only first (found {entry:?})",
                allowed.join(", ")
            ));
        }
    }
    Ok(())
}

/// Splits a list of identifiers as the server splits a `search_path` string:
/// comma-separated, whitespace around items ignored, unquoted items lower-cased,
/// `"..."` kept as written with `""` for a quote. `None` when the list is invalid.
pub fn split_identifier_list(text: &str) -> Option<Vec<String>> {
    let mut items = Vec::new();
    let mut chars = text.chars().peekable();
    skip_spaces(&mut chars);
    if chars.peek().is_none() {
        return Some(items);
    }

    loop {
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        item.push('"');
                    }
                    '"' => break,
                    c => item.push(c),
                }
            }
            if item.is_empty() {
                return None;
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() || c == '"' {
                    break;
                }
                item.extend(c.to_lowercase());
                chars.next();
            }
            if item.is_empty() {
                return None;
            }
        }
        items.push(item);

        skip_spaces(&mut chars);
        match chars.next() {
            None => return Some(items),
            Some(',') => skip_spaces(&mut chars),
            Some(_) => return None,
        }
    }
}

fn skip_spaces(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
}

/// Encoding names as the server compares them: letters and digits only, case-folded.
fn is_utf8(value: &str) -> bool {
    let cleaned: String = value.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect();
    cleaned == "utf8" || cleaned == "unicode"
}

/// Parses a boolean the way the server's `parse_bool` does (unambiguous prefixes).
fn parse_bool(value: &str) -> Option<bool> {
    let lower = value.to_ascii_lowercase();
    let prefix_of = |word: &str, min: usize| lower.len() >= min && word.starts_with(lower.as_str());
    if prefix_of("true", 1) || prefix_of("yes", 1) || lower == "on" || lower == "1" {
        Some(true)
    } else if prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || lower == "0" {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_list_folds_and_unquotes() {
        assert_eq!(split_identifier_list("Evil, public"), Some(vec!["evil".to_string(), "public".to_string()]));
        assert_eq!(split_identifier_list(r#""$user", "A""b""#), Some(vec!["$user".to_string(), "A\"b".to_string()]));
        assert_eq!(split_identifier_list("  "), Some(vec![]));
        assert_eq!(split_identifier_list("a,,b"), None);
        assert_eq!(split_identifier_list("a b"), None);
        assert_eq!(split_identifier_list("\"unterminated"), None);
    }

    #[test]
    fn bool_parsing_matches_server() {
        assert_eq!(parse_bool("on"), Some(true));
        assert_eq!(parse_bool("of"), Some(false));
        assert_eq!(parse_bool("o"), None);
        assert_eq!(parse_bool("TRU"), Some(true));
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn encoding_names_are_cleaned() {
        assert!(is_utf8("UTF-8"));
        assert!(is_utf8("Unicode"));
        assert!(!is_utf8("SJIS"));
    }
}
