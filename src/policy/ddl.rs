//! Command tags and targets of DDL statements.

use pg_query::protobuf::{AlterTableStmt, CreateForeignTableStmt, CreateStmt, GrantStmt, Node, RangeVar, RenameStmt};
use pg_query::NodeEnum;

use super::facts::{statement_facts, Builder};
use super::objects::{add_ddl_object, add_named_object, add_range_var, name_parts, strings};
use super::tags::{alter_table_subcommand, object_type_word};
use super::walk::add_relation;
use super::{Access, AnalyzeError, NestedContext, RelationRef, StatementClass as C, StatementFacts};

/// Returns whether a relation is created as a temporary one: `TEMP`, or the `pg_temp` schema.
pub(super) fn is_temporary(relation: &RangeVar) -> bool {
    relation.relpersistence == "t" || relation.schemaname == "pg_temp"
}

fn ddl(tag: impl Into<String>) -> StatementFacts {
    StatementFacts::new(tag, C::Ddl)
}

fn alter_tag(object_type: i32) -> String {
    format!("ALTER {}", object_type_word(object_type))
}

/// Builds facts for DDL statement types; `None` for a type it does not know.
pub(super) fn ddl_facts(node: &NodeEnum, builder: Builder) -> Result<Option<StatementFacts>, AnalyzeError> {
    use NodeEnum as N;
    let facts = match node {
        N::CreateStmt(s) => create_table(s),
        N::CreateForeignTableStmt(s) => create_foreign_table(s),
        N::AlterTableStmt(s) => alter_table(s),
        N::RenameStmt(s) => rename(s),
        N::ViewStmt(s) => with_relation(ddl("CREATE VIEW"), s.view.as_ref(), true),
        N::CreateTableAsStmt(s) => {
            use pg_query::protobuf::ObjectType as O;
            let tag = match O::try_from(s.objtype) {
                Ok(O::ObjectMatview) => "CREATE MATERIALIZED VIEW",
                _ if s.is_select_into => "SELECT INTO",
                _ => "CREATE TABLE AS",
            };
            with_relation(ddl(tag), s.into.as_ref().and_then(|i| i.rel.as_ref()), true)
        }
        N::IndexStmt(s) => with_relation(ddl("CREATE INDEX"), s.relation.as_ref(), false),
        N::CreateSeqStmt(s) => with_relation(ddl("CREATE SEQUENCE"), s.sequence.as_ref(), true),
        N::AlterSeqStmt(s) => with_relation(ddl("ALTER SEQUENCE"), s.sequence.as_ref(), false),
        N::CreateTrigStmt(s) => {
            let mut facts = with_relation(ddl("CREATE TRIGGER"), s.relation.as_ref(), false);
            add_range_var(&mut facts, s.constrrel.as_ref(), Access::Ddl);
            facts
        }
        N::CreatePolicyStmt(s) => with_relation(ddl("CREATE POLICY"), s.table.as_ref(), false),
        N::AlterPolicyStmt(s) => with_relation(ddl("ALTER POLICY"), s.table.as_ref(), false),
        N::RuleStmt(s) => {
            let mut facts = with_relation(ddl("CREATE RULE"), s.relation.as_ref(), false);
            facts.nested_context = NestedContext::Body;
            facts.nested = statements_in(&s.actions, builder)?;
            facts
        }
        N::RefreshMatViewStmt(s) => with_relation(ddl("REFRESH MATERIALIZED VIEW"), s.relation.as_ref(), false),
        N::ClusterStmt(s) => with_relation(ddl("CLUSTER"), s.relation.as_ref(), false),
        N::ReindexStmt(s) => with_relation(ddl("REINDEX"), s.relation.as_ref(), false),
        N::DropStmt(s) => {
            let mut facts = ddl(format!("DROP {}", object_type_word(s.remove_type)));
            s.objects.iter().for_each(|o| add_ddl_object(&mut facts, s.remove_type, o));
            facts
        }
        N::CommentStmt(s) => object_facts("COMMENT", s.objtype, s.object.as_deref()),
        N::SecLabelStmt(s) => object_facts("SECURITY LABEL", s.objtype, s.object.as_deref()),
        N::AlterOwnerStmt(s) => {
            let mut facts = relation_or_object(alter_tag(s.object_type), s.object_type, s.relation.as_ref(), s.object.as_deref());
            facts.subcommands.push("OWNER TO".to_string());
            facts
        }
        N::AlterObjectSchemaStmt(s) => {
            let mut facts = relation_or_object(alter_tag(s.object_type), s.object_type, s.relation.as_ref(), s.object.as_deref());
            facts.subcommands.push("SET SCHEMA".to_string());
            add_named_object(&mut facts, "SCHEMA", &[s.newschema.clone(), s.newschema.clone()]);
            facts
        }
        N::AlterObjectDependsStmt(s) => {
            relation_or_object(alter_tag(s.object_type), s.object_type, s.relation.as_ref(), s.object.as_deref())
        }
        N::GrantStmt(s) => grant(s),
        N::GrantRoleStmt(s) => ddl(if s.is_grant { "GRANT ROLE" } else { "REVOKE ROLE" }),
        N::AlterDefaultPrivilegesStmt(_) => ddl("ALTER DEFAULT PRIVILEGES"),
        N::CreateSchemaStmt(s) => {
            let mut facts = ddl("CREATE SCHEMA");
            if !s.schemaname.is_empty() {
                add_named_object(&mut facts, "SCHEMA", &[s.schemaname.clone(), s.schemaname.clone()]);
            }
            facts.nested = statements_in(&s.schema_elts, builder)?;
            facts
        }
        N::CreateEnumStmt(s) => named("CREATE TYPE", "TYPE", &strings(&s.type_name)),
        N::CreateRangeStmt(s) => named("CREATE TYPE", "TYPE", &strings(&s.type_name)),
        N::CompositeTypeStmt(s) => {
            let parts: Vec<String> = s.typevar.iter().flat_map(|r| [r.schemaname.clone(), r.relname.clone()]).filter(|p| !p.is_empty()).collect();
            named("CREATE TYPE", "TYPE", &parts)
        }
        N::AlterEnumStmt(s) => {
            let mut facts = named("ALTER TYPE", "TYPE", &strings(&s.type_name));
            facts.subcommands.push(if s.old_val.is_empty() { "ADD VALUE" } else { "RENAME VALUE" }.to_string());
            facts
        }
        N::AlterTypeStmt(s) => named("ALTER TYPE", "TYPE", &strings(&s.type_name)),
        N::DefineStmt(s) => named(format!("CREATE {}", object_type_word(s.kind)), object_type_word(s.kind), &strings(&s.defnames)),
        N::CreateDomainStmt(s) => named("CREATE DOMAIN", "DOMAIN", &strings(&s.domainname)),
        N::AlterDomainStmt(s) => named("ALTER DOMAIN", "DOMAIN", &strings(&s.type_name)),
        N::AlterFunctionStmt(s) => {
            let parts = s.func.as_ref().map(|f| strings(&f.objname)).unwrap_or_default();
            let word = object_type_word(s.objtype);
            named(format!("ALTER {word}"), word, &parts)
        }
        N::CreateExtensionStmt(s) => named("CREATE EXTENSION", "EXTENSION", std::slice::from_ref(&s.extname)),
        N::AlterExtensionStmt(s) => named("ALTER EXTENSION", "EXTENSION", std::slice::from_ref(&s.extname)),
        N::AlterExtensionContentsStmt(s) => named("ALTER EXTENSION", "EXTENSION", std::slice::from_ref(&s.extname)),
        N::CreateStatsStmt(s) => named("CREATE STATISTICS", "STATISTICS", &strings(&s.defnames)),
        N::AlterStatsStmt(s) => named("ALTER STATISTICS", "STATISTICS", &strings(&s.defnames)),
        N::AlterTableMoveAllStmt(s) => ddl(alter_tag(s.objtype)),
        N::CreatedbStmt(_) => ddl("CREATE DATABASE"),
        N::DropdbStmt(_) => ddl("DROP DATABASE"),
        N::AlterDatabaseStmt(_) | N::AlterDatabaseRefreshCollStmt(_) => ddl("ALTER DATABASE"),
        N::CreateRoleStmt(_) => ddl("CREATE ROLE"),
        N::AlterRoleStmt(_) => ddl("ALTER ROLE"),
        N::DropRoleStmt(_) => ddl("DROP ROLE"),
        N::DropOwnedStmt(_) => ddl("DROP OWNED"),
        N::ReassignOwnedStmt(_) => ddl("REASSIGN OWNED"),
        N::AlterSystemStmt(_) => ddl("ALTER SYSTEM"),
        N::LoadStmt(_) => ddl("LOAD"),
        N::CheckPointStmt(_) => ddl("CHECKPOINT"),
        other => match simple_tag(other) {
            Some(tag) => ddl(tag),
            None => return Ok(None),
        },
    };
    Ok(Some(facts))
}

