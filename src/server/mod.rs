//! The listener: accepts clients, enforces connection limits, routes cancel
//! requests, and drains on shutdown.

pub mod registry;

pub use registry::{Registry, SessionInfo};
