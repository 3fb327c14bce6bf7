//! Route handlers.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::server::SessionInfo;
use crate::window::{OpenWindow, WindowView};

use super::{AdminEvent, AdminEventKind, AdminState, ApiError, REQUEST_TIMEOUT};

/// Header naming the operator behind a request, for the window's `opened_by`.
const OPERATOR_HEADER: &str = "x-schemagate-operator";

/// `opened_by` when the request names no operator.
const DEFAULT_OPERATOR: &str = "admin-token";

const MAX_OPERATOR_LEN: usize = 128;

pub(super) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

pub(super) async fn readyz(State(state): State<AdminState>) -> Response {
    if (state.ready)() {
        (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response()
    } else {
        let body = Json(json!({ "status": "not ready" }));
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

pub(super) async fn metrics(State(state): State<AdminState>) -> Result<Response, ApiError> {
    let render = state
        .metrics
        .as_ref()
        .ok_or_else(|| ApiError::not_found("metrics are not enabled"))?;
    let content_type = [(
        header::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8",
    )];
    Ok((content_type, render()).into_response())
}

pub(super) async fn list_windows(State(state): State<AdminState>) -> Json<Vec<WindowView>> {
    Json(state.windows.list())
}

pub(super) async fn open_window(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Result<Json<OpenWindow>, JsonRejection>,
) -> Result<(StatusCode, Json<WindowView>), ApiError> {
    let Json(mut request) = body.map_err(|rejection| {
        ApiError::bad_request(format!("invalid window request: {}", rejection.body_text()))
    })?;
    request.opened_by = operator(&headers)?;

    // Opening may write the state file, so it runs off the async workers.
    let windows = state.windows.clone();
    let view = tokio::task::spawn_blocking(move || windows.open(request))
        .await
        .map_err(|error| ApiError::internal(&error))??;
    Ok((StatusCode::CREATED, Json(view)))
}

pub(super) async fn close_window(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<WindowView>, ApiError> {
    let windows = state.windows.clone();
    let view = tokio::task::spawn_blocking(move || windows.close(&id))
        .await
        .map_err(|error| ApiError::internal(&error))??;
    Ok(Json(view))
}

pub(super) async fn list_sessions(State(state): State<AdminState>) -> Json<Vec<SessionInfo>> {
    let mut sessions = state.sessions.list();
    for session in &mut sessions {
        session.window_id = state.windows.bound_window(session.id);
    }
    Json(sessions)
}

pub(super) async fn terminate_session(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let session_id: u64 = id.parse().map_err(|_| {
        ApiError::bad_request(format!("invalid session id {id:?}: expected a number"))
    })?;
    if !state.sessions.terminate(session_id) {
        return Err(ApiError::not_found(format!(
            "session {session_id} not found"
        )));
    }

    let operator = operator(&headers)?;
    tracing::info!(session_id, %operator, "session terminated through the admin API");
    if let Some(events) = &state.events {
        events(AdminEvent {
            kind: AdminEventKind::SessionTerminated,
            method: "DELETE".into(),
            path: format!("/v1/sessions/{session_id}"),
            client_addr: None,
            operator: Some(operator),
            session_id: Some(session_id),
        });
    }
    Ok(Json(json!({ "id": session_id, "terminated": true })))
}

pub(super) async fn not_found() -> ApiError {
    ApiError::not_found("admin endpoint not found")
}

/// Returns 408 when a request, body upload included, takes too long.
pub(super) async fn limit_time(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(StatusCode::REQUEST_TIMEOUT, "request timed out").into_response(),
    }
}

/// Returns the operator named by the request's header, or the default.
fn operator(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(value) = headers.get(OPERATOR_HEADER) else {
        return Ok(DEFAULT_OPERATOR.to_owned());
    };

    let invalid = || {
        ApiError::bad_request(format!(
            "invalid {OPERATOR_HEADER} header: expected up to {MAX_OPERATOR_LEN} printable characters"
        ))
    };
    let name = value.to_str().map_err(|_| invalid())?.trim();
    if name.is_empty() || name.len() > MAX_OPERATOR_LEN || name.chars().any(char::is_control) {
        return Err(invalid());
    }
    Ok(name.to_owned())
}
