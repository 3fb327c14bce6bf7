// TODO: placeholder until the analyzer lands; allows everything.
use std::sync::Arc;

use super::*;

pub struct Analyzer;

impl Analyzer {
    pub fn new(_capacity: usize) -> Self {
        Analyzer
    }

    pub fn analyze(&self, _sql: &str, _opts: ParseOptions) -> Result<Arc<Analysis>, AnalyzeError> {
        Ok(Arc::new(Analysis::default()))
    }
}

pub struct Policy;

impl Policy {
    pub fn new(_config: &crate::config::Config) -> Result<Policy, Vec<String>> {
        Ok(Policy)
    }

    pub fn decide(&self, _analysis: &Analysis, _ctx: &SessionContext) -> Decision {
        Decision::Allow { uses_window: false }
    }
}

impl StatementFacts {
    pub fn prepared_body(&self) -> Option<&StatementFacts> {
        self.nested.first()
    }
}

impl Analyzer {
    pub fn cache_stats(&self) -> (u64, u64) {
        (0, 0)
    }
}
