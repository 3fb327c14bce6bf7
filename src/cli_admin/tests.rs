use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::admin::{self, AdminState};
use crate::config::{Config, Migrator};
use crate::server::{Registry, SessionInfo};
use crate::window::WindowManager;

const TOKEN: &str = "cli-test-token";

/// An admin API served on a loopback port for the duration of a test.
struct Server {
    url: String,
    windows: Arc<WindowManager>,
    session_token: CancellationToken,
    shutdown: CancellationToken,
    directory: tempfile::TempDir,
    token_file: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start_server() -> Server {
    let config = Config {
        migrators: vec![Migrator {
            user: "migrator".into(),
            databases: Vec::new(),
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
            id: 5,
            client_addr: "127.0.0.1:51000".into(),
            user: "migrator".into(),
            database: "app".into(),
            application_name: "alembic".into(),
            window_id: None,
            started_at: "2026-01-01T00:00:00Z".into(),
        },
        session_token.clone(),
    );

    let state = AdminState {
        windows: windows.clone(),
        sessions,
        token: Some(Arc::new(TOKEN.to_owned())),
        metrics: None,
        ready: Arc::new(|| true),
        events: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    let shutdown = CancellationToken::new();
    tokio::spawn(admin::serve(
        listener,
        admin::router(state),
        shutdown.clone(),
    ));

    let directory = tempfile::tempdir().expect("temporary directory");
    let token_file = directory.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write token file");
    Server {
        url,
        windows,
        session_token,
        shutdown,
        directory,
        token_file,
    }
}

fn admin_args(server: &Server) -> AdminArgs {
    AdminArgs {
        url: server.url.clone(),
        token_file: Some(server.token_file.clone()),
        operator: Some("alice".into()),
    }
}

fn open_command(database: &str, json: bool) -> WindowCommand {
    WindowCommand::Open(OpenArgs {
        database: database.into(),
        duration: "30m".into(),
        reason: "deploy r2".into(),
        users: Vec::new(),
        sessions: Some(2),
        json,
    })
}

#[tokio::test]
async fn window_commands_round_trip() {
    let server = start_server().await;
    let args = admin_args(&server);

    let id = execute_window(open_command("app", false), &args)
        .await
        .expect("open window");
    assert!(id.starts_with("w-"), "{id}");
    let listed = server.windows.list();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].opened_by, "alice");
    assert_eq!(listed[0].max_sessions, 2);

    let table = execute_window(WindowCommand::List { json: false }, &args)
        .await
        .expect("list");
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains(&id), "{table}");
    assert!(table.contains("0/2"), "{table}");

    let json = execute_window(WindowCommand::List { json: true }, &args)
        .await
        .expect("list JSON");
    let parsed: Vec<WindowView> = serde_json::from_str(&json).expect("JSON windows");
    assert_eq!(parsed[0].id, id);

    let closed = execute_window(WindowCommand::Close { id: id.clone() }, &args)
        .await
        .expect("close");
    assert_eq!(closed, format!("closed window {id}"));
    assert_eq!(server.windows.list()[0].state, "closed");
}

#[tokio::test]
async fn open_json_prints_window() {
    let server = start_server().await;
    let output = execute_window(open_command("app", true), &admin_args(&server))
        .await
        .expect("open window");
    let window: WindowView = serde_json::from_str(&output).expect("JSON window");
    assert_eq!(window.database, "app");
    assert_eq!(window.state, "open");
}

#[tokio::test]
async fn rejections_exit_one() {
    let server = start_server().await;
    let args = admin_args(&server);
    let first = execute_window(open_command("app", false), &args)
        .await
        .expect("open window");

    let error = execute_window(open_command("app", false), &args)
        .await
        .expect_err("second window");
    assert!(
        matches!(error, CliError::Rejected { status: 409, .. }),
        "{error}"
    );
    assert!(error.to_string().contains(&first), "{error}");
    assert_eq!(error.exit_code(), 1);

    let unknown = WindowCommand::Close {
        id: "w-00000000".into(),
    };
    let error = execute_window(unknown, &args)
        .await
        .expect_err("unknown window");
    assert!(
        matches!(error, CliError::Rejected { status: 404, .. }),
        "{error}"
    );
    assert_eq!(
        run_window(
            WindowCommand::Close {
                id: "w-00000000".into()
            },
            &args
        )
        .await,
        1
    );
}

