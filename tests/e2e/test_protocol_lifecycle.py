"""Proxy lifecycle: upstream outages, load, and draining on SIGTERM."""

import os
import signal
import subprocess
import time

import psycopg2
import pytest

from harness import RawClient, ServerError, error_fields, port_accepts, postgres_bindir, raw_login, rows, wait_until


def proxied_login_works(proxy):
    try:
        with raw_login(proxy.host, proxy.port) as client:
            return rows(client.simple("SELECT 1")) == [[b"1"]]
    except (ServerError, OSError, EOFError):
        return False


def test_upstream_stopped_mid_session(cluster, proxy):
    conn = psycopg2.connect(proxy.dsn())
    conn.autocommit = True
    try:
        cluster.stop()
        with pytest.raises(psycopg2.Error) as err:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        if err.value.pgcode is not None:
            assert err.value.pgcode in ("57P01", "08006")

        assert proxy.is_running()
        with RawClient.connect(proxy.host, proxy.port) as client:
            client.startup("app", "app")
            with pytest.raises(ServerError) as down:
                client.auth_password("app-pw")
            assert down.value.fields["S"] == "FATAL"
            assert down.value.sqlstate.startswith(("08", "57"))
    finally:
        conn.close()
        cluster.start_again()

    assert proxy.is_running()
    wait_until(lambda: proxied_login_works(proxy), 10, interval=0.1, message="a login after restart")


def test_pgbench_select_only_has_no_errors(cluster, proxy):
    cluster.execute("DROP DATABASE IF EXISTS bench WITH (FORCE)")
    cluster.execute("CREATE DATABASE bench OWNER app")
    pgbench = postgres_bindir() / "pgbench"
    env = dict(os.environ, PGPASSWORD="app-pw")
    subprocess.run([pgbench, "-i", "-q", "-h", cluster.host, "-p", str(cluster.port), "-U", "app", "bench"],
                   check=True, capture_output=True, env=env)

    result = subprocess.run(
        [pgbench, "-S", "-T", "5", "-c", "4", "-j", "2", "-n",
         "-h", proxy.host, "-p", str(proxy.port), "-U", "app", "bench"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "number of failed transactions: 0" in result.stdout
    assert "error" not in result.stderr.lower()


def test_sigterm_drains_idle_sessions(make_proxy):
    proxy = make_proxy(limits={"shutdown_timeout": "3s"})
    with raw_login(proxy.host, proxy.port) as idle:
        started = time.monotonic()
        proxy.process.send_signal(signal.SIGTERM)

        messages = idle.read_until_closed(timeout=5)
        assert [t for t, _ in messages] in ([], [b"E"])
        if messages:
            assert error_fields(messages[0][1])["C"] == "57P01"

        assert proxy.process.wait(timeout=6) == 0
        assert time.monotonic() - started < 3 + 2

    assert not port_accepts(proxy.host, proxy.port)


def test_sigterm_refuses_new_sessions_while_draining(make_proxy):
    proxy = make_proxy(limits={"shutdown_timeout": "3s"})
    with raw_login(proxy.host, proxy.port) as busy:
        busy.simple("BEGIN")
        started = time.monotonic()
        proxy.process.send_signal(signal.SIGTERM)

        wait_until(lambda: not proxied_login_works(proxy), 2, interval=0.05,
                   message="new sessions to be refused after SIGTERM")
        assert proxy.process.wait(timeout=6) == 0
        assert time.monotonic() - started < 3 + 2
