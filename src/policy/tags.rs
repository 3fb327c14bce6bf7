//! Postgres command tags, sub-command names and the object-type words used
//! to build them, plus validation of the tags written in `rules.yaml`.

use pg_query::protobuf::{AlterTableType, ObjectType};

/// Pseudo-tag in `ddl.allow` that permits `EXECUTE` of non-constant strings
/// in DO blocks and function bodies.
pub const DYNAMIC_SQL: &str = "DYNAMIC SQL";

/// Command tags of PostgreSQL 18 that a client statement can produce.
const COMMAND_TAGS: &[&str] = &[
    "ALTER ACCESS METHOD", "ALTER AGGREGATE", "ALTER CAST", "ALTER COLLATION", "ALTER CONVERSION",
    "ALTER DATABASE", "ALTER DEFAULT PRIVILEGES", "ALTER DOMAIN", "ALTER EVENT TRIGGER", "ALTER EXTENSION",
    "ALTER FOREIGN DATA WRAPPER", "ALTER FOREIGN TABLE", "ALTER FUNCTION", "ALTER INDEX", "ALTER LANGUAGE",
    "ALTER LARGE OBJECT", "ALTER MATERIALIZED VIEW", "ALTER OPERATOR", "ALTER OPERATOR CLASS",
    "ALTER OPERATOR FAMILY", "ALTER POLICY", "ALTER PROCEDURE", "ALTER PUBLICATION", "ALTER ROLE",
    "ALTER ROUTINE", "ALTER RULE", "ALTER SCHEMA", "ALTER SEQUENCE", "ALTER SERVER", "ALTER STATISTICS",
    "ALTER SUBSCRIPTION", "ALTER SYSTEM", "ALTER TABLE", "ALTER TABLESPACE", "ALTER TEXT SEARCH CONFIGURATION",
    "ALTER TEXT SEARCH DICTIONARY", "ALTER TEXT SEARCH PARSER", "ALTER TEXT SEARCH TEMPLATE", "ALTER TRANSFORM",
    "ALTER TRIGGER", "ALTER TYPE", "ALTER USER MAPPING", "ALTER VIEW", "ANALYZE", "BEGIN", "CALL", "CHECKPOINT",
    "CLOSE CURSOR", "CLOSE CURSOR ALL", "CLUSTER", "COMMENT", "COMMIT", "COMMIT PREPARED", "COPY",
    "CREATE ACCESS METHOD", "CREATE AGGREGATE", "CREATE CAST", "CREATE COLLATION", "CREATE CONVERSION",
    "CREATE DATABASE", "CREATE DOMAIN", "CREATE EVENT TRIGGER", "CREATE EXTENSION", "CREATE FOREIGN DATA WRAPPER",
    "CREATE FOREIGN TABLE", "CREATE FUNCTION", "CREATE INDEX", "CREATE LANGUAGE", "CREATE MATERIALIZED VIEW",
    "CREATE OPERATOR", "CREATE OPERATOR CLASS", "CREATE OPERATOR FAMILY", "CREATE POLICY", "CREATE PROCEDURE",
    "CREATE PUBLICATION", "CREATE ROLE", "CREATE RULE", "CREATE SCHEMA", "CREATE SEQUENCE", "CREATE SERVER",
    "CREATE STATISTICS", "CREATE SUBSCRIPTION", "CREATE TABLE", "CREATE TABLE AS", "CREATE TABLESPACE",
    "CREATE TEXT SEARCH CONFIGURATION", "CREATE TEXT SEARCH DICTIONARY", "CREATE TEXT SEARCH PARSER",
    "CREATE TEXT SEARCH TEMPLATE", "CREATE TRANSFORM", "CREATE TRIGGER", "CREATE TYPE", "CREATE USER MAPPING",
    "CREATE VIEW", "DEALLOCATE", "DEALLOCATE ALL", "DECLARE CURSOR", "DELETE", "DISCARD", "DISCARD ALL",
    "DISCARD PLANS", "DISCARD SEQUENCES", "DISCARD TEMP", "DO", "DROP ACCESS METHOD", "DROP AGGREGATE",
    "DROP CAST", "DROP COLLATION", "DROP CONVERSION", "DROP DATABASE", "DROP DOMAIN", "DROP EVENT TRIGGER",
    "DROP EXTENSION", "DROP FOREIGN DATA WRAPPER", "DROP FOREIGN TABLE", "DROP FUNCTION", "DROP INDEX",
    "DROP LANGUAGE", "DROP MATERIALIZED VIEW", "DROP OPERATOR", "DROP OPERATOR CLASS", "DROP OPERATOR FAMILY",
    "DROP OWNED", "DROP POLICY", "DROP PROCEDURE", "DROP PUBLICATION", "DROP ROLE", "DROP ROUTINE", "DROP RULE",
    "DROP SCHEMA", "DROP SEQUENCE", "DROP SERVER", "DROP STATISTICS", "DROP SUBSCRIPTION", "DROP TABLE",
    "DROP TABLESPACE", "DROP TEXT SEARCH CONFIGURATION", "DROP TEXT SEARCH DICTIONARY", "DROP TEXT SEARCH PARSER",
    "DROP TEXT SEARCH TEMPLATE", "DROP TRANSFORM", "DROP TRIGGER", "DROP TYPE", "DROP USER MAPPING", "DROP VIEW",
    "EXECUTE", "EXPLAIN", "FETCH", "GRANT", "GRANT ROLE", "IMPORT FOREIGN SCHEMA", "INSERT", "LISTEN", "LOAD",
    "LOCK TABLE", "MERGE", "MOVE", "NOTIFY", "PREPARE", "PREPARE TRANSACTION", "REASSIGN OWNED",
    "REFRESH MATERIALIZED VIEW", "REINDEX", "RELEASE", "RESET", "REVOKE", "REVOKE ROLE", "ROLLBACK",
    "ROLLBACK PREPARED", "SAVEPOINT", "SECURITY LABEL", "SELECT", "SELECT INTO", "SET", "SET CONSTRAINTS", "SHOW",
    "START TRANSACTION", "TRUNCATE TABLE", "UNLISTEN", "UPDATE", "VACUUM",
];

