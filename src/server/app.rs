//! `schemagate serve`: builds every component from the configuration, runs
//! the listener and the admin API, and handles SIGTERM, SIGINT and SIGHUP.

use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminEvent, AdminState};
use crate::audit::{AuditLog, AuditRecord};
use crate::config::{self, Config};
use crate::metrics::Metrics;
use crate::session::Shared;
use crate::window::{WindowEvent, WindowManager};

/// Startup failure of `serve`, mapped to an exit code by the caller.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{}", .0.join("\n"))]
    Config(Vec<String>),
    #[error("{0}")]
    Io(String),
}

/// Time a readiness check waits for the upstream to accept a connection.
const READINESS_TIMEOUT: Duration = Duration::from_millis(500);

/// Runs the proxy with the configuration file at `config_path` until SIGTERM or SIGINT.
pub async fn serve(config_path: PathBuf, workers: usize) -> Result<(), StartError> {
    let config = config::load(&config_path).map_err(|e| StartError::Config(e.messages()))?;
    serve_config(config, Some(config_path), workers).await
}

/// Runs the proxy with `config` on `workers` threads (0: one per CPU); SIGHUP
/// reloads from `reload_path` when there is one.
pub async fn serve_config(config: Config, reload_path: Option<PathBuf>, workers: usize) -> Result<(), StartError> {
    let audit = AuditLog::open(&config.audit).map_err(|e| StartError::Config(vec![format!("audit.path: {e}")]))?;
    let metrics = Arc::new(Metrics::new());
    let windows = WindowManager::with_events(&config, window_event_sink(audit.clone(), metrics.clone()))
        .map_err(|e| StartError::Config(vec![format!("windows.state_file: {e}")]))?;
    let token = read_admin_token(&config)?;
    let listen_address = config.listen.address;
    let admin_address = config.admin.address;
    let shared = Shared::new(config, windows.clone(), audit.clone(), metrics.clone()).map_err(StartError::Config)?;

    let requested = workers;
    let workers = super::workers::worker_count(requested);
    // Only the default layout, one worker per CPU, pins workers to CPUs.
    let cpus = if requested == 0 { super::workers::cpus_to_pin(workers) } else { None };
    let listener = super::workers::bind_listener(listen_address)
        .map_err(|e| StartError::Io(format!("cannot listen on {listen_address} (listen.address): {e}")))?;
    let admin_listener = TcpListener::bind(admin_address)
        .await
        .map_err(|e| StartError::Io(format!("cannot listen on {admin_address} (admin.address): {e}")))?;
    tracing::info!(address = %listen_address, workers, pinned = cpus.is_some(), "schemagate listening");

    let registry = shared.registry.clone();
    windows.clone().spawn_expiry_task(Arc::new(move |session_id| {
        registry.terminate(session_id);
    }));

    let stop = CancellationToken::new();
    let state = admin_state(&shared, token);
    let admin_stop = CancellationToken::new();
    let admin_task = tokio::spawn(admin::serve(admin_listener, admin::router(state), admin_stop.clone()));
    tokio::spawn(handle_signals(shared.clone(), reload_path, stop.clone()));

    let (workers, handles) = super::workers::spawn_workers(&shared, workers, cpus, &stop)
        .map_err(|e| StartError::Io(format!("cannot start worker threads: {e}")))?;
    let acceptor = tokio::spawn(super::accept(shared.clone(), listener, workers, stop.clone()));
    let _ = tokio::task::spawn_blocking(move || {
        for handle in handles {
            let _ = handle.join();
        }
    })
    .await;
    stop.cancel();
    let _ = acceptor.await;
    admin_stop.cancel();
    let _ = admin_task.await;
    tracing::info!("schemagate stopped");
    Ok(())
}

fn read_admin_token(config: &Config) -> Result<Option<Arc<String>>, StartError> {
    let Some(path) = &config.admin.token_file else {
        tracing::warn!("admin.token_file is not set: the admin API rejects every change, so no window can be opened");
        return Ok(None);
    };
    admin::read_token_file(path)
        .map(|token| Some(Arc::new(token)))
        .map_err(|e| StartError::Config(vec![format!("admin.token_file: {e}")]))
}

