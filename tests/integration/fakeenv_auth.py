"""Test environment for the sign-in integration tests: start the fake iCloud
on free ports, run the real icpd binary against it, read the fake's control
API.  stdlib only; run with /usr/bin/python3.
"""
import json
import os
import select
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE_DIR = os.path.join(os.path.dirname(HERE), "fake_icloud")
sys.path.insert(0, FAKE_DIR)

import fakeclient  # noqa: E402  (the fake's own independent client)


class Fake:
    """One fake iCloud server process with the given accounts.

    hosts="apple" (the default): the fake answers as idmsa.apple.com,
    setup.icloud.com, ... (and the .cn hosts), reached through a local
    CONNECT proxy, so icpd runs with its real default endpoints and Apple's
    real cookie domains.  hosts="localhost" uses the endpoint flags instead.
    """

    def __init__(self, accounts, hosts="apple", state_from=None):
        """accounts: a list of account dicts, or the path of an accounts.json.
        state_from: a fake state directory to start from (copied; e.g. the
        one the real icloudpd signed in against)."""
        self.dir = tempfile.mkdtemp(prefix="icpd-auth-fake-")
        self.hosts = hosts
        acc = os.path.join(self.dir, "accounts.json")
        if isinstance(accounts, str):
            shutil.copy(accounts, acc)
        else:
            with open(acc, "w", encoding="utf-8") as f:
                json.dump(accounts, f, ensure_ascii=False)
        if state_from:
            shutil.copytree(state_from, os.path.join(self.dir, "state"))
            ready = os.path.join(self.dir, "state", "ready.json")
            if os.path.exists(ready):
                os.unlink(ready)
        self.stderr = open(os.path.join(self.dir, "fake.stderr"), "w")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(FAKE_DIR, "server.py"), "--port", "0",
             "--state-dir", os.path.join(self.dir, "state"), "--accounts", acc,
             "--hosts", hosts, "--control-port", "0"],
            stdout=subprocess.DEVNULL, stderr=self.stderr)
        try:
            ready = fakeclient.wait_ready(os.path.join(self.dir, "state"), timeout=30)
        except Exception:
            self.stop()
            raise
        self.port = ready["port"]
        self.cport = ready["control_port"]
        self.ca = ready["ca"]
        self.proxy = ConnectProxy(self.port) if hosts == "apple" else None

    def stop(self):
        if getattr(self, "proxy", None):
            self.proxy.stop()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- control API ----
    def ctl(self, method, path, body=None):
        status, data = fakeclient.control(self.cport, method, path, body)
        if status != 200:
            raise RuntimeError("fake control %s %s: %s %r" % (method, path, status, data))
        return data

    def reset(self):
        self.ctl("DELETE", "/faults")
        self.ctl("POST", "/reset_counters")

    def requests(self):
        return self.ctl("GET", "/requests")

    def count(self, method, path_end):
        """How many logged requests had this method and a path ending so."""
        return sum(1 for r in self.requests()["requests"]
                   if r["method"] == method and r["path"].endswith(path_end))

    def fault(self, **kw):
        return self.ctl("POST", "/faults", kw)

    def state(self, apple_id):
        return self.ctl("GET", "/state")["accounts"][apple_id]

    def counters(self):
        return self.ctl("GET", "/state")["counters"]

    def client(self, apple_id):
        return fakeclient.Client(self.port, self.ca,
                                 "apple" if self.hosts == "apple" else "localhost", apple_id)

    # ---- icpd ----
    def env(self):
        """Environment icpd needs to reach this fake."""
        if self.proxy:
            return {"https_proxy": "http://127.0.0.1:%d" % self.proxy.port}
        return {}

    def endpoint_args(self):
        if self.hosts != "localhost":
            return ["--ca-file", self.ca]
        p = self.port
        return ["--ca-file", self.ca,
                "--auth-root", "https://idmsa.apple.localhost:%d" % p,
                "--auth-endpoint", "https://idmsa.apple.localhost:%d/appleauth/auth" % p,
                "--setup-endpoint", "https://setup.icloud.localhost:%d/setup/ws/1" % p,
                "--home-endpoint", "https://www.icloud.localhost:%d" % p]


def icpd_env(extra=None):
    """A clean environment: no proxies, no ICPD_* leaking in from outside."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ICPD_") and "proxy" not in k.lower()}
    env["HOME"] = env.get("HOME", "/tmp")
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
    env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
    if extra:
        env.update(extra)
    return env


def run_icpd(icpd, args, stdin_text="", env=None, timeout=120):
    """Run icpd with stdin from a pipe (not a terminal); returns CompletedProcess
    with text stdout/stderr."""
    return subprocess.run([icpd] + args, input=stdin_text.encode("utf-8"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=icpd_env(env), timeout=timeout)


def run_icpd_tty(icpd, args, answers, env=None, timeout=60):
    """Run icpd on a pseudo-terminal (like `kubectl attach -it`): each answer
    is typed only after the expected prompt text appeared.  answers: a list
    of (wait_for, line_to_type).  Returns (exit code, everything the
    terminal showed)."""
    import pty
    import time
    master, slave = pty.openpty()
    proc = subprocess.Popen([icpd] + args, stdin=slave, stdout=slave, stderr=slave,
                            env=icpd_env(env), close_fds=True)
    os.close(slave)
    shown = b""
    deadline = time.time() + timeout
    pending = list(answers)

    def pump(wait):
        nonlocal shown
        r, _, _ = select.select([master], [], [], wait)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return False
            if not chunk:
                return False
            shown += chunk
        return True

    seen = 0  # answers are typed after a prompt seen past this offset
    try:
        while time.time() < deadline:
            if pending:
                at = shown.find(pending[0][0].encode(), seen)
                if at >= 0:
                    wait_for, line = pending.pop(0)
                    seen = at + len(wait_for.encode())
                    os.write(master, line.encode("utf-8") + b"\r")
                    continue
            if not pump(0.2) and proc.poll() is not None:
                break
        proc.wait(max(1, deadline - time.time()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return proc.returncode, shown.decode("utf-8", "replace")


class ConnectProxy:
    """A minimal HTTP CONNECT proxy that tunnels every host to one local port
    and records which host:port was asked for.  libcurl honours https_proxy,
    so icpd can run with its real default (.cn) hosts against the fake."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.connects = []
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = self.request.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                    if len(data) > 65536:
                        return
                line = data.split(b"\r\n", 1)[0].decode("latin-1")
                parts = line.split()
                if len(parts) < 2 or parts[0].upper() != "CONNECT":
                    self.request.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                    return
                outer.connects.append(parts[1])
                up = socket.create_connection(("127.0.0.1", outer.target_port), timeout=30)
                self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                rest = data.split(b"\r\n\r\n", 1)[1]
                if rest:
                    up.sendall(rest)
                socks = [self.request, up]
                try:
                    while True:
                        r, _, _ = select.select(socks, [], [], 60)
                        if not r:
                            break
                        for s in r:
                            chunk = s.recv(65536)
                            if not chunk:
                                return
                            (up if s is self.request else self.request).sendall(chunk)
                except OSError:
                    pass
                finally:
                    up.close()

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
