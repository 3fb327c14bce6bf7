"""End-to-end harness: a throwaway PostgreSQL cluster, the schemagate binary in
front of it, and a raw protocol client.

Postgres refuses to run as root, so when the tests run as root every server
command runs as the `postgres` OS user, in directories under /tmp that user
can traverse.
"""

import copy
import glob
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2

from rawproto import *  # noqa: F401,F403  (the raw client is part of this module's API)
from rawproto import RawClient, error_fields

REPO_ROOT = Path(__file__).resolve().parents[2]
SUPERUSER = "postgres"
SUPERUSER_PASSWORD = "postgres-pw"
READY_TIMEOUT = 30.0


def free_port():
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout, interval=0.02, message="condition"):
    """Poll `predicate` until it returns a truthy value or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def port_accepts(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def schemagate_bin():
    """Path of the schemagate binary: $SCHEMAGATE_BIN, else the cargo debug build."""
    explicit = os.environ.get("SCHEMAGATE_BIN")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    return target / "debug" / "schemagate"


def postgres_bindir():
    """Return the newest Debian PostgreSQL server bin directory (or $PG_BINDIR)."""
    explicit = os.environ.get("PG_BINDIR")
    if explicit:
        return Path(explicit)
    candidates = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if Path(p, "postgres").exists()]
    if not candidates:
        raise RuntimeError("no PostgreSQL server found under /usr/lib/postgresql/*/bin; install postgresql")
    return max(candidates, key=lambda p: int(p.parent.name))


def running_as_root():
    return os.geteuid() == 0


def as_server_user(argv):
    """Prefix a command so that it runs as the `postgres` OS user when we are root."""
    if running_as_root():
        return ["runuser", "-u", "postgres", "--"] + [str(a) for a in argv]
    return [str(a) for a in argv]


def chown_to_server_user(*paths):
    if not running_as_root():
        return
    entry = pwd.getpwnam("postgres")
    for path in paths:
        os.chown(path, entry.pw_uid, entry.pw_gid)


def make_work_dir(tmpdir, prefix):
    """Create a directory the postgres OS user can traverse (under /tmp when root)."""
    parent = "/tmp" if running_as_root() or tmpdir is None else str(tmpdir)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    path.chmod(0o755)
    return path


def run(argv, check=True, **kwargs):
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    result = subprocess.run([str(a) for a in argv], **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"command failed with exit code {result.returncode}: {' '.join(map(str, argv))}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


# ---------------------------------------------------------------------------
# Certificates
# ---------------------------------------------------------------------------


def generate_certs(out_dir, hostnames=("localhost",), owner_is_server=False):
    """Create a CA and a server certificate for 127.0.0.1 / localhost in `out_dir`.

    Uses `schemagate gen-certs` when the binary is built, else the openssl CLI.

    Returns {"ca": ..., "cert": ..., "key": ...} paths (PEM). The server key is
    mode 0600, owned by the postgres OS user when `owner_is_server` is set.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"ca": out_dir / "ca.pem", "cert": out_dir / "server.pem", "key": out_dir / "server.key"}
    binary = schemagate_bin()
    if binary.exists():
        extra_hosts = [arg for host in hostnames if host != "localhost" for arg in ("--host", host)]
        run([binary, "gen-certs", "--out", out_dir, "--force", *extra_hosts])
    else:
        # Lets the harness self-checks run before the binary is built.
        _generate_certs_openssl(out_dir, paths, hostnames)

    paths["key"].chmod(0o600)
    if owner_is_server:
        chown_to_server_user(paths["key"], paths["cert"], paths["ca"])
    return paths


