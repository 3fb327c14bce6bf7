use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::*;
use crate::config::{Config, Migrator};
use crate::server::SessionInfo;

const TOKEN: &str = "s3cret-admin-token";

struct Harness {
    state: AdminState,
    events: Arc<Mutex<Vec<AdminEvent>>>,
    session_token: CancellationToken,
}

fn harness(token: Option<&str>) -> Harness {
    let config = Config {
        migrators: vec![Migrator {
            user: "migrator".into(),
            databases: vec!["app".into()],
            client_cert_subject: None,
            source: Vec::new(),
        }],
        ..Config::default()
    };
    let windows = WindowManager::new(&config).expect("window manager");

    let sessions = Registry::new();
    let session_token = CancellationToken::new();
    sessions.insert(
        SessionInfo {
            id: 1,
            client_addr: "127.0.0.1:50000".into(),
            user: "app".into(),
            database: "app".into(),
            application_name: "psql".into(),
            window_id: None,
            started_at: "2026-01-01T00:00:00Z".into(),
        },
        session_token.clone(),
    );

    let events: Arc<Mutex<Vec<AdminEvent>>> = Arc::default();
    let sink = Arc::clone(&events);
    let state = AdminState {
        windows,
        sessions,
        token: token.map(|token| Arc::new(token.to_owned())),
        metrics: None,
        ready: Arc::new(|| true),
        events: Some(Arc::new(move |event| sink.lock().push(event))),
    };
    Harness {
        state,
        events,
        session_token,
    }
}

async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    }
    .expect("request");

    let response = app.clone().oneshot(request).await.expect("router response");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

fn open_body(database: &str) -> Value {
    json!({ "database": database, "for": "30m", "reason": "deploy r2" })
}

