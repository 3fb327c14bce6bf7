//! Tables and JSON for the admin commands' output.

use serde::Serialize;

use super::{CliError, SessionRow};
use crate::window::WindowView;

pub(super) fn json<T: Serialize>(value: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(value).map_err(|error| CliError::Response(error.to_string()))
}

pub(super) fn window_table(windows: &[WindowView]) -> String {
    if windows.is_empty() {
        return "no windows".to_owned();
    }
    let header = [
        "ID",
        "DATABASE",
        "STATE",
        "EXPIRES AT",
        "SESSIONS",
        "USERS",
        "OPENED BY",
        "REASON",
    ];
    let rows = windows
        .iter()
        .map(|window| {
            vec![
                window.id.clone(),
                window.database.clone(),
                window.state.clone(),
                window.expires_at.clone(),
                format!("{}/{}", window.bound_sessions.len(), window.max_sessions),
                window.users.join(","),
                window.opened_by.clone(),
                window.reason.clone(),
            ]
        })
        .collect();
    table(&header, rows)
}

pub(super) fn session_table(sessions: &[SessionRow]) -> String {
    if sessions.is_empty() {
        return "no sessions".to_owned();
    }
    let header = [
        "ID",
        "USER",
        "DATABASE",
        "CLIENT",
        "APPLICATION",
        "WINDOW",
        "STARTED AT",
    ];
    let rows = sessions
        .iter()
        .map(|session| {
            vec![
                session.id.to_string(),
                session.user.clone(),
                session.database.clone(),
                session.client_addr.clone(),
                session.application_name.clone(),
                session.window_id.clone().unwrap_or_else(|| "-".to_owned()),
                session.started_at.clone(),
            ]
        })
        .collect();
    table(&header, rows)
}

/// Checks that a window id can go into a URL path unescaped.
pub(super) fn path_segment(id: &str) -> Result<&str, CliError> {
    let valid = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(id)
    } else {
        Err(CliError::Usage(format!(
            "invalid window id {id:?}: expected a form such as w-3f9a1c2b"
        )))
    }
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|title| title.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }

    let header_row: Vec<String> = header.iter().map(|title| title.to_string()).collect();
    let mut lines = Vec::with_capacity(rows.len() + 1);
    for row in std::iter::once(&header_row).chain(&rows) {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if index + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        lines.push(line.trim_end().to_owned());
    }
    lines.join("\n")
}
