//! In-memory windows and session bindings, guarded by the manager's lock.

use std::collections::{BTreeSet, HashMap};
use std::time::SystemTime;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::config::Migrator;

use super::store::{self, StoredWindow};
use super::{WindowEvent, WindowEventKind, WindowView};

/// Closed and expired windows kept for listing; older ones are dropped.
const HISTORY_LIMIT: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Open,
    Closed,
    Expired,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Open => "open",
            Phase::Closed => "closed",
            Phase::Expired => "expired",
        }
    }
}

pub(super) struct Window {
    pub id: String,
    pub database: String,
    /// Users named at open time; empty admits every migrator of the database.
    pub users: Vec<String>,
    pub opened_by: String,
    pub reason: String,
    pub opened_at: SystemTime,
    pub expires_at: SystemTime,
    pub max_sessions: usize,
    pub bound: BTreeSet<u64>,
    pub phase: Phase,
}

impl Window {
    /// Open and not yet past its expiry, whether or not the expiry task ran.
    pub fn is_live(&self, now: SystemTime) -> bool {
        self.phase == Phase::Open && now < self.expires_at
    }

    pub fn admits_user(&self, user: &str) -> bool {
        self.users.is_empty() || self.users.iter().any(|name| name == user)
    }

    pub fn has_free_slot(&self) -> bool {
        self.bound.len() < self.max_sessions
    }

    pub fn view(&self, now: SystemTime, migrators: &[Migrator]) -> WindowView {
        let phase = match self.phase {
            Phase::Open if !self.is_live(now) => Phase::Expired,
            phase => phase,
        };
        WindowView {
            id: self.id.clone(),
            database: self.database.clone(),
            users: self.effective_users(migrators),
            opened_by: self.opened_by.clone(),
            reason: self.reason.clone(),
            opened_at: rfc3339(self.opened_at),
            expires_at: rfc3339(self.expires_at),
            max_sessions: self.max_sessions,
            bound_sessions: self.bound.iter().copied().collect(),
            state: phase.as_str().to_owned(),
        }
    }

    pub fn stored(&self) -> StoredWindow {
        StoredWindow {
            id: self.id.clone(),
            database: self.database.clone(),
            users: self.users.clone(),
            opened_by: self.opened_by.clone(),
            reason: self.reason.clone(),
            opened_at_ms: store::to_millis(self.opened_at),
            expires_at_ms: store::to_millis(self.expires_at),
            max_sessions: self.max_sessions,
        }
    }

    pub fn restored(stored: StoredWindow) -> Window {
        Window {
            id: stored.id,
            database: stored.database,
            users: stored.users,
            opened_by: stored.opened_by,
            reason: stored.reason,
            opened_at: store::from_millis(stored.opened_at_ms),
            expires_at: store::from_millis(stored.expires_at_ms),
            max_sessions: stored.max_sessions,
            bound: BTreeSet::new(),
            phase: Phase::Open,
        }
    }

    /// Users the window admits under the current migrator list.
    fn effective_users(&self, migrators: &[Migrator]) -> Vec<String> {
        if !self.users.is_empty() {
            return self.users.clone();
        }
        let mut users: Vec<String> = migrators
            .iter()
            .filter(|migrator| {
                migrator.databases.is_empty() || migrator.databases.contains(&self.database)
            })
            .map(|migrator| migrator.user.clone())
            .collect();
        users.sort();
        users.dedup();
        users
    }
}

/// Side effects collected under the lock and carried out after it is released.
#[derive(Default)]
pub(super) struct Effects {
    pub events: Vec<WindowEvent>,
    pub terminate: Vec<u64>,
    /// The set of open windows changed, so the state file must be rewritten.
    pub persist: bool,
    /// The earliest expiry may have changed, so the expiry task must wake.
    pub wake: bool,
}

#[derive(Default)]
pub(super) struct State {
    pub windows: Vec<Window>,
    /// Session id to the id of the window it is bound to.
    pub bindings: HashMap<u64, String>,
}

