//! Benchmarks of the policy check the proxy runs on every statement text:
//! `Analyzer::analyze` followed by `Policy::decide`, as `Judge::judge_text`
//! calls them. Metrics and audit records, which the proxy adds around the
//! decision, are not included.
//!
//! Three groups, one benchmark per statement (and per window state where the
//! window changes the decision):
//! - `policy_cached`: the same text again, so the parse cache returns it.
//! - `policy_cached_new_literals`: the text changes only in its numeric
//!   literals on every iteration, which still hits the cache. Only statements
//!   with a numeric literal are measured here.
//! - `policy_uncached`: an analyzer without a cache, so every iteration runs
//!   the Postgres parser and builds the statement facts.
//!
//! Run with `cargo bench --bench policy`. Criterion writes the results to
//! `$CARGO_TARGET_DIR/criterion/<group>/<statement>/<window>/new/estimates.json`
//! (`target/criterion/...` without CARGO_TARGET_DIR).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion};
use schemagate::config::Config;
use schemagate::policy::defaults::DEFAULT_DDL_ALLOW;
use schemagate::policy::{Analyzer, Decision, ParseOptions, Policy, SessionContext, StatementFacts, WindowAccess};

/// Cache capacity of the cached analyzer, the `limits.parse_cache_entries` default.
const CACHE_ENTRIES: usize = 10_000;

/// Distinct texts cycled through by the new-literals benchmarks.
const LITERAL_VARIANTS: u64 = 1024;

/// Expected decision of a statement in one window state.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expected {
    Allow,
    AllowWithWindow,
    Deny,
}

/// One benchmarked statement: `{n}` in `sql` marks a numeric literal that
/// the new-literals group replaces on every iteration.
struct Statement {
    id: &'static str,
    sql: &'static str,
    outside_window: Expected,
    /// Decision inside an open window, or `None` when the window changes nothing.
    inside_window: Option<Expected>,
}

const fn plain(id: &'static str, sql: &'static str) -> Statement {
    Statement { id, sql, outside_window: Expected::Allow, inside_window: None }
}

const fn migration(id: &'static str, sql: &'static str) -> Statement {
    Statement { id, sql, outside_window: Expected::Deny, inside_window: Some(Expected::AllowWithWindow) }
}

/// Statements as SQLAlchemy 2 (asyncpg driver, `$n` parameters with casts),
/// pgbench (select-only script, simple protocol) and Alembic send them.
const STATEMENTS: &[Statement] = &[
    plain(
        "orm_select_join",
        "SELECT users.id AS users_id, users.name AS users_name, addresses.id AS addresses_id, \
         addresses.email_address AS addresses_email_address FROM users JOIN addresses \
         ON users.id = addresses.user_id WHERE users.name = $1::VARCHAR ORDER BY addresses.id LIMIT $2::INTEGER",
    ),
    plain(
        "orm_insert_returning",
        "INSERT INTO users (name, fullname) VALUES ($1::VARCHAR, $2::VARCHAR) RETURNING users.id",
    ),
    plain("orm_update", "UPDATE users SET fullname=$1::VARCHAR WHERE users.id = $2::INTEGER"),
    plain("orm_delete", "DELETE FROM addresses WHERE addresses.id = $1::INTEGER"),
    plain("begin", "BEGIN"),
    plain("commit", "COMMIT"),
    plain("set_statement_timeout", "SET statement_timeout = {n}"),
    plain("show_standard_conforming_strings", "show standard_conforming_strings"),
    plain("pgbench_select_only", "SELECT abalance FROM pgbench_accounts WHERE aid = {n};"),
    migration(
        "alembic_create_table",
        "\nCREATE TABLE account (\n\tid SERIAL NOT NULL, \n\tname VARCHAR(50) NOT NULL, \n\t\
         owner_id INTEGER, \n\tcreated_at TIMESTAMP WITHOUT TIME ZONE DEFAULT now() NOT NULL, \n\t\
         PRIMARY KEY (id), \n\tUNIQUE (name), \n\tFOREIGN KEY(owner_id) REFERENCES users (id) ON DELETE CASCADE\n)\n\n",
    ),
    migration("alembic_add_column", "ALTER TABLE account ADD COLUMN last_login TIMESTAMP WITHOUT TIME ZONE"),
    migration("alembic_create_index", "CREATE INDEX ix_account_owner_id ON account (owner_id)"),
    migration(
        "alembic_version_update",
        "UPDATE alembic_version SET version_num='ae1027a6acf' WHERE alembic_version.version_num = '1975ea83b712'",
    ),
];

/// Literal value of `{n}` in the cached and uncached groups.
const FIXED_LITERAL: u64 = 4242;

fn fixed_text(statement: &Statement) -> String {
    statement.sql.replace("{n}", &FIXED_LITERAL.to_string())
}

