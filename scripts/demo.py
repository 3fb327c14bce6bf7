"""Show schemagate guarding an Alembic migration, step by step.

Run by scripts/demo.sh after it installed the dependencies and built the
binary. Starts a throwaway PostgreSQL cluster and schemagate in front of it,
then checks each step's outcome; exits 1 at the first unexpected one. The
cluster, the proxy and their files are removed on every exit path.
"""

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import psycopg2  # noqa: E402
from alembic_helpers import APP_HEAD as HEAD, MIGRATION_RULES, PROJECT  # noqa: E402
from harness import Cluster, Proxy, schemagate_bin  # noqa: E402


class UnexpectedOutcome(Exception):
    pass


def heading(number, title):
    print(f"\n=== {number}. {title} ===\n", flush=True)


def expect(condition, message):
    if not condition:
        raise UnexpectedOutcome(message)
    print(f"--> as expected: {message}", flush=True)


def alembic(proxy, *args):
    env = dict(os.environ, DATABASE_URL=f"postgresql+psycopg2://migrator:mig-pw@127.0.0.1:{proxy.port}/app")
    command = [sys.executable, "-m", "alembic", "-c", str(PROJECT / "alembic.ini"), *args]
    print("$ DATABASE_URL=" + env["DATABASE_URL"] + " alembic " + " ".join(args), flush=True)
    return subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def last_lines(text, count=6):
    return "\n".join(text.strip().splitlines()[-count:])


def version(cluster):
    """Read alembic_version directly from PostgreSQL, bypassing the proxy."""
    exists = cluster.execute("SELECT to_regclass('public.alembic_version') IS NOT NULL", dbname="app")[0][0]
    if not exists:
        return None
    return [row[0] for row in cluster.execute("SELECT version_num FROM public.alembic_version", dbname="app")]


def step_denied_without_window(cluster, proxy):
    heading(1, "alembic upgrade head through schemagate, no window open")
    result = alembic(proxy, "upgrade", "head")
    print(last_lines(result.stdout))
    expect(result.returncode != 0, "alembic exited with an error")
    expect("InsufficientPrivilege" in result.stdout, "the first DDL statement was denied with SQLSTATE 42501")
    expect(version(cluster) is None, "PostgreSQL has no alembic_version table")


def step_open_window(proxy):
    heading(2, "open a 15-minute migration window for database app")
    command = [str(schemagate_bin()), "window", "open", "--database", "app", "--for", "15m", "--reason", "demo",
               "--admin", proxy.admin_url, "--token-file", str(proxy.token_file)]
    print("$ schemagate window open --database app --for 15m --reason demo", flush=True)
    result = subprocess.run(command, capture_output=True, text=True)
    print(result.stdout.strip() or result.stderr.strip())
    expect(result.returncode == 0, "the admin API opened the window")
    return result.stdout.strip()


def step_migration_passes(cluster, proxy):
    heading(3, "alembic upgrade head inside the window")
    result = alembic(proxy, "upgrade", "head")
    print(last_lines(result.stdout, 16))
    expect(result.returncode == 0, "the migration completed")
    expect(version(cluster) == [HEAD], f"alembic_version is {HEAD}")


def step_app_denied(cluster, proxy):
    heading(4, "the application role tries to rewrite alembic_version")
    sql = "UPDATE alembic_version SET version_num = 'a1c0e5f20001'"
    print(f"$ psql (as app, through schemagate): {sql}", flush=True)
    conn = psycopg2.connect(proxy.dsn(user="app", password="app-pw", dbname="app"))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
        denied = None
    except psycopg2.Error as err:
        denied = err
        print(f"ERROR:  {err.pgcode}: {err.pgerror.strip()}")
    finally:
        conn.close()
    expect(denied is not None and denied.pgcode == "42501", "the UPDATE was denied with SQLSTATE 42501")
    expect(version(cluster) == [HEAD], f"read directly from PostgreSQL, alembic_version is still {HEAD}")


def run_demo(workdir):
    heading(0, "start a throwaway PostgreSQL cluster and schemagate in front of it")
    cluster = Cluster.start(workdir, ssl=False)
    proxy = None
    try:
        cluster.apply_fixture_f()
        cluster.execute("DROP TABLE public.alembic_version", dbname="app")
        proxy = Proxy.start(cluster, workdir, **MIGRATION_RULES)
        print(f"PostgreSQL on 127.0.0.1:{cluster.port}, schemagate on 127.0.0.1:{proxy.port},"
              f" admin API on {proxy.admin_url}")

        step_denied_without_window(cluster, proxy)
        step_open_window(proxy)
        step_migration_passes(cluster, proxy)
        step_app_denied(cluster, proxy)
    finally:
        heading(5, "clean up")
        if proxy is not None:
            proxy.stop()
            print("schemagate stopped")
        cluster.destroy()
        print("PostgreSQL stopped and its files removed")


def exit_on_sigterm(signum, frame):
    # SystemExit unwinds through the finally blocks, which stop the proxy and the cluster.
    raise SystemExit(128 + signum)


def main():
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    with tempfile.TemporaryDirectory(prefix="schemagate-demo-") as workdir:
        try:
            run_demo(workdir)
        except UnexpectedOutcome as err:
            print(f"\ndemo FAILED. Expected: {err}", file=sys.stderr)
            return 1
    print("\ndemo passed: every step had the expected outcome")
    return 0


if __name__ == "__main__":
    sys.exit(main())
