//! Validation of requests to open a window.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use crate::config::{self, Migrator};

use super::identity::is_migrator_user;
use super::state::{Phase, Window};
use super::store;
use super::{OpenWindow, WindowError, WindowView};

/// A validated request, ready to become a window.
pub(super) struct Plan {
    pub database: String,
    pub users: Vec<String>,
    pub opened_by: String,
    pub reason: String,
    pub duration: Duration,
    pub max_sessions: usize,
}

impl Plan {
    /// Builds the window. Times are cut to whole milliseconds, the precision
    /// of the state file, so a restored window lists the same times.
    pub fn into_window(self, id: String, now: SystemTime) -> Window {
        let opened_at = store::from_millis(store::to_millis(now));
        Window {
            id,
            database: self.database,
            users: self.users,
            opened_by: self.opened_by,
            reason: self.reason,
            opened_at,
            expires_at: opened_at + self.duration,
            max_sessions: self.max_sessions,
            bound: BTreeSet::new(),
            phase: Phase::Open,
        }
    }
}

/// Checks a request against the configured migrators and window limits.
///
/// TODO: approval by N distinct operators before a window opens is not
/// implemented; one authenticated request opens it.
pub(super) fn validate(
    request: &OpenWindow,
    migrators: &[Migrator],
    limits: &config::Windows,
) -> Result<Plan, WindowError> {
    let invalid = WindowError::Invalid;

    let database = request.database.trim();
    if database.is_empty() {
        return Err(invalid("database is missing".into()));
    }
    let reason = request.reason.trim();
    if reason.is_empty() {
        return Err(invalid(
            "reason is missing: say why the window is needed".into(),
        ));
    }
    let opened_by = request.opened_by.trim();
    if opened_by.is_empty() {
        return Err(invalid("opened_by is missing".into()));
    }

    let duration = parse_duration(&request.duration, limits.max_duration).map_err(invalid)?;
    let max_sessions =
        session_limit(request.sessions, limits.sessions_per_window).map_err(invalid)?;
    let users = checked_users(&request.users, database, migrators).map_err(invalid)?;

    Ok(Plan {
        database: database.to_owned(),
        users,
        opened_by: opened_by.to_owned(),
        reason: reason.to_owned(),
        duration,
        max_sessions,
    })
}

/// Message for a second window on a database that already has one open.
pub(super) fn conflict_error(existing: &WindowView) -> WindowError {
    WindowError::Conflict(format!(
        "database {} already has open window {} (expires at {}); close it first",
        existing.database, existing.id, existing.expires_at
    ))
}

fn parse_duration(text: &str, max: Duration) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|error| format!("invalid duration {text:?}: {error}; use a form such as 30m"))?;
    if duration.is_zero() {
        return Err("duration must be greater than zero".into());
    }
    if duration > max {
        return Err(format!(
            "duration {} exceeds windows.max_duration {}",
            humantime::format_duration(duration),
            humantime::format_duration(max)
        ));
    }
    Ok(duration)
}

fn session_limit(requested: Option<usize>, default: usize) -> Result<usize, String> {
    match requested {
        Some(0) => Err("sessions must be at least 1".into()),
        Some(count) => Ok(count),
        None => Ok(default.max(1)),
    }
}

/// Deduplicates the requested users and checks that each is a migrator
/// configured for `database`, so a typo does not open a window nobody can use.
fn checked_users(
    users: &[String],
    database: &str,
    migrators: &[Migrator],
) -> Result<Vec<String>, String> {
    if users.is_empty() {
        if !migrators
            .iter()
            .any(|migrator| is_migrator_user(migrators, &migrator.user, database))
        {
            return Err(format!(
                "no migrator is configured for database {database}; add one under migrators"
            ));
        }
        return Ok(Vec::new());
    }

    let mut checked: Vec<String> = Vec::new();
    for user in users {
        let user = user.trim();
        if !is_migrator_user(migrators, user, database) {
            return Err(format!(
                "user {user:?} is not a migrator configured for database {database}"
            ));
        }
        if !checked.iter().any(|seen| seen == user) {
            checked.push(user.to_owned());
        }
    }
    Ok(checked)
}
