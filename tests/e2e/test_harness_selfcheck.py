"""Checks of the harness itself against PostgreSQL directly (no proxy involved)."""

import psycopg2
import pytest

from harness import RawClient, ServerError, query, sync, parse, bind, execute, types, rows, tags


def test_fixture_f_state(oracle):
    assert oracle("SELECT array_agg(version_num ORDER BY 1) FROM public.alembic_version") == [(["aaaa0001"],)]
    assert oracle("SELECT tableowner FROM pg_tables WHERE tablename = 'widgets'") == [("app",)]


def test_raw_client_scram_login(cluster):
    with RawClient.connect(cluster.host, cluster.port) as client:
        client.login("app", "app", "app-pw")
        assert client.params["client_encoding"] == "UTF8"
        assert client.backend_pid is not None

        messages = client.simple("SELECT 1; SELECT 2")
        assert types(messages) == "TDCTDCZ"
        assert rows(messages) == [[b"1"], [b"2"]]


def test_raw_client_md5_login(cluster):
    with RawClient.connect(cluster.host, cluster.port) as client:
        client.login("md5user", "postgres", "md5-pw")
        client.send(parse("", "SELECT $1::int + 1") + bind("", "", ["41"]) + execute() + sync())
        messages = client.read_until_ready()
        assert types(messages) == "12DCZ"
        assert rows(messages) == [[b"42"]]
        assert tags(messages) == ["SELECT 1"]


def test_raw_client_wrong_password(cluster):
    with RawClient.connect(cluster.host, cluster.port) as client:
        with pytest.raises(ServerError) as err:
            client.login("app", "app", "not-the-password")
        assert err.value.sqlstate == "28P01"


def test_raw_client_tls(cluster):
    with RawClient.connect(cluster.host, cluster.port) as client:
        assert client.start_tls() == b"S"
        client.login("app", "app", "app-pw")
        client.send(query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
        assert rows(client.read_until_ready()) == [[b"t"]]


def test_md5user_uses_md5_and_tls_verify_full(cluster):
    dsn = cluster.dsn(user="md5user", password="md5-pw", sslmode="verify-full",
                      sslrootcert=str(cluster.ca_path), host="localhost")
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert cur.fetchone() == ("md5user", True)
    finally:
        conn.close()


def test_reset_app_db_restores_rows(cluster, oracle):
    oracle("INSERT INTO widgets VALUES (1, 'x')")
    cluster.reset_app_rows()
    assert oracle("SELECT count(*) FROM widgets") == [(0,)]


def test_proxy_window_open_and_close(proxy):
    window_id = proxy.open_window(reason="harness self-check")
    assert window_id
    listed = proxy.cli("window", "list")
    assert listed.returncode == 0, listed.stderr
    assert window_id in listed.stdout

    closed = proxy.close_window(window_id)
    assert closed.returncode == 0
