//! Cancel keys: each client gets its own random BackendKeyData, mapped to the
//! upstream backend's key, which never leaves the proxy.

use dashmap::DashMap;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::protocol::startup::encode_cancel;

/// Upstream destination of a client's CancelRequest.
#[derive(Clone)]
pub struct CancelTarget {
    pub upstream_address: String,
    pub upstream_pid: i32,
    pub upstream_key: Vec<u8>,
}

/// Client-facing cancel keys of live sessions.
#[derive(Default)]
pub struct CancelMap {
    targets: DashMap<(i32, i32), CancelTarget>,
}

impl CancelMap {
    /// Registers `target` under a fresh random process id and key, returned for BackendKeyData.
    pub fn register(&self, target: CancelTarget) -> (i32, i32) {
        loop {
            let pid = rand::random::<i32>() & 0x7fff_ffff;
            let key = rand::random::<i32>();
            if let dashmap::Entry::Vacant(entry) = self.targets.entry((pid, key)) {
                entry.insert(target);
                return (pid, key);
            }
        }
    }

    pub fn remove(&self, pid: i32, key: i32) {
        self.targets.remove(&(pid, key));
    }

    /// Sends a CancelRequest upstream when the key is known; unknown keys are dropped silently, as Postgres does.
    pub async fn forward(&self, pid: i32, key: &[u8]) {
        let Ok(key) = <[u8; 4]>::try_from(key) else {
            tracing::debug!("cancel request with a key that is not 4 bytes ignored");
            return;
        };
        let Some(target) = self.targets.get(&(pid, i32::from_be_bytes(key))).map(|t| t.clone()) else {
            tracing::debug!("cancel request for an unknown key ignored");
            return;
        };
        if let Err(error) = send_cancel(&target).await {
            tracing::warn!(%error, "failed to forward a cancel request upstream");
        }
    }
}

async fn send_cancel(target: &CancelTarget) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(&target.upstream_address).await?;
    stream.write_all(&encode_cancel(target.upstream_pid, &target.upstream_key)).await?;
    stream.shutdown().await
}
