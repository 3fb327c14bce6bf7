"""Attacks on the protected table and on the policy, through the proxy, with
three drivers. Every verdict is checked against the database itself: the
`app` role owns `alembic_version`, so only schemagate prevents the writes."""

import asyncio

import asyncpg
import psycopg
import psycopg2
import pytest

from harness import function_call, sqlstates

DEFAULT_VERSIONS = [("aaaa0001",)]

# Writes, locks and DDL on the protected table, in every spelling and hiding place.
DENIED = [
    "DELETE FROM ALEMBIC_VERSION",
    'DELETE FROM "alembic_version"',
    "DELETE FROM public.alembic_version",
    'DELETE FROM "public"."alembic_version"',
    "DELETE FROM app.public.alembic_version",
    'DELETE FROM U&"alembic\\005fversion"',
    "DELETE FROM U&\"alembic!005fversion\" UESCAPE '!'",
    "DELETE/**/FROM/**/alembic_version",
    "UPDATE alembic_version AS v SET version_num = 'x'",
    "DELETE FROM ONLY alembic_version",
    "INSERT INTO alembic_version SELECT 'zzzz9999'",
    "WITH d AS (DELETE FROM alembic_version RETURNING *) SELECT count(*) FROM d",
    "WITH u AS (UPDATE alembic_version SET version_num = 'zzzz9999' RETURNING 1) SELECT 1",
    "WITH x AS (SELECT 1) DELETE FROM alembic_version",
    "WITH d AS (DELETE FROM alembic_version RETURNING version_num) INSERT INTO widgets SELECT 900, version_num FROM d",
    "MERGE INTO alembic_version t USING (VALUES ('zzzz9999')) s(v) ON true WHEN MATCHED THEN UPDATE SET version_num = s.v",
    "SELECT * INTO alembic_copy FROM alembic_version",
    "EXPLAIN ANALYZE DELETE FROM alembic_version",
    "EXPLAIN (ANALYZE, FORMAT JSON) UPDATE alembic_version SET version_num = 'x'",
    "COPY (DELETE FROM alembic_version RETURNING *) TO STDOUT",
    "COPY (UPDATE alembic_version SET version_num = 'x' RETURNING *) TO STDOUT",
    "TRUNCATE alembic_version",
    "ALTER TABLE alembic_version ADD COLUMN x int",
    "DROP TABLE alembic_version",
    "GRANT ALL ON alembic_version TO PUBLIC",
    "CREATE RULE r AS ON SELECT TO widgets DO ALSO DELETE FROM alembic_version",
    "PREPARE p AS DELETE FROM alembic_version",
    "PREPARE q AS WITH d AS (DELETE FROM alembic_version RETURNING 1) SELECT 1",
    "DO $$ BEGIN DELETE FROM alembic_version; END $$",
    "DO $$ BEGIN EXECUTE 'DEL' || 'ETE FROM alembic_version'; END $$",
    "SELECT * FROM alembic_version FOR UPDATE",
    "SELECT * FROM alembic_version FOR NO KEY UPDATE",
    "SELECT * FROM alembic_version FOR SHARE",
    "LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE",
    "CREATE TABLE sneaky (i int)",
    "CREATE VIEW av AS SELECT * FROM alembic_version",
]

# Statements that look alike but touch other relations, or only read.
ALLOWED = [
    'DELETE FROM "ALEMBIC_VERSION"',
    'DELETE FROM "alembic_version "',
    "SELECT 1 AS alembic_version",
    "SELECT 'DELETE FROM alembic_version'",
    "SELECT version_num FROM alembic_version",
    "COPY (SELECT * FROM alembic_version) TO STDOUT",
    "EXPLAIN DELETE FROM alembic_version",
    "LOCK TABLE alembic_version IN ACCESS SHARE MODE",
]


@pytest.fixture
def attack_db(cluster, oracle):
    cluster.reset_app_db()
    oracle('CREATE TABLE public."ALEMBIC_VERSION" (x int); CREATE TABLE public."alembic_version " (x int);'
           ' ALTER TABLE public."ALEMBIC_VERSION" OWNER TO app; ALTER TABLE public."alembic_version " OWNER TO app;')
    return oracle


