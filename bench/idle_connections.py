"""Opens idle client connections through the proxy and reports its memory per connection.

Usage: idle_connections.py PORT COUNT PID
Each connection completes startup as user postgres with trust authentication
and then stays idle; the proxy's RSS is read before and after.
"""

import socket
import struct
import sys


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("VmRSS not found")


def startup(port):
    sock = socket.create_connection(("127.0.0.1", port))
    params = b"user\0postgres\0database\0postgres\0\0"
    body = struct.pack("!I", 3 << 16) + params
    sock.sendall(struct.pack("!I", len(body) + 4) + body)
    buffer = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed during startup")
        buffer += chunk
        # ReadyForQuery ends startup: 'Z', length 5, status byte.
        if b"Z\x00\x00\x00\x05" in buffer:
            return sock


def main():
    port, count, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    before = rss_kib(pid)
    sockets = [startup(port) for _ in range(count)]
    after = rss_kib(pid)
    per_connection = (after - before) / count
    print(f"{count} {before} {after} {per_connection:.1f}")
    for sock in sockets:
        sock.close()


if __name__ == "__main__":
    main()
