"""Operating schemagate: `check`, `--version`, reload on SIGHUP, the local
tunnel, audit verification, metrics and readiness."""

import json
import re
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import psycopg2
import pytest

from harness import free_port, port_accepts, schemagate_bin, wait_until

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args, timeout=30):
    return subprocess.run([str(schemagate_bin()), *args], capture_output=True, text=True, timeout=timeout)


def sqlstate_of(dsn, sql):
    """Run `sql` in autocommit mode and return the SQLSTATE it raised, or None."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
        return None
    except psycopg2.Error as err:
        return err.pgcode
    finally:
        conn.close()


def admin_get(proxy, path, token=True):
    request = urllib.request.Request(f"{proxy.admin_url}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {proxy.token_file.read_text().strip()}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def log_contains(proxy, text):
    return text in proxy.log_path.read_text(errors="replace")


# ---- check and --version ----

def test_check_accepts_repository_rules():
    result = run_cli("check", "--config", str(REPO / "rules.yaml"))
    assert result.returncode == 0, result.stderr
    assert "alembic_version" in result.stdout


@pytest.mark.parametrize(
    "text, expected",
    [
        ("listen:\n  address: 127.0.0.1:6432\n  tls: [unclosed\n", r"rules\.yaml:3:"),
        ("listen:\n  adress: 127.0.0.1:6432\n", "adress"),
        ("ddl:\n  allow: [CREATE TABEL]\n", 'did you mean "CREATE TABLE"'),
        ("listen:\n  tls:\n    mode: require\n    cert: missing.pem\n    key: missing.key\n", "listen.tls"),
        ("windows:\n  max_duration: soon\n", "windows.max_duration"),
    ],
    ids=["yaml-syntax", "unknown-key", "unknown-tag", "missing-cert", "bad-duration"],
)
def test_check_rejects_broken_config(tmp_path, text, expected):
    config = tmp_path / "rules.yaml"
    config.write_text(text)
    result = run_cli("check", "--config", str(config))
    assert result.returncode == 2, result.stdout
    assert re.search(expected, result.stderr), result.stderr


def test_serve_rejects_broken_config_before_listening(tmp_path):
    config = tmp_path / "rules.yaml"
    port = free_port()
    config.write_text(f"listen:\n  address: 127.0.0.1:{port}\nddl:\n  deny: [DROP TABEL]\n")
    result = run_cli("serve", "--config", str(config))
    assert result.returncode == 2
    assert "DROP TABLE" in result.stderr
    assert not port_accepts("127.0.0.1", port)


def test_version_names_commit_and_parser():
    result = run_cli("--version")
    assert result.returncode == 0
    assert "commit" in result.stdout
    assert "pg_query" in result.stdout


# ---- reload ----

def write_config(proxy, **changes):
    config = json.loads(proxy.config_path.read_text())
    config.update(changes)
    proxy.config_path.write_text(json.dumps(config, indent=2) + "\n")


def test_reload_applies_new_rule_to_live_session(proxy, cluster):
    cluster.reset_app_rows()
    conn = psycopg2.connect(proxy.dsn())
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO widgets VALUES (41, 'before reload')")

            write_config(proxy, protected_tables=["alembic_version", "widgets"])
            proxy.reload()
            wait_until(lambda: log_contains(proxy, "configuration reloaded"), 10, message="reload logged")

            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("INSERT INTO widgets VALUES (42, 'after reload')")
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        conn.close()
    assert cluster.execute("SELECT id FROM widgets ORDER BY id", dbname="app") == [(41,)]


def test_invalid_reload_keeps_old_policy(proxy, cluster):
    cluster.reset_app_rows()
    conn = psycopg2.connect(proxy.dsn())
    conn.autocommit = True
    try:
        proxy.config_path.write_text("listen: [this is not a mapping\n")
        proxy.reload()
        wait_until(lambda: log_contains(proxy, "configuration reload rejected"), 10, message="rejection logged")

        with conn.cursor() as cur:
            cur.execute("INSERT INTO widgets VALUES (43, 'old policy')")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("DELETE FROM alembic_version")
    finally:
        conn.close()
    assert proxy.is_running()
    versions = cluster.execute("SELECT version_num FROM alembic_version", dbname="app")
    assert versions == [("aaaa0001",)]


# ---- tunnel ----

@pytest.fixture
def tunnel(cluster, tmp_path):
    listen, admin = free_port(), free_port()
    log = open(tmp_path / "tunnel.log", "w")
    process = subprocess.Popen(
        [str(schemagate_bin()), "tunnel", "--upstream", f"127.0.0.1:{cluster.port}",
         "--upstream-ca", str(cluster.ca_path), "--listen", f"127.0.0.1:{listen}",
         "--admin", f"127.0.0.1:{admin}", "--config", str(tmp_path / "no-rules.yaml")],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    try:
        wait_until(lambda: port_accepts("127.0.0.1", listen), 15, message="tunnel listening")
        yield listen, tmp_path / "tunnel.log"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        log.close()


def test_tunnel_reaches_server_over_verified_tls(tunnel):
    port, log_path = tunnel
    dsn = f"host=127.0.0.1 port={port} dbname=app user=app password=app-pw sslmode=disable"
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert cur.fetchone() == (True,)
    finally:
        conn.close()
    output = log_path.read_text()
    assert f"127.0.0.1:{port}" in output
    assert "schemagate window open" in output


def test_tunnel_applies_default_rules(tunnel, cluster):
    port, _ = tunnel
    dsn = f"host=127.0.0.1 port={port} dbname=app user=app password=app-pw"
    assert sqlstate_of(dsn, "DELETE FROM alembic_version") == "42501"
    assert sqlstate_of(dsn, "CREATE TABLE tunnel_made (i int)") == "42501"
    assert cluster.execute("SELECT to_regclass('public.tunnel_made') IS NULL", dbname="app") == [(True,)]


def test_tunnel_rejects_verify_full_with_unknown_ca(cluster, tmp_path):
    listen = free_port()
    process = subprocess.Popen(
        [str(schemagate_bin()), "tunnel", "--upstream", f"127.0.0.1:{cluster.port}", "--listen", f"127.0.0.1:{listen}",
         "--admin", f"127.0.0.1:{free_port()}", "--config", str(tmp_path / "none.yaml")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )
    try:
        wait_until(lambda: port_accepts("127.0.0.1", listen), 15, message="tunnel listening")
        with pytest.raises(psycopg2.OperationalError) as err:
            psycopg2.connect(f"host=127.0.0.1 port={listen} dbname=app user=app password=app-pw")
        assert "TLS" in str(err.value) or "certificate" in str(err.value)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def test_tunnel_refuses_non_loopback_listen(cluster):
    result = run_cli("tunnel", "--upstream", f"127.0.0.1:{cluster.port}", "--listen", "0.0.0.0:6543")
    assert result.returncode == 2
    assert "loopback" in result.stderr


# ---- audit, metrics, readiness ----

def test_audit_log_verifies_and_detects_edit(proxy):
    denied = "DELETE FROM alembic_version WHERE version_num = 'literal-kept-out' /* api_key=comment-kept-out */"
    assert sqlstate_of(proxy.dsn(), denied) == "42501"
    assert sqlstate_of(proxy.dsn(), "SELECT 1") is None
    records = proxy.audit_records()
    denials = [r for r in records if r.get("event") == "decision" and r.get("decision") == "deny"]
    assert denials
    denial = denials[-1]
    assert denial["rule"] == "protected_tables"
    assert denial["user"] == "app"
    assert denial["command_tag"] == "DELETE"
    assert denial["sqlstate"] == "42501"
    assert "alembic_version" in " ".join(denial["objects"])
    assert "$1" in denial["statement"]
    assert "literal-kept-out" not in proxy.audit_path.read_text()
    assert "comment-kept-out" not in proxy.audit_path.read_text()
    assert len(denial["fingerprint"]) == 16
    assert any(r.get("event") == "session_start" for r in records)

    result = run_cli("audit", "verify", str(proxy.audit_path))
    assert result.returncode == 0, result.stdout + result.stderr

    lines = proxy.audit_path.read_text().splitlines()
    edited = json.loads(lines[1])
    edited["user"] = "someone-else"
    lines[1] = json.dumps(edited, separators=(",", ":"))
    tampered = proxy.audit_path.with_name("tampered.jsonl")
    tampered.write_text("\n".join(lines) + "\n")
    result = run_cli("audit", "verify", str(tampered))
    assert result.returncode == 1
    assert "record 2" in result.stdout + result.stderr


def metric_value(text, name, **labels):
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_allowed_and_denied(proxy):
    status, before = admin_get(proxy, "/metrics")
    assert status == 200
    assert sqlstate_of(proxy.dsn(), "DELETE FROM alembic_version") == "42501"
    assert sqlstate_of(proxy.dsn(), "SELECT 1") is None
    _, after = admin_get(proxy, "/metrics")

    denied = "schemagate_statements_total"
    assert metric_value(after, denied, decision="deny", command="DELETE") == \
        metric_value(before, denied, decision="deny", command="DELETE") + 1
    assert metric_value(after, denied, decision="allow", command="SELECT") >= \
        metric_value(before, denied, decision="allow", command="SELECT") + 1
    assert metric_value(after, "schemagate_denials_total", rule="protected_tables") >= 1
    assert admin_get(proxy, "/metrics", token=False)[0] == 401


def test_readiness_follows_upstream(proxy, cluster):
    wait_until(lambda: admin_get(proxy, "/readyz", token=False)[0] == 200, 15, message="ready")
    assert admin_get(proxy, "/healthz", token=False)[0] == 200
    cluster.stop()
    try:
        wait_until(lambda: admin_get(proxy, "/readyz", token=False)[0] == 503, 15, message="not ready")
        assert admin_get(proxy, "/healthz", token=False)[0] == 200
    finally:
        cluster.start_again()
    wait_until(lambda: admin_get(proxy, "/readyz", token=False)[0] == 200, 15, message="ready again")


@pytest.mark.parametrize("on_failure, expected", [("deny", "42501"), ("allow", None)])
def test_unwritable_audit_log_denies_ddl(make_proxy, cluster, on_failure, expected):
    cluster.reset_app_db()
    gateway = make_proxy(audit={"path": "/dev/full", "on_failure": on_failure})
    gateway.open_window(reason="audit target is full")
    dsn = gateway.dsn(user="migrator", password="mig-pw")
    assert sqlstate_of(dsn, "CREATE TABLE audited_ddl (i int)") == expected
    exists = cluster.execute("SELECT to_regclass('public.audited_ddl') IS NOT NULL", dbname="app")
    assert exists == [(expected is None,)]
    status, body = admin_get(gateway, "/metrics")
    assert metric_value(body, "schemagate_audit_write_failures_total") >= 1
