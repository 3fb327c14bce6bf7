use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use super::*;
use crate::config::{Config, Migrator, OnExpiry};

/// A clock that moves only when a test advances it.
struct ManualClock {
    millis: AtomicU64,
}

impl ManualClock {
    fn new() -> Arc<ManualClock> {
        Arc::new(ManualClock {
            millis: AtomicU64::new(1_700_000_000_000),
        })
    }

    fn advance(&self, by: Duration) {
        self.millis
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

fn migrator(user: &str, databases: &[&str]) -> Migrator {
    Migrator {
        user: user.into(),
        databases: databases.iter().map(|name| name.to_string()).collect(),
        client_cert_subject: None,
        source: Vec::new(),
    }
}

fn config_with(migrators: Vec<Migrator>) -> Config {
    Config {
        migrators,
        ..Config::default()
    }
}

fn base_config() -> Config {
    config_with(vec![
        migrator("migrator", &["app"]),
        migrator("deployer", &[]),
    ])
}

fn session(id: u64, user: &str, database: &str) -> SessionIdentity {
    SessionIdentity {
        session_id: id,
        user: user.into(),
        database: database.into(),
        client_addr: "127.0.0.1:40000".parse().expect("literal address"),
        client_cert_subject: None,
    }
}

fn request(database: &str, duration: &str) -> OpenWindow {
    OpenWindow {
        database: database.into(),
        duration: duration.into(),
        reason: "deploy 42".into(),
        users: Vec::new(),
        sessions: None,
        opened_by: "alice".into(),
    }
}

type Recorded = Arc<Mutex<Vec<WindowEvent>>>;

fn manager_with_clock(config: &Config) -> (Arc<WindowManager>, Arc<ManualClock>, Recorded) {
    let clock = ManualClock::new();
    let events: Recorded = Arc::default();
    let sink = Arc::clone(&events);
    let manager = WindowManager::with_parts(
        config,
        Arc::new(move |event| sink.lock().push(event)),
        clock.clone(),
    )
    .expect("manager without state file");
    (manager, clock, events)
}

fn kinds(events: &Recorded) -> Vec<WindowEventKind> {
    events.lock().iter().map(|event| event.kind).collect()
}

#[test]
fn lifecycle_binds_up_to_limit() {
    let (manager, _clock, events) = manager_with_clock(&base_config());
    let first = session(1, "migrator", "app");
    let second = session(2, "migrator", "app");
    assert_eq!(manager.access(&first), WindowAccess::None);

    let view = manager.open(request("app", "30m")).expect("open window");
    assert!(view.id.starts_with("w-"));
    assert_eq!(view.id.len(), 10);
    assert_eq!(view.max_sessions, 1);
    assert_eq!(view.state, "open");
    assert_eq!(
        view.users,
        vec!["deployer".to_string(), "migrator".to_string()]
    );

    assert_eq!(manager.access(&first), WindowAccess::Available);
    assert_eq!(manager.bind(&first), Some(view.id.clone()));
    assert_eq!(manager.access(&first), WindowAccess::Bound);
    assert_eq!(manager.bound_window(1), Some(view.id.clone()));

    assert_eq!(manager.access(&second), WindowAccess::None);
    assert_eq!(manager.bind(&second), None);

    // The slot stays used after the first session ends: the limit counts every session that bound.
    manager.release(1);
    assert_eq!(manager.bound_window(1), None);
    assert_eq!(manager.access(&first), WindowAccess::None);
    assert_eq!(manager.access(&second), WindowAccess::None);
    assert_eq!(manager.bind(&second), None);

    let closed = manager.close(&view.id).expect("close window");
    assert_eq!(closed.state, "closed");
    assert_eq!(manager.access(&second), WindowAccess::None);
    assert_eq!(manager.bound_window(2), None);
    assert_eq!(
        kinds(&events),
        vec![
            WindowEventKind::Opened,
            WindowEventKind::Bound,
            WindowEventKind::Refused,
            WindowEventKind::Refused,
            WindowEventKind::Closed
        ]
    );
}

#[test]
fn session_limit_from_request() {
    let (manager, _clock, _events) = manager_with_clock(&base_config());
    let mut open = request("app", "10m");
    open.sessions = Some(2);
    let view = manager.open(open).expect("open window");

    assert_eq!(
        manager.bind(&session(1, "migrator", "app")),
        Some(view.id.clone())
    );
    assert_eq!(
        manager.bind(&session(2, "deployer", "app")),
        Some(view.id.clone())
    );
    assert_eq!(manager.bind(&session(3, "migrator", "app")), None);
    assert_eq!(
        manager.access(&session(3, "migrator", "app")),
        WindowAccess::None
    );
}

#[test]
fn non_migrators_never_gain_access() {
    let (manager, _clock, _events) = manager_with_clock(&base_config());
    manager.open(request("app", "10m")).expect("open window");

    assert_eq!(
        manager.access(&session(1, "app", "app")),
        WindowAccess::None
    );
    assert_eq!(manager.bind(&session(1, "app", "app")), None);
    // `migrator` is configured for database `app` only.
    assert_eq!(
        manager.access(&session(2, "migrator", "other")),
        WindowAccess::None
    );
}

#[test]
fn window_users_narrow_access() {
    let (manager, _clock, events) = manager_with_clock(&base_config());
    let mut open = request("app", "10m");
    open.users = vec!["deployer".into()];
    manager.open(open).expect("open window");

    assert_eq!(
        manager.access(&session(1, "migrator", "app")),
        WindowAccess::None
    );
    assert_eq!(manager.bind(&session(1, "migrator", "app")), None);
    assert_eq!(kinds(&events).last(), Some(&WindowEventKind::Refused));
    assert_eq!(
        manager.access(&session(2, "deployer", "app")),
        WindowAccess::Available
    );
}

#[test]
fn expired_window_not_honoured_before_task() {
    let (manager, clock, events) = manager_with_clock(&base_config());
    let view = manager.open(request("app", "10m")).expect("open window");
    let bound = session(1, "migrator", "app");
    assert!(manager.bind(&bound).is_some());

    clock.advance(Duration::from_secs(600));
    assert_eq!(manager.access(&bound), WindowAccess::None);
    assert_eq!(
        manager.access(&session(2, "migrator", "app")),
        WindowAccess::None
    );
    assert!(!kinds(&events).contains(&WindowEventKind::Expired));

    let listed = manager.list();
    assert_eq!(listed[0].id, view.id);
    assert_eq!(listed[0].state, "expired");
    assert!(kinds(&events).contains(&WindowEventKind::Expired));
    assert_eq!(manager.bound_window(1), None);
}

#[test]
fn second_window_same_database_rejected() {
    let (manager, _clock, events) = manager_with_clock(&base_config());
    let first = manager.open(request("app", "10m")).expect("open window");

    let error = manager
        .open(request("app", "5m"))
        .expect_err("second window");
    assert!(matches!(error, WindowError::Conflict(_)));
    assert!(error.to_string().contains(&first.id), "{error}");
    assert_eq!(kinds(&events).last(), Some(&WindowEventKind::Refused));

    manager
        .open(request("other", "5m"))
        .expect("window on another database");
}

#[test]
fn open_validates_request() {
    let (manager, _clock, _events) = manager_with_clock(&base_config());

    let too_long = manager
        .open(request("app", "5h"))
        .expect_err("longer than max_duration");
    assert!(
        too_long.to_string().contains("windows.max_duration"),
        "{too_long}"
    );

    let garbled = manager
        .open(request("app", "soon"))
        .expect_err("bad duration");
    assert!(matches!(garbled, WindowError::Invalid(_)));

    let mut no_reason = request("app", "10m");
    no_reason.reason = "  ".into();
    let error = manager.open(no_reason).expect_err("empty reason");
    assert!(error.to_string().contains("reason"), "{error}");

    let mut stranger = request("app", "10m");
    stranger.users = vec!["app".into()];
    let error = manager.open(stranger).expect_err("user is not a migrator");
    assert!(error.to_string().contains("\"app\""), "{error}");

    let mut zero = request("app", "10m");
    zero.sessions = Some(0);
    assert!(manager.open(zero).is_err());

    let lonely = WindowManager::new(&config_with(Vec::new())).expect("manager");
    let error = lonely
        .open(request("app", "10m"))
        .expect_err("no migrator for database");
    assert!(error.to_string().contains("no migrator"), "{error}");

    assert!(manager.list().is_empty());
}

#[test]
fn close_unknown_and_twice() {
    let (manager, _clock, _events) = manager_with_clock(&base_config());
    assert!(matches!(
        manager.close("w-00000000"),
        Err(WindowError::NotFound(_))
    ));

    let view = manager.open(request("app", "10m")).expect("open window");
    manager.close(&view.id).expect("first close");
    assert!(matches!(
        manager.close(&view.id),
        Err(WindowError::Conflict(_))
    ));
}

#[test]
fn session_rebinds_after_close() {
    let (manager, _clock, _events) = manager_with_clock(&base_config());
    let who = session(7, "migrator", "app");
    let old = manager.open(request("app", "10m")).expect("open window");
    assert!(manager.bind(&who).is_some());
    manager.close(&old.id).expect("close");
    assert_eq!(manager.access(&who), WindowAccess::None);

    let new = manager.open(request("app", "10m")).expect("reopen");
    assert_eq!(manager.access(&who), WindowAccess::Available);
    assert_eq!(manager.bind(&who), Some(new.id));
}

fn terminating_config() -> Config {
    let mut config = base_config();
    config.windows.on_expiry = OnExpiry::Terminate;
    config
}

fn recording_terminator(manager: &WindowManager) -> Arc<Mutex<Vec<u64>>> {
    let ended: Arc<Mutex<Vec<u64>>> = Arc::default();
    let sink = Arc::clone(&ended);
    manager.set_session_terminator(Arc::new(move |id| sink.lock().push(id)));
    ended
}

#[test]
fn expiry_terminates_bound_sessions() {
    let (manager, clock, events) = manager_with_clock(&terminating_config());
    let ended = recording_terminator(&manager);
    manager.open(request("app", "10m")).expect("open window");
    assert!(manager.bind(&session(3, "migrator", "app")).is_some());

    assert!(manager.expire_now().is_some());
    assert!(ended.lock().is_empty());

    clock.advance(Duration::from_secs(601));
    assert_eq!(manager.expire_now(), None);
    assert_eq!(*ended.lock(), vec![3]);
    assert_eq!(kinds(&events).last(), Some(&WindowEventKind::Expired));
}

#[test]
fn close_terminates_when_configured() {
    let (manager, _clock, _events) = manager_with_clock(&terminating_config());
    let ended = recording_terminator(&manager);
    let view = manager.open(request("app", "10m")).expect("open window");
    assert!(manager.bind(&session(4, "migrator", "app")).is_some());

    manager.close(&view.id).expect("close");
    assert_eq!(*ended.lock(), vec![4]);
}

#[test]
fn close_keeps_sessions_by_default() {
    let (manager, _clock, _events) = manager_with_clock(&base_config());
    let ended = recording_terminator(&manager);
    let view = manager.open(request("app", "10m")).expect("open window");
    assert!(manager.bind(&session(4, "migrator", "app")).is_some());

    manager.close(&view.id).expect("close");
    assert!(ended.lock().is_empty());
}

#[tokio::test]
async fn expiry_task_ends_sessions_on_time() {
    let mut config = terminating_config();
    config.windows.max_duration = Duration::from_secs(60);
    let manager = WindowManager::new(&config).expect("manager");
    let ended: Arc<Mutex<Vec<u64>>> = Arc::default();
    let sink = Arc::clone(&ended);
    let task = Arc::clone(&manager).spawn_expiry_task(Arc::new(move |id| sink.lock().push(id)));

    let view = manager.open(request("app", "200ms")).expect("open window");
    assert!(manager.bind(&session(9, "migrator", "app")).is_some());

    let deadline = Instant::now() + Duration::from_secs(5);
    while ended.lock().is_empty() {
        assert!(
            Instant::now() < deadline,
            "session not terminated within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*ended.lock(), vec![9]);

    let listed = manager.list();
    assert_eq!(listed[0].id, view.id);
    assert_eq!(listed[0].state, "expired");
    task.abort();
}

fn identity_at(user: &str, address: &str, subject: Option<&str>) -> SessionIdentity {
    SessionIdentity {
        session_id: 1,
        user: user.into(),
        database: "app".into(),
        client_addr: address.parse::<SocketAddr>().expect("literal address"),
        client_cert_subject: subject.map(str::to_owned),
    }
}

#[test]
fn migrator_matching_rules() {
    let mut narrowed = migrator("migrator", &["app"]);
    narrowed.client_cert_subject = Some("CN=migrator,O=Example".into());
    narrowed.source = vec![
        "10.0.0.0/8".parse().expect("network"),
        "fd00::/8".parse().expect("network"),
    ];
    let config = config_with(vec![narrowed]);

    let subject = Some("CN=migrator,O=Example");
    assert!(is_migrator(
        &config,
        &identity_at("migrator", "10.1.2.3:5000", subject)
    ));
    assert!(is_migrator(
        &config,
        &identity_at("migrator", "[::ffff:10.1.2.3]:5000", subject)
    ));
    assert!(is_migrator(
        &config,
        &identity_at("migrator", "[fd00::1]:5000", subject)
    ));

    assert!(!is_migrator(
        &config,
        &identity_at("app", "10.1.2.3:5000", subject)
    ));
    assert!(!is_migrator(
        &config,
        &identity_at("migrator", "192.168.1.1:5000", subject)
    ));
    assert!(!is_migrator(
        &config,
        &identity_at("migrator", "10.1.2.3:5000", None)
    ));
    assert!(!is_migrator(
        &config,
        &identity_at("migrator", "10.1.2.3:5000", Some("CN=app,O=Example"))
    ));

    let mut elsewhere = identity_at("migrator", "10.1.2.3:5000", subject);
    elsewhere.database = "billing".into();
    assert!(!is_migrator(&config, &elsewhere));
}

#[test]
fn migrator_without_databases_covers_all() {
    let config = config_with(vec![migrator("deployer", &[])]);
    let mut who = identity_at("deployer", "127.0.0.1:1", None);
    who.database = "anything".into();
    assert!(is_migrator(&config, &who));
}

#[test]
fn config_reload_revokes_migrator() {
    let (manager, _clock, _events) = manager_with_clock(&base_config());
    manager.open(request("app", "10m")).expect("open window");
    let who = session(1, "migrator", "app");
    assert!(manager.bind(&who).is_some());

    manager.update_config(&config_with(vec![migrator("deployer", &[])]));
    assert_eq!(manager.access(&who), WindowAccess::None);
    assert_eq!(manager.list().len(), 1);
    assert_eq!(manager.list()[0].state, "open");
}

fn config_with_state(path: &std::path::Path) -> Config {
    let mut config = base_config();
    config.windows.state_file = Some(path.to_path_buf());
    config
}

#[test]
fn state_file_round_trip() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("windows.json");
    let config = config_with_state(&path);

    let first = WindowManager::new(&config).expect("manager");
    let kept = first.open(request("app", "1h")).expect("open window");
    let mut short = request("other", "1h");
    short.reason = "backfill".into();
    let closed = first.open(short).expect("open second window");
    first.close(&closed.id).expect("close second window");
    assert!(first.bind(&session(1, "migrator", "app")).is_some());
    assert!(path.exists());
    assert!(!directory.path().join("windows.json.tmp").exists());

    let second = WindowManager::new(&config).expect("restored manager");
    let restored = second.list();
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0].id, kept.id);
    assert_eq!(restored[0].expires_at, kept.expires_at);
    assert_eq!(restored[0].reason, "deploy 42");
    assert!(restored[0].bound_sessions.is_empty());
    assert_eq!(second.bound_window(1), None);
}

#[test]
fn state_file_skips_expired_windows() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("windows.json");
    let config = config_with_state(&path);
    let clock = ManualClock::new();

