"""Shared environment of the reliability tests: a fake iCloud with one
account and a generated library, signed in once with `icpd auth`; helpers
to run `icpd sync`, walk the tree and read the state database.

Builds on tests/integration/fakeenv_auth.py (start/stop the fake, run icpd
with a clean environment).  stdlib only; run with /usr/bin/python3.
"""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "fake_icloud"))
import fakeenv_auth as fe  # noqa: E402
import expected_tree as ET  # noqa: E402
import library as L  # noqa: E402

USER = "reliab@example.com"
PW = "Tr0ub4dor&3 reliability pw"
TMPDIR = ".icpd-tmp"
STATUS = {0: "done", 1: "adopted", 2: "failed"}

ICPD = None


def set_icpd(path):
    global ICPD
    ICPD = os.path.abspath(path)


def walk(root):
    """{relpath: (size, mtime)} of every file under root but the hidden temp folder."""
    out = {}
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        if rel == TMPDIR or rel.startswith(TMPDIR + os.sep):
            continue
        for f in files:
            st = os.lstat(os.path.join(d, f))
            out[os.path.normpath(os.path.join(rel, f))] = (st.st_size, int(st.st_mtime))
    return out


def tmp_entries(root):
    t = os.path.join(root, TMPDIR)
    return sorted(os.listdir(t)) if os.path.isdir(t) else []


def show(r):
    return "exit %d\nstdout:\n%s\nstderr:\n%s" % (
        r.returncode, r.stdout.decode("utf-8", "replace")[-2000:],
        r.stderr.decode("utf-8", "replace")[-4000:])


class Env:
    """A fake with one account and a generated library, signed in once."""

    def __init__(self, count, seed, size_scale=0.05, faults=None, auth=True):
        self.tmp = tempfile.mkdtemp(prefix="icpd-reliab-")
        self.spec = L.generate_spec(count, seed, size_scale=size_scale, hostile="none",
                                    albums=False)
        if faults:
            self.spec["faults"] = faults
        self.lib_path = os.path.join(self.tmp, "library.json")
        with open(self.lib_path, "w") as f:
            json.dump(self.spec, f)
        self.lib = L.Library.from_spec(json.loads(json.dumps(self.spec)))
        self.fake = fe.Fake([{"apple_id": USER, "password": PW, "iterations": 1000,
                              "library": self.lib_path}], hosts="localhost")
        self.cookies = os.path.join(self.tmp, "cookies")
        self.pw = os.path.join(self.tmp, "pw")
        with open(self.pw, "w") as f:
            f.write(PW + "\n")
        os.chmod(self.pw, 0o600)
        if auth:
            r = self.icpd("auth", stdin="\n123456\n")
            if r.returncode != 0:
                self.stop()
                raise RuntimeError("icpd auth failed: %s" % show(r))

    def stop(self):
        self.fake.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def args(self, cmd, *extra, cookies=None):
        a = [cmd, "-u", USER, "--cookie-directory", cookies or self.cookies]
        if cmd in ("auth", "sync"):
            a += ["--password-file", self.pw] + self.fake.endpoint_args()
        return a + list(extra)

    def environ(self, env=None):
        e = {"TZ": "UTC", "ICPD_TEST_BACKOFF_MS": "20"}
        e.update(self.fake.env())
        e.update(env or {})
        return fe.icpd_env(e)

    def icpd(self, cmd, *extra, stdin="", env=None, timeout=300, cookies=None):
        return subprocess.run([ICPD] + self.args(cmd, *extra, cookies=cookies),
                              input=stdin.encode(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=self.environ(env), timeout=timeout)

    def sync(self, out, *extra, env=None, timeout=300, cookies=None):
        return self.icpd("sync", "-d", out, "--no-progress-bar", *extra, env=env,
                         timeout=timeout, cookies=cookies)

    def clone_cookies(self, name):
        """A copy of the signed-in cookie directory without the state DB, so
        runs can go on side by side, each with its own state."""
        d = os.path.join(self.tmp, name)
        shutil.copytree(self.cookies, d,
                        ignore=lambda _d, names: [n for n in names if n.startswith("icpd-")
                                                  and ".db" in n])
        return d

    def popen_sync(self, out, *extra, env=None, **kw):
        return subprocess.Popen([ICPD] + self.args("sync", "-d", out, "--no-progress-bar",
                                                   *extra),
                                env=self.environ(env), **kw)

    def db_path(self, cookies=None):
        c = cookies or self.cookies
        dbs = [f for f in os.listdir(c) if f.startswith("icpd-") and f.endswith(".db")]
        return os.path.join(c, dbs[0]) if len(dbs) == 1 else None

    def forget_state(self):
        for f in os.listdir(self.cookies):
            if f.startswith("icpd-") and ".db" in f:
                os.unlink(os.path.join(self.cookies, f))

    def expected(self, **opts):
        opts.setdefault("tz", "UTC")
        return ET.expected_icloudpd_tree(self.lib, opts)

    def downloads(self):
        return sum(1 for r in self.fake.requests()["requests"]
                   if r["method"] == "GET" and r["path"].startswith("/B/"))

    def fault(self, rule):
        self.fake.ctl("POST", "/faults", {"action": "cloudkit_fault", "rule": rule})


def db_files(db, root):
    """{relpath: (status, size)} of the state DB's files table, paths made
    relative to root; and the integrity_check answer."""
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        ic = con.execute("PRAGMA integrity_check").fetchall()
        rows = con.execute("SELECT path, status, size FROM files").fetchall()
    finally:
        con.close()
    out = {}
    for path, status, size in rows:
        rel = os.path.relpath(path, root) if os.path.isabs(path) else path
        out[rel] = (STATUS.get(status, status), size)
    return out, [r[0] for r in ic]


def done_set(files):
    """{relpath: size} of the files the state DB holds as present (downloaded or adopted)."""
    return {k: v[1] for k, v in files.items() if v[0] in ("done", "adopted")}
