//! The listener: accepts clients, enforces the connection limit, hands
//! sessions to the worker threads, and drains them on shutdown.

pub mod app;
pub mod cancel;
pub mod registry;
pub mod tunnel;
pub mod workers;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use cancel::{CancelMap, CancelTarget};
pub use registry::{Registry, SessionInfo};
use workers::{Incoming, Workers};

use crate::metrics::RefusalReason;
use crate::session::{handle_client, Shared};

/// Accepts clients until `stop` fires and hands each to a worker. Counts
/// connections against `limits.max_connections`. The session itself rejects
/// an over-limit client, with an error the client can read.
pub async fn accept(shared: Arc<Shared>, listener: TcpListener, workers: Workers, stop: CancellationToken) {
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
        let guard = ConnectionGuard { shared: shared.clone(), worker_sessions: None };
        shared.metrics.connection_opened();
        let over_limit = count > shared.config().limits.max_connections;
        if over_limit {
            shared.metrics.connection_refused(RefusalReason::MaxConnections);
        }
        match tcp.into_std() {
            Ok(tcp) => workers.dispatch(Incoming { tcp, client_addr, over_limit, guard }),
            Err(error) => tracing::warn!(client = %client_addr, %error, "failed to hand an accepted connection to a worker"),
        }
    }
}

/// Serves the sessions a worker receives until `stop` fires, then lets them
/// finish for up to `limits.shutdown_timeout` before ending the rest.
pub async fn serve_sessions(shared: Arc<Shared>, mut incoming: UnboundedReceiver<Incoming>, stop: CancellationToken) {
    let tracker = TaskTracker::new();
    let sessions = CancellationToken::new();

    loop {
        let received = tokio::select! {
            received = incoming.recv() => received,
            _ = stop.cancelled() => break,
        };
        let Some(Incoming { tcp, client_addr, over_limit, guard }) = received else { break };
        let tcp = match TcpStream::from_std(tcp) {
            Ok(tcp) => tcp,
            Err(error) => {
                tracing::warn!(client = %client_addr, %error, "failed to register a connection with its worker");
                continue;
            }
        };
        let shared = shared.clone();
        let token = sessions.clone();
        tracker.spawn(async move {
            handle_client(shared, tcp, client_addr, over_limit, token).await;
            drop(guard);
        });
    }

    drop(incoming);
    tracker.close();
    let timeout = shared.config().limits.shutdown_timeout;
    tracing::info!(sessions = tracker.len(), timeout = ?timeout, "listener closed; draining sessions");
    if tokio::time::timeout(timeout, tracker.wait()).await.is_err() {
        tracing::warn!(sessions = tracker.len(), "shutdown timeout reached; ending remaining sessions");
        sessions.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
    }
}

/// Counts a client connection until it closes.
pub struct ConnectionGuard {
    shared: Arc<Shared>,
    /// Sessions of the worker serving the connection, once it has one.
    worker_sessions: Option<Arc<AtomicUsize>>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.shared.connections.fetch_sub(1, Ordering::SeqCst);
        self.shared.metrics.connection_closed();
        if let Some(sessions) = &self.worker_sessions {
            sessions.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Formats the current UTC time as RFC 3339 with seconds.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
