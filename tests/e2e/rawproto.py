"""PostgreSQL frontend/backend protocol at the byte level, for raw-socket tests.

Message layouts follow the "Message Formats" chapter of the PostgreSQL 15
documentation. Builders return complete messages as bytes so that tests can
concatenate several of them into one TCP write.
"""

import base64
import hashlib
import hmac
import os
import socket
import ssl
import struct
import time

PROTOCOL_3_0 = 196608
PROTOCOL_3_2 = (3 << 16) | 2
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102

READ_TIMEOUT = 5.0
MAX_BACKEND_MESSAGE = 256 * 1024 * 1024


class ConnectionClosed(EOFError):
    """The peer closed the connection before a complete message arrived."""


class ServerError(Exception):
    """An ErrorResponse received where the caller expected success."""

    def __init__(self, fields):
        self.fields = fields
        super().__init__(f"{fields.get('S')} {fields.get('C')}: {fields.get('M')}")

    @property
    def sqlstate(self):
        return self.fields.get("C")


# ---------------------------------------------------------------------------
# Frontend message builders
# ---------------------------------------------------------------------------


def _cstr(text):
    if isinstance(text, bytes):
        return text + b"\0"
    return text.encode() + b"\0"


def _encode_values(values):
    """Encode a count and length-prefixed values: bytes, str (UTF-8) or None (NULL)."""
    out = struct.pack("!H", len(values))
    for value in values:
        if value is None:
            out += struct.pack("!i", -1)
            continue
        if isinstance(value, str):
            value = value.encode()
        out += struct.pack("!i", len(value)) + value
    return out


def message(type_byte, body=b""):
    """Frame `body` as a frontend message with a self-inclusive length."""
    return type_byte + struct.pack("!I", len(body) + 4) + body


def startup_message(params, version=PROTOCOL_3_0):
    """Build a StartupMessage from (key, value) pairs, kept in order and duplicates allowed."""
    if isinstance(params, dict):
        params = list(params.items())
    body = struct.pack("!I", version)
    for key, value in params:
        body += _cstr(key) + _cstr(value)
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def ssl_request():
    return struct.pack("!II", 8, SSL_REQUEST_CODE)


def gssenc_request():
    return struct.pack("!II", 8, GSSENC_REQUEST_CODE)


def cancel_request(pid, key):
    """Build a CancelRequest; `key` is an int (4-byte key) or the raw key bytes."""
    if isinstance(key, int):
        key = struct.pack("!I", key & 0xFFFFFFFF)
    body = struct.pack("!II", CANCEL_REQUEST_CODE, pid) + key
    return struct.pack("!I", len(body) + 4) + body


def query(sql):
    return message(b"Q", _cstr(sql))


def parse(name, sql, oids=()):
    body = _cstr(name) + _cstr(sql) + struct.pack("!H", len(oids))
    for oid in oids:
        body += struct.pack("!I", oid)
    return message(b"P", body)


def bind(portal="", stmt="", params=(), param_formats=(), result_formats=()):
    """Build a Bind; a parameter is bytes, str (sent as UTF-8 text) or None (SQL NULL)."""
    body = _cstr(portal) + _cstr(stmt)
    body += struct.pack("!H", len(param_formats))
    for fmt in param_formats:
        body += struct.pack("!H", fmt)
    body += _encode_values(params)
    body += struct.pack("!H", len(result_formats))
    for fmt in result_formats:
        body += struct.pack("!H", fmt)
    return message(b"B", body)


def describe(kind, name=""):
    return message(b"D", kind.encode() + _cstr(name))


def execute(portal="", max_rows=0):
    return message(b"E", _cstr(portal) + struct.pack("!i", max_rows))


def sync():
    return message(b"S")


def flush():
    return message(b"H")


def close(kind, name=""):
    return message(b"C", kind.encode() + _cstr(name))


def copy_data(data):
    return message(b"d", data)


def copy_done():
    return message(b"c")


def copy_fail(msg):
    return message(b"f", _cstr(msg))


def terminate():
    return message(b"X")


def function_call(oid, args=(), arg_formats=(), result_format=0):
    """Build a FunctionCall ('F'); an argument is bytes, str or None."""
    body = struct.pack("!I", oid) + struct.pack("!H", len(arg_formats))
    for fmt in arg_formats:
        body += struct.pack("!H", fmt)
    body += _encode_values(args)
    body += struct.pack("!H", result_format)
    return message(b"F", body)


