//! Per-session policy state: which statements were prepared, what the
//! window manager allows, and how each client message is judged.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::BytesMut;

use super::deny::Substitutions;
use super::names::NameMap;
use super::relay::{check_empty_body, query_text};
use super::Shared;
use crate::audit::AuditRecord;
use crate::config::AuditFailureMode;
use crate::metrics::Decision as MetricDecision;
use crate::policy::{Analysis, AnalyzeError, Decision, Denial, ParseOptions, SessionContext, StatementFacts, WindowAccess};
use crate::protocol::backend::ProxyError;
use crate::protocol::frame::Message;
use crate::protocol::{frontend, sqlstate};
use crate::window::SessionIdentity;

/// Statement name of the Parse sent in place of a denied Bind. The server never creates it, because its text fails to parse.
const DENIED_BIND_STATEMENT: &[u8] = b"schemagate_denied_bind";

/// Analyses kept for protocol-level prepared statements, across all names.
const MAX_PREPARED_ANALYSES: usize = 10_000;

/// Analyses behind one protocol-level statement name.
#[derive(Default)]
struct PreparedStatement {
    analyses: Vec<Arc<Analysis>>,
    /// Policy generation under which every analysis was allowed without a
    /// window. Such a decision cannot change until the policy is reloaded, so
    /// a Bind then skips judging.
    stable_under: Option<u64>,
}

/// Outcome of judging one SQL text.
pub enum Verdict {
    Allow(Arc<Analysis>),
    Deny(ProxyError),
}

pub struct Judge {
    shared: Arc<Shared>,
    pub identity: SessionIdentity,
    pub application_name: String,
    pub substitutions: Substitutions,
    /// Every analysis ever parsed under a protocol statement name. A name is
    /// judged by all of them, because the proxy cannot see which Parse or
    /// Close the server accepted.
    statements: NameMap<PreparedStatement>,
    statement_count: usize,
    /// Statement name behind each portal, from the latest Bind of that portal.
    portals: NameMap<Vec<u8>>,
    /// SQL `PREPARE` bodies by name, first one kept.
    sql_prepared: HashMap<String, Arc<StatementFacts>>,
    pub transaction_status: u8,
    pub server_sent_fatal: bool,
}

impl Judge {
    pub fn new(shared: Arc<Shared>, identity: SessionIdentity, application_name: String) -> Self {
        Judge {
            shared,
            identity,
            application_name,
            substitutions: Substitutions::new(),
            statements: NameMap::default(),
            statement_count: 0,
            portals: NameMap::default(),
            sql_prepared: HashMap::new(),
            transaction_status: b'I',
            server_sent_fatal: false,
        }
    }

    /// Judges one client message and appends what the server gets in its place.
    pub fn client_message(&mut self, frame: Message<'_>, out: &mut BytesMut) -> Result<(), ProxyError> {
        match frame.tag {
            b'Q' => self.query(frame, out),
            b'P' => self.parse(frame, out),
            b'B' => self.bind(frame, out),
            b'S' | b'H' => {
                check_empty_body(frame)?;
                out.extend_from_slice(&frame.bytes);
            }
            b'C' | b'D' => {
                if let Err(error) = frontend::target(frame.body()) {
                    out.extend_from_slice(&self.substitutions.parse(DENIED_BIND_STATEMENT, format_error(error)));
                } else {
                    out.extend_from_slice(&frame.bytes);
                }
            }
            b'E' => self.execute(frame, out),
            b'd' | b'c' | b'f' | b'X' => out.extend_from_slice(&frame.bytes),
            b'F' => {
                let error = ProxyError::error(
                    sqlstate::INSUFFICIENT_PRIVILEGE,
                    "schemagate: FunctionCall messages are denied (rule always_deny.function_call)",
                )
                .with_hint(Some("call the function with a SELECT statement instead".into()));
                self.audit_denial("FUNCTION CALL", "always_deny.function_call", &error, None);
                out.extend_from_slice(&self.substitutions.query(error));
            }
            other => {
                return Err(ProxyError::fatal(
                    sqlstate::PROTOCOL_VIOLATION,
                    format!("invalid frontend message type {}", other),
                ))
            }
        }
        Ok(())
    }

