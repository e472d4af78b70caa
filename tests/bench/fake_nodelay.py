#!/usr/bin/python3
"""Start tests/fake_icloud/server.py with TCP_NODELAY on every accepted
connection; same command line as server.py.

Why: the fake's handler (BaseHTTPRequestHandler, unbuffered wfile) sends the
response headers and the body in two writes.  With Nagle's algorithm on, the
body waits for the client's ACK of the headers, which the client delays by
~40 ms (delayed ACK), so every response costs ~40 ms of idle time that no real
server adds.  That would make every request-bound scenario measure the fake,
not the clients.  The fake's files belong to another team, so the benchmark
patches it here, for both clients alike, without touching tests/fake_icloud/.
"""
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fake_icloud"))
import server  # noqa: E402

_setup = server.Handler.setup


def _setup_nodelay(self):
    try:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass
    _setup(self)


server.Handler.setup = _setup_nodelay

if __name__ == "__main__":
    sys.exit(server.main())