/// Tags of DDL statements whose targets the policy does not need.
fn simple_tag(node: &NodeEnum) -> Option<&'static str> {
    use NodeEnum as N;
    Some(match node {
        N::AlterCollationStmt(_) => "ALTER COLLATION",
        N::CreateTableSpaceStmt(_) => "CREATE TABLESPACE",
        N::DropTableSpaceStmt(_) => "DROP TABLESPACE",
        N::AlterTableSpaceOptionsStmt(_) => "ALTER TABLESPACE",
        N::CreateFdwStmt(_) => "CREATE FOREIGN DATA WRAPPER",
        N::AlterFdwStmt(_) => "ALTER FOREIGN DATA WRAPPER",
        N::CreateForeignServerStmt(_) => "CREATE SERVER",
        N::AlterForeignServerStmt(_) => "ALTER SERVER",
        N::CreateUserMappingStmt(_) => "CREATE USER MAPPING",
        N::AlterUserMappingStmt(_) => "ALTER USER MAPPING",
        N::DropUserMappingStmt(_) => "DROP USER MAPPING",
        N::ImportForeignSchemaStmt(_) => "IMPORT FOREIGN SCHEMA",
        N::CreateAmStmt(_) => "CREATE ACCESS METHOD",
        N::CreateEventTrigStmt(_) => "CREATE EVENT TRIGGER",
        N::AlterEventTrigStmt(_) => "ALTER EVENT TRIGGER",
        N::CreatePlangStmt(_) => "CREATE LANGUAGE",
        N::CreateOpClassStmt(_) => "CREATE OPERATOR CLASS",
        N::CreateOpFamilyStmt(_) => "CREATE OPERATOR FAMILY",
        N::AlterOpFamilyStmt(_) => "ALTER OPERATOR FAMILY",
        N::AlterOperatorStmt(_) => "ALTER OPERATOR",
        N::AlterTsdictionaryStmt(_) => "ALTER TEXT SEARCH DICTIONARY",
        N::AlterTsconfigurationStmt(_) => "ALTER TEXT SEARCH CONFIGURATION",
        N::CreateConversionStmt(_) => "CREATE CONVERSION",
        N::CreateCastStmt(_) => "CREATE CAST",
        N::CreateTransformStmt(_) => "CREATE TRANSFORM",
        N::CreatePublicationStmt(_) => "CREATE PUBLICATION",
        N::AlterPublicationStmt(_) => "ALTER PUBLICATION",
        N::CreateSubscriptionStmt(_) => "CREATE SUBSCRIPTION",
        N::AlterSubscriptionStmt(_) => "ALTER SUBSCRIPTION",
        N::DropSubscriptionStmt(_) => "DROP SUBSCRIPTION",
        _ => return None,
    })
}

