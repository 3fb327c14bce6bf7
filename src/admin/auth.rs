//! Bearer token check for every authenticated admin route.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AdminEvent, AdminEventKind, AdminState, ApiError};

/// Passes the request on when it carries the configured bearer token.
///
/// Without a configured token, only `GET` requests pass and every change is
/// rejected with 403.
pub(super) async fn require_token(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = state.token.as_deref() else {
        record(&state, AdminEventKind::Forbidden, &request);
        let message = "the admin API is disabled: set admin.token_file to a file containing a bearer token";
        return ApiError::new(StatusCode::FORBIDDEN, message).into_response();
    };

    if bearer_matches(request.headers(), token) {
        return next.run(request).await;
    }

    record(&state, AdminEventKind::Unauthorized, &request);
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "missing or invalid bearer token").into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Compares SHA-256 digests in constant time, so neither the token's
/// content nor its length shows in the response time.
fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    let Some(presented) = bearer_token(headers) else {
        return false;
    };
    let presented = Sha256::digest(presented.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    presented.ct_eq(&expected).into()
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    Some(token.trim())
}

fn record(state: &AdminState, kind: AdminEventKind, request: &Request) {
    let client_addr = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    tracing::warn!(?kind, method = %request.method(), path = request.uri().path(),
        client_addr = ?client_addr, "admin request rejected");

    if let Some(events) = &state.events {
        events(AdminEvent {
            kind,
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            client_addr,
            operator: None,
            session_id: None,
        });
    }
}