    fn query(&mut self, frame: Message<'_>, out: &mut BytesMut) {
        let text = match query_text(frame) {
            Ok(text) => text,
            Err(error) => {
                out.extend_from_slice(&self.substitutions.query(error));
                return;
            }
        };
        match self.judge_text(text) {
            Verdict::Allow(analysis) => {
                self.remember_sql_prepared(&analysis);
                out.extend_from_slice(&frame.bytes);
            }
            Verdict::Deny(error) => out.extend_from_slice(&self.substitutions.query(error)),
        }
    }

    fn parse(&mut self, frame: Message<'_>, out: &mut BytesMut) {
        let message = match frontend::parse(frame.body()) {
            Ok(message) => message,
            Err(error) => {
                out.extend_from_slice(&self.substitutions.parse(DENIED_BIND_STATEMENT, format_error(error)));
                return;
            }
        };
        let name = message.name;
        match self.judge_text(message.query) {
            Verdict::Allow(analysis) => {
                if self.statement_count >= MAX_PREPARED_ANALYSES {
                    let error = ProxyError::error(
                        sqlstate::PROGRAM_LIMIT_EXCEEDED,
                        format!("schemagate keeps at most {MAX_PREPARED_ANALYSES} prepared statements per session"),
                    );
                    out.extend_from_slice(&self.substitutions.parse(name, error));
                    return;
                }
                self.remember_statement(name, analysis);
                out.extend_from_slice(&frame.bytes);
            }
            Verdict::Deny(error) => out.extend_from_slice(&self.substitutions.parse(name, error)),
        }
    }

    /// Judges the statement behind a Bind again: a window may have closed since the Parse.
    fn bind(&mut self, frame: Message<'_>, out: &mut BytesMut) {
        let (portal, statement) = match frontend::bind_names(frame.body()) {
            Ok(names) => names,
            Err(error) => {
                out.extend_from_slice(&self.substitutions.parse(DENIED_BIND_STATEMENT, format_error(error)));
                return;
            }
        };
        if self.portals.get(portal).map(Vec::as_slice) != Some(statement) {
            self.portals.insert(portal, statement.to_vec());
        }
        if let Err(error) = self.rejudge_statement(statement) {
            out.extend_from_slice(&self.substitutions.parse(DENIED_BIND_STATEMENT, error));
            return;
        }
        out.extend_from_slice(&frame.bytes);
    }

    /// Judges the statement behind a portal again when it runs: a portal
    /// bound inside a window must not run after the window closed.
    fn execute(&mut self, frame: Message<'_>, out: &mut BytesMut) {
        let portal = match frontend::execute_portal(frame.body()) {
            Ok(portal) => portal,
            Err(error) => {
                out.extend_from_slice(&self.substitutions.parse(DENIED_BIND_STATEMENT, format_error(error)));
                return;
            }
        };
        let generation = self.shared.policy_generation();
        let statement = match self.portals.get(portal) {
            Some(statement) if !self.is_stable(statement, generation) => statement.clone(),
            _ => {
                out.extend_from_slice(&frame.bytes);
                return;
            }
        };
        if let Err(error) = self.rejudge_statement(&statement) {
            out.extend_from_slice(&self.substitutions.parse(DENIED_BIND_STATEMENT, error));
            return;
        }
        out.extend_from_slice(&frame.bytes);
    }

    fn is_stable(&self, statement: &[u8], generation: u64) -> bool {
        self.statements.get(statement).is_some_and(|entry| entry.stable_under == Some(generation))
    }

    /// Applies the current policy and window state to every analysis known under `statement`.
    fn rejudge_statement(&mut self, statement: &[u8]) -> Result<(), ProxyError> {
        let generation = self.shared.policy_generation();
        let Some(entry) = self.statements.get_mut(statement) else {
            // Unknown to the proxy means unknown to the server, which raises 26000.
            return Ok(());
        };
        if entry.analyses.iter().all(|analysis| analysis.allowed_anywhere.is_set_for(generation)) {
            entry.stable_under = Some(generation);
        }
        if entry.stable_under == Some(generation) {
            let tag = entry.analyses.last().map_or("EMPTY", |analysis| first_tag(analysis));
            self.shared.metrics.statement(MetricDecision::Allow, tag);
            return Ok(());
        }

        let analyses = entry.analyses.clone();
        let mut stable = true;
        for analysis in &analyses {
            let uses_window = self.decide(analysis)?;
            stable &= !uses_window && !executes_prepared(analysis);
        }
        if let (true, Some(entry)) = (stable, self.statements.get_mut(statement)) {
            entry.stable_under = Some(generation);
        }
        Ok(())
    }

