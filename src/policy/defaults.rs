//! Safe defaults for `always_deny`.

/// Command tags denied to every session.
pub const ALWAYS_DENY_STATEMENTS: &[&str] = &[];

/// Functions denied to every session.
pub const ALWAYS_DENY_FUNCTIONS: &[&str] = &[];
