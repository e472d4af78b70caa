#!/usr/bin/python3
"""Fake iCloud server core: HTTPS on 127.0.0.1, routing by Host, sign-in,
CloudKit dispatch, request log, fault injection, control API.

  server.py --port N --state-dir DIR --accounts accounts.json [--library library.json]
            [--hosts apple|localhost] [--control-port M] [--log FILE]

Writes DIR/ca.pem and, once listening, DIR/ready.json
({"port", "control_port", "ca", "pid", "hosts"}).
"""
import argparse
import json
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import certs  # noqa: E402
from accounts import AccountStore  # noqa: E402
from auth import AuthState  # noqa: E402
from control import start_control  # noqa: E402
from faults import FAULTS  # noqa: E402
from http_types import Headers, Request, Response, json_response  # noqa: E402

try:  # written by the CloudKit helper; optional so sign-in tests run alone
    import cloudkit as _cloudkit  # noqa: E402
except ImportError as _e:  # pragma: no cover
    _cloudkit = None
    _cloudkit_err = str(_e)
try:
    import library as _library  # noqa: E402
except ImportError:  # pragma: no cover
    _library = None

CK_RE = re.compile(r"^p\d+-ckdatabasews$")
MAX_BODY = 64 * 1024 * 1024


def route(host: str) -> str:
    first = host.split(".")[0]
    if first == "idmsa":
        return "idmsa"
    if first == "setup":
        return "setup"
    if first == "www":
        return "www"
    if CK_RE.match(first):
        return "ckdatabasews"
    if first.startswith("cvws"):
        return "content"
    return "unknown"


