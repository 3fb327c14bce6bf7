"""Authentication through the proxy: SCRAM and MD5, TLS on both legs, channel binding,
and malformed SASL messages."""

import asyncio
import ssl
import struct

import asyncpg
import psycopg2
import pytest

from harness import (
    RawClient, ServerError, ScramClient, error_fields, generate_certs, message, query, raw_login, rows,
    sqlstates, startup_message,
)

CHANNEL_BINDING_FAILURES = ("SCRAM channel binding check failed", "SCRAM channel binding negotiation error")


@pytest.fixture
def tls_proxy(make_proxy, cluster, tmp_path):
    """A proxy that requires TLS from clients and verifies the server's certificate."""
    certs = generate_certs(tmp_path / "proxy-certs")
    return make_proxy(
        listen={"tls": {"mode": "require", "cert": str(certs["cert"]), "key": str(certs["key"])}},
        upstream={"tls": {"mode": "verify-full", "ca": str(cluster.ca_path), "server_name": "localhost"}},
    )


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


def test_channel_binding_prefer_both_legs_explained(cluster, tls_proxy):
    # libpq answers a TLS connection without a PLUS offer with the gs2 flag "y",
    # and a TLS server must then fail the login as a downgrade. The flag is
    # covered by the client's proof, so a relaying proxy cannot change it: the
    # proxy stops the login itself and says what to do.
    mark = cluster.log_mark()
    with pytest.raises(psycopg2.OperationalError) as err:
        psycopg2.connect(tls_proxy.dsn(sslmode="require", channel_binding="prefer"))
    assert "channel_binding=disable" in str(err.value)
    server_log = cluster.log_since(mark)
    for failure in CHANNEL_BINDING_FAILURES:
        assert failure not in server_log


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


def test_gs2_flag_y_rejected_by_proxy_with_tls_upstream(cluster, tls_proxy):
    mark = cluster.log_mark()
    with RawClient.connect(tls_proxy.host, tls_proxy.port) as client:
        assert client.start_tls() == b"S"
        client.startup("app", "app")
        with pytest.raises(ServerError) as err:
            client.auth_password("app-pw", gs2_header="y,,")
        assert "SCRAM-SHA-256-PLUS" not in client.sasl_mechanisms
        assert err.value.sqlstate == "28000"
    server_log = cluster.log_since(mark)
    for failure in CHANNEL_BINDING_FAILURES:
        assert failure not in server_log


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
