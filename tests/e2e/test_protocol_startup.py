"""Startup-phase handling: negotiation requests, startup packet framing and parameters."""

import re
import ssl
import struct
import time

import pytest

from harness import (
    PROTOCOL_3_0, RawClient, ServerError, error_fields, generate_certs, gssenc_request, query, raw_login,
    rows, sqlstates, ssl_request, startup_message, types, wait_until,
)

GREASE_VERSION = (3 << 16) | 9999


def tls_proxy(make_proxy, tmp_path):
    certs = generate_certs(tmp_path / "proxy-certs")
    return make_proxy(listen={"tls": {"mode": "allow", "cert": str(certs["cert"]), "key": str(certs["key"])}})


def expect_close(client, sqlstate, timeout=5, allow_silent=False):
    """Assert a CLOSE verdict: one FATAL ErrorResponse with `sqlstate`, then EOF.

    With `allow_silent`, a close without any message also passes: PostgreSQL 15 itself
    closes silently on an out-of-range startup packet length.
    """
    messages = client.read_until_closed(timeout)
    if allow_silent and messages == []:
        return {}
    assert types(messages) == "E", f"expected one ErrorResponse before close, got {types(messages)!r}"
    fields = error_fields(messages[0][1])
    assert fields["C"] == sqlstate, fields
    assert fields["S"] == "FATAL", fields
    return fields


def connections_since(cluster, mark):
    """Return server log lines for client connections received since `mark`."""
    return re.findall(r"connection received: .*", cluster.log_since(mark))


def test_gssenc_request_declined_then_plaintext(proxy):
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.send(gssenc_request())
        assert client.read_byte() == b"N"
        client.login("app", "app", "app-pw")
        assert rows(client.simple("SELECT 1")) == [[b"1"]]


def test_gssenc_then_ssl_request_then_tls(make_proxy, tmp_path):
    proxy = tls_proxy(make_proxy, tmp_path)
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.send(gssenc_request())
        assert client.read_byte() == b"N"
        assert client.start_tls() == b"S"
        client.login("app", "app", "app-pw")
        assert rows(client.simple("SELECT 1")) == [[b"1"]]


def test_second_gssenc_request_rejected(proxy):
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.send(gssenc_request())
        assert client.read_byte() == b"N"
        client.send(gssenc_request())
        messages = client.read_until_closed()
        # PostgreSQL 15 rejects a repeated request with 0A000 (unsupported frontend protocol).
        assert sqlstates(messages) in (["08P01"], ["0A000"])


def test_ssl_request_inside_tls_rejected(make_proxy, tmp_path):
    proxy = tls_proxy(make_proxy, tmp_path)
    with RawClient.connect(proxy.host, proxy.port) as client:
        assert client.start_tls() == b"S"
        client.send(ssl_request())
        messages = client.read_until_closed()
        # PostgreSQL 15 rejects this with 0A000 (unsupported frontend protocol).
        assert sqlstates(messages) in ([], ["08P01"], ["0A000"])


@pytest.mark.parametrize("request_bytes", [ssl_request(), gssenc_request()], ids=["ssl", "gssenc"])
def test_plaintext_pipelined_after_request_rejected(cluster, proxy, oracle, request_bytes):
    mark = cluster.log_mark()
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.send(request_bytes + startup_message({"user": "app", "database": "app"})
                    + query("DELETE FROM alembic_version"))
        answer = client.read_byte()
        assert answer in (b"N", b"E")
        if answer == b"E":
            # Rejected before any response to the request: the byte starts the ErrorResponse.
            client.buffer = answer + client.buffer
        expect_close(client, "08P01")

    assert connections_since(cluster, mark) == []
    assert oracle("SELECT array_agg(version_num) FROM alembic_version") == [(["aaaa0001"],)]


def test_plaintext_pipelined_after_ssl_request_with_tls(cluster, make_proxy, tmp_path, oracle):
    proxy = tls_proxy(make_proxy, tmp_path)
    mark = cluster.log_mark()
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.send(ssl_request() + startup_message({"user": "app", "database": "app"})
                    + query("DELETE FROM alembic_version"))
        answer = client.read_byte()
        assert answer in (b"S", b"N", b"E")
        if answer == b"S":
            assert_tls_refused_or_closed(client)
        else:
            # 'E' means rejected before any response to the request: the byte starts the ErrorResponse.
            client.buffer = answer + client.buffer if answer == b"E" else client.buffer
            expect_close(client, "08P01")

    assert connections_since(cluster, mark) == []
    assert oracle("SELECT array_agg(version_num) FROM alembic_version") == [(["aaaa0001"],)]


