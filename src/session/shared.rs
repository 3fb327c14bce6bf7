//! State shared by every session: configuration, policy, windows, cancel keys.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::audit::AuditLog;
use crate::config::{Config, ListenTlsMode, UpstreamTlsMode};
use crate::metrics::Metrics;
use crate::policy::{Analyzer, Policy};
use crate::server::{CancelMap, Registry};
use crate::window::WindowManager;

pub struct Shared {
    config: RwLock<Arc<Config>>,
    policy: RwLock<Arc<Policy>>,
    tls: RwLock<TlsState>,
    pub analyzer: Analyzer,
    pub windows: Arc<WindowManager>,
    pub registry: Arc<Registry>,
    pub cancels: CancelMap,
    pub audit: Arc<AuditLog>,
    pub metrics: Arc<Metrics>,
    /// Client connections open now, across every accept loop.
    pub connections: AtomicUsize,
    next_session_id: AtomicU64,
    /// Incremented on every reload, so sessions can tell a cached decision is stale.
    policy_generation: AtomicU64,
}

#[derive(Clone, Default)]
struct TlsState {
    acceptor: Option<TlsAcceptor>,
    connector: Option<TlsConnector>,
}

impl Shared {
    /// Builds the shared state; every error names the configuration key at fault.
    pub fn new(
        config: Config,
        windows: Arc<WindowManager>,
        audit: Arc<AuditLog>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, Vec<String>> {
        let policy = Policy::new(&config)?;
        let tls = build_tls(&config)?;
        Ok(Arc::new(Shared {
            analyzer: Analyzer::new(config.limits.parse_cache_entries),
            config: RwLock::new(Arc::new(config)),
            policy: RwLock::new(Arc::new(policy)),
            tls: RwLock::new(tls),
            windows,
            registry: Registry::new(),
            cancels: CancelMap::default(),
            audit,
            metrics,
            connections: AtomicUsize::new(0),
            next_session_id: AtomicU64::new(1),
            policy_generation: AtomicU64::new(0),
        }))
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.read().clone()
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy.read().clone()
    }

    pub fn tls_acceptor(&self) -> Option<TlsAcceptor> {
        self.tls.read().acceptor.clone()
    }

    pub fn upstream_tls(&self) -> Option<TlsConnector> {
        self.tls.read().connector.clone()
    }

    pub fn policy_generation(&self) -> u64 {
        self.policy_generation.load(Ordering::Acquire)
    }

    pub fn next_session_id(&self) -> u64 {
        self.next_session_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Swaps in a new configuration for new statements and connections; the old one stays on error.
    pub fn reload(&self, config: Config) -> Result<(), Vec<String>> {
        let policy = Policy::new(&config)?;
        let tls = build_tls(&config)?;
        *self.policy.write() = Arc::new(policy);
        *self.tls.write() = tls;
        *self.config.write() = Arc::new(config);
        self.policy_generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

fn build_tls(config: &Config) -> Result<TlsState, Vec<String>> {
    let mut state = TlsState::default();
    if config.listen.tls.mode != ListenTlsMode::Disable {
        let server = crate::tls::server_config(&config.listen.tls).map_err(|e| vec![format!("listen.tls: {e}")])?;
        state.acceptor = Some(TlsAcceptor::from(server));
    }
    if config.upstream.tls.mode != UpstreamTlsMode::Disable {
        let client = crate::tls::client_config(&config.upstream.tls).map_err(|e| vec![format!("upstream.tls: {e}")])?;
        state.connector = Some(TlsConnector::from(client));
    }
    Ok(state)
}