    fn remember_statement(&mut self, name: &[u8], analysis: Arc<Analysis>) {
        let entry = self.statements.get_or_default(name);
        if name.is_empty() {
            // The unnamed statement is always replaced, or dropped if its Parse fails.
            self.statement_count -= entry.analyses.len();
            entry.analyses.clear();
        }
        if !entry.analyses.iter().any(|known| Arc::ptr_eq(known, &analysis)) {
            entry.analyses.push(analysis);
            entry.stable_under = None;
            self.statement_count += 1;
        }
    }

    fn remember_sql_prepared(&mut self, analysis: &Analysis) {
        for statement in &analysis.statements {
            if let (Some(name), Some(body)) = (&statement.prepares, statement.prepared_body()) {
                self.sql_prepared.entry(name.clone()).or_insert_with(|| Arc::new(body.clone()));
            }
        }
    }

    /// Parses and judges SQL text.
    pub fn judge_text(&mut self, text: &[u8]) -> Verdict {
        let Ok(text) = std::str::from_utf8(text) else {
            let error = ProxyError::error(
                sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
                "schemagate: invalid byte sequence for encoding \"UTF8\" in statement text",
            );
            self.audit_denial("UNKNOWN", "parse", &error, None);
            return Verdict::Deny(error);
        };
        let analysis = match self.shared.analyzer.analyze(text, ParseOptions::default()) {
            Ok(analysis) => analysis,
            Err(error) => {
                let denial = analyze_error(error);
                self.audit_denial("UNKNOWN", "parse", &denial, None);
                return Verdict::Deny(denial);
            }
        };
        match self.decide(&analysis) {
            Ok(_) => Verdict::Allow(analysis),
            Err(error) => Verdict::Deny(error),
        }
    }

    /// Applies the policy with the session's current window access, binding to
    /// a window when needed. Returns whether the statement needed the window.
    fn decide(&mut self, analysis: &Analysis) -> Result<bool, ProxyError> {
        // Read before the policy, so a reload in between only makes the mark stale.
        let generation = self.shared.policy_generation();
        if analysis.allowed_anywhere.is_set_for(generation) {
            self.shared.metrics.statement(MetricDecision::Allow, first_tag(analysis));
            return Ok(false);
        }

        let started = std::time::Instant::now();
        let policy = self.shared.policy();
        let access = self.shared.windows.access(&self.identity);
        let context = SessionContext { window: access, prepared: &self.sql_prepared };
        let mut decision = policy.decide(analysis, &context);
        self.shared.metrics.policy_evaluated(started.elapsed());

        if decision == (Decision::Allow { uses_window: true }) && access == WindowAccess::Available {
            match self.shared.windows.bind(&self.identity) {
                Some(window_id) => {
                    tracing::info!(session = self.identity.session_id, window = %window_id, "session bound to migration window");
                    self.shared.registry.set_window(self.identity.session_id, Some(window_id));
                }
                None => {
                    let context = SessionContext { window: WindowAccess::None, prepared: &self.sql_prepared };
                    decision = policy.decide(analysis, &context);
                }
            }
        }

        let tag = first_tag(analysis);
        match decision {
            Decision::Allow { uses_window } => {
                self.mark_allowed_anywhere(analysis, uses_window, generation);
                let result = self.audit_allowed(analysis, uses_window);
                let outcome = if result.is_ok() { MetricDecision::Allow } else { MetricDecision::Deny };
                self.shared.metrics.statement(outcome, tag);
                if result.is_err() {
                    self.shared.metrics.denial("audit.on_failure");
                }
                result.map(|()| uses_window)
            }
            Decision::Deny(denial) => {
                let error = denial_error(&denial);
                self.audit_denial(&denial.command_tag, &denial.rule, &error, Some(analysis));
                self.shared.metrics.statement(MetricDecision::Deny, &denial.command_tag);
                self.shared.metrics.denial(&denial.rule);
                Err(error)
            }
        }
    }

    /// Marks a text allowed for every session when nothing about this session
    /// decided it, and when allowed statements are not audited one by one.
    fn mark_allowed_anywhere(&self, analysis: &Analysis, uses_window: bool, generation: u64) {
        if uses_window || executes_prepared(analysis) || self.shared.config().audit.log_allowed {
            return;
        }
        analysis.allowed_anywhere.set(generation);
    }