#[tokio::test]
async fn health_needs_no_token() {
    let app = router(harness(Some(TOKEN)).state);
    let (status, body) = send(&app, Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "status": "ok" }));

    let (status, _) = send(&app, Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn readyz_reports_not_ready() {
    let mut harness = harness(Some(TOKEN));
    harness.state.ready = Arc::new(|| false);
    let app = router(harness.state);

    let (status, _) = send(&app, Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn missing_token_is_unauthorized() {
    let harness = harness(Some(TOKEN));
    let app = router(harness.state.clone());

    let request = Request::get("/v1/windows")
        .body(Body::empty())
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("router response");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|value| value.as_bytes()),
        Some(&b"Bearer"[..])
    );

    let (status, body) = send(
        &app,
        Method::POST,
        "/v1/windows",
        None,
        Some(open_body("app")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"]
        .as_str()
        .is_some_and(|message| message.contains("bearer token")));
    assert!(harness.state.windows.list().is_empty());
    assert_eq!(harness.events.lock().len(), 2);
    assert_eq!(harness.events.lock()[1].kind, AdminEventKind::Unauthorized);
}

#[tokio::test]
async fn wrong_token_is_unauthorized() {
    let harness = harness(Some(TOKEN));
    let app = router(harness.state.clone());

    for token in ["wrong", "s3cret-admin-token-longer", ""] {
        let (status, _) = send(
            &app,
            Method::POST,
            "/v1/windows",
            Some(token),
            Some(open_body("app")),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "token {token:?}");
    }
    let (status, _) = send(&app, Method::GET, "/metrics", Some("wrong"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = send(&app, Method::DELETE, "/v1/sessions/1", Some("wrong"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    assert!(harness.state.windows.list().is_empty());
    assert!(!harness.session_token.is_cancelled());
}

#[tokio::test]
async fn window_open_list_close() {
    let harness = harness(Some(TOKEN));
    let app = router(harness.state.clone());

    let request = Request::post("/v1/windows")
        .header(header::AUTHORIZATION, format!("bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("X-Schemagate-Operator", "alice")
        .body(Body::from(open_body("app").to_string()))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("router response");
    assert_eq!(response.status(), StatusCode::CREATED);
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let opened: Value = serde_json::from_slice(&bytes).expect("JSON window");
    let id = opened["id"].as_str().expect("window id").to_owned();
    assert_eq!(opened["opened_by"], "alice");
    assert_eq!(opened["state"], "open");
    assert_eq!(opened["max_sessions"], 1);

    let (status, body) = send(
        &app,
        Method::POST,
        "/v1/windows",
        Some(TOKEN),
        Some(open_body("app")),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|message| message.contains(&id)),
        "{body}"
    );

    let (status, body) = send(&app, Method::GET, "/v1/windows", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().map(Vec::len), Some(1));
    assert_eq!(body[0]["id"], id.as_str());

    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("/v1/windows/{id}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "closed");

    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("/v1/windows/{id}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn open_defaults_operator() {
    let app = router(harness(Some(TOKEN)).state);
    let mut body = open_body("app");
    body["opened_by"] = json!("mallory");

    let (status, window) = send(&app, Method::POST, "/v1/windows", Some(TOKEN), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(window["opened_by"], "admin-token");
}

#[tokio::test]
async fn open_rejects_bad_requests() {
    let app = router(harness(Some(TOKEN)).state);

    let too_long = json!({ "database": "app", "for": "30h", "reason": "x" });
    let (status, body) = send(
        &app,
        Method::POST,
        "/v1/windows",
        Some(TOKEN),
        Some(too_long),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|message| message.contains("max_duration")),
        "{body}"
    );

    let no_reason = json!({ "database": "app", "for": "30m" });
    let (status, body) = send(
        &app,
        Method::POST,
        "/v1/windows",
        Some(TOKEN),
        Some(no_reason),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].is_string(), "{body}");

    let request = Request::post("/v1/windows")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("router response");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn close_unknown_window_not_found() {
    let app = router(harness(Some(TOKEN)).state);
    let (status, body) = send(
        &app,
        Method::DELETE,
        "/v1/windows/w-00000000",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"]
        .as_str()
        .is_some_and(|message| message.contains("w-00000000")));
}

#[tokio::test]
async fn sessions_list_and_terminate() {
    let harness = harness(Some(TOKEN));
    let app = router(harness.state.clone());

    let (status, body) = send(&app, Method::GET, "/v1/sessions", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["id"], 1);
    assert_eq!(body[0]["user"], "app");

    let (status, _) = send(&app, Method::DELETE, "/v1/sessions/99", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(&app, Method::DELETE, "/v1/sessions/abc", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!harness.session_token.is_cancelled());

    let (status, body) = send(&app, Method::DELETE, "/v1/sessions/1", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["terminated"], true);
    assert!(harness.session_token.is_cancelled());
    let recorded = harness.events.lock();
    assert_eq!(
        recorded.last().map(|event| event.kind),
        Some(AdminEventKind::SessionTerminated)
    );
    assert_eq!(recorded.last().and_then(|event| event.session_id), Some(1));
}

#[tokio::test]
async fn no_token_rejects_changes() {
    let harness = harness(None);
    let app = router(harness.state.clone());

    // Without a configured token only the health endpoints respond.
    for path in ["/v1/windows", "/v1/sessions", "/metrics"] {
        let (status, _) = send(&app, Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    let (status, _) = send(&app, Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = send(
        &app,
        Method::POST,
        "/v1/windows",
        Some(TOKEN),
        Some(open_body("app")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|message| message.contains("admin.token_file")),
        "{body}"
    );
    assert!(harness.state.windows.list().is_empty());

    let (status, _) = send(&app, Method::DELETE, "/v1/sessions/1", None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!harness.session_token.is_cancelled());
}

#[tokio::test]
async fn metrics_and_unknown_routes() {
    let mut harness = harness(Some(TOKEN));
    let app = router(harness.state.clone());
    let (status, _) = send(&app, Method::GET, "/metrics", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = send(&app, Method::GET, "/v1/nothing", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());

    harness.state.metrics = Some(Arc::new(|| "schemagate_up 1\n".to_owned()));
    let app = router(harness.state);
    let request = Request::get("/metrics")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .expect("request");
    let response = app.oneshot(request).await.expect("router response");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    assert!(content_type.is_some_and(|value| value.as_bytes().starts_with(b"text/plain")));
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&bytes[..], b"schemagate_up 1\n");
}

#[test]
fn token_file_trimmed_and_nonempty() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("token");

    std::fs::write(&path, "  abc123\n").expect("write token");
    assert_eq!(read_token_file(&path).expect("token"), "abc123");

    std::fs::write(&path, "\n").expect("write token");
    assert!(matches!(
        read_token_file(&path),
        Err(TokenFileError::Empty { .. })
    ));

    let missing = directory.path().join("missing");
    assert!(matches!(
        read_token_file(&missing),
        Err(TokenFileError::Read { .. })
    ));
}

#[tokio::test]
async fn serve_stops_on_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = listener.local_addr().expect("local address");
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        router(harness(Some(TOKEN)).state),
        shutdown.clone(),
    ));

    let mut probe = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to admin API");
    tokio::io::AsyncWriteExt::write_all(
        &mut probe,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("send request");
    let mut response = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut probe, &mut response)
        .await
        .expect("read response");
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );

    shutdown.cancel();
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), server).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "serve did not stop after shutdown"
    );
    assert!(tokio::net::TcpStream::connect(address).await.is_err());
}
