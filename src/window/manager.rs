//! The window manager: the lock-protected window state and its operations.

use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::config::{self, Config, Migrator, OnExpiry};
use crate::policy::WindowAccess;

use super::state::{Effects, Phase, State, Window};
use super::{
    identity, open, store, Clock, EventSink, OpenWindow, SessionIdentity, SessionTerminator,
    SystemClock, WindowError, WindowEvent, WindowEventKind, WindowView,
};

/// The parts of the configuration the manager uses; replaced on reload.
pub(super) struct Settings {
    pub migrators: Vec<Migrator>,
    pub windows: config::Windows,
}

impl Settings {
    fn from_config(config: &Config) -> Settings {
        Settings {
            migrators: config.migrators.clone(),
            windows: config.windows.clone(),
        }
    }

    pub fn terminates_sessions(&self) -> bool {
        self.windows.on_expiry == OnExpiry::Terminate
    }
}

/// Open windows and the sessions bound to them.
///
/// Lock order: `persist_lock`, then `settings`, then `state`.
pub struct WindowManager {
    pub(super) settings: RwLock<Settings>,
    pub(super) state: Mutex<State>,
    pub(super) clock: Arc<dyn Clock>,
    events: EventSink,
    terminator: Mutex<Option<SessionTerminator>>,
    /// Wakes the expiry task when the earliest expiry may have changed.
    pub(super) wake: Arc<Notify>,
    persist_lock: Mutex<()>,
}

impl WindowManager {
    /// Creates the manager and restores unexpired windows from the state file.
    pub fn new(config: &Config) -> Result<Arc<Self>, WindowError> {
        Self::with_parts(config, Arc::new(|_| {}), Arc::new(SystemClock))
    }

    /// Like [`WindowManager::new`], sending every window event to `events`.
    pub fn with_events(config: &Config, events: EventSink) -> Result<Arc<Self>, WindowError> {
        Self::with_parts(config, events, Arc::new(SystemClock))
    }