    /// Records an allowed statement; a window-dependent one is denied when the audit log fails under `on_failure: deny`.
    fn audit_allowed(&self, analysis: &Analysis, uses_window: bool) -> Result<(), ProxyError> {
        let config = self.shared.config();
        if !uses_window && !config.audit.log_allowed {
            return Ok(());
        }
        let tag = analysis.statements.first().map(|s| s.tag.clone()).unwrap_or_default();
        let mut record = self.record("decision");
        record.decision = Some("allow");
        record.command_tag = Some(tag);
        record.window_id = self.shared.windows.bound_window(self.identity.session_id);
        describe_statement(&mut record, analysis);
        let written = if uses_window { self.shared.audit.write_durable(record) } else { self.shared.audit.write(record) };
        if written.is_err() {
            self.shared.metrics.audit_failure();
        }
        match written {
            Err(error) if uses_window && config.audit.on_failure == AuditFailureMode::Deny => {
                tracing::error!(session = self.identity.session_id, %error, "audit log write failed; denying the statement");
                Err(ProxyError::error(
                    sqlstate::INSUFFICIENT_PRIVILEGE,
                    "schemagate: the audit log cannot be written, so statements that need a migration window are denied (rule audit.on_failure)",
                ))
            }
            Err(error) => {
                tracing::error!(session = self.identity.session_id, %error, "audit log write failed");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    fn audit_denial(&self, tag: &str, rule: &str, error: &ProxyError, analysis: Option<&Analysis>) {
        tracing::info!(session = self.identity.session_id, command = tag, rule, "statement denied");
        let mut record = self.record("decision");
        record.decision = Some("deny");
        record.command_tag = Some(tag.to_string());
        record.rule = Some(rule.to_string());
        record.sqlstate = Some(error.sqlstate.to_string());
        record.window_id = self.shared.windows.bound_window(self.identity.session_id);
        if let Some(analysis) = analysis {
            describe_statement(&mut record, analysis);
        }
        if let Err(error) = self.shared.audit.write_durable(record) {
            self.shared.metrics.audit_failure();
            tracing::error!(session = self.identity.session_id, %error, "audit log write failed");
        }
    }

    fn record(&self, event: &'static str) -> AuditRecord {
        AuditRecord {
            event,
            session_id: Some(self.identity.session_id),
            client_addr: Some(self.identity.client_addr.to_string()),
            client_cert_subject: self.identity.client_cert_subject.clone(),
            user: Some(self.identity.user.clone()),
            database: Some(self.identity.database.clone()),
            application_name: Some(self.application_name.clone()),
            ..AuditRecord::default()
        }
    }
}

/// Command tag of the first statement, for metrics.
fn first_tag(analysis: &Analysis) -> &str {
    analysis.statements.first().map(|s| s.tag.as_str()).unwrap_or("EMPTY")
}

/// Whether any statement, nested ones included, runs an SQL-level prepared statement.
fn executes_prepared(analysis: &Analysis) -> bool {
    fn executes(facts: &StatementFacts) -> bool {
        facts.executes.is_some() || facts.nested.iter().any(executes)
    }
    analysis.statements.iter().any(executes)
}

/// Adds the normalized statement (literals replaced, so no data or passwords),
/// its fingerprint and the objects it names to an audit record.
fn describe_statement(record: &mut AuditRecord, analysis: &Analysis) {
    record.statement = crate::policy::normalize(&analysis.text);
    record.fingerprint = crate::policy::fingerprint(&analysis.text);
    record.objects = analysis.statements.iter().flat_map(crate::policy::primary_objects).collect();
}

fn denial_error(denial: &Denial) -> ProxyError {
    ProxyError::error(denial.sqlstate, denial.message.clone()).with_hint(denial.hint.clone())
}

fn analyze_error(error: AnalyzeError) -> ProxyError {
    match error {
        AnalyzeError::Syntax(message) => ProxyError::error(
            sqlstate::SYNTAX_ERROR,
            format!("schemagate could not parse the statement, so it is denied: {message}"),
        ),
        AnalyzeError::TooComplex(message) => ProxyError::error(
            sqlstate::INSUFFICIENT_PRIVILEGE,
            format!("schemagate cannot check the statement, so it is denied: {message}"),
        ),
    }
}

fn format_error(error: frontend::FormatError) -> ProxyError {
    ProxyError::error(sqlstate::PROTOCOL_VIOLATION, error.to_string())
}
