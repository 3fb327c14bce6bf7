//! The analyzer: parses SQL text with libpg_query, builds facts for every
//! statement and caches the result by exact text and parse options.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lru::LruCache;
use pg_query::{NodeEnum, ParserOptions};

use super::cache_key::numeric_literal_key;
use super::facts::{statement_facts, Builder};
use super::local_cache::{self, HitCounters, Owner};
use super::{AllowedMark, Analysis, AnalyzeError, ParseOptions};

/// Texts longer than this are analyzed every time instead of being cached,
/// so one large statement cannot hold much memory in the cache.
const MAX_CACHED_TEXT_BYTES: usize = 16 * 1024;

/// Serializes every call into libpg_query. Each call redirects the process's
/// stderr file descriptor (fd 2) to a pipe and restores it afterwards, so two
/// threads doing that at once can leave fd 2 pointing at a closed pipe.
/// NOTE: writes to stderr from other threads during a parse are lost, so the
/// service should log to stdout.
static LIBPG_QUERY: Mutex<()> = Mutex::new(());

type CacheEntry = Result<Arc<Analysis>, AnalyzeError>;

/// Source of `Analyzer::id`, so per-thread caches never mix analyzers.
static NEXT_ANALYZER_ID: AtomicU64 = AtomicU64::new(0);

/// Parses SQL text into `Analysis`, with a bounded LRU cache shared by all
/// threads and a small one per thread in front of it. `Send + Sync`; share
/// one per process.
pub struct Analyzer {
    id: u64,
    /// Entries of the shared cache; per-thread caches keep no more.
    capacity: NonZeroUsize,
    /// Times the cache was emptied, so per-thread caches know when to empty theirs.
    clears: AtomicU64,
    /// One cache per `standard_conforming_strings` value, keyed by text, so a
    /// lookup borrows the text instead of allocating a key.
    cache: Option<[parking_lot::Mutex<LruCache<Box<[u8]>, CacheEntry>>; 2]>,
    hits: AtomicU64,
    /// Hits served by per-thread caches, one counter per thread.
    local_hits: HitCounters,
    misses: AtomicU64,
}

impl Analyzer {
    /// Creates an analyzer whose cache keeps up to `capacity` texts (0 disables it).
    pub fn new(capacity: usize) -> Self {
        Analyzer {
            id: NEXT_ANALYZER_ID.fetch_add(1, Ordering::Relaxed),
            clears: AtomicU64::new(0),
            capacity: NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            cache: NonZeroUsize::new(capacity).map(|c| [parking_lot::Mutex::new(LruCache::new(c)), parking_lot::Mutex::new(LruCache::new(c))]),
            hits: AtomicU64::new(0),
            local_hits: HitCounters::default(),
            misses: AtomicU64::new(0),
        }
    }

    /// Analyzes every statement of `sql`. Empty or comment-only text yields
    /// zero statements; text that does not parse yields `AnalyzeError::Syntax`
    /// with the parser's message.
    pub fn analyze(&self, sql: &str, opts: ParseOptions) -> Result<Arc<Analysis>, AnalyzeError> {
        let cacheable = sql.len() <= MAX_CACHED_TEXT_BYTES;
        let options = usize::from(opts.standard_conforming_strings);
        let cache = self.cache.as_ref().filter(|_| cacheable).map(|caches| &caches[options]);
        let Some(cache) = cache else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return analyze_uncached(sql, opts).map(Arc::new);
        };

        // Texts that differ only in numeric literals share an entry. The exact
        // text is the key whenever the key lexer gives up.
        let normalized = numeric_literal_key(sql);
        let key = normalized.as_deref().unwrap_or(sql.as_bytes());
        let owner = self.owner();
        if let Some(analysis) = local_cache::get(owner, &self.local_hits, options, key) {
            return Ok(analysis);
        }

