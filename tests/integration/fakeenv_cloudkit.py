"""Start the fake iCloud for the listing tests and sign in to it with the
real `icpd auth` (password file, trusted-device code), so `icpd list` runs
exactly as it does for a user: with the session saved in a cookie
directory.  Test classes sign in once (about 0.3 s) and share it.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "..", "fake_icloud")
sys.path.insert(0, FAKE)

import library as fake_library  # noqa: E402

USER = "listing@example.com"
PASSWORD = "correct horse battery staple"
CODE = "123456"  # the fake's trusted-device code


class Fake:
    def __init__(self, spec, tmp=None):
        self.tmp = tmp or tempfile.mkdtemp(prefix="icpd-ck-")
        self.state = os.path.join(self.tmp, "state")
        os.makedirs(self.state, exist_ok=True)
        self.lib_path = os.path.join(self.tmp, "library.json")
        with open(self.lib_path, "w") as f:
            json.dump(spec, f)
        acc = os.path.join(self.tmp, "accounts.json")
        with open(acc, "w") as f:
            json.dump({"accounts": [{"apple_id": USER, "password": PASSWORD,
                                     "library": self.lib_path}]}, f)
        self.log = open(os.path.join(self.tmp, "fake.log"), "w")
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(FAKE, "server.py"), "--port", "0",
             "--state-dir", self.state, "--accounts", acc, "--hosts", "localhost",
             "--control-port", "0"], stdout=self.log, stderr=subprocess.STDOUT)
        ready = os.path.join(self.state, "ready.json")
        for _ in range(600):
            if os.path.exists(ready):
                break
            if self.proc.poll() is not None:
                raise RuntimeError("fake exited: see %s" % self.log.name)
            time.sleep(0.05)
        with open(ready) as f:
            info = json.load(f)
        self.port = info["port"]
        self.control = info["control_port"]
        self.ca = info["ca"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---------------------------------------------------------------- control
    def ctl(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.control, path), data=data,
                                     method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def requests(self):
        return self.ctl("GET", "/requests")

    def reset_counters(self):
        self.ctl("POST", "/reset_counters", {})

    def mutate(self, op):
        return self.ctl("POST", "/mutate", dict(op, apple_id=USER))

    # ---------------------------------------------------------------- sign-in
    def endpoint_args(self):
        """The flags that point icpd at this fake (as tests/integration/fakeenv_auth.py)."""
        p = self.port
        return ["--ca-file", self.ca,
                "--auth-root", "https://idmsa.apple.localhost:%d" % p,
                "--auth-endpoint", "https://idmsa.apple.localhost:%d/appleauth/auth" % p,
                "--setup-endpoint", "https://setup.icloud.localhost:%d/setup/ws/1" % p,
                "--home-endpoint", "https://www.icloud.localhost:%d" % p]

    def account_args(self, cookies):
        """-u, the cookie directory and the endpoints: what every icpd command here takes."""
        return ["-u", USER, "--cookie-directory", cookies] + self.endpoint_args()

    def sign_in(self, icpd, cookies=None):
        """`icpd auth` with a password file and the trusted-device code on a pipe;
        returns the cookie directory holding the saved session."""
        cookies = cookies or os.path.join(self.tmp, "cookies")
        pw = os.path.join(self.tmp, "pw")
        with open(pw, "w") as f:
            f.write(PASSWORD + "\n")
        os.chmod(pw, 0o600)
        r = subprocess.run([icpd, "auth", *self.account_args(cookies), "--password-file", pw],
                           input=CODE + "\n", env=icpd_env(self.tmp), capture_output=True,
                           text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError("icpd auth against the fake exited %d: %s"
                               % (r.returncode, r.stderr[-3000:]))
        return cookies


def icpd_env(tmp):
    """A clean environment: no ICPD_* and no proxies leaking in from outside,
    no user config file."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ICPD_") and "proxy" not in k.lower()}
    env["XDG_CONFIG_HOME"] = tmp
    env.setdefault("HOME", tmp)
    return env


def expected_assets(spec, zone="PrimarySync", index="all"):
    """What the library spec says a listing must return, keyed by asset id.

    Facts come from the spec (names, dates, flags, sizes, UTIs); the ids
    the fake derives from it (master = original's checksum, asset uuid)
    come from the fake's library model.
    """
    lib = fake_library.Library.from_spec(spec)
    out = {}
    for x in lib.assets:
        z = lib.zones[x.zone].name
        if z != zone or x.purged:
            continue
        if index == "all" and (x.hidden or x.deleted):
            continue
        out[x.uuid] = x
    return lib, out
