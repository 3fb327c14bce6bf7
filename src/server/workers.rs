//! Thread-per-core serving: each worker thread runs its own single-threaded
//! runtime, and a session never moves between threads. One accept loop
//! hands each new connection to the worker with the fewest sessions, so the
//! load stays even however few connections there are, which hashing
//! connections over SO_REUSEPORT sockets does not achieve.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio_util::sync::CancellationToken;

use crate::session::Shared;

/// Pending connections the listening socket queues.
const LISTEN_BACKLOG: u32 = 1024;

/// Binds the client listener.
pub fn bind_listener(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// An accepted connection on its way to a worker.
pub struct Incoming {
    pub tcp: std::net::TcpStream,
    pub client_addr: SocketAddr,
    pub over_limit: bool,
    /// Released when the session ends, wherever it is dropped.
    pub guard: super::ConnectionGuard,
}

/// The worker threads, as seen by the accept loop.
pub struct Workers {
    workers: Vec<Worker>,
    /// Index at which the search for the least busy worker starts, so ties rotate.
    next: AtomicUsize,
}

struct Worker {
    sender: UnboundedSender<Incoming>,
    sessions: Arc<AtomicUsize>,
}

impl Workers {
    /// Hands `incoming` to the worker with the fewest sessions.
    pub fn dispatch(&self, mut incoming: Incoming) {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let loads: Vec<usize> = self.workers.iter().map(|worker| worker.sessions.load(Ordering::Relaxed)).collect();

        for index in least_busy_first(&loads, start) {
            let worker = &self.workers[index];
            worker.sessions.fetch_add(1, Ordering::Relaxed);
            incoming.guard.worker_sessions = Some(worker.sessions.clone());
            match worker.sender.send(incoming) {
                Ok(()) => return,
                Err(returned) => incoming = returned.0,
            }
        }
        tracing::error!("no worker thread is running, so the connection is closed");
    }
}

/// Orders worker indexes by their number of sessions. Among workers with
/// the same number, the order starts at `start`, so ties take turns.
fn least_busy_first(loads: &[usize], start: usize) -> Vec<usize> {
    let count = loads.len();
    let mut order: Vec<usize> = (0..count).map(|offset| (start + offset) % count).collect();
    order.sort_by_key(|&index| loads[index]);
    order
}

/// Starts `count` worker threads, each with a single-threaded runtime that
/// serves the sessions dispatched to it until `stop` fires. With `cpus`,
/// worker N runs only on the N-th of them.
pub fn spawn_workers(
    shared: &Arc<Shared>,
    count: usize,
    cpus: Option<Vec<usize>>,
    stop: &CancellationToken,
) -> io::Result<(Workers, Vec<JoinHandle<()>>)> {
    let mut workers = Vec::with_capacity(count);
    let mut handles = Vec::with_capacity(count);
    for index in 0..count {
        let (sender, receiver) = unbounded_channel();
        let shared = shared.clone();
        let stop = stop.clone();
        let cpu = cpus.as_ref().and_then(|cpus| cpus.get(index).copied());
        let handle = std::thread::Builder::new()
            .name(format!("schemagate-worker-{}", index + 1))
            .spawn(move || {
                if let Some(cpu) = cpu {
                    pin_to(cpu);
                }
                run_worker(shared, receiver, stop)
            })?;
        workers.push(Worker { sender, sessions: Arc::new(AtomicUsize::new(0)) });
        handles.push(handle);
    }
    Ok((Workers { workers, next: AtomicUsize::new(0) }, handles))
}

fn run_worker(shared: Arc<Shared>, receiver: UnboundedReceiver<Incoming>, stop: CancellationToken) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start a worker runtime");
            return;
        }
    };
    runtime.block_on(super::serve_sessions(shared, receiver, stop));
}

/// Returns the CPUs to pin one worker each to, when there is one worker per
/// CPU this process may run on. A CPU quota smaller than that set (a container
/// limit, say) leaves the workers unpinned, free to run wherever the quota
/// is spent.
pub fn cpus_to_pin(workers: usize) -> Option<Vec<usize>> {
    let allowed = rustix::thread::sched_getaffinity(None).ok()?;
    let cpus: Vec<usize> = (0..rustix::thread::CpuSet::MAX_CPU).filter(|&cpu| allowed.is_set(cpu)).collect();
    (cpus.len() == workers && workers > 1).then_some(cpus)
}

/// Keeps the calling thread on `cpu`. A failure is logged and leaves the thread unpinned.
fn pin_to(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    if let Err(error) = rustix::thread::sched_setaffinity(None, &set) {
        tracing::warn!(cpu, %error, "cannot pin a worker thread to its CPU");
    }
}

/// Number of worker threads for `requested`: 0 means one per available CPU.
pub fn worker_count(requested: usize) -> usize {
    if requested > 0 {
        return requested;
    }
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::{cpus_to_pin, least_busy_first};

    #[test]
    fn least_busy_worker_first() {
        assert_eq!(least_busy_first(&[3, 1, 2], 0), vec![1, 2, 0]);
        assert_eq!(least_busy_first(&[0, 5, 0], 0), vec![0, 2, 1]);
    }

    #[test]
    fn ties_take_turns() {
        let first_choices: Vec<usize> = (0..4).map(|start| least_busy_first(&[2, 2, 2, 2], start)[0]).collect();
        assert_eq!(first_choices, vec![0, 1, 2, 3]);
    }

    #[test]
    fn pins_only_one_worker_per_allowed_cpu() {
        let allowed = rustix::thread::sched_getaffinity(None).expect("affinity readable");
        let count = allowed.count() as usize;

        assert_eq!(cpus_to_pin(count + 1), None);
        assert_eq!(cpus_to_pin(1), None);
        if count > 1 {
            let cpus = cpus_to_pin(count).expect("one worker per CPU is pinned");
            assert_eq!(cpus.len(), count);
            assert!(cpus.iter().all(|&cpu| allowed.is_set(cpu)));
        }
    }
}