fn with_relation(mut facts: StatementFacts, relation: Option<&RangeVar>, may_be_temporary: bool) -> StatementFacts {
    add_range_var(&mut facts, relation, Access::Ddl);
    facts.temporary = may_be_temporary && relation.is_some_and(is_temporary);
    facts
}

fn named(tag: impl Into<String>, kind: &'static str, parts: &[String]) -> StatementFacts {
    let mut facts = ddl(tag);
    add_named_object(&mut facts, kind, parts);
    facts
}

fn object_facts(tag: &str, object_type: i32, object: Option<&Node>) -> StatementFacts {
    let mut facts = ddl(tag);
    if let Some(object) = object {
        add_ddl_object(&mut facts, object_type, object);
    }
    facts
}

fn relation_or_object(tag: String, object_type: i32, relation: Option<&RangeVar>, object: Option<&Node>) -> StatementFacts {
    let mut facts = object_facts(&tag, object_type, object);
    add_range_var(&mut facts, relation, Access::Ddl);
    facts
}

/// Facts of statements listed inside a statement (rule actions, schema elements).
fn statements_in(nodes: &[Node], builder: Builder) -> Result<Vec<StatementFacts>, AnalyzeError> {
    let builder = builder.deeper()?;
    nodes.iter().filter_map(|n| n.node.as_ref()).map(|n| statement_facts(n, builder)).collect()
}