def extended_query(sql, params=(), portal="", stmt=""):
    """Parse, Bind, Execute for one statement, without the trailing Sync."""
    return parse(stmt, sql) + bind(portal, stmt, params) + execute(portal)


# ---------------------------------------------------------------------------
# Backend message decoding
# ---------------------------------------------------------------------------


def error_fields(body):
    """Decode an ErrorResponse or NoticeResponse body into {field code: value}."""
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return fields


def data_row(body):
    """Decode a DataRow body into a list of bytes values (None for NULL)."""
    (count,) = struct.unpack_from("!H", body, 0)
    offset = 2
    values = []
    for _ in range(count):
        (length,) = struct.unpack_from("!i", body, offset)
        offset += 4
        if length < 0:
            values.append(None)
            continue
        values.append(body[offset : offset + length])
        offset += length
    return values


def command_tag(body):
    return body.rstrip(b"\0").decode()


def parameter_status(body):
    key, value, _ = body.split(b"\0", 2)
    return key.decode(), value.decode()


def types(messages):
    """Return the type bytes of a message list as one string, e.g. '12CZ'."""
    return "".join(t.decode() for t, _ in messages)


def sqlstates(messages):
    return [error_fields(body).get("C") for t, body in messages if t == b"E"]


def rows(messages):
    return [data_row(body) for t, body in messages if t == b"D"]


def tags(messages):
    return [command_tag(body) for t, body in messages if t == b"C"]


# ---------------------------------------------------------------------------
# SCRAM-SHA-256 (RFC 5802 / RFC 7677) client side, without channel binding
# ---------------------------------------------------------------------------


class ScramClient:
    """SCRAM-SHA-256 client; `gs2_header` "y,," claims channel-binding support without using it."""

    def __init__(self, password, gs2_header="n,,"):
        self.password = password.encode()
        self.gs2_header = gs2_header
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.client_first_bare = f"n=,r={self.nonce}"
        self.server_signature = None

    def client_first(self):
        return (self.gs2_header + self.client_first_bare).encode()

    def client_final(self, server_first):
        server_first = server_first.decode()
        attrs = dict(item.split("=", 1) for item in server_first.split(","))
        if not attrs["r"].startswith(self.nonce):
            raise ValueError("server nonce does not extend the client nonce")

        salt = base64.b64decode(attrs["s"])
        salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored_key = hashlib.sha256(client_key).digest()

        binding = base64.b64encode(self.gs2_header.encode()).decode()
        without_proof = f"c={binding},r={attrs['r']}"
        auth_message = f"{self.client_first_bare},{server_first},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))

        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        self.server_signature = hmac.new(server_key, auth_message, "sha256").digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify_server_final(self, server_final):
        attrs = dict(item.split("=", 1) for item in server_final.decode().split(","))
        if base64.b64decode(attrs.get("v", "")) != self.server_signature:
            raise ValueError("server signature mismatch in SCRAM server-final-message")


def md5_password(user, password, salt):
    inner = hashlib.md5(password.encode() + user.encode()).hexdigest()
    return "md5" + hashlib.md5(inner.encode() + salt).hexdigest()


# ---------------------------------------------------------------------------
# The raw client
# ---------------------------------------------------------------------------


