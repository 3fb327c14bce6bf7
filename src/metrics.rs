//! Prometheus metrics: one [`Metrics`] shared through an `Arc`, with a
//! method per event. Label values come from closed sets (enums, a fixed
//! list of command tags, policy rule ids), never from client input.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry, Unit};

/// `Content-Type` of [`Metrics::encode`] output (OpenMetrics text, which
/// Prometheus scrapes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Reason a client connection was closed before its session started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    MaxConnections,
    TlsRequired,
    StartupTimeout,
    ProtocolViolation,
    StartupRejected,
    UpstreamUnavailable,
}

impl RefusalReason {
    const ALL: [RefusalReason; 6] = [
        RefusalReason::MaxConnections,
        RefusalReason::TlsRequired,
        RefusalReason::StartupTimeout,
        RefusalReason::ProtocolViolation,
        RefusalReason::StartupRejected,
        RefusalReason::UpstreamUnavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::MaxConnections => "max_connections",
            RefusalReason::TlsRequired => "tls_required",
            RefusalReason::StartupTimeout => "startup_timeout",
            RefusalReason::ProtocolViolation => "protocol_violation",
            RefusalReason::StartupRejected => "startup_rejected",
            RefusalReason::UpstreamUnavailable => "upstream_unavailable",
        }
    }
}

/// The policy decision on one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

/// Direction of relayed protocol bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ClientToServer => "client_to_server",
            Direction::ServerToClient => "server_to_client",
        }
    }
}

