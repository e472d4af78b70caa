"""Control API of the fake iCloud: plain HTTP on 127.0.0.1 (--control-port).

GET  /faults                 list faults          POST /faults   add one (JSON, see faults.py)
DELETE /faults               remove all faults
GET  /requests               request log + counts (+ push_requested)
POST /reset_counters         clear log, counts, pushes, sms sends
POST /expire_sessions        {"apple_id": optional} drop sessions now
POST /expire_trust           {"apple_id": optional} expire trust tokens now
GET  /state                  codes, pushes, sms sends, live sessions per account
POST /accounts               {"apple_id": ..., <flag>: value, ...} change an account live
POST /mutate                 {"apple_id": optional, ...op} forwarded to library.mutate(op)
GET  /health                 {"ok": true}
"""
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from faults import FAULTS


class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    app = None

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, obj):
        body = json.dumps(obj, indent=1, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw.strip():
            return {}
        return json.loads(raw.decode("utf-8"))

    def do_GET(self):
        app = self.app
        p = self.path.split("?")[0]
        if p == "/faults":
            return self._send(200, {"faults": FAULTS.list()})
        if p == "/requests":
            return self._send(200, app.requests_report())
        if p == "/state":
            return self._send(200, app.auth.state())
        if p == "/health":
            return self._send(200, {"ok": True})
        if p == "/library":
            q = urllib.parse.parse_qs(self.path.partition("?")[2])
            return self._send(*app.library_state((q.get("apple_id") or [None])[0]))
        return self._send(404, {"error": "unknown control path"})

    def do_DELETE(self):
        if self.path.split("?")[0] == "/faults":
            FAULTS.clear()
            return self._send(200, {"ok": True})
        return self._send(404, {"error": "unknown control path"})

    def do_POST(self):
        app = self.app
        p = self.path.split("?")[0]
        try:
            body = self._body()
        except (ValueError, UnicodeDecodeError) as e:
            return self._send(400, {"error": "bad json: %s" % e})
        try:
            if p == "/faults":
                items = body if isinstance(body, list) else [body]
                ids, hooked = [], []
                for d in items:
                    r = FAULTS.add(d)
                    if isinstance(r, list):
                        hooked.append({"action": d.get("action"), "results": r})
                    else:
                        ids.append(r.id)
                return self._send(200, {"ok": True, "ids": ids, "forwarded": hooked})
            if p == "/reset_counters":
                app.reset_counters()
                return self._send(200, {"ok": True})
            if p == "/expire_sessions":
                n = app.auth.expire_sessions(body.get("apple_id"))
                return self._send(200, {"ok": True, "expired": n})
            if p == "/expire_trust":
                n = app.auth.expire_trust(body.get("apple_id"))
                return self._send(200, {"ok": True, "expired": n})
            if p == "/accounts":
                aid = body.pop("apple_id", None)
                a = app.store.update(aid, body)
                return self._send(200, {"ok": True, "account": a.public()})
            if p == "/mutate":
                return self._send(*app.mutate(body))
        except (KeyError, ValueError, TypeError) as e:
            return self._send(400, {"error": str(e)})
        return self._send(404, {"error": "unknown control path"})


def start_control(app, port):
    handler = type("BoundControlHandler", (ControlHandler,), {"app": app})
    srv = ThreadingHTTPServer(("127.0.0.1", port), handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, name="control", daemon=True)
    t.start()
    return srv
