"""Secrets audit: the password, the session tokens and the cookie values
never appear in icpd's output at any log level (text and JSON), in the
report JSON, in the state DB, in any file icpd wrote (the sealed session
file included), in a live icpd's environment or argv; a live icpd has core
dumps off (RLIMIT_CORE 0).

The secret values come from the fake's own persisted state (its
auth-state.json: trust tokens, session tokens, X-APPLE-WEBAUTH-TOKEN
values, aasp/scnt/sid keys) plus the password itself.

Usage: /usr/bin/python3 test_secrets.py /path/to/icpd
"""
import glob
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reliab_env as R  # noqa: E402

LEVELS = ["debug", "info", "warn", "error"]


def fake_secrets(env):
    """Every token the fake handed out, as the bytes to look for."""
    out = set()
    for f in glob.glob(os.path.join(env.fake.dir, "state", "auth-state.json")):
        with open(f) as fh:
            st = json.load(fh)
        for c in st.get("conversations", {}).values():
            if c.get("trust_token"):
                out.add(c["trust_token"])
        for k in st.get("conv_keys", {}):
            out.add(k.split("-", 1)[1] if k.startswith(("scnt-", "sid-", "st-", "aasp-")) else k)
        for k in st.get("web_tokens", {}):
            out.add(k.replace("v=2:t=", "").rstrip("~"))
        for k in st.get("trust", {}):
            out.add(k)
    return {s.encode() for s in out if len(s) >= 12}