def versions(oracle):
    return oracle("SELECT version_num FROM public.alembic_version ORDER BY 1")


def psycopg2_sqlstate(dsn, sql):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            if sql.startswith(("LOCK", "SELECT * FROM alembic_version FOR")):
                cur.execute("BEGIN")
            cur.execute(sql)
        return None
    except psycopg2.Error as err:
        return err.pgcode
    finally:
        conn.close()


def psycopg3_sqlstate(dsn, sql):
    # prepare=True sends Parse/Bind/Execute with a named statement (extended protocol).
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            if sql.startswith(("LOCK", "SELECT * FROM alembic_version FOR")):
                with conn.transaction():
                    conn.execute(sql, prepare=True)
            else:
                conn.execute(sql, prepare=True)
            return None
        except psycopg.Error as err:
            return err.sqlstate


def asyncpg_sqlstate(url, sql):
    async def attempt():
        conn = await asyncpg.connect(url)
        try:
            if sql.startswith(("LOCK", "SELECT * FROM alembic_version FOR")):
                async with conn.transaction():
                    await conn.fetch(sql)
            else:
                await conn.fetch(sql)
            return None
        except asyncpg.PostgresError as err:
            return err.sqlstate
        finally:
            await conn.close()

    return asyncio.run(attempt())


def run_with(driver, proxy, sql):
    if driver == "psycopg2":
        return psycopg2_sqlstate(proxy.dsn(), sql)
    if driver == "psycopg3":
        return psycopg3_sqlstate(proxy.dsn(), sql)
    return asyncpg_sqlstate(proxy.url(), sql)


