//! The listener: accepts clients, enforces the connection limit, and drains
//! sessions on shutdown.

pub mod app;
pub mod cancel;
pub mod registry;
pub mod tunnel;
pub mod workers;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use cancel::{CancelMap, CancelTarget};
pub use registry::{Registry, SessionInfo};

use crate::metrics::RefusalReason;
use crate::session::{handle_client, Shared};

/// Accepts clients until `stop` fires, then lets sessions finish for up to
/// `limits.shutdown_timeout` before ending the rest. Several accept loops may
/// run at once, one per worker thread; they share the connection count.
pub async fn run(shared: Arc<Shared>, listener: TcpListener, stop: CancellationToken) {
    let tracker = TaskTracker::new();
    let sessions = CancellationToken::new();

    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.cancelled() => break,
        };
        let (tcp, client_addr) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                continue;
            }
        };
        let count = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
        let over_limit = count > shared.config().limits.max_connections;
        shared.metrics.connection_opened();
        if over_limit {
            shared.metrics.connection_refused(RefusalReason::MaxConnections);
        }
        let guard = ConnectionGuard(shared.clone());
        let shared = shared.clone();
        let token = sessions.clone();
        tracker.spawn(async move {
            handle_client(shared, tcp, client_addr, over_limit, token).await;
            drop(guard);
        });
    }

    drop(listener);
    tracker.close();
    let timeout = shared.config().limits.shutdown_timeout;
    tracing::info!(sessions = tracker.len(), timeout = ?timeout, "listener closed; draining sessions");
    if tokio::time::timeout(timeout, tracker.wait()).await.is_err() {
        tracing::warn!(sessions = tracker.len(), "shutdown timeout reached; ending remaining sessions");
        sessions.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
    }
}

struct ConnectionGuard(Arc<Shared>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
        self.0.metrics.connection_closed();
    }
}

/// Formats the current UTC time as RFC 3339 with seconds.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
