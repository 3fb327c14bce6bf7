//! Live client sessions, for the admin API and for ending sessions on demand.

use std::sync::Arc;

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// One session as the admin API lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionInfo {
    pub id: u64,
    pub client_addr: String,
    pub user: String,
    pub database: String,
    pub application_name: String,
    pub window_id: Option<String>,
    /// RFC 3339.
    pub started_at: String,
}

struct Entry {
    info: SessionInfo,
    terminate: CancellationToken,
}

/// All sessions past startup, by session id.
#[derive(Default)]
pub struct Registry {
    sessions: DashMap<u64, Entry>,
}

impl Registry {
    pub fn new() -> Arc<Self> {
        Arc::new(Registry::default())
    }

    /// Adds a session; cancelling `terminate` ends it.
    pub fn insert(&self, info: SessionInfo, terminate: CancellationToken) {
        self.sessions.insert(info.id, Entry { info, terminate });
    }

    pub fn remove(&self, id: u64) {
        self.sessions.remove(&id);
    }

    /// Records the window a session bound to.
    pub fn set_window(&self, id: u64, window_id: Option<String>) {
        if let Some(mut entry) = self.sessions.get_mut(&id) {
            entry.info.window_id = window_id;
        }
    }

    pub fn list(&self) -> Vec<SessionInfo> {
        let mut sessions: Vec<SessionInfo> =
            self.sessions.iter().map(|entry| entry.info.clone()).collect();
        sessions.sort_by_key(|info| info.id);
        sessions
    }

    /// Ends the session; returns false when no such session exists.
    pub fn terminate(&self, id: u64) -> bool {
        match self.sessions.get(&id) {
            Some(entry) => {
                entry.terminate.cancel();
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}