DRIVERS = ["psycopg2", "psycopg3", "asyncpg"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_protected_table_attacks_denied(attack_db, proxy, driver):
    outcomes = {}
    for sql in DENIED:
        if driver != "psycopg2" and sql.startswith("COPY"):
            continue  # COPY ... TO STDOUT is a simple-protocol exchange for these drivers
        outcomes[sql] = run_with(driver, proxy, sql)
    not_denied = {sql: code for sql, code in outcomes.items() if code != "42501"}
    assert not_denied == {}
    assert versions(attack_db) == DEFAULT_VERSIONS
    assert attack_db("SELECT to_regclass('public.alembic_copy'), to_regclass('public.sneaky'),"
                     " to_regclass('public.av')") == [(None, None, None)]
    assert attack_db("SELECT count(*) FROM pg_rules WHERE rulename = 'r'") == [(0,)]
    assert attack_db("SELECT count(*) FROM widgets") == [(0,)]


@pytest.mark.parametrize("driver", DRIVERS)
def test_lookalike_statements_allowed(attack_db, proxy, driver):
    for sql in ALLOWED:
        if driver != "psycopg2" and sql.startswith("COPY"):
            continue
        assert run_with(driver, proxy, sql) is None, sql
    assert versions(attack_db) == DEFAULT_VERSIONS


SETTINGS_DENIED = [
    "SET search_path = evil, public",
    "SET search_path TO public, pg_catalog",
    "SELECT set_config('search_path', 'evil, public', false)",
    "SELECT pg_catalog.set_config('search_path', 'evil', false)",
    "SELECT set_config('search' || '_path', 'evil', false)",
    "SELECT set_config(name, 'evil', false) FROM pg_settings WHERE name = 'search_path'",
    "SET ROLE migrator",
    "SET SESSION AUTHORIZATION migrator",
    "SELECT set_config('role', 'migrator', false)",
    "SET client_encoding = 'SJIS'",
    "SET NAMES 'GBK'",
    "SET standard_conforming_strings = off",
    "SET backslash_quote = on",
    "ALTER ROLE app SET search_path = evil",
    "ALTER DATABASE app SET standard_conforming_strings = off",
    "ALTER FUNCTION pg_catalog.set_config(text, text, boolean) RENAME TO sc",
]

SETTINGS_ALLOWED = [
    "SELECT pg_catalog.set_config('search_path', '', false)",
    "SET search_path = public",
    "SET application_name = 'worker-1'",
    "SET LOCAL statement_timeout = '5s'",
    "SELECT set_config('myapp.tenant', '42', true)",
    "RESET ALL",
    "SET SESSION AUTHORIZATION DEFAULT",
    "RESET ROLE",
]


def test_security_relevant_settings(attack_db, proxy):
    conn = psycopg2.connect(proxy.dsn())
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for sql in SETTINGS_DENIED:
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cur.execute(sql)
            for sql in SETTINGS_ALLOWED:
                cur.execute(sql)
            cur.execute("SELECT current_user, current_setting('search_path'), current_setting('client_encoding'),"
                        " current_setting('standard_conforming_strings')")
            assert cur.fetchone() == ("app", "\"$user\", public", "UTF8", "on")
    finally:
        conn.close()
    assert attack_db("SELECT count(*) FROM pg_db_role_setting") == [(0,)]


def test_standard_conforming_strings_stays_on(attack_db, proxy):
    conn = psycopg2.connect(proxy.dsn())
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for sql in ("SET standard_conforming_strings = off",
                        "SELECT set_config('standard_conforming_strings', 'off', false)"):
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cur.execute(sql)
            cur.execute("BEGIN")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("SET LOCAL standard_conforming_strings TO off")
            cur.execute("ROLLBACK")
            # With the setting on this is one string literal, and nothing is deleted.
            cur.execute("SELECT 'a\\'' ; DELETE FROM alembic_version; --'")
    finally:
        conn.close()
    assert versions(attack_db) == DEFAULT_VERSIONS


def test_role_default_off_ends_session_at_login(attack_db, proxy):
    attack_db("ALTER ROLE app IN DATABASE app SET standard_conforming_strings = off")
    try:
        with pytest.raises(psycopg2.OperationalError) as err:
            psycopg2.connect(proxy.dsn())
        assert "standard_conforming_strings" in str(err.value)
    finally:
        attack_db("ALTER ROLE app IN DATABASE app RESET standard_conforming_strings")
    assert versions(attack_db) == DEFAULT_VERSIONS


def test_dangerous_functions_denied(attack_db, proxy):
    attack_db("CREATE EXTENSION IF NOT EXISTS dblink")
    statements = [
        "SELECT dblink_exec('dbname=app user=app password=app-pw host=127.0.0.1', 'DELETE FROM alembic_version')",
        "SELECT * FROM public.dblink('dbname=app', 'DELETE FROM alembic_version RETURNING 1') AS t(x int)",
        "SELECT U&\"dblink\\005fexec\"('dbname=app', 'DELETE FROM alembic_version')",
        "SELECT pg_read_file('postgresql.conf')",
        "SELECT lo_import('/etc/hosts')",
        "SELECT query_to_xml('DELETE FROM alembic_version RETURNING 1', true, true, '')",
        "SELECT pg_terminate_backend(pg_backend_pid())",
        "SELECT pg_cancel_backend(1)",
        "COPY widgets FROM PROGRAM 'true'",
        "COPY widgets TO '/tmp/schemagate-widgets'",
        "CREATE SERVER loop FOREIGN DATA WRAPPER dblink_fdw OPTIONS (dbname 'app')",
        "ALTER SYSTEM SET log_statement = 'none'",
        "LOAD 'auto_explain'",
        "CREATE ROLE intruder",
        "GRANT migrator TO app",
    ]
    codes = {sql: psycopg2_sqlstate(proxy.dsn(), sql) for sql in statements}
    assert {sql: code for sql, code in codes.items() if code != "42501"} == {}
    assert versions(attack_db) == DEFAULT_VERSIONS
    assert attack_db("SELECT count(*) FROM pg_roles WHERE rolname = 'intruder'") == [(0,)]
    assert attack_db("SELECT count(*) FROM pg_foreign_server") == [(0,)]


def test_functioncall_message_denied(attack_db, proxy):
    attack_db("CREATE FUNCTION public.evil_bump() RETURNS void LANGUAGE sql AS "
              "$$UPDATE public.alembic_version SET version_num = 'zzzz9999'$$")
    evil_oid = attack_db("SELECT 'public.evil_bump()'::regprocedure::oid")[0][0]
    set_config_oid = attack_db("SELECT 'pg_catalog.set_config(text,text,boolean)'::regprocedure::oid")[0][0]
    with proxy.raw() as client:
        client.login("app", "app", "app-pw")
        client.send(function_call(evil_oid))
        assert sqlstates(client.read_until_ready()) == ["42501"]
        client.send(function_call(set_config_oid, [b"search_path", b"evil", b"\x00"], arg_formats=[0, 0, 1]))
        assert sqlstates(client.read_until_ready()) == ["42501"]
        search_path = [body for kind, body in client.simple("SHOW search_path") if kind == b"D"]
        assert b"evil" not in b"".join(search_path)
    assert versions(attack_db) == DEFAULT_VERSIONS


def test_function_outside_proxy_relies_on_grants(attack_db, proxy):
    # Calls of existing functions pass the policy; the database's grants decide.
    attack_db("CREATE FUNCTION public.evil_bump() RETURNS void LANGUAGE sql AS "
              "$$UPDATE public.alembic_version SET version_num = 'zzzz9999'$$;"
              " REVOKE EXECUTE ON FUNCTION public.evil_bump() FROM app, PUBLIC;")
    assert psycopg2_sqlstate(proxy.dsn(), "SELECT evil_bump()") == "42501"
    assert versions(attack_db) == DEFAULT_VERSIONS


def test_invalid_utf8_and_nul_rejected(attack_db, proxy):
    from harness import message, query, sync
    with proxy.raw() as client:
        client.login("app", "app", "app-pw")
        client.send(message(b"Q", b"SELECT E'\xff\\' ; DELETE FROM alembic_version; -- '\x00"))
        assert sqlstates(client.read_until_ready())[0] in ("22021", "42501")
        client.send(message(b"Q", b'DELETE FROM "alembic\x80_version"\x00'))
        assert sqlstates(client.read_until_ready())[0] in ("22021", "42501")
        client.send(message(b"P", b"\x00SELECT 1\x00; DELETE FROM alembic_version\x00\x00\x00") + sync())
        assert sqlstates(client.read_until_ready()) == ["08P01"]
        client.send(query("SELECT 1"))
        assert sqlstates(client.read_until_ready()) == []
    assert versions(attack_db) == DEFAULT_VERSIONS


def test_unparsable_and_huge_statements_fail_closed(attack_db, proxy):
    assert psycopg2_sqlstate(proxy.dsn(), "DELET FROM alembic_version") == "42601"
    nested = "SELECT " + "(" * 5000 + "1" + ")" * 5000
    assert psycopg2_sqlstate(proxy.dsn(), nested) in (None, "42501", "54001")
    long_sum = "SELECT " + " + ".join(["1"] * 200_000)
    assert psycopg2_sqlstate(proxy.dsn(), long_sum) in (None, "42501", "54001")
    assert psycopg2_sqlstate(proxy.dsn(), "SELECT set_config('search_path','evil',false)") == "42501"
    assert proxy.is_running()
    assert psycopg2_sqlstate(proxy.dsn(), "SELECT 1") is None
    assert versions(attack_db) == DEFAULT_VERSIONS


def test_identity_spoofing_gains_nothing(attack_db, proxy):
    spoofed = proxy.dsn(application_name="alembic")
    assert psycopg2_sqlstate(spoofed, "CREATE TABLE spoof (i int)") == "42501"
    conn = psycopg2.connect(proxy.dsn())
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SET application_name = 'alembic-migration'")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("DELETE FROM alembic_version")
    finally:
        conn.close()
    # A migrator without an open window is an ordinary session.
    migrator = proxy.dsn(user="migrator", password="mig-pw")
    assert psycopg2_sqlstate(migrator, "CREATE TABLE spoof (i int)") == "42501"
    assert psycopg2_sqlstate(migrator, "UPDATE alembic_version SET version_num = 'x'") == "42501"
    assert versions(attack_db) == DEFAULT_VERSIONS
    assert attack_db("SELECT to_regclass('public.spoof')") == [(None,)]


def test_control_plane_unreachable_from_sessions(attack_db, proxy):
    assert psycopg2_sqlstate(proxy.dsn(), "/* proxy: open-window */ SELECT 1") is None
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(proxy.dsn(dbname="schemagate"))
    listed = proxy.cli("window", "list", "--json")
    assert listed.returncode == 0
    assert listed.stdout.strip() in ("[]", '{"windows": []}', '{"windows":[]}')