/// Tags whose statements carry ALTER TABLE-style sub-commands.
const ALTER_RELATION_TAGS: &[&str] = &[
    "ALTER TABLE", "ALTER INDEX", "ALTER SEQUENCE", "ALTER VIEW", "ALTER MATERIALIZED VIEW", "ALTER FOREIGN TABLE",
    "ALTER TYPE",
];

/// Sub-command names, as written after the tag in `ddl.allow`.
const SUBCOMMANDS: &[&str] = &[
    "ADD COLUMN", "SET DEFAULT", "DROP DEFAULT", "DROP NOT NULL", "SET NOT NULL", "SET EXPRESSION",
    "DROP EXPRESSION", "SET STATISTICS", "SET OPTIONS", "RESET OPTIONS", "SET STORAGE", "SET COMPRESSION",
    "DROP COLUMN", "ADD CONSTRAINT", "ALTER CONSTRAINT", "VALIDATE CONSTRAINT", "DROP CONSTRAINT",
    "ALTER COLUMN TYPE", "ALTER COLUMN OPTIONS", "OWNER TO", "CLUSTER ON", "SET WITHOUT CLUSTER", "SET LOGGED",
    "SET UNLOGGED", "SET WITHOUT OIDS", "SET ACCESS METHOD", "SET TABLESPACE", "SET PARAMETERS",
    "RESET PARAMETERS", "ENABLE TRIGGER", "ENABLE ALWAYS TRIGGER", "ENABLE REPLICA TRIGGER", "DISABLE TRIGGER",
    "ENABLE RULE", "ENABLE ALWAYS RULE", "ENABLE REPLICA RULE", "DISABLE RULE", "INHERIT", "NO INHERIT", "OF",
    "NOT OF", "REPLICA IDENTITY", "ENABLE ROW LEVEL SECURITY", "DISABLE ROW LEVEL SECURITY",
    "FORCE ROW LEVEL SECURITY", "NO FORCE ROW LEVEL SECURITY", "OPTIONS", "ATTACH PARTITION",
    "DETACH PARTITION", "ADD IDENTITY", "SET IDENTITY", "DROP IDENTITY", "RENAME", "SET SCHEMA",
    "ADD VALUE", "RENAME VALUE", "ADD ATTRIBUTE", "DROP ATTRIBUTE", "ALTER ATTRIBUTE TYPE",
];

/// Returns every tag accepted in `rules.yaml`: command tags, `TAG SUB-COMMAND`
/// pairs for ALTER statements, and `DYNAMIC SQL`.
pub fn known_command_tags() -> Vec<String> {
    let mut tags: Vec<String> = COMMAND_TAGS.iter().map(|t| t.to_string()).collect();
    for tag in ALTER_RELATION_TAGS {
        tags.extend(SUBCOMMANDS.iter().map(|sub| format!("{tag} {sub}")));
    }
    tags.push(DYNAMIC_SQL.to_string());
    tags
}

