"""psql through the proxy, compared with psql straight to PostgreSQL."""

import shutil
import subprocess

import pytest

PSQL = shutil.which("psql")
pytestmark = pytest.mark.skipif(PSQL is None, reason="psql is not installed")


def psql(dsn, *args, check=True):
    result = subprocess.run([PSQL, "-X", "-v", "ON_ERROR_STOP=1", "--no-psqlrc", dsn, *args],
                            capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_multi_statement_command(proxy, direct_app_dsn):
    sql = "SELECT 1 AS one; SELECT 'two' AS two; SHOW standard_conforming_strings"
    proxied = psql(proxy.dsn(), "-c", sql)
    direct = psql(direct_app_dsn, "-c", sql)
    assert proxied.stdout == direct.stdout
    assert "two" in proxied.stdout


def test_copy_in_and_out(proxy, oracle, clean_app, tmp_path):
    source = tmp_path / "widgets.csv"
    source.write_text("".join(f"{i},name-{i}\n" for i in range(1000, 2000)))
    result = psql(proxy.dsn(), "-c", f"\\copy widgets FROM '{source}' CSV")
    assert "COPY 1000" in result.stdout
    assert oracle("SELECT count(*), min(id), max(id) FROM widgets") == [(1000, 1000, 1999)]

    exported = tmp_path / "out.csv"
    result = psql(proxy.dsn(), "-c", f"\\copy (SELECT * FROM widgets ORDER BY id) TO '{exported}' CSV")
    assert "COPY 1000" in result.stdout
    assert exported.read_text() == source.read_text()


def test_error_keeps_session_usable(proxy, direct_app_dsn):
    script = "SELECT 1/0;\nSELECT 'after' AS a;\n"
    proxied = subprocess.run([PSQL, "-X", proxy.dsn()], input=script, capture_output=True, text=True, timeout=60)
    direct = subprocess.run([PSQL, "-X", direct_app_dsn], input=script, capture_output=True, text=True, timeout=60)
    assert proxied.stdout == direct.stdout
    assert proxied.stderr == direct.stderr
    assert "division by zero" in proxied.stderr