    let first =
        WindowManager::with_parts(&config, Arc::new(|_| {}), clock.clone()).expect("manager");
    first.open(request("app", "10m")).expect("open window");
    clock.advance(Duration::from_secs(601));

    let second = WindowManager::with_parts(&config, Arc::new(|_| {}), clock.clone())
        .expect("restored manager");
    assert!(second.list().is_empty());
    assert_eq!(
        second.access(&session(1, "migrator", "app")),
        WindowAccess::None
    );
}

#[test]
fn state_file_malformed_is_error() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("windows.json");
    std::fs::write(&path, "{not json").expect("write file");

    let error = WindowManager::new(&config_with_state(&path))
        .err()
        .expect("malformed state file");
    assert!(matches!(error, WindowError::State(_)));
    assert!(error.to_string().contains("windows.json"), "{error}");
}

#[test]
fn state_write_failure_rolls_back_open() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory
        .path()
        .join("missing-directory")
        .join("windows.json");
    let manager = WindowManager::new(&config_with_state(&path)).expect("manager");

    let error = manager
        .open(request("app", "10m"))
        .expect_err("state file cannot be written");
    assert!(matches!(error, WindowError::State(_)));
    assert!(manager.list().is_empty());
    assert_eq!(
        manager.access(&session(1, "migrator", "app")),
        WindowAccess::None
    );
}
