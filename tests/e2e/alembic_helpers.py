"""Helpers for running Alembic through schemagate in the end-to-end tests.

The Alembic project lives in tests/fixtures/alembic_project: `versions/` is a
realistic application history, `cases/` holds small revisions (`r1`, `r2`, ...)
that a test copies into a versions directory of its own, so each test runs
exactly the revisions it names.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "tests" / "fixtures" / "alembic_project"
CASES = PROJECT / "cases"

# The head of the application history in PROJECT/versions, and the revision
# kept out of it (PROJECT/versions_bad) that drops a table.
APP_HEAD = "7bd2348a0014"
BAD_REVISION = "8ce3459b0015"

# Every DDL command that the fixture migrations and their downgrades send.
# Tests pass it as `ddl.allow` so that they do not depend on the default rules.
MIGRATION_DDL = [
    "CREATE TABLE",
    "ALTER TABLE",
    "DROP TABLE",
    "CREATE INDEX",
    "ALTER INDEX",
    "DROP INDEX",
    "CREATE TYPE",
    "ALTER TYPE",
    "DROP TYPE",
    "CREATE FUNCTION",
    "DROP FUNCTION",
    "CREATE TRIGGER",
    "DROP TRIGGER",
    "CREATE SCHEMA",
    "CREATE SEQUENCE",
    "ALTER SEQUENCE",
    "DROP SEQUENCE",
    "CREATE TABLE AS",
]

MIGRATION_RULES = {"ddl": {"allow": MIGRATION_DDL, "deny": []}}

GATE_TIMEOUT = 60.0


def url(port, user="migrator", password="mig-pw", dbname="app", driver="psycopg2", host="127.0.0.1"):
    """Return a SQLAlchemy URL for `driver` (psycopg2, psycopg or asyncpg)."""
    return f"postgresql+{driver}://{user}:{password}@{host}:{port}/{dbname}"


def case_project(directory, *revision_files, section_name="alembic"):
    """Write an alembic.ini in `directory` whose versions are copies of `revision_files` from cases/."""
    directory = Path(directory)
    versions = directory / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    add_revisions(directory, *revision_files)

    ini = directory / "alembic.ini"
    ini.write_text(
        f"[{section_name}]\n"
        f"script_location = {PROJECT}\n"
        f"version_locations = {versions}\n"
        "path_separator = os\n\n"
        f"{logging_sections()}"
    )
    return ini


def logging_sections():
    """Return the logging configuration of the fixture project's alembic.ini."""
    text = (PROJECT / "alembic.ini").read_text()
    return text[text.index("[loggers]"):]


def add_revisions(directory, *revision_files):
    for name in revision_files:
        shutil.copy(CASES / name, Path(directory) / "versions" / name)


def alembic_env(database_url, gate_dir=None, extra=None):
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url
    env.pop("MIGRATION_GATE_DIR", None)
    if gate_dir is not None:
        env["MIGRATION_GATE_DIR"] = str(gate_dir)
        env["MIGRATION_GATE_TIMEOUT"] = str(GATE_TIMEOUT)
    env.update(extra or {})
    return env


def alembic_command(ini, *args):
    return [sys.executable, "-m", "alembic", "-c", str(ini), *args]


def run_alembic(ini, database_url, *args, gate_dir=None, timeout=120):
    """Run `alembic -c INI ARGS...` and return the CompletedProcess with stderr merged into stdout."""
    return subprocess.run(
        alembic_command(ini, *args),
        env=alembic_env(database_url, gate_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def offline_sql(ini, database_url, *args):
    """Return the SQL script of `alembic ARGS... --sql`; the log lines on stderr are left out."""
    result = subprocess.run(
        alembic_command(ini, *args, "--sql"),
        env=alembic_env(database_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout


def start_alembic(ini, database_url, *args, gate_dir=None):
    """Start alembic in the background; read the result with `finish(process)`."""
    return subprocess.Popen(
        alembic_command(ini, *args),
        env=alembic_env(database_url, gate_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process, timeout=120):
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def wait_until(predicate, timeout, what):
    """Poll `predicate` every 50 ms until it returns a true value or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Gate:
    """The test side of fixtures/alembic_project/migration_gate.py."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def wait_reached(self, name, process=None):
        def reached():
            if process is not None and process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                raise AssertionError(f"alembic exited with {process.returncode} before gate {name}:\n{output}")
            return (self.directory / f"{name}.reached").exists()

        wait_until(reached, GATE_TIMEOUT, f"the migration to reach gate {name}")

    def release(self, name):
        (self.directory / f"{name}.release").touch()


def version_rows(oracle, table="public.alembic_version"):
    """Return the sorted version numbers, or None when the table does not exist."""
    exists = oracle(f"SELECT to_regclass('{table}') IS NOT NULL")[0][0]
    if not exists:
        return None
    return sorted(row[0] for row in oracle(f"SELECT version_num FROM {table}"))


def table_exists(oracle, name):
    return oracle(f"SELECT to_regclass('{name}') IS NOT NULL")[0][0]


def column_exists(oracle, table, column):
    rows = oracle(
        "SELECT count(*) FROM information_schema.columns "
        f"WHERE table_schema = 'public' AND table_name = '{table}' AND column_name = '{column}'"
    )
    return rows[0][0] == 1


def public_tables(oracle):
    rows = oracle("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
    return [row[0] for row in rows]


def start_without_version_table(cluster, oracle):
    """Reset database app to fixture F and drop its alembic_version, as a never-migrated database."""
    cluster.reset_app_db()
    oracle("DROP TABLE public.alembic_version")


DENIAL_MARKERS = re.compile(r"42501|InsufficientPrivilege|insufficient_privilege")


def assert_denied(output, *fragments):
    """Check that a client's output shows SQLSTATE 42501 and names every fragment.

    psycopg2 and asyncpg print the SQLSTATE as an exception class name
    (InsufficientPrivilege); psql prints the code itself with VERBOSITY=verbose.
    """
    assert DENIAL_MARKERS.search(output), f"no 42501 in output:\n{output}"
    for fragment in fragments:
        assert fragment.lower() in output.lower(), f"{fragment!r} not in output:\n{output}"


def assert_sqlstate(output, sqlstate):
    assert sqlstate in output, f"SQLSTATE {sqlstate} not in output:\n{output}"


def schema_dump(cluster, dbname):
    """Return `pg_dump --schema-only` of `dbname`, read directly from Postgres, without volatile lines."""
    env = dict(os.environ, PGPASSWORD="postgres-pw")
    result = subprocess.run(
        ["pg_dump", "--schema-only", "--no-owner", "-h", cluster.host, "-p", str(cluster.port), "-U", "postgres", dbname],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return normalize_dump(result.stdout)


def normalize_dump(text):
    """Drop comments, SET lines, blank lines and pg_dump's per-run \\restrict keys."""
    kept = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("--"):
            continue
        if line.startswith(("SET ", "SELECT pg_catalog.set_config", "\\restrict", "\\unrestrict")):
            continue
        kept.append(line)
    return "\n".join(kept)


def first_error_line(output):
    """Return the first line that looks like a driver's error, for assertion messages."""
    match = re.search(r"^.*(Error|ERROR).*$", output, re.MULTILINE)
    return match.group(0) if match else ""
