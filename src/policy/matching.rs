//! Matching of relation and function names against `rules.yaml` entries.

use super::RelationRef;

/// Postgres truncates identifiers to this many bytes (NAMEDATALEN - 1).
const MAX_IDENTIFIER_BYTES: usize = 63;

/// A `protected_tables` entry: `name` matches in every schema, `schema.name`
/// matches that schema and unqualified references (whatever `search_path` is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ProtectedTable {
    schema: Option<String>,
    name: String,
}

impl ProtectedTable {
    pub(super) fn parse(entry: &str) -> Result<Self, String> {
        let parts: Vec<&str> = entry.split('.').collect();
        let invalid = || format!("invalid protected table \"{entry}\": expected name or schema.name");
        match parts.as_slice() {
            [name] if !name.is_empty() => Ok(ProtectedTable { schema: None, name: truncate_identifier(name) }),
            [schema, name] if !schema.is_empty() && !name.is_empty() => {
                Ok(ProtectedTable { schema: Some(truncate_identifier(schema)), name: truncate_identifier(name) })
            }
            _ => Err(invalid()),
        }
    }

    /// Compares folded names exactly: `"ALEMBIC_VERSION"` is another table.
    pub(super) fn matches(&self, relation: &RelationRef) -> bool {
        if relation.name != self.name {
            return false;
        }
        match (&self.schema, &relation.schema) {
            (Some(wanted), Some(actual)) => wanted == actual,
            _ => true,
        }
    }
}

/// Cuts a name to the identifier length the server keeps, at a character boundary.
fn truncate_identifier(name: &str) -> String {
    let mut end = name.len().min(MAX_IDENTIFIER_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// An `always_deny.functions` entry: `name` or `schema.name`, where `*`
/// matches any run of characters. A bare name matches the function in every
/// schema; a qualified one matches that schema and unqualified calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FunctionPattern {
    schema: Option<String>,
    name: String,
}

impl FunctionPattern {
    pub(super) fn parse(entry: &str) -> Result<Self, String> {
        let parts: Vec<&str> = entry.split('.').collect();
        match parts.as_slice() {
            [name] if !name.is_empty() => Ok(FunctionPattern { schema: None, name: name.to_string() }),
            [schema, name] if !schema.is_empty() && !name.is_empty() => {
                Ok(FunctionPattern { schema: Some(schema.to_string()), name: name.to_string() })
            }
            _ => Err(format!("invalid function \"{entry}\" in always_deny.functions: expected name or schema.name")),
        }
    }

    /// Matches a called name as recorded in facts (`name`, `schema.name` or `db.schema.name`).
    pub(super) fn matches_call(&self, called: &str) -> bool {
        let mut parts = called.rsplit('.');
        let name = parts.next().unwrap_or_default();
        let schema = parts.next();
        if !glob_match(&self.name, name) {
            return false;
        }
        match (&self.schema, schema) {
            (Some(wanted), Some(actual)) => glob_match(wanted, actual),
            _ => true,
        }
    }
}

/// Matches `text` against `pattern`, where `*` stands for any run of characters.
fn glob_match(pattern: &str, text: &str) -> bool {
    // Bytes match as characters do: `*` is ASCII, and a literal UTF-8
    // sequence matches only at character boundaries.
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Access;

    fn relation(schema: Option<&str>, name: &str) -> RelationRef {
        RelationRef { schema: schema.map(String::from), name: name.to_string(), access: Access::Write }
    }

    #[test]
    fn protected_bare_name_matches_every_schema() {
        let entry = ProtectedTable::parse("alembic_version").expect("valid entry");
        assert!(entry.matches(&relation(None, "alembic_version")));
        assert!(entry.matches(&relation(Some("other"), "alembic_version")));
        assert!(!entry.matches(&relation(None, "ALEMBIC_VERSION")));
        assert!(!entry.matches(&relation(None, "alembic_version ")));
    }

    #[test]
    fn protected_qualified_name_matches_schema_and_unqualified() {
        let entry = ProtectedTable::parse("migrations.schema_rev").expect("valid entry");
        assert!(entry.matches(&relation(Some("migrations"), "schema_rev")));
        assert!(entry.matches(&relation(None, "schema_rev")));
        assert!(!entry.matches(&relation(Some("public"), "schema_rev")));
    }

    #[test]
    fn protected_entry_is_truncated_like_server() {
        let long = "v".repeat(70);
        let entry = ProtectedTable::parse(&long).expect("valid entry");
        assert!(entry.matches(&relation(None, &"v".repeat(63))));
    }

    #[test]
    fn protected_entry_rejects_bad_shapes() {
        assert!(ProtectedTable::parse("a.b.c").is_err());
        assert!(ProtectedTable::parse("").is_err());
    }

    #[test]
    fn function_globs_match_any_schema() {
        let dblink = FunctionPattern::parse("dblink*").expect("valid pattern");
        assert!(dblink.matches_call("dblink_exec"));
        assert!(dblink.matches_call("public.dblink"));
        assert!(!dblink.matches_call("my_dblink"));

        let ls = FunctionPattern::parse("pg_ls_*dir").expect("valid pattern");
        assert!(ls.matches_call("pg_catalog.pg_ls_waldir"));
        assert!(!ls.matches_call("pg_ls_waldirs"));
    }

    #[test]
    fn qualified_pattern_matches_that_schema_only() {
        let pattern = FunctionPattern::parse("pg_catalog.pg_read_file").expect("valid pattern");
        assert!(pattern.matches_call("pg_read_file"));
        assert!(pattern.matches_call("pg_catalog.pg_read_file"));
        assert!(!pattern.matches_call("public.pg_read_file"));
    }
}