/// Command tags counted under their own label value, as Postgres sends them
/// in CommandComplete but without row counts. Any other tag is counted as
/// `OTHER`. Kept sorted for binary search.
const COMMAND_TAGS: &[&str] = &[
    "ALTER AGGREGATE",
    "ALTER COLLATION",
    "ALTER CONVERSION",
    "ALTER DATABASE",
    "ALTER DEFAULT PRIVILEGES",
    "ALTER DOMAIN",
    "ALTER EVENT TRIGGER",
    "ALTER EXTENSION",
    "ALTER FOREIGN DATA WRAPPER",
    "ALTER FOREIGN TABLE",
    "ALTER FUNCTION",
    "ALTER INDEX",
    "ALTER LANGUAGE",
    "ALTER LARGE OBJECT",
    "ALTER MATERIALIZED VIEW",
    "ALTER OPERATOR",
    "ALTER OPERATOR CLASS",
    "ALTER OPERATOR FAMILY",
    "ALTER POLICY",
    "ALTER PROCEDURE",
    "ALTER PUBLICATION",
    "ALTER ROLE",
    "ALTER ROUTINE",
    "ALTER RULE",
    "ALTER SCHEMA",
    "ALTER SEQUENCE",
    "ALTER SERVER",
    "ALTER STATISTICS",
    "ALTER SUBSCRIPTION",
    "ALTER SYSTEM",
    "ALTER TABLE",
    "ALTER TABLESPACE",
    "ALTER TEXT SEARCH CONFIGURATION",
    "ALTER TEXT SEARCH DICTIONARY",
    "ALTER TEXT SEARCH PARSER",
    "ALTER TEXT SEARCH TEMPLATE",
    "ALTER TRIGGER",
    "ALTER TYPE",
    "ALTER USER MAPPING",
    "ALTER VIEW",
    "ANALYZE",
    "BEGIN",
    "CALL",
    "CHECKPOINT",
    "CLOSE",
    "CLOSE CURSOR",
    "CLOSE CURSOR ALL",
    "CLUSTER",
    "COMMENT",
    "COMMIT",
    "COMMIT PREPARED",
    "COPY",
    "COPY FROM",
    "CREATE ACCESS METHOD",
    "CREATE AGGREGATE",
    "CREATE CAST",
    "CREATE COLLATION",
    "CREATE CONVERSION",
    "CREATE DATABASE",
    "CREATE DOMAIN",
    "CREATE EVENT TRIGGER",
    "CREATE EXTENSION",
    "CREATE FOREIGN DATA WRAPPER",
    "CREATE FOREIGN TABLE",
    "CREATE FUNCTION",
    "CREATE INDEX",
    "CREATE LANGUAGE",
    "CREATE MATERIALIZED VIEW",
    "CREATE OPERATOR",
    "CREATE OPERATOR CLASS",
    "CREATE OPERATOR FAMILY",
    "CREATE POLICY",
    "CREATE PROCEDURE",
    "CREATE PUBLICATION",
    "CREATE ROLE",
    "CREATE ROUTINE",
    "CREATE RULE",
    "CREATE SCHEMA",
    "CREATE SEQUENCE",
    "CREATE SERVER",
    "CREATE STATISTICS",
    "CREATE SUBSCRIPTION",
    "CREATE TABLE",
    "CREATE TABLE AS",
    "CREATE TABLESPACE",
    "CREATE TEXT SEARCH CONFIGURATION",
    "CREATE TEXT SEARCH DICTIONARY",
    "CREATE TEXT SEARCH PARSER",
    "CREATE TEXT SEARCH TEMPLATE",
    "CREATE TRANSFORM",
    "CREATE TRIGGER",
    "CREATE TYPE",
    "CREATE USER MAPPING",
    "CREATE VIEW",
    "DEALLOCATE",
    "DEALLOCATE ALL",
    "DECLARE CURSOR",
    "DELETE",
    "DISCARD",
    "DISCARD ALL",
    "DISCARD PLANS",
    "DISCARD SEQUENCES",
    "DISCARD TEMP",
    "DO",
    "DROP ACCESS METHOD",
    "DROP AGGREGATE",
    "DROP CAST",
    "DROP COLLATION",
    "DROP CONVERSION",
    "DROP DATABASE",
    "DROP DOMAIN",
    "DROP EVENT TRIGGER",
    "DROP EXTENSION",
    "DROP FOREIGN DATA WRAPPER",
    "DROP FOREIGN TABLE",
    "DROP FUNCTION",
    "DROP INDEX",
    "DROP LANGUAGE",
    "DROP MATERIALIZED VIEW",
    "DROP OPERATOR",
    "DROP OPERATOR CLASS",
    "DROP OPERATOR FAMILY",
    "DROP OWNED",
    "DROP POLICY",
    "DROP PROCEDURE",
    "DROP PUBLICATION",
    "DROP ROLE",
    "DROP ROUTINE",
    "DROP RULE",
    "DROP SCHEMA",
    "DROP SEQUENCE",
    "DROP SERVER",
    "DROP STATISTICS",
    "DROP SUBSCRIPTION",
    "DROP TABLE",
    "DROP TABLESPACE",
    "DROP TEXT SEARCH CONFIGURATION",
    "DROP TEXT SEARCH DICTIONARY",
    "DROP TEXT SEARCH PARSER",
    "DROP TEXT SEARCH TEMPLATE",
    "DROP TRANSFORM",
    "DROP TRIGGER",
    "DROP TYPE",
    "DROP USER MAPPING",
    "DROP VIEW",
    "EXECUTE",
    "EXPLAIN",
    "FETCH",
    "GRANT",
    "GRANT ROLE",
    "IMPORT FOREIGN SCHEMA",
    "INSERT",
    "LISTEN",
    "LOAD",
    "LOCK TABLE",
    "MERGE",
    "MOVE",
    "NOTIFY",
    "PREPARE",
    "PREPARE TRANSACTION",
    "REASSIGN OWNED",
    "REFRESH MATERIALIZED VIEW",
    "REINDEX",
    "RELEASE",
    "RESET",
    "REVOKE",
    "REVOKE ROLE",
    "ROLLBACK",
    "ROLLBACK PREPARED",
    "SAVEPOINT",
    "SECURITY LABEL",
    "SELECT",
    "SELECT FOR KEY SHARE",
    "SELECT FOR NO KEY UPDATE",
    "SELECT FOR SHARE",
    "SELECT FOR UPDATE",
    "SELECT INTO",
    "SET",
    "SET CONSTRAINTS",
    "SHOW",
    "START TRANSACTION",
    "TRUNCATE TABLE",
    "UNLISTEN",
    "UPDATE",
    "VACUUM",
];

/// Label value for command tags outside [`COMMAND_TAGS`].
const OTHER_TAG: &str = "OTHER";

/// Returns the index of `tag` in [`COMMAND_TAGS`], or `COMMAND_TAGS.len()`
/// for [`OTHER_TAG`]. Row counts such as the `0 1` of `INSERT 0 1` are ignored.
fn command_tag_index(tag: &str) -> usize {
    // Looked up for every statement, so one hash replaces a binary search over strings.
    static INDEX: LazyLock<foldhash::HashMap<&'static str, usize>> =
        LazyLock::new(|| COMMAND_TAGS.iter().enumerate().map(|(index, tag)| (*tag, index)).collect());
    // Consecutive statements often share a tag, which one comparison confirms before hashing.
    thread_local! {
        static LAST: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }
    let name = tag.trim_end_matches(|c: char| c.is_ascii_digit() || c == ' ');
    let last = LAST.get();
    if COMMAND_TAGS.get(last) == Some(&name) {
        return last;
    }
    let index = INDEX.get(name).copied().unwrap_or(COMMAND_TAGS.len());
    LAST.set(index);
    index
}

