"""psycopg 3 through the proxy: prepared statements, pipeline mode, COPY, LISTEN/NOTIFY."""

import psycopg
import psycopg.errors
import pytest


@pytest.fixture
def conn(proxy):
    with psycopg.connect(proxy.dsn(), autocommit=True) as connection:
        yield connection


def test_prepared_statements(proxy, clean_app):
    with psycopg.connect(proxy.dsn(), prepare_threshold=0) as conn:
        for i in range(3):
            with conn.transaction():
                assert conn.execute("SELECT %s::int + 1", (i,), prepare=True).fetchone() == (i + 1,)
        conn.execute("DEALLOCATE ALL")
        assert conn.execute("SELECT %s::int + 1", (41,), prepare=True).fetchone() == (42,)


def test_pipeline_mode_and_executemany(proxy, oracle, clean_app):
    with psycopg.connect(proxy.dsn(), autocommit=True) as conn:
        with conn.pipeline():
            conn.execute("INSERT INTO widgets VALUES (%s, %s)", (10, "p"))
            count = conn.execute("SELECT count(*) FROM widgets")
            cur = conn.execute("SELECT name FROM widgets WHERE id = %s", (10,))
        assert count.fetchone() == (1,)
        assert cur.fetchone() == ("p",)

    with psycopg.connect(proxy.dsn(), prepare_threshold=0) as conn:
        conn.cursor().executemany("INSERT INTO widgets VALUES (%s, %s)", [(11, "a"), (12, "b"), (13, "c")])
        conn.commit()

    assert oracle("SELECT array_agg(id ORDER BY id) FROM widgets") == [([10, 11, 12, 13],)]


def test_error_in_middle_of_pipeline(proxy, oracle, clean_app):
    with psycopg.connect(proxy.dsn()) as conn:
        with pytest.raises(psycopg.errors.UniqueViolation):
            with conn.pipeline():
                conn.execute("INSERT INTO widgets VALUES (20, 'first')")
                conn.execute("INSERT INTO widgets VALUES (20, 'duplicate')")
                conn.execute("INSERT INTO widgets VALUES (21, 'skipped')")
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)

    assert oracle("SELECT count(*) FROM widgets") == [(0,)]


def test_copy_in_and_out(conn, oracle, clean_app):
    with conn.cursor() as cur:
        with cur.copy("COPY widgets FROM STDIN") as copy:
            for i in range(5000, 5100):
                copy.write_row((i, f"z{i}"))
        with cur.copy("COPY (SELECT id FROM widgets ORDER BY id) TO STDOUT") as copy:
            exported = [int(row[0]) for row in copy.rows()]

    assert exported == list(range(5000, 5100))
    assert oracle("SELECT count(*) FROM widgets") == [(100,)]


def test_listen_notify_between_proxied_sessions(proxy):
    with psycopg.connect(proxy.dsn(), autocommit=True) as listener, \
            psycopg.connect(proxy.dsn(), autocommit=True) as notifier:
        listener.execute("LISTEN jobs")
        notifier.execute("NOTIFY jobs, 'p1'")
        notifier.execute("SELECT pg_notify('jobs', 'p2')")

        received = []
        for notify in listener.notifies(timeout=5, stop_after=2):
            received.append((notify.channel, notify.payload))
        assert received == [("jobs", "p1"), ("jobs", "p2")]


def test_set_failure_is_immediate(conn):
    assert conn.execute("SELECT %s::text", ("p",)).fetchone() == ("p",)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("SET lock_timeout TO 'nonsense'")
    assert conn.execute("SELECT 1").fetchone() == (1,)