    /// Like [`WindowManager::with_events`], reading time from `clock`.
    pub fn with_parts(
        config: &Config,
        events: EventSink,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, WindowError> {
        let settings = Settings::from_config(config);
        let state = restore_state(&settings, clock.now())?;

        Ok(Arc::new(WindowManager {
            settings: RwLock::new(settings),
            state: Mutex::new(state),
            clock,
            events,
            terminator: Mutex::new(None),
            wake: Arc::new(Notify::new()),
            persist_lock: Mutex::new(()),
        }))
    }

    /// Returns what `who` may do with windows right now.
    ///
    /// Checks expiry against the clock, so a window past its expiry is never
    /// honoured even before the expiry task has marked it.
    pub fn access(&self, who: &SessionIdentity) -> WindowAccess {
        let now = self.clock.now();
        let settings = self.settings.read();
        let state = self.state.lock();

        if !identity::matches_any(&settings.migrators, who) {
            return WindowAccess::None;
        }

        if let Some(window_id) = state.bindings.get(&who.session_id) {
            return match state.find(window_id) {
                Some(window) if window.is_live(now) => WindowAccess::Bound,
                _ => WindowAccess::None,
            };
        }

        match state.open_for(&who.database) {
            Some(window)
                if window.is_live(now)
                    && window.admits_user(&who.user)
                    && window.has_free_slot() =>
            {
                WindowAccess::Available
            }
            _ => WindowAccess::None,
        }
    }

    /// Binds `who` to the open window for its database and returns the window
    /// id; `None` when `who` is not admitted or no slot is free. Binding a
    /// session that is already bound returns its window id again.
    pub fn bind(&self, who: &SessionIdentity) -> Option<String> {
        self.transact(|state, settings, now, effects| {
            bind_locked(state, &settings.migrators, who, now, effects)
        })
    }

    /// Unbinds a session when it ends.
    ///
    /// The window keeps counting the session: `sessions_per_window` bounds the
    /// sessions that ever bind, so a slot is not handed to another session
    /// (such as one with stolen credentials) after the migration disconnects.
    pub fn release(&self, session_id: u64) {
        self.state.lock().bindings.remove(&session_id);
    }

    /// Window id the session is bound to, if any.
    pub fn bound_window(&self, session_id: u64) -> Option<String> {
        self.state.lock().bindings.get(&session_id).cloned()
    }

    /// Opens a window; at most one window per database may be open.
    ///
    /// The state file is written before the window takes effect, so a window
    /// that could not be stored is never honoured.
    pub fn open(&self, request: OpenWindow) -> Result<WindowView, WindowError> {
        let (result, effects) = {
            let _serialized = self.persist_lock.lock();
            self.locked(|state, settings, now, effects| {
                let view = open_locked(state, settings, &request, now, effects)?;
                store_opened(state, settings, view, effects)
            })
        };

        self.apply(effects);
        result
    }

    /// Closes an open window, unbinding its sessions and, with
    /// `on_expiry: terminate`, ending them.
    pub fn close(&self, id: &str) -> Result<WindowView, WindowError> {
        self.transact(|state, settings, now, effects| {
            let terminate = settings.terminates_sessions();
            close_locked(state, &settings.migrators, id, now, terminate, effects)
        })
    }

    /// Lists open windows and recently ended ones, oldest first.
    pub fn list(&self) -> Vec<WindowView> {
        self.transact(|state, settings, now, _effects| {
            let views = state.windows.iter();
            views
                .map(|window| window.view(now, &settings.migrators))
                .collect()
        })
    }

    /// Applies a reloaded configuration: migrators and limits change, open
    /// windows stay. Limits apply to windows opened from now on.
    pub fn update_config(&self, config: &Config) {
        let new_settings = Settings::from_config(config);
        let path_changed = {
            let mut settings = self.settings.write();
            let changed = settings.windows.state_file != new_settings.windows.state_file;
            *settings = new_settings;
            changed
        };

        if path_changed {
            if let Err(error) = self.persist() {
                tracing::error!(%error, "failed to write open windows to the new state file");
            }
        }
        self.wake.notify_one();
    }

    /// Sets the function that ends sessions when their window closes or
    /// expires under `on_expiry: terminate`.
    pub fn set_session_terminator(&self, terminator: SessionTerminator) {
        *self.terminator.lock() = Some(terminator);
    }

    /// Expires due windows and runs `action` under the lock, then carries out
    /// the effects both collected.
    pub(super) fn transact<R>(
        &self,
        action: impl FnOnce(&mut State, &Settings, SystemTime, &mut Effects) -> R,
    ) -> R {
        let (result, effects) = self.locked(action);
        self.apply(effects);
        result
    }

    /// Expires due windows and runs `action` under the lock, returning the
    /// effects for the caller to apply once it holds no lock.
    fn locked<R>(
        &self,
        action: impl FnOnce(&mut State, &Settings, SystemTime, &mut Effects) -> R,
    ) -> (R, Effects) {
        let now = self.clock.now();
        let mut effects = Effects::default();

        let settings = self.settings.read();
        let mut state = self.state.lock();
        let terminate = settings.terminates_sessions();
        state.expire_due(now, &settings.migrators, terminate, &mut effects);
        let result = action(&mut state, &settings, now, &mut effects);
        (result, effects)
    }

    /// Writes the open windows to the state file, if one is configured.
    fn persist(&self) -> Result<(), WindowError> {
        let _serialized = self.persist_lock.lock();
        let Some(path) = self.settings.read().windows.state_file.clone() else {
            return Ok(());
        };
        let windows = self.state.lock().stored_open();
        store::save(&path, windows)
    }

    /// Carries out effects collected under the lock: state file, events,
    /// session termination, expiry task wake-up.
    fn apply(&self, effects: Effects) {
        if effects.persist {
            if let Err(error) = self.persist() {
                // NOTE: an ended window stays in the old state file until the
                // next successful write, so a restart before then restores it
                // until its own expiry.
                tracing::error!(%error, "failed to write the window state file");
            }
        }

        for event in effects.events {
            log_event(&event);
            (self.events)(event);
        }

        self.terminate_sessions(&effects.terminate);
        if effects.wake {
            self.wake.notify_one();
        }
    }

    fn terminate_sessions(&self, sessions: &[u64]) {
        if sessions.is_empty() {
            return;
        }
        let Some(terminator) = self.terminator.lock().clone() else {
            tracing::warn!(
                ?sessions,
                "no session terminator set; bound sessions stay connected"
            );
            return;
        };
        for &session_id in sessions {
            tracing::info!(session_id, "ending session of an ended migration window");
            terminator(session_id);
        }
    }
}

fn open_locked(
    state: &mut State,
    settings: &Settings,
    request: &OpenWindow,
    now: SystemTime,
    effects: &mut Effects,
) -> Result<WindowView, WindowError> {
    let plan = match open::validate(request, &settings.migrators, &settings.windows) {
        Ok(plan) => plan,
        Err(error) => return Err(refuse_open(error, None, effects)),
    };
    if let Some(existing) = state.open_for(&plan.database) {
        let view = existing.view(now, &settings.migrators);
        let error = open::conflict_error(&view);
        return Err(refuse_open(error, Some(view), effects));
    }

    let window = plan.into_window(state.new_id(), now);
    let view = window.view(now, &settings.migrators);
    state.windows.push(window);
    Ok(view)
}

/// Writes the state file with the new window and records the event; on a
/// write failure removes the window again. The caller must hold `persist_lock`.
fn store_opened(
    state: &mut State,
    settings: &Settings,
    view: WindowView,
    effects: &mut Effects,
) -> Result<WindowView, WindowError> {
    if let Some(path) = &settings.windows.state_file {
        if let Err(error) = store::save(path, state.stored_open()) {
            state.remove(&view.id);
            return Err(refuse_open(error, Some(view), effects));
        }
        // The write above already contains every expiry made under this lock.
        effects.persist = false;
    }

    let opened = WindowEvent::new(WindowEventKind::Opened, Some(view.clone()), None, None);
    effects.events.push(opened);
    effects.wake = true;
    Ok(view)
}

/// Records a refused open request and returns its error.
fn refuse_open(
    error: WindowError,
    window: Option<WindowView>,
    effects: &mut Effects,
) -> WindowError {
    let detail = Some(error.to_string());
    effects.events.push(WindowEvent::new(
        WindowEventKind::Refused,
        window,
        None,
        detail,
    ));
    error
}

fn bind_locked(
    state: &mut State,
    migrators: &[Migrator],
    who: &SessionIdentity,
    now: SystemTime,
    effects: &mut Effects,
) -> Option<String> {
    if !identity::matches_any(migrators, who) {
        return None;
    }
    if let Some(window_id) = state.bindings.get(&who.session_id) {
        return Some(window_id.clone());
    }

    let window = state
        .open_for_mut(&who.database)
        .filter(|window| window.is_live(now))?;
    let refusal = if !window.admits_user(&who.user) {
        Some(format!(
            "window {} does not admit user {}",
            window.id, who.user
        ))
    } else if !window.has_free_slot() {
        Some(format!(
            "window {} has no free session slot ({} bound)",
            window.id,
            window.bound.len()
        ))
    } else {
        None
    };

    if let Some(detail) = refusal {
        let view = window.view(now, migrators);
        let event = WindowEvent::new(
            WindowEventKind::Refused,
            Some(view),
            Some(who.session_id),
            Some(detail),
        );
        effects.events.push(event);
        return None;
    }

    window.bound.insert(who.session_id);
    let window_id = window.id.clone();
    let view = window.view(now, migrators);
    state.bindings.insert(who.session_id, window_id.clone());
    effects.events.push(WindowEvent::new(
        WindowEventKind::Bound,
        Some(view),
        Some(who.session_id),
        None,
    ));
    Some(window_id)
}

fn close_locked(
    state: &mut State,
    migrators: &[Migrator],
    id: &str,
    now: SystemTime,
    terminate: bool,
    effects: &mut Effects,
) -> Result<WindowView, WindowError> {
    let index = state
        .position(id)
        .ok_or_else(|| WindowError::NotFound(id.to_owned()))?;

    let window = &state.windows[index];
    if window.phase != Phase::Open {
        let view = window.view(now, migrators);
        return Err(WindowError::Conflict(format!(
            "window {id} is already {}",
            view.state
        )));
    }

    Ok(state.end(index, Phase::Closed, now, migrators, terminate, effects))
}

fn restore_state(settings: &Settings, now: SystemTime) -> Result<State, WindowError> {
    let mut state = State::default();
    let Some(path) = &settings.windows.state_file else {
        return Ok(state);
    };

    for stored in store::load(path)? {
        let window = Window::restored(stored);
        if !window.is_live(now) {
            continue;
        }
        if let Some(existing) = state.open_for(&window.database) {
            return Err(WindowError::State(format!(
                "{} contains two open windows for database {}: {} and {}; remove one",
                path.display(),
                window.database,
                existing.id,
                window.id
            )));
        }
        if state.find(&window.id).is_some() {
            return Err(WindowError::State(format!(
                "{} contains window id {} twice; remove one",
                path.display(),
                window.id
            )));
        }
        tracing::info!(window_id = %window.id, database = %window.database, "restored migration window");
        state.windows.push(window);
    }
    Ok(state)
}

fn log_event(event: &WindowEvent) {
    let window_id = event
        .window
        .as_ref()
        .map(|window| window.id.as_str())
        .unwrap_or("");
    tracing::info!(
        kind = event.kind.audit_event(),
        window_id,
        session_id = event.session_id,
        detail = event.detail.as_deref(),
        "migration window event"
    );
}