class RawClient:
    """A PostgreSQL client that writes exactly the bytes a test gives it."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""
        self.user = None
        self.params = {}
        self.backend_pid = None
        self.backend_key = None
        self.negotiate_protocol = None
        self.sasl_mechanisms = []

    @classmethod
    def connect(cls, host, port, timeout=READ_TIMEOUT):
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.settimeout(timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(sock)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, count):
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionClosed(f"connection closed with {len(self.buffer)} buffered bytes")
            self.buffer += chunk

    def read_exact(self, count):
        self._fill(count)
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def read_byte(self):
        """Read the one-byte response to an SSLRequest or GSSENCRequest."""
        return self.read_exact(1)

    def read_message(self):
        """Read one backend message and return (type_byte, body)."""
        header = self.read_exact(5)
        type_byte = header[:1]
        (length,) = struct.unpack("!I", header[1:])
        if length < 4 or length > MAX_BACKEND_MESSAGE:
            raise ValueError(f"invalid backend message length {length} for type {type_byte!r}")
        return type_byte, self.read_exact(length - 4)

    def read_until_ready(self):
        """Read messages up to and including the next ReadyForQuery."""
        messages = []
        while True:
            msg = self.read_message()
            messages.append(msg)
            if msg[0] == b"Z":
                return messages

    def read_until_closed(self, timeout=READ_TIMEOUT):
        """Read messages until the peer closes; raise socket.timeout if it stays open."""
        deadline = time.monotonic() + timeout
        messages = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout(f"connection still open after {timeout} s; got {types(messages)!r}")
            self.sock.settimeout(remaining)
            try:
                messages.append(self.read_message())
            except (ConnectionClosed, ConnectionResetError):
                return messages
            finally:
                self.sock.settimeout(READ_TIMEOUT)

    def is_closed(self, timeout=READ_TIMEOUT):
        """Return True when the peer closes within `timeout` without sending anything more."""
        try:
            return self.read_until_closed(timeout) == []
        except socket.timeout:
            return False

    def startup(self, user, database, version=PROTOCOL_3_0, **params):
        self.user = user
        pairs = [("user", user), ("database", database)] + list(params.items())
        self.send(startup_message(pairs, version))

    def start_tls(self, server_hostname=None, context=None):
        """Send SSLRequest; on 'S' wrap the socket in TLS. Return the response byte."""
        self.send(ssl_request())
        answer = self.read_byte()
        if answer == b"S":
            if context is None:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        return answer

    def auth_password(self, password, gs2_header="n,,"):
        """Complete authentication and read up to the first ReadyForQuery.

        Handles cleartext, MD5 and SCRAM-SHA-256, records ParameterStatus values and
        BackendKeyData, and raises ServerError on an ErrorResponse.
        """
        scram = None
        while True:
            type_byte, body = self.read_message()
            if type_byte == b"E":
                raise ServerError(error_fields(body))
            if type_byte == b"v":
                self.negotiate_protocol = body
                continue
            if type_byte == b"N":
                continue
            if type_byte != b"R":
                raise ValueError(f"unexpected message {type_byte!r} during authentication")

            (code,) = struct.unpack_from("!I", body)
            if code == 0:
                return self._read_startup_tail()
            scram = self._answer_auth_request(code, body[4:], password, scram, gs2_header)

    def _answer_auth_request(self, code, payload, password, scram, gs2_header):
        if code == 3:
            self.send(message(b"p", _cstr(password)))
        elif code == 5:
            self.send(message(b"p", _cstr(md5_password(self.user, password, payload[:4]))))
        elif code == 10:
            mechanisms = [m.decode() for m in payload.split(b"\0") if m]
            self.sasl_mechanisms = mechanisms
            if "SCRAM-SHA-256" not in mechanisms:
                raise ValueError(f"no SCRAM-SHA-256 among SASL mechanisms {mechanisms}")
            scram = ScramClient(password, gs2_header)
            first = scram.client_first()
            body = _cstr("SCRAM-SHA-256") + struct.pack("!i", len(first)) + first
            self.send(message(b"p", body))
        elif code == 11:
            self.send(message(b"p", scram.client_final(payload)))
        elif code == 12:
            scram.verify_server_final(payload)
        else:
            raise ValueError(f"unsupported authentication request code {code}")
        return scram

    def _read_startup_tail(self):
        messages = []
        while True:
            type_byte, body = self.read_message()
            messages.append((type_byte, body))
            if type_byte == b"S":
                key, value = parameter_status(body)
                self.params[key] = value
            elif type_byte == b"K":
                (self.backend_pid,) = struct.unpack_from("!I", body)
                self.backend_key = body[4:]
            elif type_byte == b"E":
                raise ServerError(error_fields(body))
            elif type_byte == b"Z":
                return messages

    def login(self, user, database, password, **params):
        """Send a StartupMessage and authenticate; return the post-authentication messages."""
        self.startup(user, database, **params)
        return self.auth_password(password)

    def simple(self, sql):
        """Send one Query and return every message up to ReadyForQuery."""
        self.send(query(sql))
        return self.read_until_ready()
