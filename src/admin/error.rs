//! JSON error responses: `{"error": "message"}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::window::WindowError;

/// An error response with its HTTP status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// Builds the error for a server-side failure. The caller gets a generic
    /// message and the detail goes to the log.
    pub fn internal(detail: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "admin request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the schemagate log",
        )
    }
}

impl From<WindowError> for ApiError {
    fn from(error: WindowError) -> ApiError {
        match error {
            WindowError::Invalid(_) => ApiError::bad_request(error.to_string()),
            WindowError::NotFound(_) => ApiError::not_found(error.to_string()),
            WindowError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, error.to_string()),
            WindowError::State(_) => ApiError::internal(&error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            error: &self.message,
        });
        (self.status, body).into_response()
    }
}