/// `CREATE TABLE`; parents named in `INHERITS` or `PARTITION OF` change too.
fn create_table(create: &CreateStmt) -> StatementFacts {
    let mut facts = with_relation(ddl("CREATE TABLE"), create.relation.as_ref(), true);
    for parent in &create.inh_relations {
        if let Some(NodeEnum::RangeVar(parent)) = parent.node.as_ref() {
            add_range_var(&mut facts, Some(parent), Access::Ddl);
        }
    }
    facts
}

/// `CREATE FOREIGN TABLE`: the remote table it reaches counts as written,
/// because a foreign table is a writable path to it.
fn create_foreign_table(create: &CreateForeignTableStmt) -> StatementFacts {
    let base = create.base_stmt.as_ref();
    let mut facts = with_relation(ddl("CREATE FOREIGN TABLE"), base.and_then(|b| b.relation.as_ref()), false);

    let option = |name: &str| {
        create.options.iter().find_map(|o| match o.node.as_ref() {
            Some(NodeEnum::DefElem(d)) if d.defname == name => d.arg.as_deref().map(name_parts).and_then(|p| p.last().cloned()),
            _ => None,
        })
    };
    let local_name = base.and_then(|b| b.relation.as_ref()).map(|r| r.relname.clone());
    if let Some(name) = option("table_name").or(local_name) {
        add_relation(&mut facts, RelationRef { schema: option("schema_name"), name, access: Access::Write });
    }
    facts
}

fn alter_table(alter: &AlterTableStmt) -> StatementFacts {
    let mut facts = with_relation(ddl(alter_tag(alter.objtype)), alter.relation.as_ref(), false);
    for command in &alter.cmds {
        let Some(NodeEnum::AlterTableCmd(cmd)) = command.node.as_ref() else { continue };
        let sub = alter_table_subcommand(cmd.subtype, cmd.def.is_some()).to_string();
        if !facts.subcommands.contains(&sub) {
            facts.subcommands.push(sub);
        }
        match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
            Some(NodeEnum::RangeVar(parent)) => add_range_var(&mut facts, Some(parent), Access::Ddl),
            Some(NodeEnum::PartitionCmd(partition)) => add_range_var(&mut facts, partition.name.as_ref(), Access::Ddl),
            _ => {}
        }
    }
    facts
}

fn rename(rename: &RenameStmt) -> StatementFacts {
    use pg_query::protobuf::ObjectType as O;
    // The parser sets `relation_type` for columns only; constraints belong to tables.
    let tag = match O::try_from(rename.rename_type) {
        Ok(O::ObjectColumn) => alter_tag(rename.relation_type),
        Ok(O::ObjectTabconstraint) => "ALTER TABLE".to_string(),
        _ => alter_tag(rename.rename_type),
    };
    let mut facts = relation_or_object(tag, rename.rename_type, rename.relation.as_ref(), rename.object.as_deref());
    facts.subcommands.push("RENAME".to_string());

    // Schemas, databases, roles and tablespaces are renamed by plain name.
    if rename.relation.is_none() && rename.object.is_none() && !rename.subname.is_empty() {
        let word = object_type_word(rename.rename_type);
        let name = rename.subname.clone();
        let parts = if word == "SCHEMA" { vec![name.clone(), name] } else { vec![name] };
        add_named_object(&mut facts, word, &parts);
    }
    facts
}

/// GRANT/REVOKE on objects: tables appear as relations, other objects by name.
fn grant(grant: &GrantStmt) -> StatementFacts {
    use pg_query::protobuf::GrantTargetType;
    let mut facts = ddl(if grant.is_grant { "GRANT" } else { "REVOKE" });
    let in_schema = grant.targtype == GrantTargetType::AclTargetAllInSchema as i32;
    for object in &grant.objects {
        match object.node.as_ref() {
            Some(_) if in_schema => {
                let schema = name_parts(object);
                add_named_object(&mut facts, "SCHEMA", &[schema.concat(), schema.concat()]);
            }
            Some(NodeEnum::RangeVar(relation)) => add_range_var(&mut facts, Some(relation), Access::Ddl),
            Some(_) => add_ddl_object(&mut facts, grant.objtype, object),
            None => {}
        }
    }
    facts
}
