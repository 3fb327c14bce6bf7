"""Denied alembic_version writes inside pipelines and transactions.

A denial must look to the client exactly like a server-side ERROR (ordering,
ReadyForQuery status, skip-until-Sync), and the oracle's end state shows that
nothing of the denied statement ran.
"""

import asyncio
import shutil
import subprocess
import time

import asyncpg
import psycopg2
import psycopg2.errors
import pytest

from harness import (
    bind, execute, extended_query, flush, parse, query, raw_login, rows, sqlstates, sync, tags, types,
)

pytestmark = pytest.mark.policy

VERSION_CHECK = "SELECT array_agg(version_num ORDER BY 1) FROM public.alembic_version"


def assert_version_untouched(oracle):
    assert oracle(VERSION_CHECK) == [(["aaaa0001"],)]


def test_asyncpg_denial_after_flush(proxy, oracle, clean_app):
    async def scenario():
        conn = await asyncpg.connect(proxy.url())
        try:
            started = time.monotonic()
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetchrow("DELETE FROM alembic_version RETURNING 1")
            elapsed = time.monotonic() - started
            return elapsed, await conn.fetchval("SELECT 1")
        finally:
            await conn.close()

    elapsed, after = asyncio.run(scenario())
    assert elapsed < 1
    assert after == 1
    assert_version_untouched(oracle)


def test_denial_keeps_pipeline_order(proxy, oracle, clean_app):
    with raw_login(proxy.host, proxy.port) as client:
        client.send(
            extended_query("SELECT pg_sleep(0.5), 1") + sync()
            + extended_query("UPDATE alembic_version SET version_num='zzzz9999'") + sync()
            + extended_query("SELECT 3") + sync()
        )
        first = client.read_until_ready()
        second = client.read_until_ready()
        third = client.read_until_ready()

    assert types(first) == "12DCZ"
    assert first[-1] == (b"Z", b"I")
    assert types(second) == "EZ"
    assert sqlstates(second) == ["42501"]
    assert second[-1] == (b"Z", b"I")
    assert types(third) == "12DCZ"
    assert rows(third) == [[b"3"]]
    assert_version_untouched(oracle)


def test_denial_in_transaction_fails_block(proxy, oracle, clean_app):
    with raw_login(proxy.host, proxy.port) as client:
        assert client.simple("BEGIN")[-1] == (b"Z", b"T")
        client.send(
            extended_query("INSERT INTO widgets VALUES (5,'t')") + sync()
            + extended_query("UPDATE alembic_version SET version_num='zzzz9999'") + sync()
            + extended_query("SELECT 3") + sync()
        )
        first = client.read_until_ready()
        second = client.read_until_ready()
        third = client.read_until_ready()
        commit = client.simple("COMMIT")

    assert first[-1] == (b"Z", b"T")
    assert sqlstates(second) == ["42501"]
    assert second[-1] == (b"Z", b"E")
    assert sqlstates(third) == ["25P02"]
    assert third[-1] == (b"Z", b"E")
    assert tags(commit) == ["ROLLBACK"]
    assert commit[-1] == (b"Z", b"I")
    assert oracle("SELECT count(*) FROM widgets WHERE id = 5") == [(0,)]
    assert_version_untouched(oracle)


def test_denial_answers_flush_before_sync(proxy, oracle, clean_app):
    with raw_login(proxy.host, proxy.port) as client:
        client.send(extended_query("UPDATE alembic_version SET version_num='zzzz9999'") + flush())
        type_byte, _ = client.read_message()
        assert type_byte == b"E"

        client.send(sync())
        assert client.read_until_ready() == [(b"Z", b"I")]
        assert rows(client.simple("SELECT 1")) == [[b"1"]]

    assert_version_untouched(oracle)


def test_denied_parse_takes_bind_and_execute(proxy, oracle, clean_app):
    with raw_login(proxy.host, proxy.port) as client:
        client.send(parse("", "SELECT 'harmless'") + sync())
        assert types(client.read_until_ready()) == "1Z"

        client.send(parse("", "DELETE FROM alembic_version") + bind() + execute() + sync())
        messages = client.read_until_ready()

    assert types(messages) == "EZ"
    assert sqlstates(messages) == ["42501"]
    assert messages[-1] == (b"Z", b"I")
    assert_version_untouched(oracle)


def test_second_query_in_one_write_denied(proxy, oracle, clean_app):
    with raw_login(proxy.host, proxy.port) as client:
        client.send(query("SELECT 1") + query("DELETE FROM alembic_version"))
        first = client.read_until_ready()
        second = client.read_until_ready()

    assert rows(first) == [[b"1"]]
    assert types(second) == "EZ"
    assert sqlstates(second) == ["42501"]
    assert_version_untouched(oracle)


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed")
def test_psql_multi_statement_denied(proxy, oracle, clean_app):
    result = subprocess.run(
        ["psql", "-X", proxy.dsn(), "-c", "SELECT 1; DELETE FROM alembic_version; SELECT 2"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0
    assert "42501" in result.stderr or "denied" in result.stderr.lower() or "permission" in result.stderr.lower()
    assert "DELETE" not in result.stdout
    assert_version_untouched(oracle)


def test_psycopg2_denial_fails_transaction(proxy, oracle, clean_app):
    conn = psycopg2.connect(proxy.dsn())
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO widgets VALUES (300, 't')")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("DELETE FROM alembic_version")
            with pytest.raises(psycopg2.errors.InFailedSqlTransaction):
                cur.execute("SELECT 1")
        conn.commit()
    finally:
        conn.close()

    assert oracle("SELECT count(*) FROM widgets WHERE id = 300") == [(0,)]
    assert_version_untouched(oracle)


def test_prepared_rollback_accepted_after_denial(proxy, oracle, clean_app):
    with raw_login(proxy.host, proxy.port) as client:
        client.send(parse("rb", "ROLLBACK") + sync())
        assert types(client.read_until_ready()) == "1Z"
        client.simple("BEGIN")
        client.simple("INSERT INTO widgets VALUES (301, 't')")

        client.send(extended_query("DELETE FROM alembic_version") + sync())
        denied = client.read_until_ready()
        client.send(bind("", "rb") + execute() + sync())
        rolled_back = client.read_until_ready()

    assert sqlstates(denied) == ["42501"]
    assert denied[-1] == (b"Z", b"E")
    assert types(rolled_back) == "2CZ"
    assert tags(rolled_back) == ["ROLLBACK"]
    assert rolled_back[-1] == (b"Z", b"I")
    assert oracle("SELECT count(*) FROM widgets WHERE id = 301") == [(0,)]
    assert_version_untouched(oracle)
