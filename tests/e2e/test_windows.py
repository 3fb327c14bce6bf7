"""Migration windows seen from Alembic and raw clients: close and expiry in the
middle of a migration, restart of the proxy, the admin API's authentication, and
statements prepared inside a window but executed after it.
"""

import json
import urllib.error
import urllib.request

import psycopg2
import pytest
from rawproto import bind, execute, parse, sqlstates, sync

from alembic_helpers import (
    MIGRATION_RULES,
    PROJECT,
    Gate,
    assert_denied,
    case_project,
    column_exists,
    finish,
    run_alembic,
    start_alembic,
    start_without_version_table,
    table_exists,
    url,
    version_rows,
    wait_until,
)

pytestmark = pytest.mark.e2e

MAIN_INI = PROJECT / "alembic.ini"


@pytest.fixture
def fresh_app(cluster, oracle):
    start_without_version_table(cluster, oracle)


def mig_url(proxy):
    return url(proxy.port)


def open_windows(proxy):
    """Return the ids of the windows that `schemagate window list --json` shows as open."""
    result = proxy.cli("window", "list", "--json", check=True)
    windows = json.loads(result.stdout)
    if isinstance(windows, dict):
        windows = windows.get("windows", [])
    return [window["id"] for window in windows if window.get("state", "open") == "open"]


@pytest.mark.usefixtures("fresh_app")
def test_close_between_revisions(make_proxy, oracle, tmp_path):
    gateway = make_proxy(**MIGRATION_RULES)
    ini = case_project(tmp_path, "r1_create_gadgets.py", "r2_add_color_gated.py")
    gate = Gate(tmp_path / "gate")
    window_id = gateway.open_window(reason="closed after r1")

    runner = start_alembic(ini, mig_url(gateway), "-x", "per_migration=1", "upgrade", "head", gate_dir=gate.directory)
    gate.wait_reached("r2", runner)
    assert version_rows(oracle) == ["r1"]
    gateway.close_window(window_id)
    gate.release("r2")
    code, output = finish(runner)

    assert code != 0, output
    assert_denied(output, "ALTER TABLE")
    assert version_rows(oracle) == ["r1"]
    assert not column_exists(oracle, "gadgets", "color")


@pytest.mark.usefixtures("fresh_app")
def test_close_during_transaction(cluster, make_proxy, oracle, tmp_path):
    gateway = make_proxy(**MIGRATION_RULES)
    ini = case_project(tmp_path, "r1_create_gadgets.py", "r2_add_color.py", "r10_big_table_gated.py")
    setup = run_alembic(ini, url(cluster.port), "upgrade", "r2")
    assert setup.returncode == 0, setup.stdout
    gate = Gate(tmp_path / "gate")
    window_id = gateway.open_window(reason="closed mid-migration")

    runner = start_alembic(ini, mig_url(gateway), "upgrade", "r10", gate_dir=gate.directory)
    gate.wait_reached("r10", runner)
    gateway.close_window(window_id)
    gate.release("r10")
    code, output = finish(runner)

    # The window covers statements, not transactions: the ADD COLUMN after the
    # close is denied, and the CREATE TABLE AS before it rolls back with it.
    assert code != 0, output
    assert_denied(output, "ALTER TABLE")
    assert version_rows(oracle) == ["r2"]
    assert not table_exists(oracle, "public.big")
    assert not column_exists(oracle, "gadgets", "size")


def run_until_expiry(gateway, oracle, tmp_path, cluster):
    """Start r10 in a 3-second window, hold it at the gate until the window expired, then let it go on."""
    ini = case_project(tmp_path, "r1_create_gadgets.py", "r2_add_color.py", "r10_big_table_gated.py")
    setup = run_alembic(ini, url(cluster.port), "upgrade", "r2")
    assert setup.returncode == 0, setup.stdout
    gate = Gate(tmp_path / "gate")
    window_id = gateway.open_window(duration="3s", reason="short window")

    runner = start_alembic(ini, mig_url(gateway), "upgrade", "r10", gate_dir=gate.directory)
    gate.wait_reached("r10", runner)
    wait_until(lambda: window_id not in open_windows(gateway), 30, f"window {window_id} to expire")
    return runner, gate


@pytest.mark.usefixtures("fresh_app")
def test_expiry_deny_rolls_back(cluster, make_proxy, oracle, tmp_path):
    gateway = make_proxy(**MIGRATION_RULES, windows={"on_expiry": "deny"})
    runner, gate = run_until_expiry(gateway, oracle, tmp_path, cluster)

    gate.release("r10")
    code, output = finish(runner)

    assert code != 0, output
    assert_denied(output, "ALTER TABLE")
    assert version_rows(oracle) == ["r2"]
    assert not table_exists(oracle, "public.big")
    assert not column_exists(oracle, "gadgets", "size")