/// Builds the policy of a typical deployment: default protected tables and
/// always-denied lists, and the suggested Alembic `ddl.allow` list.
fn deployment_policy() -> Policy {
    let mut config = Config::default();
    config.ddl.allow = DEFAULT_DDL_ALLOW.iter().map(|tag| tag.to_string()).collect();
    match Policy::new(&config) {
        Ok(policy) => policy,
        Err(errors) => panic!("benchmark policy is invalid: {errors:?}"),
    }
}

/// Runs the per-statement check: analyze, then decide.
fn evaluate(analyzer: &Analyzer, policy: &Policy, context: &SessionContext<'_>, sql: &str) -> Decision {
    match analyzer.analyze(sql, ParseOptions::default()) {
        Ok(analysis) => policy.decide(&analysis, context),
        Err(error) => panic!("benchmark statement does not parse: {error}"),
    }
}

/// Panics unless `decision` is the expected one, so a benchmark cannot
/// silently measure a different path (for example a syntax error).
fn check_decision(id: &str, decision: &Decision, expected: Expected) {
    let matches = match (decision, expected) {
        (Decision::Allow { uses_window: false }, Expected::Allow) => true,
        (Decision::Allow { uses_window: true }, Expected::AllowWithWindow) => true,
        (Decision::Deny(_), Expected::Deny) => true,
        _ => false,
    };
    assert!(matches, "{id}: unexpected decision {decision:?}");
}

/// Lists the (window label, window access, expected decision) cases a statement is measured in.
fn window_cases(statement: &Statement) -> Vec<(&'static str, WindowAccess, Expected)> {
    let mut cases = vec![("no_window", WindowAccess::None, statement.outside_window)];
    if let Some(expected) = statement.inside_window {
        cases.push(("in_window", WindowAccess::Bound, expected));
    }
    cases
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_millis(1200));
    group.sample_size(30);
    // The default of 100 000 bootstrap resamples added about 2 s to each benchmark on a 2-core machine.
    group.nresamples(10_000);
}

/// Measures every statement with the same text on each iteration.
fn bench_same_text(c: &mut Criterion, group_name: &str, cache_entries: usize) {
    let policy = deployment_policy();
    let prepared: HashMap<String, Arc<StatementFacts>> = HashMap::new();
    let analyzer = Analyzer::new(cache_entries);
    let mut group = c.benchmark_group(group_name);
    configure(&mut group);

    for statement in STATEMENTS {
        let sql = fixed_text(statement);
        for (label, window, expected) in window_cases(statement) {
            let context = SessionContext { window, prepared: &prepared };
            check_decision(statement.id, &evaluate(&analyzer, &policy, &context, &sql), expected);
            group.bench_function(BenchmarkId::new(statement.id, label), |b| {
                b.iter(|| evaluate(&analyzer, &policy, &context, black_box(&sql)))
            });
        }
    }
    group.finish();
}

fn bench_cached(c: &mut Criterion) {
    bench_same_text(c, "policy_cached", CACHE_ENTRIES);
}

fn bench_cached_new_literals(c: &mut Criterion) {
    let policy = deployment_policy();
    let prepared: HashMap<String, Arc<StatementFacts>> = HashMap::new();
    let analyzer = Analyzer::new(CACHE_ENTRIES);
    let mut group = c.benchmark_group("policy_cached_new_literals");
    configure(&mut group);

    let with_literals: Vec<&Statement> = STATEMENTS.iter().filter(|s| s.sql.contains("{n}")).collect();
    for statement in &with_literals {
        let texts: Vec<String> =
            (0..LITERAL_VARIANTS).map(|value| statement.sql.replace("{n}", &(value * 7919 + 1).to_string())).collect();
        for (label, window, expected) in window_cases(statement) {
            let context = SessionContext { window, prepared: &prepared };
            check_decision(statement.id, &evaluate(&analyzer, &policy, &context, &texts[0]), expected);
            let mut next = texts.iter().cycle();
            group.bench_function(BenchmarkId::new(statement.id, label), |b| {
                b.iter(|| {
                    let sql = next.next().map(String::as_str).unwrap_or_default();
                    evaluate(&analyzer, &policy, &context, black_box(sql))
                })
            });
        }
    }
    group.finish();
    let (hits, misses) = analyzer.cache_stats();
    // Only the first text of each statement may miss the cache.
    assert!(misses <= with_literals.len() as u64, "texts with new literals missed the cache: {hits} hits, {misses} misses");
}

fn bench_uncached(c: &mut Criterion) {
    bench_same_text(c, "policy_uncached", 0);
}

criterion_group!(benches, bench_cached, bench_cached_new_literals, bench_uncached);
criterion_main!(benches);
