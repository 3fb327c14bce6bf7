"""asyncpg (extended protocol, binary results, statement cache) through the proxy."""

import asyncio
import datetime
import decimal

import asyncpg
import pytest


def run(coro):
    return asyncio.run(coro)


async def connect(proxy, **kwargs):
    return await asyncpg.connect(proxy.url(), **kwargs)


@pytest.mark.parametrize("cache_size", [100, 0])
def test_prepared_statements(proxy, clean_app, cache_size):
    async def scenario():
        conn = await connect(proxy, statement_cache_size=cache_size)
        try:
            assert await conn.fetchrow("SELECT $1::int + 1 AS n", 41) == (42,)
            await conn.execute("INSERT INTO widgets VALUES (1, 'one')")
            statement = await conn.prepare("SELECT name FROM widgets WHERE id = $1")
            assert await statement.fetchval(1) == "one"
            assert await statement.fetchval(2) is None
        finally:
            await conn.close()

    run(scenario())


def test_binary_results(proxy):
    async def scenario():
        conn = await connect(proxy)
        try:
            return await conn.fetchrow(
                "SELECT 1::int8 AS i, 2.5::numeric AS n, '2024-03-01'::date AS d,"
                " ARRAY[1,2,3] AS a, '\\x00ff'::bytea AS b, NULL::text AS t, true AS f"
            )
        finally:
            await conn.close()

    row = run(scenario())
    assert row["i"] == 1
    assert row["n"] == decimal.Decimal("2.5")
    assert row["d"] == datetime.date(2024, 3, 1)
    assert row["a"] == [1, 2, 3]
    assert row["b"] == b"\x00\xff"
    assert row["t"] is None
    assert row["f"] is True


def test_copy_records_and_executemany(proxy, oracle, clean_app):
    async def scenario():
        conn = await connect(proxy)
        try:
            await conn.copy_records_to_table("widgets", records=[(i, f"c{i}") for i in range(100, 200)])
            await conn.executemany("INSERT INTO widgets VALUES ($1, $2)", [(i, f"e{i}") for i in range(200, 210)])
        finally:
            await conn.close()

    run(scenario())
    assert oracle("SELECT count(*), min(id), max(id) FROM widgets") == [(110, 100, 209)]


def test_empty_statement_returns_none(proxy):
    async def scenario():
        conn = await connect(proxy)
        try:
            return await conn.fetchrow(";")
        finally:
            await conn.close()

    assert run(scenario()) is None


def test_transaction_rollback(proxy, oracle, clean_app):
    async def scenario():
        conn = await connect(proxy)
        try:
            with pytest.raises(asyncpg.UniqueViolationError):
                async with conn.transaction():
                    await conn.execute("INSERT INTO widgets VALUES (7, 'a')")
                    await conn.execute("INSERT INTO widgets VALUES (7, 'b')")
            return await conn.fetchval("SELECT count(*) FROM widgets")
        finally:
            await conn.close()

    assert run(scenario()) == 0
    assert oracle("SELECT count(*) FROM widgets") == [(0,)]