@pytest.mark.usefixtures("fresh_app")
def test_expiry_terminate_ends_session(cluster, make_proxy, oracle, tmp_path):
    gateway = make_proxy(**MIGRATION_RULES, windows={"on_expiry": "terminate"})
    runner, gate = run_until_expiry(gateway, oracle, tmp_path, cluster)

    wait_until(lambda: not cluster.backends(user="migrator"), 15, "the bound migrator backend to end")
    gate.release("r10")
    code, output = finish(runner)

    assert code != 0, output
    assert "InsufficientPrivilege" not in output
    assert version_rows(oracle) == ["r2"]
    assert not table_exists(oracle, "public.big")
    assert not column_exists(oracle, "gadgets", "size")


def admin_request(proxy, method, path, token=None, body=None):
    """Send one admin API request and return the HTTP status."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{proxy.admin_url}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_admin_api_requires_token(make_proxy):
    gateway = make_proxy(**MIGRATION_RULES)
    window_id = gateway.open_window(reason="present before the attempts")
    request = {"database": "app", "for": "30m", "reason": "no token"}

    assert admin_request(gateway, "POST", "/v1/windows", body=request) == 401
    assert admin_request(gateway, "POST", "/v1/windows", token="wrong-token", body=request) == 401
    assert admin_request(gateway, "GET", "/v1/windows") == 401
    assert admin_request(gateway, "DELETE", f"/v1/windows/{window_id}") == 401
    assert admin_request(gateway, "DELETE", "/v1/sessions/1") == 401

    assert open_windows(gateway) == [window_id]


@pytest.mark.usefixtures("fresh_app")
def test_window_survives_restart(make_proxy, oracle):
    gateway = make_proxy(**MIGRATION_RULES)
    window_id = gateway.open_window(reason="kept across a restart")

    gateway.restart()

    assert open_windows(gateway) == [window_id]
    result = run_alembic(MAIN_INI, mig_url(gateway), "upgrade", "head")
    assert result.returncode == 0, result.stdout
    assert version_rows(oracle) == ["7bd2348a0014"]


def test_prepared_in_window_denied_after(cluster, make_proxy, oracle):
    cluster.reset_app_db()
    oracle("GRANT ALL ON public.alembic_version TO migrator")
    gateway = make_proxy(**MIGRATION_RULES)
    window_id = gateway.open_window(reason="prepare, then close")

    with gateway.raw() as client:
        client.login("migrator", "app", "mig-pw")
        assert sqlstates(client.simple("PREPARE bump(text) AS UPDATE alembic_version SET version_num = $1")) == []
        client.send(parse("keep", "UPDATE alembic_version SET version_num = $1", [25]) + sync())
        assert sqlstates(client.read_until_ready()) == []
        client.send(parse("", "DELETE FROM alembic_version") + sync())
        assert sqlstates(client.read_until_ready()) == []

        gateway.close_window(window_id)

        assert sqlstates(client.simple("EXECUTE bump('zzzz9999')")) == ["42501"]
        client.send(bind("", "keep", ["zzzz9999"]) + execute("") + sync())
        assert sqlstates(client.read_until_ready()) == ["42501"]
        client.send(bind("", "") + execute("") + sync())
        assert sqlstates(client.read_until_ready()) == ["42501"]
        assert sqlstates(client.simple("EXPLAIN ANALYZE EXECUTE bump('y')")) == ["42501"]

    assert version_rows(oracle) == ["aaaa0001"]


def test_portal_bound_in_window_denied_after(cluster, make_proxy, oracle):
    cluster.reset_app_db()
    oracle("GRANT ALL ON public.alembic_version TO migrator")
    gateway = make_proxy(**MIGRATION_RULES)
    window_id = gateway.open_window(reason="bind a portal, then close")

    with gateway.raw() as client:
        client.login("migrator", "app", "mig-pw")
        assert sqlstates(client.simple("BEGIN")) == []
        # Portals live until the transaction ends, so this one outlives the window.
        client.send(parse("keep", "UPDATE alembic_version SET version_num = 'zzzz9999'") + bind("held", "keep") + sync())
        assert sqlstates(client.read_until_ready()) == []

        gateway.close_window(window_id)

        client.send(execute("held") + sync())
        assert sqlstates(client.read_until_ready()) == ["42501"]
        tags = [body for kind, body in client.simple("COMMIT") if kind == b"C"]
        assert tags == [b"ROLLBACK\x00"]

    assert version_rows(oracle) == ["aaaa0001"]


def test_prepared_psycopg_denied_after_close(cluster, make_proxy, oracle):
    cluster.reset_app_db()
    oracle("GRANT ALL ON public.alembic_version TO migrator")
    gateway = make_proxy(**MIGRATION_RULES)
    window_id = gateway.open_window(reason="prepare with psycopg2, then close")

    conn = psycopg2.connect(gateway.dsn(user="migrator", password="mig-pw"))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("PREPARE bump(text) AS UPDATE alembic_version SET version_num = $1")
            gateway.close_window(window_id)
            with pytest.raises(psycopg2.Error) as denied:
                cur.execute("EXECUTE bump('zzzz9999')")
    finally:
        conn.close()

    assert denied.value.pgcode == "42501"
    assert version_rows(oracle) == ["aaaa0001"]
