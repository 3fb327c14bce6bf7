//! The background task that expires windows at their deadline.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;

use super::{SessionTerminator, WindowManager};

/// Maximum single sleep, so that a wall-clock change is noticed within this
/// time even when no window changes in between.
const MAX_SLEEP: Duration = Duration::from_secs(30);

impl WindowManager {
    /// Starts the task that marks windows expired at their deadline and, with
    /// `on_expiry: terminate`, ends their bound sessions through
    /// `on_terminate`. The task sleeps until the next expiry or until a window
    /// changes, and stops once the manager is dropped.
    pub fn spawn_expiry_task(self: Arc<Self>, on_terminate: SessionTerminator) -> JoinHandle<()> {
        self.set_session_terminator(on_terminate);
        let wake = Arc::clone(&self.wake);
        let manager = Arc::downgrade(&self);
        drop(self);

        tokio::spawn(async move {
            loop {
                let Some(strong) = manager.upgrade() else {
                    return;
                };
                let next = strong.expire_now();
                let now = strong.clock.now();
                drop(strong);

                match next {
                    Some(deadline) => {
                        let wait = deadline.duration_since(now).unwrap_or(Duration::ZERO);
                        tokio::select! {
                            () = tokio::time::sleep(wait.min(MAX_SLEEP)) => {}
                            () = wake.notified() => {}
                        }
                    }
                    None => wake.notified().await,
                }
            }
        })
    }

    /// Expires every window past its deadline and returns the next deadline.
    pub(super) fn expire_now(&self) -> Option<SystemTime> {
        self.transact(|state, _settings, _now, effects| {
            // The task computes its own next deadline, so it needs no wake-up.
            effects.wake = false;
            state.next_expiry()
        })
    }
}
