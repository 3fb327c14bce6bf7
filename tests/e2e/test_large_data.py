"""Large messages and large results pass through without being buffered whole."""

import asyncio
import time

import asyncpg
import psycopg2


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("VmRSS not found")


def test_fifty_megabyte_parameter_asyncpg(proxy, cluster):
    cluster.reset_app_rows()

    async def insert():
        conn = await asyncpg.connect(proxy.url())
        try:
            await conn.execute("INSERT INTO widgets VALUES ($1, $2)", 7000, "x" * 50_000_000)
        finally:
            await conn.close()

    asyncio.run(insert())
    assert cluster.execute("SELECT length(name) FROM widgets WHERE id = 7000", dbname="app") == [(50_000_000,)]


def test_fifty_megabyte_literal_psycopg2(proxy, cluster):
    cluster.reset_app_rows()
    conn = psycopg2.connect(proxy.dsn())
    try:
        with conn.cursor() as cur:
            started = time.monotonic()
            cur.execute("INSERT INTO widgets VALUES (7001, %s)", ("y" * 50_000_000,))
            elapsed = time.monotonic() - started
        conn.commit()
    finally:
        conn.close()
    assert cluster.execute("SELECT length(name) FROM widgets WHERE id = 7001", dbname="app") == [(50_000_000,)]
    print(f"50 MB literal through the proxy took {elapsed:.2f} s")


def test_large_copy_out_is_streamed(proxy, cluster):
    cluster.reset_app_rows()
    cluster.execute("INSERT INTO widgets SELECT g, repeat('w', 100) FROM generate_series(1, 2000000) g", dbname="app")
    before = rss_kib(proxy.process.pid)
    conn = psycopg2.connect(proxy.dsn())
    try:
        with conn.cursor() as cur:
            sink = CountingSink()
            cur.copy_expert("COPY widgets TO STDOUT", sink)
    finally:
        conn.close()
    after = rss_kib(proxy.process.pid)
    assert sink.lines == 2_000_000
    assert after - before < 64 * 1024, f"proxy RSS grew by {after - before} KiB"
    cluster.reset_app_rows()


class CountingSink:
    """A file-like sink that counts COPY lines without keeping them."""

    def __init__(self):
        self.lines = 0

    def write(self, data):
        self.lines += data.count(b"\n") if isinstance(data, bytes) else data.count("\n")
        return len(data)