fn command_tag_label(index: usize) -> &'static str {
    COMMAND_TAGS.get(index).copied().unwrap_or(OTHER_TAG)
}

type StatementLabels = [(&'static str, &'static str); 2];
type RuleLabels = [(&'static str, String); 1];
type KindLabels = [(&'static str, &'static str); 1];

/// Latency buckets for policy evaluation: 1 µs to 10 ms.
const POLICY_EVALUATION_BUCKETS: [f64; 13] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2,
];

/// All metrics of one process. Every method takes `&self` and is safe to call
/// from any task.
pub struct Metrics {
    registry: Registry,
    connections: ConnectionMetrics,
    statements: StatementMetrics,
    relay: RelayMetrics,
    windows_open: Gauge,
    sessions_bound: Gauge,
    parse_cache: std::sync::Arc<ParseCacheTotals>,
    audit_write_failures: Counter,
}

struct ConnectionMetrics {
    current: Gauge,
    total: Counter,
    refused: [Counter; RefusalReason::ALL.len()],
}

struct StatementMetrics {
    family: Family<StatementLabels, Counter>,
    /// Lazily resolved children of `family`, indexed by command tag and
    /// decision, so that a tag gets a series only once it is seen and later
    /// calls skip the family's lock.
    resolved: Box<[[OnceLock<Counter>; 2]]>,
    denials: Family<RuleLabels, Counter>,
    evaluation: Histogram,
}

struct RelayMetrics {
    upstream_connect: Histogram,
    client_to_server: Counter,
    server_to_client: Counter,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let r = &mut registry;

        let connections = ConnectionMetrics::register(r);
        let statements = StatementMetrics::register(r);
        let relay = RelayMetrics::register(r);
        let windows_open = registered(
            r,
            "schemagate_windows_open",
            "Migration windows open now",
            Gauge::default(),
        );
        let sessions_bound = registered(
            r,
            "schemagate_sessions_bound",
            "Sessions bound to a migration window now",
            Gauge::default(),
        );
        let parse_cache = std::sync::Arc::new(ParseCacheTotals::default());
        r.register_collector(Box::new(parse_cache.clone()));
        let audit_write_failures = registered(
            r,
            "schemagate_audit_write_failures",
            "Audit records that could not be written",
            Counter::default(),
        );

        Metrics {
            registry,
            connections,
            statements,
            relay,
            windows_open,
            sessions_bound,
            parse_cache,
            audit_write_failures,
        }
    }

    /// Counts an accepted client connection.
    pub fn connection_opened(&self) {
        self.connections.total.inc();
        self.connections.current.inc();
    }

    /// Counts the close of a connection counted by [`connection_opened`](Self::connection_opened).
    pub fn connection_closed(&self) {
        self.connections.current.dec();
    }

    /// Counts a connection closed before its session started.
    pub fn connection_refused(&self, reason: RefusalReason) {
        self.connections.refused[reason as usize].inc();
    }

    /// Counts one statement the policy decided. `tag` is its Postgres command tag.
    pub fn statement(&self, decision: Decision, tag: &str) {
        let index = command_tag_index(tag);
        let counter = self.statements.resolved[index][decision as usize].get_or_init(|| {
            let labels = [
                ("decision", decision.as_str()),
                ("command", command_tag_label(index)),
            ];
            self.statements.family.get_or_create(&labels).clone()
        });
        counter.inc();
    }

    /// Counts a statement denied by the rule with id `rule`, such as `ddl.allow`.
    pub fn denial(&self, rule: &str) {
        self.statements
            .denials
            .get_or_create(&[("rule", rule.to_owned())])
            .inc();
    }

    pub fn policy_evaluated(&self, duration: Duration) {
        self.statements.evaluation.observe(duration.as_secs_f64());
    }

    pub fn upstream_connected(&self, duration: Duration) {
        self.relay.upstream_connect.observe(duration.as_secs_f64());
    }

    /// Adds `n` relayed bytes. Called per message, so it only adds to an atomic counter.
    pub fn bytes(&self, direction: Direction, n: u64) {
        match direction {
            Direction::ClientToServer => self.relay.client_to_server.inc_by(n),
            Direction::ServerToClient => self.relay.server_to_client.inc_by(n),
        };
    }

    pub fn audit_failure(&self) {
        self.audit_write_failures.inc();
    }

    pub fn set_windows_open(&self, n: usize) {
        self.windows_open.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn set_sessions_bound(&self, n: usize) {
        self.sessions_bound
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Stores the parse cache's own running totals of hits and misses.
    pub fn parse_cache(&self, hits: u64, misses: u64) {
        self.parse_cache.hits.store(hits, Ordering::Relaxed);
        self.parse_cache.misses.store(misses, Ordering::Relaxed);
    }

    /// Renders every metric in the OpenMetrics text format (see [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "metrics encoding failed");
        }
        text
    }
}

