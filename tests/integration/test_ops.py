"""Operator features end to end: the real icpd syncs from the fake iCloud
and reports to local receivers (stdlib HTTP servers on 127.0.0.1):

- --notify-url: one JSON POST per event (sync_complete, auth_expiring,
  sync_failed, auth_required) with the documented fields and figures;
- --notify-command: ICPD_EVENT and the ICPD_* figures in its environment,
  never the password;
- Immich: POST /api/libraries/{id}/scan with x-api-key after a sync that
  added files, none after a sync that added nothing;
- failing receivers (HTTP 500, connection refused, a receiver that never
  answers, a hook that exits non-zero) are warnings: the exit code and the
  tree stay what they would have been, and the run's time stays bounded.

Usage: /usr/bin/python3 test_ops.py /path/to/icpd
"""
import http.server
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fakeenv_auth as fe  # noqa: E402  (the shared fake environment; lead will unify)

sys.path.insert(0, os.path.join(HERE, "..", "fake_icloud"))
import library as L  # noqa: E402

ICPD = None
USER = "ops@example.com"
PW = "ops password 0f 1ength"
API_KEY = "immich-api-key-0123456789abcdef"
LIBRARY_ID = "5b1f2c3d-aaaa-4bbb-8ccc-123456789abc"


class Receiver:
    """Records every request (method, path, headers, body) and answers
    `status`; status None means: read the request, never answer."""

    def __init__(self, status=200):
        self.status = status
        self.requests = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with rec.lock:
                    rec.requests.append({"method": "POST", "path": self.path,
                                         "headers": {k.lower(): v for k, v in
                                                     self.headers.items()},
                                         "body": body})
                if rec.status is None:
                    rec.release.wait(120)
                    return
                self.send_response(rec.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path=""):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def take(self):
        with self.lock:
            r, self.requests = self.requests, []
        return r

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def refused_url():
    """A URL nobody listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "http://127.0.0.1:%d" % port


def events(reqs):
    return [json.loads(r["body"])["event"] for r in reqs]


def show(r):
    return "exit %d\nstdout:\n%s\nstderr:\n%s" % (
        r.returncode, r.stdout.decode("utf-8", "replace")[-3000:],
        r.stderr.decode("utf-8", "replace")[-6000:])


def count_files(root):
    n = size = 0
    for d, dirs, files in os.walk(root):
        if os.path.relpath(d, root).startswith(".icpd-tmp"):
            continue
        for f in files:
            n += 1
            size += os.path.getsize(os.path.join(d, f))
    return n, size


class Ops(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="icpd-ops-test-")
        lib = os.path.join(cls.tmp, "library.json")
        with open(lib, "w") as f:
            json.dump(L.generate_spec(8, 11, hostile="none", albums=False), f)
        cls.fake = fe.Fake([{"apple_id": USER, "password": PW, "iterations": 1000,
                             "library": lib}], hosts="localhost")
        cls.cookies = os.path.join(cls.tmp, "cookies")
        cls.pwfile = os.path.join(cls.tmp, "pw")
        with open(cls.pwfile, "w") as f:
            f.write(PW + "\n")
        os.chmod(cls.pwfile, 0o600)
        cls.keyfile = os.path.join(cls.tmp, "immich.key")
        with open(cls.keyfile, "w") as f:
            f.write("  " + API_KEY + "\n")
        os.chmod(cls.keyfile, 0o600)
        r = cls.icpd("auth", stdin="\n123456\n")
        if r.returncode != 0:
            raise RuntimeError("icpd auth failed: %s" % show(r))

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def icpd(cls, cmd, *extra, stdin="", env=None, timeout=300):
        args = [cmd, "-u", USER, "--cookie-directory", cls.cookies,
                "--password-file", cls.pwfile] + cls.fake.endpoint_args() + list(extra)
        e = {"TZ": "UTC", "ICPD_TEST_BACKOFF_MS": "50"}
        e.update(env or {})
        return fe.run_icpd(ICPD, args, stdin, e, timeout=timeout)

    def setUp(self):
        self.hook = Receiver(200)
        self.immich = Receiver(204)
        self.addCleanup(self.hook.stop)
        self.addCleanup(self.immich.stop)
        self.out = tempfile.mkdtemp(prefix="out-", dir=self.tmp)
        for f in os.listdir(self.cookies):
            if f.startswith("icpd-") and ".db" in f:
                os.unlink(os.path.join(self.cookies, f))
        self.envfile = os.path.join(self.tmp, "hook-env-%s" % self._testMethodName)
        self.fake.reset()

    def sync(self, *extra, hook_url=None, immich_url=None, command=None, env=None):
        args = ["-d", self.out, "--no-progress-bar",
                "--notify-url", hook_url or self.hook.url("/hook/icpd?token=t0ken"),
                "--immich-url", immich_url or self.immich.url(),
                "--immich-api-key-file", self.keyfile,
                "--immich-library-id", LIBRARY_ID]
        args += ["--notify-command", command or "env > '%s'" % self.envfile]
        return self.icpd("sync", *args, *extra, env=env)

    def read_env(self):
        with open(self.envfile) as f:
            text = f.read()
        return text, dict(l.split("=", 1) for l in text.splitlines() if "=" in l)

    def test_complete_then_nothing_new(self):
        # ICPD_PASSWORD in icpd's own environment must not reach the hook
        r = self.sync(env={"ICPD_PASSWORD": PW})
        self.assertEqual(r.returncode, 0, show(r))
        n, size = count_files(self.out)
        self.assertGreater(n, 5)
        err = r.stderr.decode()
        self.assertNotIn("warn", err)
        self.assertNotIn(API_KEY, err)
        self.assertNotIn("t0ken", err)

        hook = self.hook.take()
        self.assertEqual(len(hook), 1, hook)
        h = hook[0]
        self.assertEqual((h["method"], h["path"]), ("POST", "/hook/icpd?token=t0ken"))
        self.assertEqual(h["headers"]["content-type"], "application/json")
        msg = json.loads(h["body"])
        self.assertEqual(list(msg), ["event", "account", "title", "message", "body", "time",
                                     "figures"])
        self.assertEqual((msg["event"], msg["account"]), ("sync_complete", USER))
        self.assertRegex(msg["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        fig = msg["figures"]
        self.assertEqual((fig["downloaded"], fig["failed"], fig["bytes"], fig["exit_code"]),
                         (n, 0, size, 0))
        self.assertRegex(fig["trust_expires"], r"^\d{4}-\d\d-\d\dT")
        self.assertIn(fig["trust_days_left"], (29, 30))

        scans = self.immich.take()
        self.assertEqual(len(scans), 1, scans)
        s = scans[0]
        self.assertEqual((s["method"], s["path"]),
                         ("POST", "/api/libraries/%s/scan" % LIBRARY_ID))
        self.assertEqual(s["headers"]["x-api-key"], API_KEY)

        text, env = self.read_env()
        self.assertEqual(env["ICPD_EVENT"], "sync_complete")
        self.assertEqual(env["ICPD_ACCOUNT"], USER)
        self.assertEqual(env["ICPD_DOWNLOADED"], str(n))
        self.assertEqual(env["ICPD_BYTES"], str(size))
        self.assertEqual(env["ICPD_EXIT_CODE"], "0")
        self.assertEqual(env["ICPD_FAILED"], "0")
        self.assertRegex(env["ICPD_TRUST_EXPIRES"], r"^\d{4}-")
        self.assertNotIn(PW, text)
        self.assertNotIn("ICPD_PASSWORD", text)
        self.assertNotIn(API_KEY, text)

        # nothing new: a notification with zero downloads, and no scan
        r = self.sync()
        self.assertEqual(r.returncode, 0, show(r))
        hook = self.hook.take()
        self.assertEqual(events(hook), ["sync_complete"])
        self.assertEqual(json.loads(hook[0]["body"])["figures"]["downloaded"], 0)
        self.assertEqual(self.immich.take(), [])

    def test_failing_receivers_are_warnings(self):
        bad = Receiver(500)
        self.addCleanup(bad.stop)
        r = self.sync(hook_url=bad.url("/hook"), immich_url=refused_url(),
                      command="echo hook-ran >&2; exit 7")
        self.assertEqual(r.returncode, 0, show(r))
        n, _ = count_files(self.out)
        self.assertGreater(n, 5)
        err = r.stderr.decode()
        self.assertEqual(events(bad.take()), ["sync_complete"])
        self.assertRegex(err, r"notification 'sync_complete' to 'http://127.0.0.1:\d+/hook' "
                              r"failed: .*the receiver answered HTTP 500")
        self.assertIn("--notify-command exited with status 7", err)
        self.assertIn("hook-ran", err)
        self.assertRegex(err, r"Immich scan not requested: cannot reach 'http://127.0.0.1:\d+"
                              r"/api/libraries/%s/scan'" % LIBRARY_ID)
        self.assertNotIn(API_KEY, err)

        # Immich refuses the key (401), the webhook never answers: still exit 0,
        # and the silent receiver costs a bounded time
        shutil.rmtree(self.out)
        os.makedirs(self.out)
        for f in os.listdir(self.cookies):
            if f.startswith("icpd-") and ".db" in f:
                os.unlink(os.path.join(self.cookies, f))
        silent = Receiver(None)
        self.addCleanup(silent.stop)
        deny = Receiver(401)
        self.addCleanup(deny.stop)
        t0 = time.monotonic()
        r = self.sync(hook_url=silent.url("/slow"), immich_url=deny.url())
        took = time.monotonic() - t0
        self.assertEqual(r.returncode, 0, show(r))
        self.assertLess(took, 60, "a silent webhook held the run for %.0f s" % took)
        err = r.stderr.decode()
        self.assertIn("notification 'sync_complete' to 'http://127.0.0.1:%d/slow' failed"
                      % silent.port, err)
        self.assertIn("Immich refused the API key", err)
        self.assertEqual(len(silent.take()), 1)
        self.assertEqual(deny.take()[0]["headers"]["x-api-key"], API_KEY)
        self.assertNotIn(API_KEY, err)

    def test_auth_expiring(self):
        # the fake's trust lives 30 days: a 40-day window warns now, 7 does not
        r = self.sync("--auth-expiring-days", "40")
        self.assertEqual(r.returncode, 0, show(r))
        hook = self.hook.take()
        self.assertEqual(events(hook), ["auth_expiring", "sync_complete"])
        msg = json.loads(hook[0]["body"])
        self.assertIn("run 'icpd auth'", msg["message"])
        self.assertIn(msg["figures"]["trust_days_left"], (29, 30))
        self.assertIn("the trusted iCloud session ends", r.stderr.decode())
        r = self.sync()
        self.assertEqual(r.returncode, 0, show(r))
        self.assertEqual(events(self.hook.take()), ["sync_complete"])

    def test_partial_and_failed(self):
        # every download fails: exit 4, sync_complete with the failures, no scan
        self.fake.ctl("POST", "/faults", {"action": "cloudkit_fault", "rule": {
            "target": "download", "action": "status", "status": 500, "times": 0}})
        r = self.sync()
        self.assertEqual(r.returncode, 4, show(r))
        hook = self.hook.take()
        self.assertEqual(events(hook), ["sync_complete"])
        fig = json.loads(hook[0]["body"])["figures"]
        self.assertEqual((fig["downloaded"], fig["exit_code"]), (0, 4))
        self.assertGreater(fig["failed"], 5)
        self.assertEqual(self.immich.take(), [])
        _, env = self.read_env()
        self.assertEqual((env["ICPD_EVENT"], env["ICPD_EXIT_CODE"]), ("sync_complete", "4"))

        # the library cannot be listed: sync_failed with icpd's message
        self.fake.reset()
        self.fake.ctl("POST", "/faults", {"action": "cloudkit_fault", "rule": {
            "target": "cloudkit", "op": "zones/list", "action": "status", "status": 500,
            "times": 0}})
        r = self.sync()
        self.assertNotIn(r.returncode, (0, 4), show(r))
        hook = self.hook.take()
        self.assertEqual(events(hook), ["sync_failed"], show(r))
        msg = json.loads(hook[0]["body"])
        self.assertEqual(msg["figures"]["exit_code"], r.returncode)
        self.assertTrue(msg["message"])
        self.assertEqual(self.immich.take(), [])
        _, env = self.read_env()
        self.assertEqual((env["ICPD_EVENT"], env["ICPD_EXIT_CODE"]),
                         ("sync_failed", str(r.returncode)))

    def test_z_auth_required(self):
        # last: it ends the trusted session for good
        self.fake.ctl("POST", "/expire_trust", {"apple_id": USER})
        r = self.sync()
        self.assertEqual(r.returncode, 3, show(r))
        hook = self.hook.take()
        self.assertEqual(events(hook), ["auth_required"])
        msg = json.loads(hook[0]["body"])
        self.assertEqual(msg["figures"]["exit_code"], 3)
        self.assertIn("icpd auth", msg["message"])
        self.assertEqual(self.immich.take(), [])
        _, env = self.read_env()
        self.assertEqual((env["ICPD_EVENT"], env["ICPD_EXIT_CODE"]), ("auth_required", "3"))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: test_ops.py /path/to/icpd")
    ICPD = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
