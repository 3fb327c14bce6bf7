//! Table-driven checks of the statement analyzer and the rule engine.
//!
//! `tests/data/statements.txt` contains one record per statement:
//!
//! ```text
//! == TAG | CLASS | RELATION | APP | MIGRATOR
//! SQL (any number of lines, up to the next `==`)
//! ```
//!
//! `TAG` and `CLASS` describe the first statement. `RELATION` is
//! `[schema.]name:Access` that must appear in the facts (nested statements
//! included), or `-`. `APP` is the decision without a window; `MIGRATOR` is
//! the decision with `WindowAccess::Available` and with `WindowAccess::Bound`.
//! Lines starting with `#` are comments.
//! Decisions: `A` allowed, `W` allowed because of the window, `D:rule` denied
//! by that rule, `E:rule` not analyzable (denied by that rule).

use std::collections::HashMap;
use std::sync::Arc;

use schemagate::config::Config;
use schemagate::policy::defaults::DEFAULT_DDL_ALLOW;
use schemagate::policy::{
    denial_for_error, Access, Analyzer, Decision, ParseOptions, Policy, SessionContext, StatementFacts, WindowAccess,
};

struct Case {
    line: usize,
    tag: String,
    class: String,
    relation: Option<(Option<String>, String, Access)>,
    app: String,
    migrator: String,
    sql: String,
}

fn test_config() -> Config {
    let mut config = Config::default();
    config.ddl.allow = DEFAULT_DDL_ALLOW.iter().map(|s| s.to_string()).collect();
    config.ddl.deny = vec!["DROP SCHEMA".to_string()];
    config
}

fn test_policy() -> Policy {
    match Policy::new(&test_config()) {
        Ok(policy) => policy,
        Err(errors) => panic!("test config is invalid: {errors:?}"),
    }
}

fn parse_access(text: &str) -> Access {
    match text {
        "Read" => Access::Read,
        "Write" => Access::Write,
        "Lock" => Access::Lock,
        "Ddl" => Access::Ddl,
        other => panic!("unknown access {other}"),
    }
}

fn load_cases() -> Vec<Case> {
    let text = include_str!("data/statements.txt");
    let mut cases: Vec<Case> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if let Some(header) = line.strip_prefix("==") {
            let fields: Vec<&str> = header.split('|').map(str::trim).collect();
            assert_eq!(fields.len(), 5, "line {}: header needs 5 fields: {line}", index + 1);
            let relation = (fields[2] != "-").then(|| {
                let (name, access) = fields[2].rsplit_once(':').expect("relation needs :Access");
                let (schema, name) = match name.split_once('.') {
                    Some((schema, name)) => (Some(schema.to_string()), name.to_string()),
                    None => (None, name.to_string()),
                };
                (schema, name, parse_access(access))
            });
            cases.push(Case {
                line: index + 1,
                tag: fields[0].to_string(),
                class: fields[1].to_string(),
                relation,
                app: fields[3].to_string(),
                migrator: fields[4].to_string(),
                sql: String::new(),
            });
        } else if line.starts_with('#') {
            continue;
        } else if let Some(case) = cases.last_mut() {
            if !(case.sql.is_empty() && line.trim().is_empty()) {
                case.sql.push_str(line);
                case.sql.push('\n');
            }
        }
    }
    for case in &mut cases {
        case.sql = case.sql.trim_end().to_string();
    }
    cases
}

fn has_relation(facts: &StatementFacts, wanted: &(Option<String>, String, Access)) -> bool {
    let found = facts
        .relations
        .iter()
        .any(|r| r.schema == wanted.0 && r.name == wanted.1 && r.access == wanted.2);
    found || facts.nested.iter().any(|n| has_relation(n, wanted))
}

fn decision_code(decision: &Decision) -> String {
    match decision {
        Decision::Allow { uses_window: false } => "A".to_string(),
        Decision::Allow { uses_window: true } => "W".to_string(),
        Decision::Deny(denial) => format!("D:{}", denial.rule),
    }
}

fn decide_text(analyzer: &Analyzer, policy: &Policy, sql: &str, window: WindowAccess) -> String {
    let prepared = HashMap::new();
    let ctx = SessionContext { window, prepared: &prepared };
    match analyzer.analyze(sql, ParseOptions::default()) {
        Ok(analysis) => decision_code(&policy.decide(&analysis, &ctx)),
        Err(error) => format!("E:{}", denial_for_error(&error).rule),
    }
}