impl ConnectionMetrics {
    fn register(r: &mut Registry) -> Self {
        let current = registered(
            r,
            "schemagate_connections_current",
            "Client connections open now",
            Gauge::default(),
        );
        let total = registered(
            r,
            "schemagate_connections",
            "Client connections accepted",
            Counter::default(),
        );
        let refused_family: Family<KindLabels, Counter> = registered(
            r,
            "schemagate_connections_refused",
            "Client connections closed before their session started, by reason",
            Family::default(),
        );

        let refused = RefusalReason::ALL.map(|reason| {
            refused_family
                .get_or_create(&[("reason", reason.as_str())])
                .clone()
        });
        ConnectionMetrics {
            current,
            total,
            refused,
        }
    }
}

impl StatementMetrics {
    fn register(r: &mut Registry) -> Self {
        let family = registered(
            r,
            "schemagate_statements",
            "Statements decided by the policy, by decision and command tag",
            Family::default(),
        );
        let denials = registered(
            r,
            "schemagate_denials",
            "Statements denied, by rule",
            Family::default(),
        );
        let evaluation = registered_seconds(
            r,
            "schemagate_policy_evaluation",
            "Time to parse and decide one SQL text",
            Histogram::new(POLICY_EVALUATION_BUCKETS),
        );

        let resolved = (0..=COMMAND_TAGS.len())
            .map(|_| Default::default())
            .collect();
        StatementMetrics {
            family,
            resolved,
            denials,
            evaluation,
        }
    }
}

impl RelayMetrics {
    fn register(r: &mut Registry) -> Self {
        let upstream_connect = registered_seconds(
            r,
            "schemagate_upstream_connect",
            "Time to connect to the upstream server",
            Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
        );
        let bytes: Family<KindLabels, Counter> = registered(
            r,
            "schemagate_bytes_relayed",
            "Protocol bytes relayed between clients and the upstream server",
            Family::default(),
        );

        let counter_for = |d: Direction| bytes.get_or_create(&[("direction", d.as_str())]).clone();
        RelayMetrics {
            upstream_connect,
            client_to_server: counter_for(Direction::ClientToServer),
            server_to_client: counter_for(Direction::ServerToClient),
        }
    }
}

/// Registers a handle to `metric` under `name` and returns the metric.
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

