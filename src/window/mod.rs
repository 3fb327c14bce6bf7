//! Migration windows: open, bind, expire, close, and the state file that
//! keeps them across restarts.
//!
//! A window names a database, the migrator users that may use it, an expiry
//! and a session limit. A migrator session binds to the open window at its
//! first statement that needs it; sessions beyond the limit stay ordinary
//! sessions. When a window closes or expires its sessions are unbound, and
//! with `on_expiry: terminate` they are also ended.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

mod clock;
mod expiry;
mod identity;
mod manager;
mod open;
mod state;
mod store;
#[cfg(test)]
mod tests;

pub use crate::policy::WindowAccess;
pub use clock::{Clock, SystemClock};
pub use identity::is_migrator;
pub use manager::WindowManager;

/// Identity of a client session, as window decisions use it.
#[derive(Debug, Clone)]
pub struct SessionIdentity {
    pub session_id: u64,
    pub user: String,
    pub database: String,
    pub client_addr: SocketAddr,
    /// Subject of the verified TLS client certificate, RFC 4514 form.
    pub client_cert_subject: Option<String>,
}

/// A request to open a window, as the admin API receives it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OpenWindow {
    pub database: String,
    /// Duration in humantime form, such as `30m`.
    #[serde(rename = "for")]
    pub duration: String,
    pub reason: String,
    /// Users the window admits; empty admits every migrator of the database.
    #[serde(default)]
    pub users: Vec<String>,
    /// Maximum bound sessions; `windows.sessions_per_window` when absent.
    #[serde(default)]
    pub sessions: Option<usize>,
    /// Filled by the admin API from the authenticated caller.
    #[serde(default)]
    pub opened_by: String,
}

/// A window as listed by the admin API.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct WindowView {
    pub id: String,
    pub database: String,
    pub users: Vec<String>,
    pub opened_by: String,
    pub reason: String,
    /// RFC 3339.
    pub opened_at: String,
    pub expires_at: String,
    pub max_sessions: usize,
    pub bound_sessions: Vec<u64>,
    /// `open`, `closed` or `expired`.
    pub state: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error("{0}")]
    Invalid(String),
    #[error("window {0} not found")]
    NotFound(String),
    /// The request conflicts with the current windows, such as a second
    /// window for a database that already has one open.
    #[error("{0}")]
    Conflict(String),
    #[error("window state file: {0}")]
    State(String),
}

/// Kind of a window event for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowEventKind {
    Opened,
    Bound,
    Expired,
    Closed,
    Refused,
}

impl WindowEventKind {
    /// Audit record event name, such as `window_opened`.
    pub fn audit_event(self) -> &'static str {
        match self {
            WindowEventKind::Opened => "window_opened",
            WindowEventKind::Bound => "window_bound",
            WindowEventKind::Expired => "window_expired",
            WindowEventKind::Closed => "window_closed",
            WindowEventKind::Refused => "window_refused",
        }
    }
}

/// A window event, handed to the event sink after the change took effect.
#[derive(Debug, Clone, Serialize)]
pub struct WindowEvent {
    pub kind: WindowEventKind,
    /// The window concerned; absent for a refused open request that names
    /// no existing window.
    pub window: Option<WindowView>,
    pub session_id: Option<u64>,
    pub detail: Option<String>,
}

impl WindowEvent {
    fn new(
        kind: WindowEventKind,
        window: Option<WindowView>,
        session_id: Option<u64>,
        detail: Option<String>,
    ) -> WindowEvent {
        WindowEvent {
            kind,
            window,
            session_id,
            detail,
        }
    }
}

/// Receiver of window events, such as the audit log.
pub type EventSink = Arc<dyn Fn(WindowEvent) + Send + Sync>;

/// Ends a client session by id, such as `Registry::terminate`.
pub type SessionTerminator = Arc<dyn Fn(u64) + Send + Sync>;
