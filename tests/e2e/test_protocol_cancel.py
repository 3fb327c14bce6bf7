"""CancelRequest routing through the proxy: the right session, and only with the right key."""

import asyncio
import os
import threading
import time

import asyncpg
import psycopg
import pytest

from harness import RawClient, cancel_request, query, raw_login, rows, sqlstates, wait_until


def active_sleeps(cluster, marker):
    """Return the pids of backends currently running a query that contains `marker`."""
    found = cluster.execute(
        "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s AND pid <> pg_backend_pid()",
        params=[f"%{marker}%"],
    )
    return [pid for (pid,) in found]


def wait_running(cluster, marker, count=1):
    wait_until(lambda: len(active_sleeps(cluster, marker)) >= count, 10, interval=0.05,
               message=f"{count} backend(s) running {marker!r}")


def send_cancel(proxy, pid, key):
    """Send a CancelRequest on a fresh connection; return what the proxy sent back before closing."""
    with RawClient.connect(proxy.host, proxy.port) as canceller:
        canceller.send(cancel_request(pid, key))
        data = b""
        while True:
            chunk = canceller.sock.recv(4096)
            if not chunk:
                return data
            data += chunk


def test_psycopg_cancel_stops_pg_sleep(cluster, proxy):
    conn = psycopg.connect(proxy.dsn(), autocommit=True)
    outcome = {}

    def run():
        started = time.monotonic()
        try:
            conn.execute("SELECT pg_sleep(30) /* psycopg-cancel */")
        except psycopg.errors.QueryCanceled:
            outcome["canceled_after"] = time.monotonic() - started

    worker = threading.Thread(target=run)
    worker.start()
    try:
        wait_running(cluster, "psycopg-cancel")
        conn.cancel()
        worker.join(timeout=5)
        assert "canceled_after" in outcome
        assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        worker.join(timeout=30)
        conn.close()


def test_asyncpg_timeout_cancels_server_side(cluster, proxy):
    async def scenario():
        conn = await asyncpg.connect(proxy.url())
        try:
            with pytest.raises(asyncio.TimeoutError):
                await conn.fetchval("SELECT pg_sleep(30) /* asyncpg-timeout */", timeout=0.5)
            return await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    assert asyncio.run(scenario()) == 1
    wait_until(lambda: active_sleeps(cluster, "asyncpg-timeout") == [], 5, interval=0.05,
               message="the timed-out pg_sleep to stop on the server")


def test_cancel_hits_only_its_session(cluster, proxy):
    with raw_login(proxy.host, proxy.port) as session_a, raw_login(proxy.host, proxy.port) as session_b:
        session_a.send(query("SELECT pg_sleep(3) /* session-a */"))
        session_b.send(query("SELECT pg_sleep(3) /* session-b */"))
        wait_running(cluster, "session-", count=2)

        started = time.monotonic()
        assert send_cancel(proxy, session_a.backend_pid, session_a.backend_key) == b""
        assert sqlstates(session_a.read_until_ready()) == ["57014"]
        assert time.monotonic() - started < 1.5

        b_messages = session_b.read_until_ready()
        assert sqlstates(b_messages) == []
        assert rows(b_messages) == [[b""]]


def test_cancel_with_random_key_cancels_nothing(cluster, proxy):
    with raw_login(proxy.host, proxy.port) as session:
        session.send(query("SELECT pg_sleep(1) /* random-key */"))
        wait_running(cluster, "random-key")

        wrong_key = bytes(b ^ 0xFF for b in session.backend_key)
        assert send_cancel(proxy, session.backend_pid, wrong_key) == b""
        assert send_cancel(proxy, session.backend_pid ^ 0x5A5A, os.urandom(len(session.backend_key))) == b""

        messages = session.read_until_ready()
        assert sqlstates(messages) == []
        assert rows(messages) == [[b""]]


def test_late_cancel_does_not_hit_other_session(cluster, proxy):
    with raw_login(proxy.host, proxy.port) as session_a, raw_login(proxy.host, proxy.port) as session_b:
        assert rows(session_a.simple("SELECT 1")) == [[b"1"]]

        session_b.send(query("SELECT pg_sleep(1) /* late-cancel */"))
        wait_running(cluster, "late-cancel")
        send_cancel(proxy, session_a.backend_pid, session_a.backend_key)

        messages = session_b.read_until_ready()
        assert sqlstates(messages) == []
        assert rows(session_a.simple("SELECT 2")) == [[b"2"]]


def test_issued_key_does_not_cancel_upstream_directly(cluster, proxy):
    with raw_login(proxy.host, proxy.port) as session:
        (server_pid,) = rows(session.simple("SELECT pg_backend_pid()"))[0]
        session.send(query("SELECT pg_sleep(1) /* direct-cancel */"))
        wait_running(cluster, "direct-cancel")

        with RawClient.connect(cluster.host, cluster.port) as direct:
            direct.send(cancel_request(int(server_pid), session.backend_key))
            assert direct.sock.recv(4096) == b""

        messages = session.read_until_ready()
        assert sqlstates(messages) == []
