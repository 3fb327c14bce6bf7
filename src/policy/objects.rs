//! Names of the objects that DDL statements act on, taken from the parse
//! tree's name lists (`DROP TABLE a.b`, `COMMENT ON COLUMN t.c`, ...).

use pg_query::protobuf::{Node, ObjectType, RangeVar};
use pg_query::NodeEnum;

use super::tags::object_type_word;
use super::walk::add_relation;
use super::{Access, ObjectRef, RelationRef, StatementFacts};

/// Returns the identifiers of a name node: a list of strings, a string, a
/// type name or a function signature.
pub(super) fn name_parts(node: &Node) -> Vec<String> {
    match node.node.as_ref() {
        Some(NodeEnum::List(list)) => list.items.iter().flat_map(name_parts).collect(),
        Some(NodeEnum::String(s)) => vec![s.sval.clone()],
        Some(NodeEnum::TypeName(t)) => strings(&t.names),
        Some(NodeEnum::ObjectWithArgs(o)) => strings(&o.objname),
        _ => Vec::new(),
    }
}

/// Returns the `sval` of every String node in `nodes`.
pub(super) fn strings(nodes: &[Node]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| match n.node.as_ref() {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect()
}

/// Splits `[catalog.][schema.]name` into schema and name.
fn schema_and_name(parts: &[String]) -> Option<(Option<String>, String)> {
    let (name, qualifiers) = parts.split_last()?;
    Some((qualifiers.last().cloned(), name.clone()))
}

/// Records a relation given as a RangeVar with the given access.
pub(super) fn add_range_var(facts: &mut StatementFacts, relation: Option<&RangeVar>, access: Access) {
    if let Some(relation) = relation {
        let schema = Some(relation.schemaname.clone()).filter(|s| !s.is_empty());
        add_relation(facts, RelationRef { schema, name: relation.relname.clone(), access });
    }
}

/// Records the object named by `node`, of type `object_type`, as DDL: a
/// relation for tables and their parts, an `ObjectRef` for everything else.
pub(super) fn add_ddl_object(facts: &mut StatementFacts, object_type: i32, node: &Node) {
    use ObjectType as O;
    let parts = name_parts(node);
    let kind = O::try_from(object_type).unwrap_or(O::Undefined);

    let relation_parts = match kind {
        O::ObjectTable | O::ObjectView | O::ObjectMatview | O::ObjectIndex | O::ObjectSequence | O::ObjectForeignTable => {
            Some(&parts[..])
        }
        O::ObjectColumn | O::ObjectTabconstraint | O::ObjectTrigger | O::ObjectRule | O::ObjectPolicy => {
            parts.split_last().map(|(_, table)| table)
        }
        _ => None,
    };
    if let Some(relation_parts) = relation_parts {
        if let Some((schema, name)) = schema_and_name(relation_parts) {
            add_relation(facts, RelationRef { schema, name, access: Access::Ddl });
        }
        return;
    }

    let word = object_type_word(object_type);
    let object = match kind {
        O::ObjectSchema => parts.first().map(|s| ObjectRef { kind: word, schema: Some(s.clone()), name: s.clone() }),
        O::ObjectDomconstraint => schema_and_name(parts.split_last().map(|(_, t)| t).unwrap_or(&[]))
            .map(|(schema, name)| ObjectRef { kind: word, schema, name }),
        _ => schema_and_name(&parts).map(|(schema, name)| ObjectRef { kind: word, schema, name }),
    };
    if let Some(object) = object {
        if !facts.objects.contains(&object) {
            facts.objects.push(object);
        }
    }
}

/// Records a non-relation object given by its qualified name parts.
pub(super) fn add_named_object(facts: &mut StatementFacts, kind: &'static str, parts: &[String]) {
    if let Some((schema, name)) = schema_and_name(parts) {
        let object = ObjectRef { kind, schema, name };
        if !facts.objects.contains(&object) {
            facts.objects.push(object);
        }
    }
}
