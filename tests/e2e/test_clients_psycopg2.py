"""psycopg2 (simple protocol through libpq) through the proxy."""

import io

import psycopg2
import psycopg2.errors
import pytest

STARTUP_PARAMETERS = ["client_encoding", "DateStyle", "standard_conforming_strings", "server_version",
                      "integer_datetimes", "TimeZone", "IntervalStyle", "is_superuser", "session_authorization"]


@pytest.fixture
def conn(proxy):
    connection = psycopg2.connect(proxy.dsn())
    yield connection
    connection.close()


def test_parameter_status_matches_direct(conn, direct_app_dsn):
    direct = psycopg2.connect(direct_app_dsn)
    try:
        for name in STARTUP_PARAMETERS:
            assert conn.get_parameter_status(name) == direct.get_parameter_status(name), name
        assert conn.encoding == "UTF8"
    finally:
        direct.close()


def test_simple_queries_and_transactions(conn, oracle, clean_app):
    with conn.cursor() as cur:
        cur.execute("INSERT INTO widgets VALUES (%s, %s)", (1, "a'b"))
        cur.execute("SELECT name FROM widgets WHERE id = %s", (1,))
        assert cur.fetchone() == ("a'b",)
    conn.rollback()
    assert oracle("SELECT count(*) FROM widgets") == [(0,)]

    with conn.cursor() as cur:
        cur.execute("INSERT INTO widgets VALUES (2, 'kept')")
    conn.commit()
    assert oracle("SELECT name FROM widgets") == [("kept",)]


def test_failed_transaction_rolls_back(conn, oracle, clean_app):
    with conn.cursor() as cur:
        cur.execute("INSERT INTO widgets VALUES (300, 't')")
        with pytest.raises(psycopg2.errors.DivisionByZero):
            cur.execute("SELECT 1/0")
        with pytest.raises(psycopg2.errors.InFailedSqlTransaction):
            cur.execute("SELECT 1")
    conn.commit()
    assert oracle("SELECT count(*) FROM widgets") == [(0,)]


def test_copy_expert_in_and_out(conn, oracle, clean_app):
    data = "".join(f"{i}\tw{i}\n" for i in range(1, 501))
    with conn.cursor() as cur:
        cur.copy_expert("COPY widgets FROM STDIN", io.StringIO(data))
        out = io.StringIO()
        cur.copy_expert("COPY (SELECT * FROM widgets ORDER BY id) TO STDOUT", out)
    conn.commit()
    assert out.getvalue() == data
    assert oracle("SELECT count(*) FROM widgets") == [(500,)]


def test_notice_is_relayed(conn):
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("ROLLBACK")
    assert any("there is no transaction in progress" in notice for notice in conn.notices)