#[tokio::test]
async fn token_problems() {
    let server = start_server().await;

    let mut no_token = admin_args(&server);
    no_token.token_file = None;
    let error = execute_window(WindowCommand::List { json: false }, &no_token)
        .await
        .expect_err("no token");
    assert!(
        matches!(error, CliError::Rejected { status: 401, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("--token-file"), "{error}");

    let wrong_file = server.directory.path().join("wrong");
    std::fs::write(&wrong_file, "not-the-token").expect("write token file");
    let mut wrong = admin_args(&server);
    wrong.token_file = Some(wrong_file);
    let error = execute_window(open_command("app", false), &wrong)
        .await
        .expect_err("wrong token");
    assert!(
        matches!(error, CliError::Rejected { status: 401, .. }),
        "{error}"
    );
    assert!(server.windows.list().is_empty());

    let mut missing = admin_args(&server);
    missing.token_file = Some(server.directory.path().join("missing"));
    let error = execute_window(WindowCommand::List { json: false }, &missing)
        .await
        .expect_err("missing file");
    assert!(matches!(error, CliError::Usage(_)), "{error}");
    assert_eq!(error.exit_code(), 2);
}

#[tokio::test]
async fn malformed_urls_are_usage_errors() {
    for url in [
        "https://127.0.0.1:6433",
        "127.0.0.1:6433",
        "not a url",
        "http://127.0.0.1:6433/?x=1",
    ] {
        let args = AdminArgs {
            url: url.into(),
            token_file: None,
            operator: None,
        };
        let error = execute_window(WindowCommand::List { json: false }, &args)
            .await
            .expect_err(url);
        assert_eq!(error.exit_code(), 2, "{url}: {error}");
    }
}

#[tokio::test]
async fn unreachable_admin_exits_one() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let address = listener.local_addr().expect("local address");
    drop(listener);

    let args = AdminArgs {
        url: format!("http://{address}"),
        token_file: None,
        operator: None,
    };
    let error = execute_session(SessionCommand::List { json: false }, &args)
        .await
        .expect_err("closed port");
    assert!(matches!(error, CliError::Unreachable(_)), "{error}");
    assert!(error.to_string().contains(&address.to_string()), "{error}");
    assert_eq!(error.exit_code(), 1);
}

#[tokio::test]
async fn session_list_and_kill() {
    let server = start_server().await;
    let args = admin_args(&server);

    let table = execute_session(SessionCommand::List { json: false }, &args)
        .await
        .expect("list");
    assert!(table.contains("alembic"), "{table}");
    let json = execute_session(SessionCommand::List { json: true }, &args)
        .await
        .expect("list JSON");
    let rows: Vec<SessionRow> = serde_json::from_str(&json).expect("JSON sessions");
    assert_eq!(rows[0].id, 5);

    let error = execute_session(SessionCommand::Kill { id: 6 }, &args)
        .await
        .expect_err("unknown session");
    assert!(
        matches!(error, CliError::Rejected { status: 404, .. }),
        "{error}"
    );
    assert!(!server.session_token.is_cancelled());

    let output = execute_session(SessionCommand::Kill { id: 5 }, &args)
        .await
        .expect("kill");
    assert_eq!(output, "terminated session 5");
    assert!(server.session_token.is_cancelled());
}

#[derive(Debug, Parser)]
struct TestCli {
    #[command(flatten)]
    window: WindowArgs,
}

#[test]
fn clap_parses_open_arguments() {
    let parsed = TestCli::try_parse_from([
        "schemagate",
        "--admin",
        "http://127.0.0.1:7000",
        "open",
        "--database",
        "app",
        "--for",
        "45m",
        "--reason",
        "deploy",
        "--user",
        "a",
        "--user",
        "b",
        "--sessions",
        "2",
        "--json",
    ])
    .expect("valid arguments");
    assert_eq!(parsed.window.admin.url, "http://127.0.0.1:7000");
    let WindowCommand::Open(open) = parsed.window.command else {
        panic!("expected the open subcommand");
    };
    assert_eq!(open.duration, "45m");
    assert_eq!(open.users, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(open.sessions, Some(2));
    assert!(open.json);

    let global_after =
        TestCli::try_parse_from(["schemagate", "list", "--admin", "http://127.0.0.1:7001"])
            .expect("global option after the subcommand");
    assert_eq!(global_after.window.admin.url, "http://127.0.0.1:7001");
}

#[test]
fn clap_rejects_bad_arguments() {
    let bad_duration = [
        "schemagate",
        "open",
        "--database",
        "app",
        "--for",
        "soon",
        "--reason",
        "r",
    ];
    assert!(TestCli::try_parse_from(bad_duration).is_err());
    let zero_sessions = [
        "schemagate",
        "open",
        "--database",
        "app",
        "--for",
        "1m",
        "--reason",
        "r",
        "--sessions",
        "0",
    ];
    assert!(TestCli::try_parse_from(zero_sessions).is_err());
    let no_reason = ["schemagate", "open", "--database", "app", "--for", "1m"];
    assert!(TestCli::try_parse_from(no_reason).is_err());
}