        let cached = cache.lock().get(key).cloned();
        let entry = match cached {
            Some(entry) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                entry
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                let entry = analyze_uncached(sql, opts).map(Arc::new);
                cache.lock().put(key.into(), entry.clone());
                entry
            }
        };
        if let Ok(analysis) = &entry {
            local_cache::put(owner, &self.local_hits, options, key, analysis.clone());
        }
        entry
    }

    fn owner(&self) -> Owner {
        Owner { analyzer: self.id, clears: self.clears.load(Ordering::Acquire), capacity: self.capacity }
    }

    /// Returns the cache's (hits, misses) since the analyzer was created.
    pub fn cache_stats(&self) -> (u64, u64) {
        let local: u64 = self.local_hits.lock().iter().map(|hits| hits.load(Ordering::Relaxed)).sum();
        (self.hits.load(Ordering::Relaxed) + local, self.misses.load(Ordering::Relaxed))
    }

    /// Empties the cache (for example after a rules reload).
    pub fn clear_cache(&self) {
        for cache in self.cache.iter().flatten() {
            cache.lock().clear();
        }
        self.clears.fetch_add(1, Ordering::Release);
    }
}

fn analyze_uncached(sql: &str, opts: ParseOptions) -> Result<Analysis, AnalyzeError> {
    let parsed = parse_text(sql, 0, opts)?;
    let builder = Builder { opts, nesting: 0 };

    let mut statements = Vec::with_capacity(parsed.stmts.len());
    for raw in &parsed.stmts {
        if let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) {
            statements.push(statement_facts(node, builder)?);
        }
    }
    Ok(Analysis { statements, text: sql.to_string(), allowed_anywhere: AllowedMark::default() })
}

/// Parses `sql` in parse `mode` (0 for statements, 2 for a PL/pgSQL
/// expression, 3 to 5 for PL/pgSQL assignments).
pub(super) fn parse_text(sql: &str, mode: i32, opts: ParseOptions) -> Result<pg_query::protobuf::ParseResult, AnalyzeError> {
    let mut options = ParserOptions::from(mode);
    if !opts.standard_conforming_strings {
        options |= ParserOptions::DISABLE_STANDARD_CONFORMING_STRINGS;
    }
    let result = {
        let _guard = LIBPG_QUERY.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        pg_query::parse(sql, options)
    };
    result.map(|parsed| parsed.protobuf).map_err(analyze_error)
}

/// Compiles the PL/pgSQL of the DO or CREATE FUNCTION statements in `sql`.
pub(super) fn parse_plpgsql(sql: &str) -> Result<serde_json::Value, String> {
    let _guard = LIBPG_QUERY.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    pg_query::parse_plpgsql(sql).map_err(|e| error_message(&e))
}

/// Turns one statement node back into SQL text.
pub(super) fn deparse(node: &NodeEnum) -> Result<String, String> {
    let _guard = LIBPG_QUERY.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    node.deparse(pg_query::DeparseOptions::default()).map_err(|e| error_message(&e))
}

/// Nesting limit of prost's protobuf decoder, which decodes pg_query's parse tree.
const MAX_PARSE_TREE_DEPTH: usize = 100;

fn analyze_error(error: pg_query::Error) -> AnalyzeError {
    let message = error_message(&error);
    match error {
        // prost reports the whole path of nested messages; the client needs only the cause.
        pg_query::Error::Decode(_) => AnalyzeError::TooComplex(format!(
            "the parse tree is nested deeper than the {MAX_PARSE_TREE_DEPTH} levels the protobuf decoder accepts"
        )),
        _ if message.contains("stack depth limit exceeded") || message.contains("memory exhausted") => {
            AnalyzeError::TooComplex(message)
        }
        _ => AnalyzeError::Syntax(message),
    }
}

/// The parser's own message, without the wrapper text of `pg_query::Error`.
fn error_message(error: &pg_query::Error) -> String {
    match error {
        pg_query::Error::Parse(message) | pg_query::Error::InvalidJson(message) => message.clone(),
        pg_query::Error::Conversion(_) => "statement text contains a zero byte".to_string(),
        other => other.to_string(),
    }
}

/// Returns the statement text with literals replaced by `$n` and comments removed, for audit logs.
pub fn normalize(sql: &str) -> Option<String> {
    let normalized = {
        let _guard = LIBPG_QUERY.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        pg_query::normalize(sql).ok()?
    };
    super::cache_key::without_comments(&normalized)
}

/// Returns pg_query's fingerprint (hex) of the statement text, for audit logs.
pub fn fingerprint(sql: &str) -> Option<String> {
    let _guard = LIBPG_QUERY.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    pg_query::fingerprint(sql, 0, 0).ok().map(|f| f.hex)
}