/// Normalizes a tag written by an operator: trimmed, single spaces, upper case.
pub(super) fn normalize_tag(tag: &str) -> String {
    tag.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_uppercase()
}

/// Returns the known tag nearest to `tag` by edit distance, if one is close enough
/// to be a likely typo.
pub fn suggest_tag(tag: &str) -> Option<String> {
    let wanted = normalize_tag(tag);
    let limit = (wanted.len() / 3).max(2);
    known_command_tags()
        .into_iter()
        .map(|known| (edit_distance(&wanted, &known), known))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

/// Levenshtein distance over bytes (tags are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// Returns the DDL word for an object type, as in `DROP <word>` or `COMMENT ON <word>`.
pub(super) fn object_type_word(object_type: i32) -> &'static str {
    use ObjectType as O;
    match O::try_from(object_type).unwrap_or(O::Undefined) {
        O::ObjectAccessMethod => "ACCESS METHOD",
        O::ObjectAggregate => "AGGREGATE",
        O::ObjectAmop | O::ObjectAmproc | O::ObjectOpfamily => "OPERATOR FAMILY",
        O::ObjectAttribute | O::ObjectType => "TYPE",
        O::ObjectCast => "CAST",
        O::ObjectColumn | O::ObjectTable | O::ObjectTabconstraint => "TABLE",
        O::ObjectCollation => "COLLATION",
        O::ObjectConversion => "CONVERSION",
        O::ObjectDatabase => "DATABASE",
        O::ObjectDefault => "DEFAULT",
        O::ObjectDefacl => "DEFAULT PRIVILEGES",
        O::ObjectDomain | O::ObjectDomconstraint => "DOMAIN",
        O::ObjectEventTrigger => "EVENT TRIGGER",
        O::ObjectExtension => "EXTENSION",
        O::ObjectFdw => "FOREIGN DATA WRAPPER",
        O::ObjectForeignServer => "SERVER",
        O::ObjectForeignTable => "FOREIGN TABLE",
        O::ObjectFunction => "FUNCTION",
        O::ObjectIndex => "INDEX",
        O::ObjectLanguage => "LANGUAGE",
        O::ObjectLargeobject => "LARGE OBJECT",
        O::ObjectMatview => "MATERIALIZED VIEW",
        O::ObjectOpclass => "OPERATOR CLASS",
        O::ObjectOperator => "OPERATOR",
        O::ObjectParameterAcl => "PARAMETER",
        O::ObjectPolicy => "POLICY",
        O::ObjectProcedure => "PROCEDURE",
        O::ObjectPublication | O::ObjectPublicationNamespace | O::ObjectPublicationRel => "PUBLICATION",
        O::ObjectRole => "ROLE",
        O::ObjectRoutine => "ROUTINE",
        O::ObjectRule => "RULE",
        O::ObjectSchema => "SCHEMA",
        O::ObjectSequence => "SEQUENCE",
        O::ObjectSubscription => "SUBSCRIPTION",
        O::ObjectStatisticExt => "STATISTICS",
        O::ObjectTablespace => "TABLESPACE",
        O::ObjectTransform => "TRANSFORM",
        O::ObjectTrigger => "TRIGGER",
        O::ObjectTsconfiguration => "TEXT SEARCH CONFIGURATION",
        O::ObjectTsdictionary => "TEXT SEARCH DICTIONARY",
        O::ObjectTsparser => "TEXT SEARCH PARSER",
        O::ObjectTstemplate => "TEXT SEARCH TEMPLATE",
        O::ObjectUserMapping => "USER MAPPING",
        O::ObjectView => "VIEW",
        O::Undefined => "OBJECT",
    }
}