class App:
    def __init__(self, args):
        self.args = args
        self.store = AccountStore.load(args.accounts)
        self.port = args.port
        self.hosts = args.hosts
        self.auth = None  # set once the port is known
        self.log_lock = threading.Lock()
        self.log_file = open(args.log, "a", buffering=1) if args.log else None
        self.entries = []
        self.counts = {}
        self.total = 0
        self.services = {}
        self.libraries = {}
        self.svc_lock = threading.Lock()

    # ----- request log -----
    def record(self, req, status, started, fault=None, note=None):
        e = {"ts": round(time.time(), 3), "method": req.method, "host": req.host,
             "path": req.path, "service": req.service, "status": status,
             "ms": round((time.time() - started) * 1000, 1)}
        if fault is not None:
            e["fault"] = fault.id
            e["fault_action"] = fault.action
        if note:
            e["note"] = note
        key = "%s %s" % (req.method, req.path)
        with self.log_lock:
            self.entries.append(e)
            if len(self.entries) > 20000:
                del self.entries[:5000]
            self.counts[key] = self.counts.get(key, 0) + 1
            self.total += 1
            if self.log_file:
                self.log_file.write(json.dumps(e) + "\n")

    def requests_report(self):
        st = self.auth.state()
        with self.log_lock:
            return {"total": self.total, "counts": dict(self.counts),
                    "requests": list(self.entries[-5000:]),
                    "push_requested": st["push_requested"],
                    "pushes": st["counters"].get("pushes", 0),
                    "sms_sends": st["counters"].get("sms_sends", 0),
                    "counters": st["counters"]}

    def reset_counters(self):
        with self.log_lock:
            self.entries = []
            self.counts = {}
            self.total = 0
        self.auth.reset_counters()

    # ----- CloudKit -----
    def library_for(self, path):
        if _library is None:
            raise RuntimeError("library.py not available")
        with self.svc_lock:
            lib = self.libraries.get(path)
            if lib is None:
                lib = _library.Library.load(path)
                self.libraries[path] = lib
            return lib

    def service_for(self, account, cn):
        path = (account.library if account is not None else None) or self.args.library
        if not path:
            return None
        key = (path, cn)
        with self.svc_lock:
            svc = self.services.get(key)
        if svc is None:
            lib = self.library_for(path)
            part = account.partition if account is not None else 42
            base = {"ckdatabasews": self.auth.base_url("ckdatabasews", cn, part),
                    "content": self.auth.base_url("content", cn)}
            svc = _cloudkit.CloudKitService(lib, base,
                                            render_cache=bool(getattr(self.args, "render_cache", False)))
            with self.svc_lock:
                svc = self.services.setdefault(key, svc)
        return svc

    def mutate(self, body):
        aid = body.pop("apple_id", None) if isinstance(body, dict) else None
        acc = self.store.find(aid) if aid else None
        path = (acc.library if acc else None) or self.args.library
        if not path:
            return 400, {"error": "no library configured"}
        lib = self.library_for(path)
        if not hasattr(lib, "mutate"):
            return 501, {"error": "library has no mutate()"}
        res = lib.mutate(body)
        return 200, {"ok": True, "result": res}

    def library_state(self, aid):
        """What a test checks after a sync that deletes: every asset's
        uuid, filename and whether it is hidden, in Recently Deleted or purged."""
        acc = self.store.find(aid) if aid else None
        path = (acc.library if acc else None) or self.args.library
        if not path:
            return 400, {"error": "no library configured"}
        lib = self.library_for(path)
        return 200, {"assets": [{"uuid": x.uuid, "filename": x.filename, "zone": x.zone,
                                 "hidden": bool(x.hidden), "deleted": bool(x.deleted),
                                 "purged": bool(x.purged)} for x in lib.assets]}

    def dispatch(self, req):
        s = req.service
        if s == "idmsa":
            return self.auth.handle_idmsa(req)
        if s == "setup":
            return self.auth.handle_setup(req)
        if s == "www":
            if req.method == "GET" and req.path in ("/", ""):
                return Response(200, [("Content-Type", "text/html; charset=UTF-8")],
                                b"<!DOCTYPE html><html><head><title>iCloud</title></head><body></body></html>")
            return Response(404, [("Content-Type", "text/html")], b"not found")
        if s in ("ckdatabasews", "content"):
            if _cloudkit is None:
                return json_response({"error": "cloudkit module not available"}, 503)
            cn = req.host.endswith(".cn")
            if s == "ckdatabasews":
                acc, err = self.auth.authorize_cloudkit(req)
                if err is not None:
                    return err
                req.account = acc
                svc = self.service_for(acc, cn)
                if svc is None:
                    return json_response({"uuid": "fake", "serverErrorCode": "ZONE_NOT_FOUND",
                                          "reason": "no library configured for this account"}, 404)
                return svc.handle(req)
            # content: URLs are self-authorising; the cookie only helps pick the library
            ws, _ = self.auth.find_web(req)
            if ws is not None:
                req.account = ws.account
                svc = self.service_for(ws.account, cn)
                if svc is not None:
                    return svc.handle_download(req)
            last = None
            cands = []
            if self.args.library:
                cands.append(self.service_for(None, cn))
            with self.svc_lock:
                cands += [v for k, v in self.services.items() if k[1] == cn]
            seen = set()
            for svc in cands:
                if svc is None or id(svc) in seen:
                    continue
                seen.add(id(svc))
                last = svc.handle_download(req)
                if last.status != 404:
                    return last
            return last or Response(404, [("Content-Type", "text/plain")], b"not found")
        return Response(404, [("Content-Type", "text/plain")], b"unknown host")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120
    app = None

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        try:
            self.connection.do_handshake()
        except (ssl.SSLError, OSError, socket.timeout):
            self.close_connection = True
            self._bad = True
            return
        self._bad = False

    def handle(self):
        if getattr(self, "_bad", False):
            return
        try:
            super().handle()
        except (ssl.SSLError, ConnectionError, socket.timeout, BrokenPipeError):
            self.close_connection = True

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                out += self.rfile.read(size)
                if len(out) > MAX_BODY:
                    raise ValueError("body too large")
                self.rfile.readline(65537)
            return bytes(out)
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n) if n > 0 else b""

    def _handle_any(self):
        app = self.app
        started = time.time()
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            try:
                self.send_response_only(413 if "too large" in str(sys.exc_info()[1]) else 400)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
            except OSError:
                pass
            return
        host = (self.headers.get("Host") or "").strip().lower()
        if host.startswith("["):
            host = host.split("]")[0] + "]"
        else:
            host = host.split(":")[0]
        u = urllib.parse.urlsplit(self.path)
        req = Request(method=self.command, host=host, path=u.path or "/",
                      query=urllib.parse.parse_qs(u.query, keep_blank_values=True),
                      headers=Headers(self.headers.items()), body=body,
                      service=route(host), account=None)
        if self.headers.get("Expect", "").lower() == "100-continue":
            pass  # body already read; BaseHTTPRequestHandler answered 100 itself
        fault = FAULTS.take(req)
        try:
            if fault is not None:
                resp = FAULTS.respond(fault, req, app.dispatch)
            else:
                resp = app.dispatch(req)
        except Exception as e:  # a bug in a handler: answer 500, keep serving
            import traceback
            traceback.print_exc(file=sys.stderr)
            resp = json_response({"success": False, "error": "fake server error: %s" % type(e).__name__}, 500)
            app.record(req, 500, started, fault, note="exception")
            self._send(resp)
            return
        if resp is None:  # 'close' fault: drop the connection without a response
            app.record(req, 0, started, fault, note="closed")
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        app.record(req, resp.status, started, fault)
        self._send(resp)

    def _send(self, resp):
        self.send_response_only(resp.status)
        names = {k.lower() for k, _ in resp.headers}
        self.send_header("Date", self.date_time_string())
        if "server" not in names:
            self.send_header("Server", "AppleHttpServer/fake")
        seen_server = False
        for k, v in resp.headers:
            if k.lower() == "server":
                if seen_server:
                    continue
                seen_server = True
            self.send_header(k, v)
        if resp.stream is None and "content-length" not in names:
            self.send_header("Content-Length", str(len(resp.body)))
        if resp.close or (resp.stream is not None and "content-length" not in names):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command == "HEAD":
            return
        try:
            if resp.stream is not None:
                resp.stream(self.wfile)
            else:
                self.wfile.write(resp.body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionError, ssl.SSLError, socket.timeout):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _handle_any


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionError, socket.timeout, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def main(argv=None):
    ap = argparse.ArgumentParser(description="fake iCloud server for icpd tests")
    ap.add_argument("--port", type=int, required=True, help="HTTPS port (0 = any free port)")
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--accounts", required=True)
    ap.add_argument("--library", default=None, help="default library spec for accounts without one")
    ap.add_argument("--hosts", choices=("apple", "localhost"), default="localhost")
    ap.add_argument("--control-port", type=int, default=0)
    ap.add_argument("--log", default=None, help="JSON-lines request log")
    ap.add_argument("--render-cache", action="store_true",
                    help="keep each listed record's JSON (URLs re-signed per request) while the library "
                         "is unchanged: same bytes, far less CPU, more memory (benchmarks)")
    ap.add_argument("--certs-only", action="store_true",
                    help="create the CA and server certificate in the state dir, print the CA path, exit")
    args = ap.parse_args(argv)
    os.makedirs(args.state_dir, exist_ok=True)
    ready = os.path.join(args.state_dir, "ready.json")
    if os.path.exists(ready):
        os.unlink(ready)

    app = App(args)
    extra = sorted({"p%d-ckdatabasews.localhost" % a.partition for a in app.store.accounts})
    ca, srv_pem, srv_key = certs.make_certs(args.state_dir, extra)
    if args.certs_only:
        print(os.path.abspath(ca))
        return 0

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(srv_pem, srv_key)
    ctx.set_alpn_protocols(["http/1.1"])
    handler = type("BoundHandler", (Handler,), {"app": app})
    httpd = TLSServer(("127.0.0.1", args.port), handler)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
    port = httpd.server_address[1]
    app.port = port
    app.auth = AuthState(app.store, args.hosts, port,
                         state_file=os.path.join(args.state_dir, "auth-state.json"))
    try:
        n = app.auth.load()
        if n:
            print("fake iCloud: restored %d web sessions from the state dir" % n, file=sys.stderr)
    except (ValueError, KeyError, OSError) as e:
        print("fake iCloud: ignoring unreadable auth-state.json: %s" % e, file=sys.stderr)
    # create the CloudKit services up front so their fault hooks are registered
    if _cloudkit is not None and _library is not None:
        for acc in [None] + list(app.store.accounts):
            try:
                app.service_for(acc, acc is not None and acc.domain == "cn" and args.hosts == "apple")
            except Exception as e:  # a bad library spec must not stop sign-in tests
                print("fake iCloud: cannot load library: %s" % e, file=sys.stderr)
    ctl = start_control(app, args.control_port)
    cport = ctl.server_address[1]

    def stop(*_):
        threading.Thread(target=httpd.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    tmp = ready + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"port": port, "control_port": cport, "ca": os.path.abspath(ca),
                   "pid": os.getpid(), "hosts": args.hosts}, f)
    os.rename(tmp, ready)
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        ctl.shutdown()
        if os.path.exists(ready):
            os.unlink(ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
