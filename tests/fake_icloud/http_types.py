"""Shared request/response types for the fake iCloud server.

The server core parses each HTTP request into a Request, routes it to a
service handler, and writes back the Response it returns.  Handlers never
touch sockets directly except through Response.stream.
"""
import json
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterable, Optional


class Headers:
    """Case-insensitive, multi-valued header collection (order kept)."""

    def __init__(self, pairs: Iterable = ()):
        self._pairs = [(str(k), str(v)) for k, v in pairs]

    def get(self, name: str, default=None):
        low = name.lower()
        for k, v in self._pairs:
            if k.lower() == low:
                return v
        return default

    def get_all(self, name: str) -> list:
        low = name.lower()
        return [v for k, v in self._pairs if k.lower() == low]

    def items(self):
        return list(self._pairs)

    def __contains__(self, name):
        return self.get(name) is not None

    def __repr__(self):
        return "Headers(%d)" % len(self._pairs)


@dataclass
class Request:
    method: str
    host: str                  # host without port, lower-case
    path: str                  # path without query
    query: dict                # dict[str, list[str]] parsed query string
    headers: Headers           # case-insensitive get(name, default)
    body: bytes
    service: str               # 'idmsa','setup','www','ckdatabasews','content','control'
    account: object = None     # authenticated account (ckdatabasews/content) or None

    def json(self):
        """Parse the body as JSON; raises ValueError on bad input."""
        if not self.body:
            return None
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Response:
    status: int
    headers: list = field(default_factory=list)   # list[tuple[str, str]]
    body: bytes = b""
    # If set, the core sends status + headers and then calls stream(wfile);
    # the handler must put Content-Length (or Connection: close) in headers.
    stream: Optional[Callable[[BinaryIO], None]] = None
    close: bool = False        # close the connection after this response


def json_response(obj, status: int = 200, headers=()) -> Response:
    return json_bytes_response(json.dumps(obj, separators=(",", ":")).encode("utf-8"), status, headers)


def json_bytes_response(body: bytes, status: int = 200, headers=()) -> Response:
    """json_response for a body already encoded (same headers)."""
    hdrs = [("Content-Type", "application/json;charset=UTF-8")]
    hdrs.extend(headers)
    return Response(status=status, headers=hdrs, body=body)