fn registered_seconds(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: Histogram,
) -> Histogram {
    registry.register_with_unit(name, help, Unit::Seconds, metric.clone());
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Parse cache hits and misses as the cache counts them, read at each scrape.
#[derive(Debug, Default)]
struct ParseCacheTotals {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Collector for ParseCacheTotals {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let totals = [
            (
                "schemagate_parse_cache_hits",
                "Statements found in the parse cache",
                &self.hits,
            ),
            (
                "schemagate_parse_cache_misses",
                "Statements parsed because they were not cached",
                &self.misses,
            ),
        ];
        for (name, help, value) in totals {
            let counter = ConstCounter::new(value.load(Ordering::Relaxed));
            let metric_encoder =
                encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric_encoder)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns the value of the sample line that starts with `series`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.parse().ok())
    }

    #[test]
    fn metrics_shareable_across_tasks() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Metrics>();
    }

    #[test]
    fn command_tags_sorted_and_unique() {
        assert!(COMMAND_TAGS.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn refusal_reasons_match_their_index() {
        for (index, reason) in RefusalReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, index);
        }
    }

    #[test]
    fn command_tag_lookup() {
        assert_eq!(
            command_tag_label(command_tag_index("CREATE TABLE")),
            "CREATE TABLE"
        );
        assert_eq!(command_tag_label(command_tag_index("INSERT 0 1")), "INSERT");
        assert_eq!(command_tag_label(command_tag_index("SELECT 42")), "SELECT");
        assert_eq!(
            command_tag_label(command_tag_index("DROP EVERYTHING")),
            "OTHER"
        );
        assert_eq!(command_tag_label(command_tag_index("")), "OTHER");
    }

    #[test]
    fn connection_counters_move() {
        let metrics = Metrics::new();

        metrics.connection_opened();
        metrics.connection_opened();
        metrics.connection_closed();
        metrics.connection_refused(RefusalReason::TlsRequired);
        let text = metrics.encode();

        assert_eq!(sample(&text, "schemagate_connections_total"), Some(2.0));
        assert_eq!(sample(&text, "schemagate_connections_current"), Some(1.0));
        assert_eq!(
            sample(
                &text,
                "schemagate_connections_refused_total{reason=\"tls_required\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "schemagate_connections_refused_total{reason=\"max_connections\"}"
            ),
            Some(0.0)
        );
    }

    #[test]
    fn statement_counters_by_decision_and_tag() {
        let metrics = Metrics::new();

        metrics.statement(Decision::Allow, "SELECT 1");
        metrics.statement(Decision::Allow, "SELECT");
        metrics.statement(Decision::Deny, "DROP TABLE");
        metrics.statement(Decision::Deny, "made up tag");
        metrics.denial("ddl.allow");
        let text = metrics.encode();

        let series = |decision: &str, command: &str| {
            format!("schemagate_statements_total{{decision=\"{decision}\",command=\"{command}\"}}")
        };
        assert_eq!(sample(&text, &series("allow", "SELECT")), Some(2.0));
        assert_eq!(sample(&text, &series("deny", "DROP TABLE")), Some(1.0));
        assert_eq!(sample(&text, &series("deny", "OTHER")), Some(1.0));
        assert_eq!(sample(&text, &series("deny", "SELECT")), None);
        assert_eq!(
            sample(&text, "schemagate_denials_total{rule=\"ddl.allow\"}"),
            Some(1.0)
        );
    }

    #[test]
    fn bytes_gauges_and_failures_move() {
        let metrics = Metrics::new();

        metrics.bytes(Direction::ClientToServer, 100);
        metrics.bytes(Direction::ClientToServer, 23);
        metrics.bytes(Direction::ServerToClient, 7);
        metrics.audit_failure();
        metrics.set_windows_open(2);
        metrics.set_sessions_bound(3);
        metrics.parse_cache(10, 4);
        let text = metrics.encode();

        let bytes = |d: &str| format!("schemagate_bytes_relayed_total{{direction=\"{d}\"}}");
        assert_eq!(sample(&text, &bytes("client_to_server")), Some(123.0));
        assert_eq!(sample(&text, &bytes("server_to_client")), Some(7.0));
        assert_eq!(
            sample(&text, "schemagate_audit_write_failures_total"),
            Some(1.0)
        );
        assert_eq!(sample(&text, "schemagate_windows_open"), Some(2.0));
        assert_eq!(sample(&text, "schemagate_sessions_bound"), Some(3.0));
        assert_eq!(
            sample(&text, "schemagate_parse_cache_hits_total"),
            Some(10.0)
        );
        assert_eq!(
            sample(&text, "schemagate_parse_cache_misses_total"),
            Some(4.0)
        );
    }

    #[test]
    fn histograms_record_durations() {
        let metrics = Metrics::new();

        metrics.policy_evaluated(Duration::from_micros(3));
        metrics.policy_evaluated(Duration::from_millis(20));
        metrics.upstream_connected(Duration::from_millis(2));
        let text = metrics.encode();

        assert_eq!(
            sample(&text, "schemagate_policy_evaluation_seconds_count"),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                "schemagate_policy_evaluation_seconds_bucket{le=\"0.000005\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "schemagate_policy_evaluation_seconds_bucket{le=\"0.01\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "schemagate_policy_evaluation_seconds_bucket{le=\"+Inf\"}"
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "schemagate_upstream_connect_seconds_count"),
            Some(1.0)
        );
    }

    #[test]
    fn encode_is_openmetrics_text() {
        let text = Metrics::new().encode();

        assert!(text.contains("# TYPE schemagate_connections counter"));
        assert!(text.contains("# TYPE schemagate_policy_evaluation_seconds histogram"));
        assert!(text.ends_with("# EOF\n"));
    }
}