#[test]
fn statement_table_matches_facts_and_decisions() {
    let analyzer = Analyzer::new(1000);
    let policy = test_policy();
    let cases = load_cases();
    assert!(cases.len() >= 300, "expected at least 300 statements, found {}", cases.len());

    let mut failures = Vec::new();
    for case in &cases {
        let mut problems = Vec::new();
        if case.tag != "-" {
            match analyzer.analyze(&case.sql, ParseOptions::default()) {
                Ok(analysis) => match analysis.statements.first() {
                    Some(first) => {
                        if first.tag != case.tag {
                            problems.push(format!("tag {:?}, expected {:?}", first.tag, case.tag));
                        }
                        if format!("{:?}", first.class) != case.class {
                            problems.push(format!("class {:?}, expected {}", first.class, case.class));
                        }
                        if let Some(wanted) = &case.relation {
                            if !analysis.statements.iter().any(|s| has_relation(s, wanted)) {
                                problems.push(format!("relation {wanted:?} missing from {:?}", first.relations));
                            }
                        }
                    }
                    None => problems.push("no statements".to_string()),
                },
                Err(error) => problems.push(format!("analyze failed: {error}")),
            }
        }

        for (window, expected) in [
            (WindowAccess::None, &case.app),
            (WindowAccess::Available, &case.migrator),
            (WindowAccess::Bound, &case.migrator),
        ] {
            let got = decide_text(&analyzer, &policy, &case.sql, window);
            if &got != expected {
                problems.push(format!("{window:?}: {got}, expected {expected}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!("line {}: {}\n    {}", case.line, case.sql.lines().next().unwrap_or(""), problems.join("\n    ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn denial_message_names_tag_table_and_rule() {
    let analyzer = Analyzer::new(10);
    let policy = test_policy();
    let prepared = HashMap::new();
    let ctx = SessionContext { window: WindowAccess::None, prepared: &prepared };
    let analysis = analyzer.analyze("DELETE FROM public.alembic_version", ParseOptions::default()).expect("parses");

    let Decision::Deny(denial) = policy.decide(&analysis, &ctx) else { panic!("expected a denial") };
    assert_eq!(denial.sqlstate, "42501");
    assert_eq!(denial.message, "schemagate: DELETE on protected table public.alembic_version is denied (rule protected_tables)");
    assert!(denial.hint.as_deref().unwrap_or("").contains("schemagate window open"));
    assert_eq!(denial.command_tag, "DELETE");
}

#[test]
fn ddl_denials_name_the_list() {
    let analyzer = Analyzer::new(10);
    let policy = test_policy();
    let prepared = HashMap::new();
    let ctx = SessionContext { window: WindowAccess::Bound, prepared: &prepared };

    let analysis = analyzer.analyze("CREATE EXTENSION dblink", ParseOptions::default()).expect("parses");
    let Decision::Deny(denial) = policy.decide(&analysis, &ctx) else { panic!("expected a denial") };
    assert_eq!(denial.rule, "ddl.allow");
    assert_eq!(denial.hint.as_deref(), Some("add \"CREATE EXTENSION\" to ddl.allow in rules.yaml"));

    let analysis = analyzer.analyze("DROP SCHEMA s", ParseOptions::default()).expect("parses");
    let Decision::Deny(denial) = policy.decide(&analysis, &ctx) else { panic!("expected a denial") };
    assert_eq!(denial.rule, "ddl.deny");
    assert_eq!(denial.hint.as_deref(), Some("DROP SCHEMA is in ddl.deny"));
}

#[test]
fn ddl_outside_window_names_object_and_hint() {
    let analyzer = Analyzer::new(10);
    let policy = test_policy();
    let prepared = HashMap::new();
    let ctx = SessionContext { window: WindowAccess::None, prepared: &prepared };
    let analysis = analyzer.analyze("ALTER TABLE gadgets ADD COLUMN color text", ParseOptions::default()).expect("parses");

    let Decision::Deny(denial) = policy.decide(&analysis, &ctx) else { panic!("expected a denial") };
    assert_eq!(denial.message, "schemagate: ALTER TABLE ADD COLUMN on gadgets is denied outside a migration window (rule ddl.allow)");
    assert_eq!(
        denial.hint.as_deref(),
        Some("DDL and writes to protected tables need an open migration window: schemagate window open --database DB --for 30m --reason TEXT")
    );
}

#[test]
fn parse_error_denial_uses_syntax_sqlstate() {
    let analyzer = Analyzer::new(10);
    let error = analyzer.analyze("DELET FROM alembic_version", ParseOptions::default()).expect_err("garbage");
    let denial = denial_for_error(&error);
    assert_eq!(denial.sqlstate, "42601");
    assert_eq!(denial.rule, "parse");
    assert!(denial.message.starts_with("schemagate could not parse the statement: syntax error"), "{}", denial.message);
}

#[test]
fn unknown_tag_in_config_suggests_nearest() {
    let mut config = test_config();
    config.ddl.allow.push("CREATE TABEL".to_string());
    config.always_deny.statements.push("ALTER SISTEM".to_string());
    let errors = Policy::new(&config).expect_err("typos must be rejected");
    assert!(errors.contains(&"unknown command tag \"CREATE TABEL\" in ddl.allow; did you mean \"CREATE TABLE\"?".to_string()), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("\"ALTER SISTEM\" in always_deny.statements; did you mean \"ALTER SYSTEM\"")), "{errors:?}");
}

#[test]
fn default_config_is_valid_and_allows_no_ddl() {
    let policy = Policy::new(&Config::default()).expect("defaults are valid");
    let analyzer = Analyzer::new(10);
    let code = decide_text(&analyzer, &policy, "CREATE TABLE t (i int)", WindowAccess::Bound);
    assert_eq!(code, "D:ddl.allow");
    let code = decide_text(&analyzer, &policy, "SELECT pg_read_file('x')", WindowAccess::Bound);
    assert_eq!(code, "D:always_deny.functions");
}

#[test]
fn execute_is_judged_with_current_window() {
    let analyzer = Analyzer::new(10);
    let policy = test_policy();
    let prepare = analyzer
        .analyze("PREPARE bump(text) AS UPDATE alembic_version SET version_num = $1", ParseOptions::default())
        .expect("parses");
    let statement = &prepare.statements[0];
    assert_eq!(statement.prepares.as_deref(), Some("bump"));
    let body = statement.prepared_body().expect("prepared statement body");
    assert_eq!(body.tag, "UPDATE");

    let mut prepared = HashMap::new();
    prepared.insert("bump".to_string(), Arc::new(body.clone()));
    let run = |sql: &str, window| {
        let analysis = analyzer.analyze(sql, ParseOptions::default()).expect("parses");
        decision_code(&policy.decide(&analysis, &SessionContext { window, prepared: &prepared }))
    };

    assert_eq!(run("EXECUTE bump('zzzz9999')", WindowAccess::Bound), "W");
    assert_eq!(run("EXECUTE bump('zzzz9999')", WindowAccess::None), "D:protected_tables");
    assert_eq!(run("EXPLAIN ANALYZE EXECUTE bump('y')", WindowAccess::None), "D:protected_tables");
    assert_eq!(run("EXPLAIN EXECUTE bump('y')", WindowAccess::None), "A");
    assert_eq!(run("CREATE TEMP TABLE x AS EXECUTE bump('y')", WindowAccess::None), "D:protected_tables");
    assert_eq!(run("EXECUTE unknown_name", WindowAccess::None), "A");
}

#[test]
fn deallocate_facts_name_the_statement() {
    let analyzer = Analyzer::new(10);
    let one = analyzer.analyze("DEALLOCATE PREPARE bump", ParseOptions::default()).expect("parses");
    assert_eq!(one.statements[0].deallocates, Some(Some("bump".to_string())));
    let all = analyzer.analyze("DEALLOCATE ALL", ParseOptions::default()).expect("parses");
    assert_eq!(all.statements[0].deallocates, Some(None));
    assert_eq!(all.statements[0].tag, "DEALLOCATE ALL");
}

#[test]
fn empty_and_comment_only_text_has_no_statements() {
    let analyzer = Analyzer::new(10);
    for sql in ["", "   ", "-- nothing\n", "/* only a comment */", ";"] {
        let analysis = analyzer.analyze(sql, ParseOptions::default()).expect("empty text parses");
        assert!(analysis.statements.is_empty(), "{sql:?}");
    }
}

#[test]
fn cache_counts_hits_and_misses() {
    let analyzer = Analyzer::new(2);
    let opts = ParseOptions::default();
    analyzer.analyze("SELECT a", opts).expect("parses");
    analyzer.analyze("SELECT a", opts).expect("parses");
    analyzer.analyze("SELECT b", opts).expect("parses");
    analyzer.analyze("SELECT c", opts).expect("parses");
    analyzer.analyze("SELECT a", opts).expect("parses");
    assert_eq!(analyzer.cache_stats(), (1, 4));

    let off = ParseOptions { standard_conforming_strings: false };
    analyzer.analyze("SELECT c", off).expect("parses");
    assert_eq!(analyzer.cache_stats(), (1, 5));

    // Texts that differ only in numeric literals share one entry.
    analyzer.analyze("SELECT x FROM t WHERE id = 1", opts).expect("parses");
    analyzer.analyze("SELECT x FROM t WHERE id = 22", opts).expect("parses");
    assert_eq!(analyzer.cache_stats(), (2, 6));
}

#[test]
fn backslash_reading_follows_standard_conforming_strings() {
    let analyzer = Analyzer::new(10);
    let policy = test_policy();
    let sql = "SELECT 'a\\'' ; DELETE FROM alembic_version; --'";

    let on = analyzer.analyze(sql, ParseOptions::default()).expect("one string literal");
    assert_eq!(on.statements.len(), 1);

    let off = analyzer.analyze(sql, ParseOptions { standard_conforming_strings: false }).expect("two statements");
    assert_eq!(off.statements.len(), 2);
    let prepared = HashMap::new();
    let ctx = SessionContext { window: WindowAccess::None, prepared: &prepared };
    assert_eq!(decision_code(&policy.decide(&off, &ctx)), "D:protected_tables");
}

#[test]
fn plpgsql_backslash_body_unsupported_when_strings_off() {
    let analyzer = Analyzer::new(10);
    let off = ParseOptions { standard_conforming_strings: false };
    let analysis = analyzer.analyze("DO $$ BEGIN PERFORM E'\\\\'; END $$", off).expect("parses");
    assert!(analysis.statements[0].unsupported.is_some());
}

fn on_small_stack<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(work)
        .expect("spawn thread")
        .join()
        .expect("analysis must not crash the thread")
}

#[test]
fn deep_parentheses_do_not_overflow_stack() {
    let result = on_small_stack(|| {
        let sql = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
        Analyzer::new(0).analyze(&sql, ParseOptions::default()).map(|a| a.statements.len())
    });
    assert_eq!(result.expect("parentheses add no nesting"), 1);
}

#[test]
fn megabyte_expression_is_too_complex() {
    let result = on_small_stack(|| {
        let sql = format!("SELECT 1{}", "+1".repeat(500_000));
        Analyzer::new(0).analyze(&sql, ParseOptions::default()).map(|a| a.statements.len())
    });
    let error = result.expect_err("a 500000-level expression cannot be checked");
    assert_eq!(denial_for_error(&error).sqlstate, "42501");
}

#[test]
fn deep_subqueries_are_too_complex_not_a_crash() {
    let result = on_small_stack(|| {
        let mut sql = String::from("SELECT 1");
        for _ in 0..400 {
            sql = format!("SELECT * FROM ({sql}) AS q");
        }
        Analyzer::new(0).analyze(&sql, ParseOptions::default()).map(|a| a.statements.len())
    });
    assert!(matches!(result, Err(schemagate::policy::AnalyzeError::TooComplex(_))), "{result:?}");
}

#[test]
fn malformed_plpgsql_is_denied_without_hanging() {
    let result = on_small_stack(|| {
        let analyzer = Analyzer::new(0);
        let policy = test_policy();
        decide_text(&analyzer, &policy, "DO $$ DECLARE c CURSOR(x int) FOR SELECT 1; BEGIN OPEN c(1 $$;", WindowAccess::Bound)
    });
    assert_eq!(result, "D:unsupported");
}

#[test]
fn primary_objects_lists_relations_and_objects() {
    let analyzer = Analyzer::new(10);
    let analysis = analyzer
        .analyze("ALTER TABLE public.widgets ADD CONSTRAINT fk FOREIGN KEY (x) REFERENCES gadgets (id)", ParseOptions::default())
        .expect("parses");
    let objects = schemagate::policy::primary_objects(&analysis.statements[0]);
    assert_eq!(objects, vec!["public.widgets".to_string(), "gadgets".to_string()]);

    let analysis = analyzer.analyze("DROP FUNCTION app.f(int)", ParseOptions::default()).expect("parses");
    assert_eq!(schemagate::policy::primary_objects(&analysis.statements[0]), vec!["app.f".to_string()]);
}

#[test]
fn alter_table_subcommands_in_order() {
    let analyzer = Analyzer::new(10);
    let analysis = analyzer
        .analyze(
            "ALTER TABLE t ADD COLUMN a int, ALTER COLUMN b TYPE text, ALTER COLUMN c SET NOT NULL, \
             ALTER COLUMN d DROP NOT NULL, ALTER COLUMN e SET DEFAULT 1, DROP COLUMN f, \
             ADD CONSTRAINT k CHECK (a > 0), DROP CONSTRAINT j, OWNER TO app, ENABLE TRIGGER tr",
            ParseOptions::default(),
        )
        .expect("parses");
    let expected = [
        "ADD COLUMN", "ALTER COLUMN TYPE", "SET NOT NULL", "DROP NOT NULL", "SET DEFAULT", "DROP COLUMN",
        "ADD CONSTRAINT", "DROP CONSTRAINT", "OWNER TO", "ENABLE TRIGGER",
    ];
    assert_eq!(analysis.statements[0].subcommands, expected);
}

#[test]
fn normalize_and_fingerprint_hide_literals() {
    let normalized = schemagate::policy::normalize("SELECT * FROM t WHERE secret = 'hunter2'").expect("normalizes");
    assert!(!normalized.contains("hunter2"), "{normalized}");
    let a = schemagate::policy::fingerprint("SELECT * FROM t WHERE x = 1").expect("fingerprint");
    let b = schemagate::policy::fingerprint("SELECT * FROM t WHERE x = 2").expect("fingerprint");
    assert_eq!(a, b);
}

/// A small deterministic generator, so a failing input can be reproduced.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut XorShift, seed: &str, others: &[&str]) -> String {
    let mut bytes = seed.as_bytes().to_vec();
    const PIECES: &[&str] = &["(", ")", "'", "$$", "\"", ";", "\\", "--", "/*", "*/", " DO ", " EXECUTE ", "U&\"", "E'", ","];
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(5) {
            0 if !bytes.is_empty() => {
                let end = (at + rng.below(8)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            1 => {
                let piece = PIECES[rng.below(PIECES.len())];
                bytes.splice(at..at, piece.bytes());
            }
            2 => bytes.truncate(at),
            3 => {
                let other = others[rng.below(others.len())].as_bytes();
                let from = rng.below(other.len());
                bytes.splice(at..at, other[from..].iter().copied());
            }
            _ => {
                bytes.insert(at, (rng.next() % 128) as u8);
            }
        }
    }
    String::from_utf8_lossy(&bytes).replace('\0', " ")
}

#[test]
fn mutated_statements_never_panic() {
    let done = on_small_stack(|| {
        let cases = load_cases();
        let sqls: Vec<&str> = cases.iter().map(|c| c.sql.as_str()).collect();
        let analyzer = Analyzer::new(64);
        let policy = test_policy();
        let mut rng = XorShift(0x5eed_1234_abcd_ef01);
        for round in 0..3000 {
            let seed = sqls[round % sqls.len()];
            let sql = mutate(&mut rng, seed, &sqls);
            for window in [WindowAccess::None, WindowAccess::Bound] {
                let _ = decide_text(&analyzer, &policy, &sql, window);
            }
        }
        true
    });
    assert!(done);
}

#[test]
fn analyzer_and_policy_are_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Analyzer>();
    assert_send_sync::<Policy>();
    assert_send_sync::<Arc<schemagate::policy::Analysis>>();
}

#[test]
fn custom_version_table_is_protected_in_every_spelling() {
    let mut config = test_config();
    let long_name = "v".repeat(70);
    config.protected_tables = vec!["migrations.schema_rev".to_string(), long_name.clone()];
    let policy = Policy::new(&config).expect("valid config");
    let analyzer = Analyzer::new(10);

    let denied = [
        "UPDATE migrations.schema_rev SET version_num = 'x'".to_string(),
        "UPDATE schema_rev SET version_num = 'x'".to_string(),
        format!("DELETE FROM {long_name}"),
        format!("DELETE FROM {}", "v".repeat(63)),
    ];
    for sql in &denied {
        assert_eq!(decide_text(&analyzer, &policy, sql, WindowAccess::None), "D:protected_tables", "{sql}");
        assert_eq!(decide_text(&analyzer, &policy, sql, WindowAccess::Bound), "W", "{sql}");
    }

    let other_schema = "UPDATE public.schema_rev SET version_num = 'x'";
    assert_eq!(decide_text(&analyzer, &policy, other_schema, WindowAccess::None), "A");
    let search_path = "SET search_path = migrations";
    assert_eq!(decide_text(&analyzer, &policy, search_path, WindowAccess::None), "D:always_deny.settings");
}

#[test]
fn dynamic_sql_pseudo_tag_allows_execute_in_window() {
    let mut config = test_config();
    config.ddl.allow.push("dynamic sql".to_string());
    let policy = Policy::new(&config).expect("valid config");
    let analyzer = Analyzer::new(10);
    let sql = "DO $$ BEGIN EXECUTE 'SELECT ' || '1'; END $$";

    assert_eq!(decide_text(&analyzer, &policy, sql, WindowAccess::Bound), "W");
    assert_eq!(decide_text(&analyzer, &policy, sql, WindowAccess::None), "D:ddl.allow");
}

#[test]
fn alter_table_subcommand_entries_cover_only_listed_commands() {
    let mut config = test_config();
    config.ddl.allow = vec!["ALTER TABLE ADD COLUMN".to_string(), "ALTER TABLE SET NOT NULL".to_string()];
    let policy = Policy::new(&config).expect("valid config");
    let analyzer = Analyzer::new(10);

    let allowed = "ALTER TABLE t ADD COLUMN a int, ALTER COLUMN a SET NOT NULL";
    assert_eq!(decide_text(&analyzer, &policy, allowed, WindowAccess::Bound), "W");
    let mixed = "ALTER TABLE t ADD COLUMN a int, DROP COLUMN b";
    assert_eq!(decide_text(&analyzer, &policy, mixed, WindowAccess::Bound), "D:ddl.allow");
}

#[test]
fn protected_write_mixed_with_other_statements_denied_in_window() {
    let analyzer = Analyzer::new(16);
    let policy = test_policy();
    let mixed = "UPDATE gadgets SET name = 'a;b' WHERE id = 1; DELETE FROM alembic_version WHERE version_num = 'r5'";
    for window in [WindowAccess::None, WindowAccess::Available, WindowAccess::Bound] {
        assert_eq!(decide_text(&analyzer, &policy, mixed, window), "D:protected_tables");
    }
    let alone = "DELETE FROM alembic_version WHERE alembic_version.version_num = 'r5'";
    assert_eq!(decide_text(&analyzer, &policy, alone, WindowAccess::Bound), "W");
    let reads = "SELECT 1; SELECT version_num FROM alembic_version";
    assert_eq!(decide_text(&analyzer, &policy, reads, WindowAccess::None), "A");
}

/// Replaces every run of ASCII digits with `7`, inside strings and names too.
fn with_other_numbers(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut in_digits = false;
    for c in sql.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('7');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

#[test]
fn cached_variant_never_changes_decision() {
    let policy = test_policy();
    let uncached = Analyzer::new(0);
    for case in load_cases() {
        let cached = Analyzer::new(64);
        let _ = cached.analyze(&with_other_numbers(&case.sql), ParseOptions::default());
        for window in [WindowAccess::None, WindowAccess::Available, WindowAccess::Bound] {
            let expected = decide_text(&uncached, &policy, &case.sql, window);
            let actual = decide_text(&cached, &policy, &case.sql, window);
            assert_eq!(actual, expected, "line {}: {}", case.line, case.sql);
        }
    }
}

#[test]
fn search_path_schemas_are_configurable() {
    let analyzer = Analyzer::new(16);
    let mut config = test_config();
    config.search_path_schemas = vec!["$user".to_string(), "public".to_string(), "tenant_a".to_string()];
    let policy = Policy::new(&config).expect("valid config");
    let allowed = "SET search_path = tenant_a, public";
    assert_eq!(decide_text(&analyzer, &policy, allowed, WindowAccess::None), "A");
    let set_config = "SELECT set_config('search_path', 'tenant_a', false)";
    assert_eq!(decide_text(&analyzer, &policy, set_config, WindowAccess::None), "A");
    let denied = "SET search_path = evil, public";
    assert_eq!(decide_text(&analyzer, &policy, denied, WindowAccess::None), "D:always_deny.settings");
    let late_catalog = "SET search_path = tenant_a, pg_catalog";
    assert_eq!(decide_text(&analyzer, &policy, late_catalog, WindowAccess::None), "D:always_deny.settings");
    let default_policy = test_policy();
    assert_eq!(decide_text(&analyzer, &default_policy, allowed, WindowAccess::None), "D:always_deny.settings");
}