class Secrets(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = R.Env(12, 41, auth=False)
        cls.outputs = []   # (what, bytes)
        r = cls.env.icpd("auth", "--log-level", "debug", stdin="\n123456\n")
        if r.returncode != 0:
            raise RuntimeError("auth: %s" % R.show(r))
        cls.outputs.append(("auth --log-level debug", r.stdout + r.stderr))

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def scan(self, what, data, secrets):
        for s in secrets:
            self.assertNotIn(s, data, "%s holds the secret %r..." % (what, s[:6]))

    def test_everything_icpd_writes_or_prints(self):
        env = self.env
        out = os.path.join(env.tmp, "photos")
        reports = []
        for i, level in enumerate(LEVELS):
            for fmt in ("text", "json"):
                if i == 0:
                    # the first run downloads; every later one walks the tree
                    env.forget_state()
                rep = os.path.join(env.tmp, "report-%s-%s.json" % (level, fmt))
                r = env.sync(out, "--log-level", level, "--log-format", fmt,
                             "--report-json", rep)
                self.assertEqual(r.returncode, 0, R.show(r))
                self.outputs.append(("sync %s %s" % (level, fmt), r.stdout + r.stderr))
                reports.append(rep)
        # a fresh sign-in inside sync (the web session expired) at debug level
        env.fake.ctl("POST", "/expire_sessions", {})
        r = env.sync(out, "--log-level", "debug")
        self.assertEqual(r.returncode, 0, R.show(r))
        self.outputs.append(("sync after session expiry, debug", r.stdout + r.stderr))
        for cmd in (["status"], ["status", "--json"], ["verify", "-d", out]):
            r = env.icpd(*cmd, "--log-level", "debug")
            self.outputs.append((" ".join(cmd), r.stdout + r.stderr))
        self.assertEqual(R.walk(out), env.expected())

        secrets = fake_secrets(env)
        self.assertGreaterEqual(len(secrets), 4, "the fake's tokens were not found")
        secrets.add(R.PW.encode())
        debug_text = b"".join(o for w, o in self.outputs if "debug" in w)
        self.assertIn(b"level=debug", debug_text, "debug logging did not happen")
        # the sign-in's headers and bodies were traced (so the scan is not
        # vacuous), with their secret parts replaced
        self.assertIn(b"Set-Cookie: [redacted]", debug_text)
        self.assertIn(b"X-Apple-Session-Token: [redacted]", debug_text)
        for what, data in self.outputs:
            self.scan(what, data, secrets)
        # every file icpd wrote: tree, reports, state DB (+ WAL), session, keys
        n = 0
        for d, _dirs, files in os.walk(env.tmp):
            for f in files:
                p = os.path.join(d, f)
                if p == env.pw or p == env.lib_path:
                    continue
                with open(p, "rb") as fh:
                    self.scan(p, fh.read(), secrets)
                n += 1
        self.assertGreater(n, len(env.expected()) + 5)
        # files that hold secrets (sealed session, key) are 0600; the state
        # DB holds no secret (scanned above)
        for f in os.listdir(env.cookies):
            p = os.path.join(env.cookies, f)
            if os.path.isfile(p) and ".db" not in f:
                self.assertEqual(os.stat(p).st_mode & 0o077, 0, "%s is readable by others" % p)

    def test_live_process(self):
        """While a sync runs with ICPD_PASSWORD set: not in its environment
        (/proc/PID/environ, which shows the initial environment block, not
        just what getenv sees), not in argv, core dumps off."""
        env = self.env
        out = os.path.join(env.tmp, "live")
        total = sum(v[0] for v in env.expected().values())
        env.fault({"target": "download", "action": "drip", "rate": max(total // 8, 1),
                   "times": 0})
        self.addCleanup(env.fake.reset)
        args = [R.ICPD, "sync", "-u", R.USER, "--cookie-directory", env.cookies, "-d", out,
                "--no-progress-bar", "--threads", "1"] + env.fake.endpoint_args()
        p = subprocess.Popen(args, env=env.environ({"ICPD_PASSWORD": R.PW}),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(2.0)
            self.assertIsNone(p.poll(), "the sync ended too soon")
            with open("/proc/%d/environ" % p.pid, "rb") as f:
                environ = f.read()
            with open("/proc/%d/cmdline" % p.pid, "rb") as f:
                cmdline = f.read()
            with open("/proc/%d/limits" % p.pid) as f:
                limits = f.read()
        finally:
            p.kill()
            o, e = p.communicate()
        self.assertIn(b"TZ=UTC", environ)   # the read worked
        self.assertNotIn(R.PW.encode(), environ, "ICPD_PASSWORD is still in /proc/PID/environ")
        self.assertNotIn(b"ICPD_PASSWORD=", environ)
        self.assertNotIn(R.PW.encode(), cmdline)
        core = [line for line in limits.splitlines() if line.startswith("Max core file size")]
        self.assertEqual(len(core), 1, limits)
        self.assertEqual(core[0].split()[4:6], ["0", "0"], core[0])
        self.scan("live sync output", o + e, {R.PW.encode()})


    def test_not_dumpable(self):
        """A live sync is not dumpable (PR_SET_DUMPABLE 0): proc(5) says the
        files of /proc/PID then belong to root, so run icpd as nobody and
        look at the owner of /proc/PID/status."""
        import pwd
        import shutil
        if os.geteuid() != 0 or not shutil.which("setpriv"):
            self.skipTest("needs root and setpriv")
        nobody = pwd.getpwnam("nobody")
        src = self.env
        env = R.Env(8, 42)
        self.addCleanup(env.stop)
        out = os.path.join(env.tmp, "out")
        # let nobody read what icpd needs: its own copy of the signed-in
        # cookie directory, the password file, the fake's CA (public)
        for d, dirs, files in os.walk(env.tmp):
            for n in dirs + files:
                os.chown(os.path.join(d, n), nobody.pw_uid, nobody.pw_gid)
        os.chown(env.tmp, nobody.pw_uid, nobody.pw_gid)
        for p in (env.fake.dir, os.path.dirname(env.fake.ca)):
            os.chmod(p, 0o755)
        os.chmod(env.fake.ca, 0o644)
        total = sum(v[0] for v in env.expected().values())
        env.fault({"target": "download", "action": "drip", "rate": max(total // 8, 1),
                   "times": 0})
        p = subprocess.Popen(["setpriv", "--reuid=%d" % nobody.pw_uid,
                              "--regid=%d" % nobody.pw_gid, "--clear-groups", R.ICPD]
                             + env.args("sync", "-d", out, "--no-progress-bar", "--threads", "1"),
                             env=env.environ({"HOME": env.tmp}), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            time.sleep(2.0)
            alive = p.poll() is None
            st = os.stat("/proc/%d/status" % p.pid) if alive else None
            with open("/proc/%d/status" % p.pid) as f:
                uid_line = [x for x in f.read().splitlines() if x.startswith("Uid:")][0]
        finally:
            p.kill()
            o, e = p.communicate()
        self.assertTrue(alive, "the sync ended too soon: %s" % e.decode()[-2000:])
        self.assertEqual(uid_line.split()[1], str(nobody.pw_uid), uid_line)  # it runs as nobody
        self.assertEqual(st.st_uid, 0, "/proc/PID of a live icpd belongs to its user: dumpable")
        del src


if __name__ == "__main__":
    R.set_icpd(sys.argv.pop(1))
    unittest.main(verbosity=2)
