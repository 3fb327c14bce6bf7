//! A small per-thread cache in front of the analyzer's shared cache.
//!
//! Each worker thread looks up its sessions' statements here first. A hit
//! takes no lock and writes nothing that another thread reads, so workers
//! that run the same hot statement do not contend for the shared cache's
//! lock and LRU list.

use std::cell::RefCell;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lru::LruCache;

use super::Analysis;

/// Entries per thread and `standard_conforming_strings` value: room for an
/// application's hot statements, while the shared cache keeps the rest.
const ENTRIES: NonZeroUsize = NonZeroUsize::new(128).expect("128 is not zero");

/// Maximum length of a key kept per thread, which bounds a thread's keys to 1 MiB.
const MAX_KEY_BYTES: usize = 4096;

/// Hit counters of the threads that cached for one analyzer, which the
/// analyzer adds up. Only its own thread writes each counter.
pub type HitCounters = parking_lot::Mutex<Vec<Arc<AtomicU64>>>;

/// Origin of the cache contents a thread may use: the analyzer they came
/// from, how many times that analyzer was cleared before, and its capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub analyzer: u64,
    pub clears: u64,
    pub capacity: NonZeroUsize,
}

struct LocalCache {
    owner: Owner,
    entries: [LruCache<Box<[u8]>, Arc<Analysis>>; 2],
    hits: Arc<AtomicU64>,
}

thread_local! {
    static LOCAL: RefCell<Option<LocalCache>> = const { RefCell::new(None) };
}

/// Looks up `key` in this thread's cache for `owner`, counting a hit.
pub fn get(owner: Owner, counters: &HitCounters, options: usize, key: &[u8]) -> Option<Arc<Analysis>> {
    with_cache(owner, counters, |cache| {
        let found = cache.entries[options].get(key).cloned();
        if found.is_some() {
            cache.hits.fetch_add(1, Ordering::Relaxed);
        }
        found
    })
    .flatten()
}

/// Stores an analysis in this thread's cache for `owner`.
pub fn put(owner: Owner, counters: &HitCounters, options: usize, key: &[u8], analysis: Arc<Analysis>) {
    if key.len() > MAX_KEY_BYTES {
        return;
    }
    with_cache(owner, counters, |cache| {
        cache.entries[options].put(key.into(), analysis);
    });
}

/// Runs `f` on this thread's cache, first replacing it if it belongs to
/// another owner. Returns `None` while the thread is being torn down.
fn with_cache<T>(owner: Owner, counters: &HitCounters, f: impl FnOnce(&mut LocalCache) -> T) -> Option<T> {
    LOCAL
        .try_with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.as_ref().is_none_or(|cache| cache.owner != owner) {
                *slot = Some(new_cache(owner, counters));
            }
            slot.as_mut().map(f)
        })
        .ok()
        .flatten()
}

fn new_cache(owner: Owner, counters: &HitCounters) -> LocalCache {
    let hits = Arc::new(AtomicU64::new(0));
    counters.lock().push(hits.clone());
    let entries = ENTRIES.min(owner.capacity);
    LocalCache { owner, entries: [LruCache::new(entries), LruCache::new(entries)], hits }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis(text: &str) -> Arc<Analysis> {
        Arc::new(Analysis { text: text.to_string(), ..Analysis::default() })
    }

    fn owner(analyzer: u64, clears: u64) -> Owner {
        Owner { analyzer, clears, capacity: ENTRIES }
    }

    #[test]
    fn entries_belong_to_their_owner() {
        let counters = HitCounters::default();
        let first = owner(u64::MAX, 0);
        put(first, &counters, 1, b"SELECT ?", analysis("SELECT 1"));

        let found = get(first, &counters, 1, b"SELECT ?").expect("cached for the same owner");
        assert_eq!(found.text, "SELECT 1");
        assert!(get(first, &counters, 0, b"SELECT ?").is_none());

        let cleared = owner(u64::MAX, 1);
        assert!(get(cleared, &counters, 1, b"SELECT ?").is_none());
        assert!(get(first, &counters, 1, b"SELECT ?").is_none());
    }

    #[test]
    fn hits_counted_per_thread() {
        let counters = HitCounters::default();
        let first = owner(u64::MAX - 1, 0);
        put(first, &counters, 1, b"SELECT ?", analysis("SELECT 1"));
        get(first, &counters, 1, b"SELECT ?");
        get(first, &counters, 1, b"SELECT ?");
        get(first, &counters, 1, b"SELECT x");

        let total: u64 = counters.lock().iter().map(|hits| hits.load(Ordering::Relaxed)).sum();
        assert_eq!(total, 2);
    }
}