impl State {
    /// Returns the window in the open phase for `database`, even if its time ran out.
    pub fn open_for(&self, database: &str) -> Option<&Window> {
        self.windows
            .iter()
            .find(|window| window.phase == Phase::Open && window.database == database)
    }

    pub fn open_for_mut(&mut self, database: &str) -> Option<&mut Window> {
        self.windows
            .iter_mut()
            .find(|window| window.phase == Phase::Open && window.database == database)
    }

    pub fn find(&self, id: &str) -> Option<&Window> {
        self.windows.iter().find(|window| window.id == id)
    }

    pub fn position(&self, id: &str) -> Option<usize> {
        self.windows.iter().position(|window| window.id == id)
    }

    /// Removes a window that never took effect, with its bindings.
    pub fn remove(&mut self, id: &str) {
        let Some(index) = self.position(id) else {
            return;
        };
        let window = self.windows.remove(index);
        for session_id in window.bound {
            self.bindings.remove(&session_id);
        }
    }

    /// Returns an id that no window in memory uses yet.
    pub fn new_id(&self) -> String {
        loop {
            let id = format!("w-{:08x}", rand::random::<u32>());
            if self.find(&id).is_none() {
                return id;
            }
        }
    }

    /// Moves every open window whose expiry has passed to the expired phase.
    pub fn expire_due(
        &mut self,
        now: SystemTime,
        migrators: &[Migrator],
        terminate: bool,
        effects: &mut Effects,
    ) {
        let due: Vec<usize> = (0..self.windows.len())
            .filter(|&index| {
                let window = &self.windows[index];
                window.phase == Phase::Open && !window.is_live(now)
            })
            .collect();

        for index in due {
            let detail = format!("expired at {}", rfc3339(self.windows[index].expires_at));
            self.end(index, Phase::Expired, now, migrators, terminate, effects);
            if let Some(event) = effects.events.last_mut() {
                event.detail = Some(detail);
            }
        }
    }

    /// Ends the window at `index`, unbinds its sessions, records the event
    /// and returns the ended window's view.
    pub fn end(
        &mut self,
        index: usize,
        phase: Phase,
        now: SystemTime,
        migrators: &[Migrator],
        terminate: bool,
        effects: &mut Effects,
    ) -> WindowView {
        let window = &mut self.windows[index];
        window.phase = phase;
        let sessions: Vec<u64> = window.bound.iter().copied().collect();
        let view = window.view(now, migrators);

        for session_id in &sessions {
            self.bindings.remove(session_id);
        }
        if terminate {
            effects.terminate.extend(&sessions);
        }

        let kind = match phase {
            Phase::Expired => WindowEventKind::Expired,
            _ => WindowEventKind::Closed,
        };
        effects
            .events
            .push(WindowEvent::new(kind, Some(view.clone()), None, None));
        effects.persist = true;
        effects.wake = true;
        self.prune_history();
        view
    }

    /// Returns the next expiry among open windows.
    pub fn next_expiry(&self) -> Option<SystemTime> {
        self.windows
            .iter()
            .filter(|window| window.phase == Phase::Open)
            .map(|window| window.expires_at)
            .min()
    }

    pub fn stored_open(&self) -> Vec<StoredWindow> {
        self.windows
            .iter()
            .filter(|window| window.phase == Phase::Open)
            .map(Window::stored)
            .collect()
    }

    fn prune_history(&mut self) {
        let ended = self
            .windows
            .iter()
            .filter(|window| window.phase != Phase::Open)
            .count();
        let mut excess = ended.saturating_sub(HISTORY_LIMIT);
        self.windows.retain(|window| {
            if excess > 0 && window.phase != Phase::Open {
                excess -= 1;
                return false;
            }
            true
        });
    }
}

/// Formats a wall-clock time as RFC 3339 in UTC.
pub(super) fn rfc3339(time: SystemTime) -> String {
    OffsetDateTime::from(time)
        .format(&Rfc3339)
        .unwrap_or_else(|_| String::from("invalid time"))
}
