//! Property tests: the frontend decoders never panic or over-allocate on
//! arbitrary input, and the analyzer plus policy never panic on mutated SQL.

use std::collections::HashMap;

use proptest::prelude::*;
use schemagate::policy::{Analyzer, ParseOptions, Policy, SessionContext, WindowAccess};
use schemagate::protocol::{frontend, startup, FrameReader};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn startup_decode_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = startup::decode(&body);
    }

    #[test]
    fn frontend_decoders_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = frontend::query_text(&body);
        let _ = frontend::parse(&body);
        let _ = frontend::bind_names(&body);
        let _ = frontend::target(&body);
        let _ = frontend::execute_portal(&body);
    }

    #[test]
    fn frame_reader_splits_or_rejects(stream in proptest::collection::vec(any::<u8>(), 0..600)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let mut reader = FrameReader::new(stream.as_slice(), 256);
            let mut consumed = 0usize;
            while let Ok(Some(frame)) = reader.next_frame().await {
                prop_assert!(frame.bytes.len() >= 5);
                prop_assert!(frame.bytes.len() <= 256 + 5);
                consumed += frame.bytes.len();
            }
            prop_assert!(consumed <= stream.len());
            Ok(())
        })?;
    }
}

const SEEDS: &[&str] = &[
    "DELETE FROM alembic_version",
    "WITH d AS (DELETE FROM alembic_version RETURNING 1) SELECT 1",
    "DO $$ BEGIN EXECUTE 'DELETE FROM ' || 'alembic_version'; END $$",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "SELECT set_config('search_path', 'evil', false)",
    "COPY (SELECT 1) TO STDOUT",
    "PREPARE p AS UPDATE alembic_version SET version_num = $1",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn policy_never_panics_on_mutated_sql(seed in 0..SEEDS.len(), cut in 0usize..80, insert in "[ -~]{0,12}") {
        let analyzer = Analyzer::new(0);
        let policy = Policy::new(&schemagate::config::Config::default()).unwrap();
        let base = SEEDS[seed];
        let at = cut.min(base.len());
        let text = format!("{}{}{}", &base[..at], insert, &base[at..]);
        let prepared = HashMap::new();
        for window in [WindowAccess::None, WindowAccess::Bound] {
            if let Ok(analysis) = analyzer.analyze(&text, ParseOptions::default()) {
                let _ = policy.decide(&analysis, &SessionContext { window, prepared: &prepared });
            }
        }
    }
}
