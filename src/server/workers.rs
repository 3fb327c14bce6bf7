//! Thread-per-core serving: each worker thread runs its own single-threaded
//! runtime and accept loop on a listening socket that shares the port with
//! the others (SO_REUSEPORT), so the kernel spreads connections and a
//! session never moves between threads.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::net::TcpSocket;
use tokio_util::sync::CancellationToken;

use crate::session::Shared;

/// Pending connections each listening socket queues.
const LISTEN_BACKLOG: u32 = 1024;

/// Binds `count` sockets to `address`; with more than one they share the port.
///
/// NOTE: with SO_REUSEPORT, another process of the same user could bind the
/// same port and receive a share of the connections.
pub fn bind_sockets(address: SocketAddr, count: usize) -> io::Result<Vec<TcpSocket>> {
    let first = new_socket(address, count > 1)?;
    first.bind(address)?;
    // Bind the others to the port the first one got, in case `address` names port 0.
    let bound = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..count {
        let socket = new_socket(bound, true)?;
        socket.bind(bound)?;
        sockets.push(socket);
    }
    Ok(sockets)
}

fn new_socket(address: SocketAddr, reuse_port: bool) -> io::Result<TcpSocket> {
    let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.set_nodelay(true)?;
    Ok(socket)
}

/// Starts one thread per socket, each with a single-threaded runtime running an accept loop.
pub fn spawn_workers(shared: &Arc<Shared>, sockets: Vec<TcpSocket>, stop: &CancellationToken) -> io::Result<Vec<JoinHandle<()>>> {
    let mut handles = Vec::with_capacity(sockets.len());
    for (index, socket) in sockets.into_iter().enumerate() {
        let shared = shared.clone();
        let stop = stop.clone();
        let handle = std::thread::Builder::new()
            .name(format!("schemagate-worker-{}", index + 1))
            .spawn(move || run_worker(shared, socket, stop))?;
        handles.push(handle);
    }
    Ok(handles)
}

fn run_worker(shared: Arc<Shared>, socket: TcpSocket, stop: CancellationToken) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start a worker runtime");
            return;
        }
    };
    runtime.block_on(async move {
        match socket.listen(LISTEN_BACKLOG) {
            Ok(listener) => super::run(shared, listener, stop).await,
            Err(error) => tracing::error!(%error, "worker cannot listen"),
        }
    });
}

/// Number of worker threads for `requested`: 0 means one per available CPU.
pub fn worker_count(requested: usize) -> usize {
    if requested > 0 {
        return requested;
    }
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
