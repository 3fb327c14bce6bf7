//! A small per-thread cache in front of the analyzer's shared cache.
//!
//! Each worker thread looks up its sessions' statements here first. A hit
//! takes no lock and writes nothing that another thread reads, so workers
//! that run the same hot statement do not contend for the shared cache's
//! lock and LRU list.

use std::cell::RefCell;
use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;

use super::Analysis;

/// Entries per thread and `standard_conforming_strings` value: room for an
/// application's hot statements, while the shared cache keeps the rest.
const ENTRIES: NonZeroUsize = NonZeroUsize::new(128).expect("128 is not zero");

/// Maximum length of a key kept per thread, which bounds a thread's keys to 1 MiB.
const MAX_KEY_BYTES: usize = 4096;

/// Local hits counted before they are added to the analyzer's shared total.
pub const HIT_BATCH: u64 = 32;

/// Origin of the cache contents a thread may use: the analyzer they came
/// from, and how many times that analyzer was cleared before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub analyzer: u64,
    pub clears: u64,
}

struct LocalCache {
    owner: Owner,
    entries: [LruCache<Box<[u8]>, Arc<Analysis>>; 2],
    /// Hits not yet added to the shared total.
    pending_hits: u64,
}

thread_local! {
    static LOCAL: RefCell<Option<LocalCache>> = const { RefCell::new(None) };
}

/// Looks up `key` in this thread's cache for `owner`.
pub fn get(owner: Owner, options: usize, key: &[u8]) -> Option<Arc<Analysis>> {
    with_cache(owner, |cache| cache.entries[options].get(key).cloned()).flatten()
}

/// Stores an analysis in this thread's cache for `owner`.
pub fn put(owner: Owner, options: usize, key: &[u8], analysis: Arc<Analysis>) {
    if key.len() > MAX_KEY_BYTES {
        return;
    }
    with_cache(owner, |cache| {
        cache.entries[options].put(key.into(), analysis);
    });
}

/// Counts one local hit. Returns the hits to add to the shared total, which
/// is zero until a batch of [`HIT_BATCH`] is complete.
pub fn count_hit(owner: Owner) -> u64 {
    with_cache(owner, |cache| {
        cache.pending_hits += 1;
        if cache.pending_hits < HIT_BATCH {
            return 0;
        }
        std::mem::take(&mut cache.pending_hits)
    })
    .unwrap_or(1)
}

/// Runs `f` on this thread's cache, first emptying it if it belongs to
/// another owner. Returns `None` while the thread is being torn down.
fn with_cache<T>(owner: Owner, f: impl FnOnce(&mut LocalCache) -> T) -> Option<T> {
    LOCAL
        .try_with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.as_ref().is_none_or(|cache| cache.owner != owner) {
                *slot = Some(LocalCache { owner, entries: [LruCache::new(ENTRIES), LruCache::new(ENTRIES)], pending_hits: 0 });
            }
            slot.as_mut().map(f)
        })
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis(text: &str) -> Arc<Analysis> {
        Arc::new(Analysis { text: text.to_string(), ..Analysis::default() })
    }

    #[test]
    fn entries_belong_to_their_owner() {
        let first = Owner { analyzer: u64::MAX, clears: 0 };
        put(first, 1, b"SELECT ?", analysis("SELECT 1"));

        let found = get(first, 1, b"SELECT ?").expect("cached for the same owner");
        assert_eq!(found.text, "SELECT 1");
        assert!(get(first, 0, b"SELECT ?").is_none());

        let cleared = Owner { analyzer: u64::MAX, clears: 1 };
        assert!(get(cleared, 1, b"SELECT ?").is_none());
        assert!(get(first, 1, b"SELECT ?").is_none());
    }

    #[test]
    fn hits_reach_the_total_in_batches() {
        let owner = Owner { analyzer: u64::MAX - 1, clears: 0 };
        let added: Vec<u64> = (0..HIT_BATCH * 2).map(|_| count_hit(owner)).collect();

        assert_eq!(added.iter().sum::<u64>(), HIT_BATCH * 2);
        assert_eq!(added.iter().filter(|&&n| n > 0).count(), 2);
    }
}
