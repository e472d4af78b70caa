"""Failure injection shared by every service of the fake iCloud.

A fault is a dict posted to the control API (POST /faults):
  {"path_regex": "/signin/init", "nth": 1, "count": 1, "action": "503",
   "retry_after": 2, "service": "idmsa", "method": "POST", "host_regex": "..."}
The nth matching request (1 = the next one) and the following ones, up to
`count` requests (count <= 0: unlimited), get the fault.

Built-in actions (applied by the core before dispatch): 503, 429, 500, 421,
450, 401, 403, malformed_json, close (drop the connection without answer),
status (params: {"status": N, "body": "...", "content_type": "...",
"headers": [["X-Apple-I-Rscd", "401"], ...]}).

Other modules add actions with register_action(name, fn) where
fn(req, fault, dispatch) -> Response; dispatch(req) returns the response the
service would normally give (so an action can cut or slow a real body).
take(req) only hands out faults whose action is built in or registered;
a handler may claim faults with its own unregistered actions by calling
take(req, actions={"name", ...}).
"""
import inspect
import itertools
import re
import threading
from dataclasses import dataclass, field

from http_types import Response, json_response

BUILTIN = {"503", "429", "500", "421", "450", "401", "403", "malformed_json", "close", "status"}


@dataclass
class Fault:
    id: int
    action: str
    path_regex: str = ""
    host_regex: str = ""
    service: str = ""
    method: str = ""
    nth: int = 1
    count: int = 1
    retry_after: object = None
    params: dict = field(default_factory=dict)
    seen: int = 0
    fired: int = 0

    def matches(self, req):
        if self.service and req.service != self.service:
            return False
        if self.method and req.method.upper() != self.method.upper():
            return False
        if self.path_regex and not re.search(self.path_regex, req.path):
            return False
        if self.host_regex and not re.search(self.host_regex, req.host):
            return False
        return True

    def exhausted(self):
        return self.count > 0 and self.fired >= self.count

    def to_dict(self):
        return {"id": self.id, "action": self.action, "path_regex": self.path_regex,
                "host_regex": self.host_regex, "service": self.service, "method": self.method,
                "nth": self.nth, "count": self.count, "retry_after": self.retry_after,
                "params": self.params, "seen": self.seen, "fired": self.fired}


class FaultList:
    def __init__(self):
        self.lock = threading.Lock()
        self.faults = []
        self.actions = {}
        self.hooks = {}
        self._ids = itertools.count(1)

    def register_action(self, name, fn):
        """fn(req, fault, dispatch) -> Response: a request-time action.
        A one-argument fn(rule) is a control-time hook instead: POST /faults
        with that action calls it at once with the posted "rule" (or
        "params", or the posted dict without "action") and stores nothing."""
        try:
            nparams = len(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            nparams = 3
        if nparams == 1:
            self.hooks.setdefault(name, []).append(fn)
        else:
            self.actions[name] = fn

    def known(self, action):
        return action in BUILTIN or action in self.actions

    def add(self, d: dict):
        """Store a fault (returns Fault) or run control-time hooks (returns list of results)."""
        if not isinstance(d, dict) or not isinstance(d.get("action"), str):
            raise ValueError("fault needs a string 'action'")
        if d["action"] in self.hooks:
            arg = d.get("rule") or d.get("params") or {k: v for k, v in d.items() if k != "action"}
            return [fn(arg) for fn in self.hooks[d["action"]]]
        if not self.known(d["action"]):
            raise ValueError("unknown fault action %r" % d["action"])
        if d.get("path_regex"):
            re.compile(d["path_regex"])
        if d.get("host_regex"):
            re.compile(d["host_regex"])
        f = Fault(id=next(self._ids), action=d["action"], path_regex=d.get("path_regex", ""),
                  host_regex=d.get("host_regex", ""), service=d.get("service", ""),
                  method=d.get("method", ""), nth=max(1, int(d.get("nth", 1))),
                  count=int(d.get("count", 1)), retry_after=d.get("retry_after"),
                  params=dict(d.get("params") or {}))
        with self.lock:
            self.faults.append(f)
        return f

    def clear(self):
        with self.lock:
            self.faults = []

    def list(self):
        with self.lock:
            return [f.to_dict() for f in self.faults]

    def take(self, req, actions=None):
        """Count req against matching faults; return the fault that fires, or None."""
        chosen = None
        with self.lock:
            for f in self.faults:
                if actions is not None:
                    if f.action not in actions:
                        continue
                elif not self.known(f.action):
                    continue
                if f.exhausted() or not f.matches(req):
                    continue
                f.seen += 1
                if chosen is None and f.seen >= f.nth:
                    f.fired += 1
                    chosen = f
        return chosen

    def respond(self, fault, req, dispatch):
        """Build the response for a fault taken by the core."""
        extra = []
        if fault.retry_after is not None:
            extra.append(("Retry-After", str(fault.retry_after)))
        a = fault.action
        if a in self.actions:
            resp = self.actions[a](req, fault, dispatch)
            resp.headers.extend(extra)
            return resp
        if a == "503":
            body = (b"<html><head><title>503 Service Temporarily Unavailable</title></head>"
                    b"<body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>")
            return Response(503, [("Content-Type", "text/html")] + extra, body)
        if a == "429":
            if fault.retry_after is None:
                extra.append(("Retry-After", "1"))
            return json_response({"success": False, "error": "Too Many Requests"}, 429, extra)
        if a == "500":
            return json_response({"success": False, "error": "Internal Server Error"}, 500, extra)
        if a == "421":
            return json_response({"success": False, "error": "Misdirected Request"}, 421, extra)
        if a == "450":
            return json_response({"success": False, "error": "Authentication required"}, 450, extra)
        if a == "403":
            return json_response({"success": False, "error": "Forbidden"}, 403, extra)
        if a == "401":
            if req.service == "idmsa":
                return json_response({"serviceErrors": [{"code": "-20101", "message":
                    "Enter the email or phone number and password for your Apple Account.",
                    "suppressDismissal": False}]}, 401, extra)
            return json_response({"success": False, "error": "Missing X-APPLE-WEBAUTH-TOKEN cookie"}, 401, extra)
        if a == "malformed_json":
            return Response(200, [("Content-Type", "application/json;charset=UTF-8")] + extra,
                            b'{"dsInfo": {"dsid": "1", "hsaVersion": [2, ')
        if a == "close":
            return None
        if a == "status":
            p = fault.params
            body = p.get("body", "")
            hdrs = [(str(k), str(v)) for k, v in (p.get("headers") or [])]
            return Response(int(p.get("status", 500)),
                            [("Content-Type", p.get("content_type", "application/json;charset=UTF-8"))] + hdrs + extra,
                            body.encode() if isinstance(body, str) else b"")
        raise ValueError("unknown action " + a)


FAULTS = FaultList()


def register_action(name, fn):
    FAULTS.register_action(name, fn)


def take(req, actions=None):
    return FAULTS.take(req, actions)