/// Returns the sub-command name of one ALTER TABLE command.
pub(super) fn alter_table_subcommand(subtype: i32, has_def: bool) -> &'static str {
    use AlterTableType as A;
    match A::try_from(subtype).unwrap_or(A::Undefined) {
        A::AtAddColumn | A::AtAddColumnToView => "ADD COLUMN",
        A::AtColumnDefault | A::AtCookedColumnDefault if has_def => "SET DEFAULT",
        A::AtColumnDefault | A::AtCookedColumnDefault => "DROP DEFAULT",
        A::AtDropNotNull => "DROP NOT NULL",
        A::AtSetNotNull => "SET NOT NULL",
        A::AtSetExpression => "SET EXPRESSION",
        A::AtDropExpression => "DROP EXPRESSION",
        A::AtSetStatistics | A::AtReAddStatistics => "SET STATISTICS",
        A::AtSetOptions => "SET OPTIONS",
        A::AtResetOptions => "RESET OPTIONS",
        A::AtSetStorage => "SET STORAGE",
        A::AtSetCompression => "SET COMPRESSION",
        A::AtDropColumn => "DROP COLUMN",
        A::AtAddIndex
        | A::AtReAddIndex
        | A::AtAddConstraint
        | A::AtReAddConstraint
        | A::AtReAddDomainConstraint
        | A::AtAddIndexConstraint
        | A::AtReAddComment => "ADD CONSTRAINT",
        A::AtAlterConstraint => "ALTER CONSTRAINT",
        A::AtValidateConstraint => "VALIDATE CONSTRAINT",
        A::AtDropConstraint => "DROP CONSTRAINT",
        A::AtAlterColumnType => "ALTER COLUMN TYPE",
        A::AtAlterColumnGenericOptions => "ALTER COLUMN OPTIONS",
        A::AtChangeOwner => "OWNER TO",
        A::AtClusterOn => "CLUSTER ON",
        A::AtDropCluster => "SET WITHOUT CLUSTER",
        A::AtSetLogged => "SET LOGGED",
        A::AtSetUnLogged => "SET UNLOGGED",
        A::AtDropOids => "SET WITHOUT OIDS",
        A::AtSetAccessMethod => "SET ACCESS METHOD",
        A::AtSetTableSpace => "SET TABLESPACE",
        A::AtSetRelOptions | A::AtReplaceRelOptions => "SET PARAMETERS",
        A::AtResetRelOptions => "RESET PARAMETERS",
        A::AtEnableTrig | A::AtEnableTrigAll | A::AtEnableTrigUser => "ENABLE TRIGGER",
        A::AtEnableAlwaysTrig => "ENABLE ALWAYS TRIGGER",
        A::AtEnableReplicaTrig => "ENABLE REPLICA TRIGGER",
        A::AtDisableTrig | A::AtDisableTrigAll | A::AtDisableTrigUser => "DISABLE TRIGGER",
        A::AtEnableRule => "ENABLE RULE",
        A::AtEnableAlwaysRule => "ENABLE ALWAYS RULE",
        A::AtEnableReplicaRule => "ENABLE REPLICA RULE",
        A::AtDisableRule => "DISABLE RULE",
        A::AtAddInherit => "INHERIT",
        A::AtDropInherit => "NO INHERIT",
        A::AtAddOf => "OF",
        A::AtDropOf => "NOT OF",
        A::AtReplicaIdentity => "REPLICA IDENTITY",
        A::AtEnableRowSecurity => "ENABLE ROW LEVEL SECURITY",
        A::AtDisableRowSecurity => "DISABLE ROW LEVEL SECURITY",
        A::AtForceRowSecurity => "FORCE ROW LEVEL SECURITY",
        A::AtNoForceRowSecurity => "NO FORCE ROW LEVEL SECURITY",
        A::AtGenericOptions => "OPTIONS",
        A::AtAttachPartition => "ATTACH PARTITION",
        A::AtDetachPartition | A::AtDetachPartitionFinalize => "DETACH PARTITION",
        A::AtAddIdentity => "ADD IDENTITY",
        A::AtSetIdentity => "SET IDENTITY",
        A::AtDropIdentity => "DROP IDENTITY",
        A::Undefined => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestion_fixes_typo() {
        assert_eq!(suggest_tag("CREATE TABEL").as_deref(), Some("CREATE TABLE"));
        assert_eq!(suggest_tag("create  indx").as_deref(), Some("CREATE INDEX"));
        assert_eq!(suggest_tag("ALTER TABLE ADD COLUM").as_deref(), Some("ALTER TABLE ADD COLUMN"));
    }

    #[test]
    fn suggestion_skips_unrelated_words() {
        assert_eq!(suggest_tag("MAKE COFFEE PLEASE NOW"), None);
    }

    #[test]
    fn known_tags_include_subcommands() {
        let tags = known_command_tags();
        assert!(tags.contains(&"ALTER TABLE SET NOT NULL".to_string()));
        assert!(tags.contains(&"DYNAMIC SQL".to_string()));
        assert!(tags.contains(&"TRUNCATE TABLE".to_string()));
    }

    #[test]
    fn tags_are_normalized() {
        assert_eq!(normalize_tag("  create   table "), "CREATE TABLE");
    }
}