def assert_tls_refused_or_closed(client):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        client.sock = context.wrap_socket(client.sock)
    except (ssl.SSLError, OSError):
        return
    messages = client.read_until_closed()
    assert sqlstates(messages) in ([], ["08P01"])


def test_split_startup_packet_logs_in(proxy):
    packet = startup_message({"user": "app", "database": "app", "application_name": "x" * 5000})
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.user = "app"
        for chunk in (packet[:3], packet[3:103], packet[103:]):
            client.send(chunk)
            time.sleep(0.2)  # the stimulus: separate TCP segments, not synchronization
        client.auth_password("app-pw")
        assert rows(client.simple("SHOW application_name")) == [[b"x" * 63]]


@pytest.mark.parametrize("length", [10001, 7])
def test_startup_length_out_of_range(cluster, proxy, length):
    mark = cluster.log_mark()
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.send(struct.pack("!II", length, PROTOCOL_3_0))
        started = time.monotonic()
        expect_close(client, "08P01", timeout=2, allow_silent=True)
        assert time.monotonic() - started < 2

    assert connections_since(cluster, mark) == []


def test_http_request_closed_quickly(cluster, proxy):
    mark = cluster.log_mark()
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        messages = client.read_until_closed(timeout=1)
        assert sqlstates(messages) in ([], ["08P01"])

    assert connections_since(cluster, mark) == []


MALFORMED_PAIRS = {
    "missing_terminator": b"user\0app\0database\0app\0",
    "empty_key_then_more": b"user\0app\0\0database\0migrator\0\0",
}


@pytest.mark.parametrize("name", sorted(MALFORMED_PAIRS))
def test_malformed_startup_pairs(cluster, proxy, name):
    body = struct.pack("!I", PROTOCOL_3_0) + MALFORMED_PAIRS[name]
    mark = cluster.log_mark()
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.send(struct.pack("!I", len(body) + 4) + body)
        expect_close(client, "08P01")

    assert "connection authorized" not in cluster.log_since(mark)


def test_duplicate_user_key_rejected(cluster, proxy):
    mark = cluster.log_mark()
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.send(startup_message([("user", "app"), ("database", "app"), ("user", "migrator")]))
        expect_close(client, "08P01")

    assert "user=migrator" not in cluster.log_since(mark)


def test_missing_user_rejected(proxy):
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.send(startup_message({"database": "app"}))
        expect_close(client, "28000")


def test_huge_database_name_relayed_as_missing_database(proxy):
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.send(startup_message({"user": "app", "database": "d" * 9000}))
        with pytest.raises(ServerError) as err:
            client.auth_password("app-pw")
        assert err.value.sqlstate == "3D000"


@pytest.mark.parametrize("version", [(2, 0), (4, 0)], ids=["2.0", "4.0"])
def test_unsupported_protocol_major(proxy, version):
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.send(startup_message({"user": "app", "database": "app"}, (version[0] << 16) | version[1]))
        data = read_raw_until_closed(client)

    assert data[:1] == b"E"
    (length,) = struct.unpack("!I", data[1:5])
    if length == len(data) - 1:
        fields = error_fields(data[5:])
        assert fields["C"] == "0A000"
        assert fields["S"] == "FATAL"
    else:
        # A protocol 2.0 client may get the 2.0 error layout ('E' + text), as PostgreSQL sends it.
        assert version == (2, 0)
        assert b"unsupported frontend protocol" in data


def read_raw_until_closed(client, timeout=5):
    deadline = time.monotonic() + timeout
    data = client.buffer
    while time.monotonic() < deadline:
        chunk = client.sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    raise TimeoutError("connection still open")


def decode_negotiate(body):
    """Decode NegotiateProtocolVersion; PostgreSQL sends the full version number, so keep the minor."""
    (newest, count) = struct.unpack_from("!II", body)
    options = body[8:].split(b"\0")[:count]
    return newest & 0xFFFF, [o.decode() for o in options]


def test_protocol_3_2_negotiated_or_served(proxy):
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.login("app", "app", "app-pw", version=(3 << 16) | 2)
        if client.negotiate_protocol is not None:
            newest_minor, options = decode_negotiate(client.negotiate_protocol)
            assert newest_minor in (0, 1)
            assert options == []
        else:
            assert len(client.backend_key) > 4
        assert rows(client.simple("SELECT 1")) == [[b"1"]]