def _generate_certs_openssl(out_dir, paths, hostnames):
    ca_key = out_dir / "ca.key"
    csr = out_dir / "server.csr"
    ext = out_dir / "server.ext"
    san = ",".join([f"DNS:{h}" for h in hostnames] + ["IP:127.0.0.1"])
    ext.write_text(
        f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    run(["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", paths["ca"], "-days", "30",
         "-subj", "/CN=schemagate e2e CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run(["openssl", "req", *ec, "-keyout", paths["key"], "-out", csr, "-subj", f"/CN={hostnames[0]}"])
    run(["openssl", "x509", "-req", "-in", csr, "-CA", paths["ca"], "-CAkey", ca_key,
         "-CAcreateserial", "-out", paths["cert"], "-days", "30", "-extfile", ext])


# ---------------------------------------------------------------------------
# PostgreSQL cluster
# ---------------------------------------------------------------------------

HBA_CONF = """\
local all all trust
host all md5user 127.0.0.1/32 md5
host all all 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
"""

FIXTURE_ROLES = """\
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'migrator') THEN
    CREATE ROLE migrator LOGIN PASSWORD 'mig-pw';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN
    CREATE ROLE app LOGIN PASSWORD 'app-pw';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'md5user') THEN
    SET LOCAL password_encryption = 'md5';
    CREATE ROLE md5user LOGIN PASSWORD 'md5-pw';
  END IF;
END $$;
GRANT migrator TO app;
"""

FIXTURE_APP_TABLES = """\
CREATE TABLE public.alembic_version (
    version_num varchar(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));
INSERT INTO public.alembic_version VALUES ('aaaa0001');
CREATE TABLE public.widgets (id int PRIMARY KEY, name text);
ALTER TABLE public.alembic_version OWNER TO app;
ALTER TABLE public.widgets OWNER TO app;
GRANT ALL ON SCHEMA public TO migrator, app;
"""


class Cluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1 with SCRAM (and md5 for md5user)."""

    host = "127.0.0.1"

    def __init__(self, workdir, port, ssl):
        self.workdir = Path(workdir)
        self.datadir = self.workdir / "data"
        self.socket_dir = self.workdir / "socket"
        self.certs_dir = self.workdir / "certs"
        self.log_path = self.workdir / "postgres.log"
        self.port = port
        self.ssl = ssl
        self.bindir = postgres_bindir()

    @classmethod
    def start(cls, tmpdir=None, ssl=True):
        cluster = cls(make_work_dir(tmpdir, "schemagate-e2e-pg-"), free_port(), ssl)
        cluster._initdb()
        cluster.start_again()
        return cluster

    def _initdb(self):
        for path in (self.datadir, self.socket_dir, self.certs_dir):
            path.mkdir(mode=0o700)
        self.socket_dir.chmod(0o755)
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n")
        self.log_path.touch()
        chown_to_server_user(self.datadir, self.socket_dir, self.certs_dir, pwfile, self.log_path)

        run(as_server_user([self.bindir / "initdb", "-D", self.datadir, "-U", SUPERUSER,
                            f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=trust",
                            "--encoding=UTF8", "--locale=C", "--no-sync"]))
        pwfile.unlink()

        (self.datadir / "pg_hba.conf").write_text(HBA_CONF)
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write(self._settings())
        if self.ssl:
            generate_certs(self.certs_dir, owner_is_server=True)

    def _settings(self):
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": "100",
            "shared_buffers": "'32MB'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "log_connections": "on",
            "log_disconnections": "on",
            "log_statement": "'all'",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
        }
        if self.ssl:
            settings.update({
                "ssl": "on",
                "ssl_cert_file": f"'{self.certs_dir / 'server.pem'}'",
                "ssl_key_file": f"'{self.certs_dir / 'server.key'}'",
                "ssl_ca_file": f"'{self.certs_dir / 'ca.pem'}'",
            })
        return "\n# schemagate e2e harness\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())

    @property
    def ca_path(self):
        return self.certs_dir / "ca.pem"

    def _pg_ctl(self, *args):
        return run(as_server_user([self.bindir / "pg_ctl", "-D", self.datadir, *args]))

    def start_again(self):
        """Start the (stopped) server and wait until it accepts connections."""
        self._pg_ctl("-l", self.log_path, "-w", "-t", str(int(READY_TIMEOUT)), "start")
        wait_until(self._is_ready, READY_TIMEOUT, message=f"PostgreSQL on port {self.port}")

    def _is_ready(self):
        result = run([self.bindir / "pg_isready", "-h", self.host, "-p", self.port, "-t", "1"], check=False)
        return result.returncode == 0

    def stop(self, mode="fast"):
        self._pg_ctl("-w", "-m", mode, "stop")

    def restart(self):
        self.stop()
        self.start_again()

    def destroy(self):
        """Stop the server immediately (if running) and delete its files."""
        if (self.datadir / "postmaster.pid").exists():
            run(as_server_user([self.bindir / "pg_ctl", "-D", self.datadir, "-m", "immediate", "stop"]),
                check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def dsn(self, user=SUPERUSER, password=SUPERUSER_PASSWORD, dbname="postgres", **extra):
        """libpq keyword/value connection string for a direct connection."""
        fields = {"host": self.host, "port": self.port, "user": user, "password": password, "dbname": dbname}
        return keyword_dsn(**{**fields, **extra})

    def url(self, user=SUPERUSER, password=SUPERUSER_PASSWORD, dbname="postgres"):
        """postgresql:// URL for a direct connection (asyncpg takes this form)."""
        return f"postgresql://{user}:{password}@{self.host}:{self.port}/{dbname}"

    def execute(self, sql, dbname="postgres", params=None):
        """Run `sql` as the superuser on a direct connection (the test oracle).

        Returns the rows of the last statement, or [] when it returns none.
        """
        conn = psycopg2.connect(self.dsn(dbname=dbname, sslmode="disable"))
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def apply_fixture_f(self):
        """Create the roles, the `app` database and its tables (idempotent for roles)."""
        self.execute(FIXTURE_ROLES)
        self.reset_app_db()

    def reset_app_db(self):
        """Drop and recreate database `app` with alembic_version = 'aaaa0001' and empty widgets."""
        self.execute("DROP DATABASE IF EXISTS app WITH (FORCE)")
        self.execute("CREATE DATABASE app OWNER app")
        self.execute(FIXTURE_APP_TABLES, dbname="app")

    def reset_app_rows(self):
        """Empty widgets and restore alembic_version; much faster than reset_app_db."""
        self.execute(
            "TRUNCATE public.widgets; TRUNCATE public.alembic_version;"
            " INSERT INTO public.alembic_version VALUES ('aaaa0001')",
            dbname="app",
        )

    def log_mark(self):
        """Return the current size of the server log, for `log_since`."""
        return self.log_path.stat().st_size

    def log_since(self, mark):
        with open(self.log_path, "rb") as log:
            log.seek(mark)
            return log.read().decode(errors="replace")

    def backends(self, dbname="app", user=None):
        """Return (pid, usename, query) of client backends on `dbname`, excluding the oracle's own."""
        sql = ("SELECT pid, usename, query FROM pg_stat_activity"
               " WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
        params = [dbname]
        if user is not None:
            sql += " AND usename = %s"
            params.append(user)
        return self.execute(sql, params=params)


def keyword_dsn(**fields):
    parts = []
    for key, value in fields.items():
        text = str(value).replace("\\", "\\\\").replace("'", "\\'")
        parts.append(f"{key}='{text}'")
    return " ".join(parts)


# ---------------------------------------------------------------------------
# The schemagate proxy
# ---------------------------------------------------------------------------

DEFAULT_DDL_ALLOW = [
    "CREATE TABLE", "ALTER TABLE", "DROP TABLE", "CREATE INDEX", "DROP INDEX",
    "CREATE SEQUENCE", "ALTER SEQUENCE", "DROP SEQUENCE", "CREATE VIEW", "DROP VIEW",
    "CREATE TYPE", "ALTER TYPE", "DROP TYPE", "COMMENT",
]


def deep_merge(base, overrides):
    """Return `base` with `overrides` merged in; nested dicts merge, other values replace."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class ProxyStartError(RuntimeError):
    pass


class Proxy:
    """The schemagate binary serving one config in front of a Cluster."""

    host = "127.0.0.1"

    def __init__(self, cluster, workdir, config):
        self.cluster = cluster
        self.workdir = Path(workdir)
        self.config = config
        self.config_path = self.workdir / "rules.yaml"
        self.log_path = self.workdir / "schemagate.log"
        self.token_file = Path(config["admin"]["token_file"])
        self.audit_path = Path(config["audit"]["path"])
        self.port = int(config["listen"]["address"].rsplit(":", 1)[1])
        admin_address = config["admin"]["address"]
        self.admin_url = f"http://{admin_address}"
        self.process = None

    @classmethod
    def default_config(cls, cluster, workdir):
        workdir = Path(workdir)
        return {
            "listen": {"address": f"127.0.0.1:{free_port()}"},
            "upstream": {"address": f"{cluster.host}:{cluster.port}"},
            "limits": {"startup_timeout": "10s", "shutdown_timeout": "5s"},
            "protected_tables": ["alembic_version"],
            "ddl": {"allow": list(DEFAULT_DDL_ALLOW)},
            "migrators": [{"user": "migrator", "databases": ["app"]}],
            "windows": {"state_file": str(workdir / "windows.json")},
            "admin": {"address": f"127.0.0.1:{free_port()}", "token_file": str(workdir / "admin.token")},
            "audit": {"path": str(workdir / "audit.jsonl")},
        }

    @classmethod
    def start(cls, cluster, tmpdir, **overrides):
        """Write a config (defaults deep-merged with `overrides`), start the proxy, wait for its ports."""
        workdir = Path(tempfile.mkdtemp(prefix="proxy-", dir=str(tmpdir)))
        config = deep_merge(cls.default_config(cluster, workdir), overrides)
        proxy = cls(cluster, workdir, config)
        proxy.token_file.write_text(secrets.token_hex(24) + "\n")
        proxy.token_file.chmod(0o600)
        # JSON is valid YAML, so the config needs no YAML library.
        proxy.config_path.write_text(json.dumps(config, indent=2) + "\n")
        proxy.launch()
        return proxy

    def launch(self):
        binary = schemagate_bin()
        if not binary.exists():
            raise ProxyStartError(f"schemagate binary not found at {binary}; run `cargo build` first")
        env = dict(os.environ)
        env.setdefault("SCHEMAGATE_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([str(binary), "serve", "--config", str(self.config_path)],
                                        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=env)
        log.close()
        try:
            wait_until(self._listening, READY_TIMEOUT, message=f"schemagate on port {self.port}")
        except (TimeoutError, ProxyStartError) as err:
            self.kill()
            raise ProxyStartError(f"{err}\n--- schemagate log ---\n{self.log_tail()}") from None

    def _listening(self):
        if self.process.poll() is not None:
            raise ProxyStartError(f"schemagate exited with code {self.process.returncode} before listening")
        return port_accepts(self.host, self.port)

    def wait_for_admin(self, timeout=10.0):
        """Wait until the admin listener accepts connections."""
        admin_host, admin_port = self.admin_url.removeprefix("http://").rsplit(":", 1)
        wait_until(lambda: port_accepts(admin_host, int(admin_port)), timeout,
                   message=f"schemagate admin API at {self.admin_url}")

    def log_tail(self, max_chars=6000):
        try:
            return self.log_path.read_text(errors="replace")[-max_chars:]
        except OSError:
            return "(no log)"

    def is_running(self):
        return self.process is not None and self.process.poll() is None

    def dsn(self, user="app", password="app-pw", dbname="app", **extra):
        fields = {"host": self.host, "port": self.port, "user": user, "password": password, "dbname": dbname}
        return keyword_dsn(**{**fields, **extra})

    def url(self, user="app", password="app-pw", dbname="app"):
        return f"postgresql://{user}:{password}@{self.host}:{self.port}/{dbname}"

    def raw(self):
        """Open a RawClient to the proxy's listen port."""
        return RawClient.connect(self.host, self.port)

    def cli(self, *args, check=False):
        self.wait_for_admin()
        argv = [schemagate_bin(), *args, "--admin", self.admin_url, "--token-file", self.token_file]
        return run(argv, check=check)

    def open_window(self, database="app", duration="30m", reason="test", **kw):
        """Open a migration window through the CLI and return its id."""
        args = ["window", "open", "--database", database, "--for", duration, "--reason", reason]
        for key, value in kw.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        result = self.cli(*args, check=True)
        return parse_window_id(result.stdout)

    def close_window(self, window_id):
        return self.cli("window", "close", window_id, check=True)

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Send `sig`, wait for the process to exit and return its exit code."""
        if not self.is_running():
            return None if self.process is None else self.process.returncode
        if timeout is None:
            timeout = READY_TIMEOUT
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self):
        if self.is_running():
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self):
        self.stop()
        self.launch()

    def reload(self):
        self.process.send_signal(signal.SIGHUP)

    def audit_records(self):
        """Return the audit log as a list of dicts ([] when it does not exist yet)."""
        if not self.audit_path.exists():
            return []
        lines = self.audit_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]


def parse_window_id(output):
    """Extract a window id from `schemagate window open` output (JSON or text)."""
    text = output.strip()
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            for key in ("id", "window_id"):
                if key in data:
                    return str(data[key])
            if isinstance(data.get("window"), dict):
                return str(data["window"]["id"])
    except ValueError:
        pass
    match = re.search(r"\bid[\"']?\s*[:=]\s*[\"']?([\w-]+)", text)
    if match:
        return match.group(1)
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("`schemagate window open` printed nothing")
    return lines[-1].split()[-1]


# ---------------------------------------------------------------------------
# Helpers for comparing the proxy with a direct connection
# ---------------------------------------------------------------------------


def raw_login(host, port, user="app", database="app", password="app-pw", **params):
    """Open a RawClient, log in and return it positioned after the first ReadyForQuery."""
    client = RawClient.connect(host, port)
    try:
        client.login(user, database, password, **params)
    except BaseException:
        client.close()
        raise
    return client


def comparable(messages):
    """Reduce messages to what must match between the proxy and a direct connection.

    BackendKeyData bodies may differ (the proxy may issue its own cancel keys), and
    ErrorResponse/NoticeResponse keep only severity, SQLSTATE and message text.
    """
    reduced = []
    for type_byte, body in messages:
        if type_byte == b"K":
            reduced.append(("K",))
        elif type_byte in (b"E", b"N"):
            fields = error_fields(body)
            reduced.append((type_byte.decode(), fields.get("V"), fields.get("C"), fields.get("M")))
        else:
            reduced.append((type_byte.decode(), body))
    return reduced


def run_direct_and_proxied(cluster, proxy, scenario, reset=True, **login):
    """Run `scenario(client)` on a direct and on a proxied raw session; return both message lists.

    The app rows are reset before each run so both start from the same state.
    """
    results = []
    for host, port in ((cluster.host, cluster.port), (proxy.host, proxy.port)):
        if reset:
            cluster.reset_app_rows()
        with raw_login(host, port, **login) as client:
            results.append(scenario(client))
    return results
