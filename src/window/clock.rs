//! Wall-clock source for window expiry, replaceable in tests.

use std::time::SystemTime;

/// Source of the current wall-clock time.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

/// The operating system's wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}