def test_grease_version_and_pq_option(proxy):
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.login("app", "app", "app-pw", version=GREASE_VERSION, **{"_pq_.test_protocol_negotiation": "1"})
        assert client.negotiate_protocol is not None
        newest_minor, options = decode_negotiate(client.negotiate_protocol)
        assert newest_minor in (0, 2)
        assert options == ["_pq_.test_protocol_negotiation"]
        assert rows(client.simple("SELECT 1")) == [[b"1"]]


def test_psycopg_max_protocol_version_3_2(proxy):
    psycopg = pytest.importorskip("psycopg")
    if psycopg.pq.version() < 180000:
        pytest.skip("libpq < 18 has no max_protocol_version")
    with psycopg.connect(proxy.dsn(max_protocol_version="3.2")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_replication_connection_refused(cluster, proxy):
    # The superuser may open walsenders directly, so only the proxy can refuse this one.
    mark = cluster.log_mark()
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.startup("postgres", "app", replication="database")
        with pytest.raises(ServerError) as err:
            client.auth_password("postgres-pw")
        assert err.value.sqlstate in ("0A000", "28000")
        assert err.value.fields["S"] == "FATAL"

    assert "replication connection authorized" not in cluster.log_since(mark)


def admitted_or_refused(proxy, **params):
    """Log in with extra startup parameters; return the client, or None when refused."""
    client = RawClient.connect(proxy.host, proxy.port)
    try:
        client.login("app", "app", "app-pw", **params)
    except ServerError as err:
        client.close()
        assert err.sqlstate in ("42501", "0A000"), err.fields
        assert err.fields["S"] == "FATAL"
        return None
    return client


def test_startup_role_option_not_applied(proxy):
    client = admitted_or_refused(proxy, options="-c role=migrator")
    if client is not None:
        with client:
            assert rows(client.simple("SELECT current_user, session_user")) == [[b"app", b"app"]]


@pytest.mark.parametrize("params", [
    {"options": "--standard_conforming_strings=off"},
    {"options": "-c standard_conforming_strings=off"},
    {"standard_conforming_strings": "off"},
], ids=["options-long", "options-c", "top-level"])
def test_startup_scs_off_not_applied(proxy, params):
    client = admitted_or_refused(proxy, **params)
    if client is not None:
        with client:
            assert client.params["standard_conforming_strings"] == "on"
            assert rows(client.simple("SHOW standard_conforming_strings")) == [[b"on"]]


def test_startup_client_encoding_sjis_not_applied(proxy):
    client = admitted_or_refused(proxy, client_encoding="SJIS")
    if client is not None:
        with client:
            assert client.params["client_encoding"] == "UTF8"


def test_startup_search_path_option_not_applied(proxy):
    client = admitted_or_refused(proxy, options="-c search_path=evil,public")
    if client is not None:
        with client:
            (value,) = rows(client.simple("SHOW search_path"))[0]
            assert not value.startswith(b"evil")


def test_startup_datestyle_option_with_escape(proxy):
    with raw_login(proxy.host, proxy.port, options=r"-c DateStyle=ISO,\ MDY") as client:
        assert client.params["DateStyle"] == "ISO, MDY"


def test_startup_application_name_admitted(proxy):
    with raw_login(proxy.host, proxy.port, application_name="alembic") as client:
        assert rows(client.simple("SHOW application_name")) == [[b"alembic"]]


def test_startup_timeout_drops_silent_client(make_proxy):
    proxy = make_proxy(limits={"startup_timeout": "1s"})
    started = time.monotonic()
    with RawClient.connect(proxy.host, proxy.port) as client:
        client.read_until_closed(timeout=4)
    assert time.monotonic() - started < 4

    with RawClient.connect(proxy.host, proxy.port) as client:
        client.send(struct.pack("!I", 40))
        client.read_until_closed(timeout=4)

    with raw_login(proxy.host, proxy.port) as client:
        assert rows(client.simple("SELECT 1")) == [[b"1"]]


def test_max_connections_rejects_extra_client(make_proxy):
    proxy = make_proxy(limits={"max_connections": 2})
    first = raw_login(proxy.host, proxy.port)
    second = raw_login(proxy.host, proxy.port)
    with first, second:
        with RawClient.connect(proxy.host, proxy.port) as third:
            third.startup("app", "app")
            with pytest.raises(ServerError) as err:
                third.auth_password("app-pw")
            assert err.value.sqlstate == "53300"

    def fresh_login_works():
        try:
            with raw_login(proxy.host, proxy.port) as client:
                return rows(client.simple("SELECT 1")) == [[b"1"]]
        except (ServerError, OSError, EOFError):
            return False

    wait_until(fresh_login_works, 5, interval=0.1, message="a free connection slot after closing two")
