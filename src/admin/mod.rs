//! Admin HTTP API: windows, sessions, health and metrics.
//!
//! JSON over HTTP/1 on its own listener. Every route except `/healthz` and
//! `/readyz` needs `Authorization: Bearer <token>` when a token is
//! configured. Without a token, reads stay open and changes are rejected.

use std::future::IntoFuture;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get};
use axum::{middleware, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::server::Registry;
use crate::window::WindowManager;

mod auth;
mod error;
mod handlers;
#[cfg(test)]
mod tests;

pub use error::ApiError;

/// Largest accepted request body; window requests are a few hundred bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Time a request may take, body upload included, before it gets 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Time open admin connections get to finish after shutdown starts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Produces the Prometheus text exposition of the proxy's metrics.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// Everything the admin handlers use.
#[derive(Clone)]
pub struct AdminState {
    pub windows: Arc<WindowManager>,
    pub sessions: Arc<Registry>,
    /// Bearer token; `None` rejects every request that changes state.
    pub token: Option<Arc<String>>,
    pub metrics: Option<MetricsRenderer>,
    /// Returns true when the proxy accepts client connections.
    pub ready: Arc<dyn Fn() -> bool + Send + Sync>,
    /// Receives admin actions and rejected requests, such as for the audit log.
    pub events: Option<Arc<dyn Fn(AdminEvent) + Send + Sync>>,
}

/// Kind of an admin event for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminEventKind {
    /// Missing or wrong bearer token (HTTP 401).
    Unauthorized,
    /// A change requested while no token is configured (HTTP 403).
    Forbidden,
    /// A session ended through `DELETE /v1/sessions/{id}`.
    SessionTerminated,
}

/// An admin request worth auditing. Window changes are reported by the
/// window manager's own event sink instead.
#[derive(Debug, Clone)]
pub struct AdminEvent {
    pub kind: AdminEventKind,
    pub method: String,
    pub path: String,
    pub client_addr: Option<SocketAddr>,
    pub operator: Option<String>,
    pub session_id: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("failed to read admin token file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("admin token file {path} is empty; write a random token into it")]
    Empty { path: PathBuf },
}

/// Builds the admin router.
pub fn router(state: AdminState) -> Router {
    let authenticated = Router::new()
        .route(
            "/v1/windows",
            get(handlers::list_windows).post(handlers::open_window),
        )
        .route("/v1/windows/{id}", delete(handlers::close_window))
        .route("/v1/sessions", get(handlers::list_sessions))
        .route("/v1/sessions/{id}", delete(handlers::terminate_session))
        .route("/metrics", get(handlers::metrics))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));

    Router::new()
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .merge(authenticated)
        .fallback(handlers::not_found)
        .layer(middleware::from_fn(handlers::limit_time))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then gives
/// open connections a short grace period.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(%address, "admin API listening");

    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let graceful = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .into_future();

    // NOTE: there is no header read timeout, so a client that never finishes
    // its request headers keeps a connection open until shutdown.
    tokio::select! {
        result = graceful => result,
        () = grace_expired(&shutdown) => {
            tracing::warn!(%address, "admin connections still open after the shutdown grace period; closing them");
            Ok(())
        }
    }
}

/// Reads the bearer token from `path`, without surrounding whitespace.
pub fn read_token_file(path: &Path) -> Result<String, TokenFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenFileError::Empty {
            path: path.to_path_buf(),
        });
    }
    warn_if_shared(path);
    Ok(token.to_owned())
}

async fn grace_expired(shutdown: &CancellationToken) {
    shutdown.cancelled().await;
    tokio::time::sleep(SHUTDOWN_GRACE).await;
}

#[cfg(unix)]
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;

    if let Ok(metadata) = std::fs::metadata(path) {
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "admin token file is readable by group or others; run chmod 600 on it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path) {}
