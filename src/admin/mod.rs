//! Admin HTTP API: windows, sessions, health and metrics.
