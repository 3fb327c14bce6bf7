"""Authentication through the proxy: SCRAM and MD5, TLS on both legs, channel binding,
and malformed SASL messages."""

import asyncio
import os
import ssl
import struct
import subprocess

import asyncpg
import psycopg2
import pytest

from harness import (
    RawClient, ServerError, ScramClient, error_fields, generate_certs, message, query, raw_login, rows,
    sqlstates, startup_message,
)

CHANNEL_BINDING_FAILURES = ("SCRAM channel binding check failed", "SCRAM channel binding negotiation error")


def start_tls_proxy(make_proxy, cluster, tmp_path):
    certs = generate_certs(tmp_path / "proxy-certs")
    return make_proxy(
        listen={"tls": {"mode": "require", "cert": str(certs["cert"]), "key": str(certs["key"])}},
        upstream={"tls": {"mode": "verify-full", "ca": str(cluster.ca_path), "server_name": "localhost"}},
    )


@pytest.fixture
def tls_proxy(make_proxy, cluster, tmp_path):
    """A proxy that requires TLS from clients and verifies the server's certificate."""
    return start_tls_proxy(make_proxy, cluster, tmp_path)


def ssl_on_both_legs(dsn):
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            return conn.info.ssl_in_use, cur.fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def client_tls_proxy(make_proxy, tmp_path):
    """A proxy that requires TLS from clients and talks to the server in plaintext."""
    certs = generate_certs(tmp_path / "proxy-certs")
    return make_proxy(listen={"tls": {"mode": "require", "cert": str(certs["cert"]), "key": str(certs["key"])}})


def test_scram_over_tls_both_legs(tls_proxy):
    dsn = tls_proxy.dsn(sslmode="require", channel_binding="disable")
    client_leg, server_leg = ssl_on_both_legs(dsn)
    assert client_leg is True
    assert server_leg is True


def test_channel_binding_prefer_with_plaintext_upstream(client_tls_proxy):
    dsn = client_tls_proxy.dsn(sslmode="require", channel_binding="prefer")
    client_leg, server_leg = ssl_on_both_legs(dsn)
    assert client_leg is True
    assert server_leg is False


def test_channel_binding_prefer_both_legs(cluster, tls_proxy):
    # libpq's default channel_binding=prefer: the proxy requests the password
    # and runs SCRAM with the server itself, so the server never sees the gs2
    # flag "y" that a relayed exchange would carry.
    mark = cluster.log_mark()
    dsn = tls_proxy.dsn(sslmode="require", channel_binding="prefer")
    assert ssl_on_both_legs(dsn) == (True, True)

    server_log = cluster.log_since(mark)
    assert "connection authorized: user=app" in server_log
    for failure in CHANNEL_BINDING_FAILURES:
        assert failure not in server_log


def test_login_on_behalf_uses_channel_binding(cluster, make_proxy, tmp_path, monkeypatch):
    # The server offers SCRAM-SHA-256-PLUS over TLS and its certificate is
    # signed with ECDSA-SHA256, so the proxy binds the login to it.
    monkeypatch.setenv("SCHEMAGATE_LOG", "schemagate=debug")
    proxy = start_tls_proxy(make_proxy, cluster, tmp_path)
    mark = cluster.log_mark()
    assert ssl_on_both_legs(proxy.dsn(sslmode="require")) == (True, True)

    proxy_log = proxy.log_tail(100_000)
    assert "on the client's behalf" in proxy_log
    assert "SCRAM-SHA-256-PLUS" in proxy_log
    assert "app-pw" not in proxy_log
    server_log = cluster.log_since(mark)
    for failure in CHANNEL_BINDING_FAILURES:
        assert failure not in server_log


def test_wrong_password_gets_server_error(cluster, tls_proxy):
    mark = cluster.log_mark()
    with pytest.raises(psycopg2.OperationalError) as err:
        psycopg2.connect(tls_proxy.dsn(password="wrong-pw", sslmode="require"))
    assert 'password authentication failed for user "app"' in str(err.value)

    with RawClient.connect(tls_proxy.host, tls_proxy.port) as client:
        assert client.start_tls() == b"S"
        client.startup("app", "app")
        with pytest.raises(ServerError) as raw_err:
            client.auth_password("wrong-pw")
        assert raw_err.value.sqlstate == "28P01"

    server_log = cluster.log_since(mark)
    assert 'password authentication failed for user "app"' in server_log
    assert "connection authorized: user=app" not in server_log