fn admin_state(shared: &Arc<Shared>, token: Option<Arc<String>>) -> AdminState {
    let metrics_source = shared.clone();
    let readiness_source = shared.clone();
    let audit = shared.audit.clone();
    AdminState {
        windows: shared.windows.clone(),
        sessions: shared.registry.clone(),
        token,
        metrics: Some(Arc::new(move || render_metrics(&metrics_source))),
        ready: Arc::new(move || readiness(&readiness_source)),
        events: Some(Arc::new(move |event: AdminEvent| audit_admin_event(&audit, event))),
    }
}

fn render_metrics(shared: &Shared) -> String {
    let (hits, misses) = shared.analyzer.cache_stats();
    shared.metrics.parse_cache(hits, misses);
    let windows = shared.windows.list();
    let open: Vec<_> = windows.iter().filter(|w| w.state == "open").collect();
    shared.metrics.set_windows_open(open.len());
    shared.metrics.set_sessions_bound(open.iter().map(|w| w.bound_sessions.len()).sum());
    shared.metrics.encode()
}

/// Reports the proxy ready when the upstream accepts a TCP connection and the
/// audit log is writable. Runs when `/readyz` is requested, so an idle proxy
/// opens no connections of its own.
fn readiness(shared: &Shared) -> bool {
    let address = shared.config().upstream.address.clone();
    let reachable = address
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .is_some_and(|target| std::net::TcpStream::connect_timeout(&target, READINESS_TIMEOUT).is_ok());
    if !reachable {
        tracing::warn!(upstream = %address, "readiness check: upstream not reachable");
    }
    reachable && shared.audit.is_writable()
}

fn window_event_sink(audit: Arc<AuditLog>, metrics: Arc<Metrics>) -> crate::window::EventSink {
    Arc::new(move |event: WindowEvent| {
        let mut record = AuditRecord { event: event.kind.audit_event(), ..AuditRecord::default() };
        record.session_id = event.session_id;
        record.detail = event.detail.clone();
        if let Some(window) = &event.window {
            record.window_id = Some(window.id.clone());
            record.database = Some(window.database.clone());
            record.reason = Some(window.reason.clone());
            record.opened_by = Some(window.opened_by.clone());
        }
        tracing::info!(event = record.event, window = ?record.window_id, session = ?record.session_id, "window event");
        if let Err(error) = audit.write_durable(record) {
            metrics.audit_failure();
            tracing::error!(%error, "audit log write failed for a window event");
        }
    })
}

fn audit_admin_event(audit: &AuditLog, event: AdminEvent) {
    let record = AuditRecord {
        event: "admin_request",
        session_id: event.session_id,
        client_addr: event.client_addr.map(|a| a.to_string()),
        rule: Some(format!("{:?}", event.kind)),
        detail: Some(format!("{} {}", event.method, event.path)),
        opened_by: event.operator,
        ..AuditRecord::default()
    };
    if let Err(error) = audit.write_durable(record) {
        tracing::error!(%error, "audit log write failed for an admin request");
    }
}

async fn handle_signals(shared: Arc<Shared>, reload_path: Option<PathBuf>, stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let signals = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()));
    let (Ok(mut terminate), Ok(mut interrupt), Ok(mut hangup)) = signals else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received; draining sessions"),
            _ = interrupt.recv() => tracing::info!("SIGINT received; draining sessions"),
            _ = hangup.recv() => {
                match &reload_path {
                    Some(path) => reload(&shared, path),
                    None => tracing::warn!("SIGHUP ignored: this proxy was started without a configuration file"),
                }
                continue;
            }
        }
        stop.cancel();
        return;
    }
}

/// Applies a new configuration for new statements and connections; an invalid one is logged and ignored.
pub fn reload(shared: &Shared, config_path: &Path) {
    if let Err(error) = shared.audit.reopen() {
        tracing::error!(%error, "failed to reopen the audit log");
    }
    let config = match config::load(config_path) {
        Ok(config) => config,
        Err(error) => {
            for message in error.messages() {
                tracing::error!(%message, "configuration reload rejected; the old configuration stays");
            }
            return;
        }
    };
    let windows_config = config.clone();
    match shared.reload(config) {
        Ok(()) => {
            shared.windows.update_config(&windows_config);
            tracing::info!(path = %config_path.display(), "configuration reloaded");
        }
        Err(errors) => {
            for message in errors {
                tracing::error!(%message, "configuration reload rejected; the old configuration stays");
            }
        }
    }
}
