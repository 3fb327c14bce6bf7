//! Schema objects that let later writes to one table change another. Rows
//! written to a child table or partition appear in scans of its parent. A
//! foreign key with a CASCADE, SET NULL or SET DEFAULT action writes the
//! referencing table when the referenced one changes.

use pg_query::protobuf::{AlterTableType, ConstrType, Node, RangeVar};
use pg_query::NodeEnum;

use super::{Access, RelationRef};

/// Foreign key actions that write the referencing row: cascade, set null, set default.
const WRITING_ACTIONS: &[&str] = &["c", "n", "d"];

/// Returns the tables that `node` opens to writes through other tables.
pub(super) fn write_paths(node: &NodeEnum) -> Vec<RelationRef> {
    match node {
        NodeEnum::CreateStmt(create) => {
            let mut paths: Vec<RelationRef> = create.inh_relations.iter().filter_map(range_var).map(relation).collect();
            let column_constraints = create.table_elts.iter().flat_map(|element| match element.node.as_ref() {
                Some(NodeEnum::ColumnDef(column)) => column.constraints.iter().collect::<Vec<_>>(),
                _ => Vec::new(),
            });
            let mut constraints = create.table_elts.iter().chain(create.constraints.iter()).chain(column_constraints);
            if let (Some(table), true) = (&create.relation, constraints.any(is_writing_foreign_key)) {
                paths.push(relation(table));
            }
            paths
        }
        NodeEnum::AlterTableStmt(alter) => alter_table_paths(alter.relation.as_ref(), &alter.cmds),
        _ => Vec::new(),
    }
}

fn alter_table_paths(table: Option<&RangeVar>, commands: &[Node]) -> Vec<RelationRef> {
    let mut paths = Vec::new();
    for command in commands {
        let Some(NodeEnum::AlterTableCmd(command)) = command.node.as_ref() else { continue };
        let definition = command.def.as_deref();
        match AlterTableType::try_from(command.subtype).unwrap_or(AlterTableType::Undefined) {
            AlterTableType::AtAddInherit => paths.extend(definition.and_then(range_var).map(relation)),
            AlterTableType::AtAttachPartition => paths.extend(table.map(relation)),
            AlterTableType::AtAddConstraint if definition.is_some_and(is_writing_foreign_key) => {
                paths.extend(table.map(relation))
            }
            _ => {}
        }
    }
    paths
}

fn is_writing_foreign_key(node: &Node) -> bool {
    let Some(NodeEnum::Constraint(constraint)) = node.node.as_ref() else { return false };
    constraint.contype == ConstrType::ConstrForeign as i32
        && (WRITING_ACTIONS.contains(&constraint.fk_upd_action.as_str())
            || WRITING_ACTIONS.contains(&constraint.fk_del_action.as_str()))
}

fn range_var(node: &Node) -> Option<&RangeVar> {
    match node.node.as_ref() {
        Some(NodeEnum::RangeVar(range_var)) => Some(range_var),
        _ => None,
    }
}

fn relation(range_var: &RangeVar) -> RelationRef {
    RelationRef {
        schema: Some(range_var.schemaname.clone()).filter(|s| !s.is_empty()),
        name: range_var.relname.clone(),
        access: Access::Ddl,
    }
}