def test_psql_over_tls_both_legs(tls_proxy):
    env = {**os.environ, "PGPASSWORD": "app-pw", "PGCONNECT_TIMEOUT": "10"}
    dsn = f"host={tls_proxy.host} port={tls_proxy.port} user=app dbname=app sslmode=require"
    sql = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    result = subprocess.run(["psql", dsn, "-XAtc", sql], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "t"


def test_channel_binding_require_fails_in_libpq(cluster, tls_proxy):
    mark = cluster.log_mark()
    with pytest.raises(psycopg2.OperationalError) as err:
        psycopg2.connect(tls_proxy.dsn(sslmode="require", channel_binding="require"))
    assert "channel binding" in str(err.value)

    server_log = cluster.log_since(mark)
    for failure in CHANNEL_BINDING_FAILURES:
        assert failure not in server_log
        assert failure not in tls_proxy.log_tail(100_000)


def test_asyncpg_over_tls_both_legs(tls_proxy):
    async def scenario():
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = await asyncpg.connect(tls_proxy.url(), ssl=context)
        try:
            return await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        finally:
            await conn.close()

    assert asyncio.run(scenario()) is True


def test_gs2_flag_y_accepted_with_plaintext_upstream(client_tls_proxy):
    with RawClient.connect(client_tls_proxy.host, client_tls_proxy.port) as client:
        assert client.start_tls() == b"S"
        client.startup("app", "app")
        client.auth_password("app-pw", gs2_header="y,,")
        assert "SCRAM-SHA-256-PLUS" not in client.sasl_mechanisms
        assert rows(client.simple("SELECT 1")) == [[b"1"]]


def first_authentication_request(client, user="app", database="app"):
    """Start TLS and the session on `client`; return the first Authentication request code."""
    assert client.start_tls() == b"S"
    client.startup(user, database)
    type_byte, body = client.read_message()
    assert type_byte == b"R"
    return struct.unpack_from("!i", body)[0]


def test_both_tls_requests_cleartext_password(cluster, tls_proxy):
    mark = cluster.log_mark()
    with tls_proxy.raw() as client:
        assert first_authentication_request(client) == 3

        client.send(message(b"p", b"app-pw\0"))
        client.auth_password("app-pw")
        assert rows(client.simple("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")) == [[b"t"]]

    server_log = cluster.log_since(mark)
    for failure in CHANNEL_BINDING_FAILURES:
        assert failure not in server_log


@pytest.mark.parametrize("name,payload", [
    ("unterminated", b"app-pw"),
    ("embedded_nul", b"app\0pw\0"),
    ("sasl_initial_response", b"SCRAM-SHA-256\0" + struct.pack("!i", 4) + b"n,,,"),
])
def test_both_tls_malformed_password_rejected(cluster, tls_proxy, name, payload):
    mark = cluster.log_mark()
    with tls_proxy.raw() as client:
        assert first_authentication_request(client) == 3
        client.send(message(b"p", payload))
        messages = client.read_until_closed()
        assert sqlstates(messages) == ["08P01"]
    assert "connection authorized: user=app" not in cluster.log_since(mark)


def test_both_tls_oversize_password_rejected(cluster, tls_proxy):
    # The proxy accepts passwords of up to 8 KiB. Closing a connection with
    # unread bytes may send a reset, which can swallow the error.
    mark = cluster.log_mark()
    with tls_proxy.raw() as client:
        assert first_authentication_request(client) == 3
        client.send(message(b"p", b"x" * 9000 + b"\0"))
        messages = client.read_until_closed()
        assert sqlstates(messages) in (["08P01"], [])
        assert b"R" not in [t for t, _ in messages]
    assert "connection authorized: user=app" not in cluster.log_since(mark)


def test_both_tls_md5_request_relayed(tls_proxy):
    with tls_proxy.raw() as client:
        assert first_authentication_request(client, user="md5user", database="postgres") == 5


def test_md5_user_through_proxy(proxy):
    conn = psycopg2.connect(proxy.dsn(user="md5user", password="md5-pw", dbname="postgres"))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user")
            assert cur.fetchone() == ("md5user",)
    finally:
        conn.close()


def test_md5_user_over_tls_both_legs(tls_proxy):
    dsn = tls_proxy.dsn(user="md5user", password="md5-pw", dbname="postgres", sslmode="require")
    assert ssl_on_both_legs(dsn) == (True, True)


def test_tls_require_rejects_plaintext(cluster, tls_proxy):
    mark = cluster.log_mark()
    with RawClient.connect(tls_proxy.host, tls_proxy.port) as client:
        client.send(startup_message({"user": "app", "database": "app"}))
        messages = client.read_until_closed()
        assert [t for t, _ in messages] == [b"E"]
        fields = error_fields(messages[0][1])
        assert fields["C"] in ("08P01", "28000")
        assert fields["S"] == "FATAL"

    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(tls_proxy.dsn(sslmode="disable"))
    assert "connection authorized" not in cluster.log_since(mark)


def sasl_initial(payload, declared_length=None):
    if declared_length is None:
        declared_length = len(payload)
    return message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", declared_length) + payload)


def client_first():
    return ScramClient("app-pw").client_first()


MALFORMED_SASL = {
    "length_minus_two": lambda: sasl_initial(b"", declared_length=-2),
    "length_max_int": lambda: sasl_initial(client_first(), declared_length=0x7FFFFFFF),
    "length_past_message": lambda: sasl_initial(client_first(), declared_length=len(client_first()) + 50),
    "huge_nonce": lambda: sasl_initial(b"n,,n=,r=" + b"A" * 100_000),
    "sasl_response_first": lambda: message(b"p", b"c=biws,r=abc,p=AAAA"),
    "query_before_auth": lambda: query("DELETE FROM alembic_version"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_SASL))
def test_malformed_sasl_closes(cluster, proxy, oracle, name):
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.startup("app", "app")
        assert client.read_message()[0] == b"R"
        client.send(MALFORMED_SASL[name]())
        messages = client.read_until_closed()
        assert sqlstates(messages) in (["08P01"], ["28P01"], [])
        assert b"Z" not in [t for t, _ in messages]

    assert oracle("SELECT array_agg(version_num) FROM alembic_version") == [(["aaaa0001"],)]
    with raw_login(proxy.host, proxy.port) as other:
        assert rows(other.simple("SELECT 1")) == [[b"1"]]


def test_non_base64_proof_closes(proxy):
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.startup("app", "app")
        client.read_message()
        scram = ScramClient("app-pw")
        first = scram.client_first()
        client.send(sasl_initial(first))
        type_byte, body = client.read_message()
        assert type_byte == b"R"
        server_first = body[4:].decode()
        nonce = dict(item.split("=", 1) for item in server_first.split(","))["r"]
        client.send(message(b"p", f"c=biws,r={nonce},p=!!not-base64!!".encode()))
        messages = client.read_until_closed()
        assert sqlstates(messages) in (["08P01"], ["28P01"])


def test_password_message_after_authentication_ok(proxy):
    with raw_login(proxy.host, proxy.port) as client:
        client.send(message(b"p", b"app-pw\0"))
        messages = client.read_until_closed()
        assert sqlstates(messages) in (["08P01"], [])


def direct_tls_context(alpn):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def test_direct_tls_with_alpn_logs_in(tls_proxy):
    # PostgreSQL 17 clients with sslnegotiation=direct start TLS at once, with ALPN "postgresql".
    with RawClient.connect(tls_proxy.host, tls_proxy.port) as client:
        client.sock = direct_tls_context(["postgresql"]).wrap_socket(client.sock)
        assert client.sock.selected_alpn_protocol() == "postgresql"
        client.startup("app", "app")
        client.auth_password("app-pw")
        assert rows(client.simple("SELECT 1")) == [[b"1"]]


def test_direct_tls_without_alpn_closed(tls_proxy):
    with RawClient.connect(tls_proxy.host, tls_proxy.port) as client:
        client.sock = direct_tls_context(None).wrap_socket(client.sock)
        client.startup("app", "app")
        with pytest.raises((ConnectionError, EOFError, ssl.SSLError, OSError)):
            client.auth_password("app-pw")


def test_direct_tls_with_other_alpn_rejected(tls_proxy):
    with RawClient.connect(tls_proxy.host, tls_proxy.port) as client:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            direct_tls_context(["http/1.1"]).wrap_socket(client.sock)
