"""Start the fake iCloud for the listing tests and sign in to it.

The sign-in module of icpd is not merged yet, so this helper signs in like
a browser would (SRP, trusted-device code, trust, accountLogin) with the
standard library and the fake's own SRP arithmetic, and writes the session
JSON that `icpd list` reads from ICPD_TEST_SESSION.  The lead will unify
this with tests/integration/fakeenv.py.
"""
import base64
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "..", "fake_icloud")
sys.path.insert(0, FAKE)

import library as fake_library  # noqa: E402
import srp_server as srp  # noqa: E402

USER = "listing@example.com"
PASSWORD = "correct horse battery staple"


class _Conn(http.client.HTTPSConnection):
    """HTTPS to NAME.localhost:PORT, connecting to 127.0.0.1 (the resolver
    may not know *.localhost; libcurl does)."""

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


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
        self.ctx = ssl.create_default_context(cafile=self.ca)

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
    def _call(self, host, method, path, body=None, headers=None):
        c = _Conn(host, self.port, context=self.ctx, timeout=60)
        h = {"Content-Type": "application/json", "Accept": "application/json",
             "Origin": "https://www.icloud.com", "X-Apple-Widget-Key": "test"}
        h.update(headers or {})
        c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
        r = c.getresponse()
        data = r.read()
        hdrs = r.getheaders()
        c.close()
        return r.status, hdrs, data

    def signin(self):
        """Returns the session JSON dict for ICPD_TEST_SESSION."""
        idmsa = "idmsa.localhost"
        a = srp.new_secret()
        A = pow(srp.G, a, srp.N)
        st, h, data = self._call(idmsa, "POST", "/appleauth/auth/signin/init",
                                 {"a": base64.b64encode(srp.minb(A)).decode(), "accountName": USER,
                                  "protocols": ["s2k", "s2k_fo"]})
        assert st == 200, (st, data)
        init = json.loads(data)
        salt = base64.b64decode(init["salt"])
        B = srp.to_int(base64.b64decode(init["b"]))
        x = srp.x_of(srp.password_key(PASSWORD, salt, init["iteration"], init["protocol"]), salt)
        u = srp.u_of(A, B)
        S = pow((B - srp.K_MULT * pow(srp.G, x, srp.N)) % srp.N, a + u * x, srp.N)
        K = srp.session_K(S)
        m1 = srp.proof_M1(USER, salt, A, B, K)
        m2 = srp.proof_M2(A, m1, K)
        st, h, data = self._call(idmsa, "POST", "/appleauth/auth/signin/complete",
                                 {"accountName": USER, "c": init["c"], "rememberMe": True,
                                  "m1": base64.b64encode(m1).decode(),
                                  "m2": base64.b64encode(m2).decode(), "trustTokens": []})
        assert st in (200, 409), (st, data)
        keys = self._keys(h, {})
        st, h, data = self._call(idmsa, "POST", "/appleauth/auth/verify/trusteddevice/securitycode",
                                 {"securityCode": {"code": "123456"}}, self._hdrs(keys))
        assert st == 204, (st, data)
        keys = self._keys(h, keys)
        st, h, data = self._call(idmsa, "GET", "/appleauth/auth/2sv/trust", None, self._hdrs(keys))
        assert st == 204, (st, data)
        keys = self._keys(h, keys)
        trust = dict(h).get("X-Apple-TwoSV-Trust-Token")
        st, h, data = self._call("setup.localhost", "POST", "/setup/ws/1/accountLogin",
                                 {"dsWebAuthToken": keys["X-Apple-Session-Token"], "trustToken": trust,
                                  "extended_login": True, "accountCountryCode": "USA"})
        assert st == 200, (st, data)
        acct = json.loads(data)
        ck = acct["webservices"]["ckdatabasews"]["url"]
        host = ck.split("//", 1)[1].split(":")[0].split("/")[0]
        lines = []
        for k, v in h:
            if k.lower() != "set-cookie":
                continue
            nv = v.split(";", 1)[0]
            name, value = nv.split("=", 1)
            # host-only cookies for the CloudKit host, in libcurl's format
            lines.append("%s\tFALSE\t/\tTRUE\t0\t%s\t%s" % (host, name, value))
        return {"dsid": acct["dsInfo"]["dsid"], "ckdatabasews_url": ck,
                "client_id": "auth-%s" % uuid.uuid1(), "cookies": "\n".join(lines) + "\n"}

    @staticmethod
    def _keys(h, old):
        keys = dict(old)
        for k, v in h:
            if k in ("scnt", "X-Apple-ID-Session-Id", "X-Apple-Session-Token"):
                keys[k] = v
        return keys

    @staticmethod
    def _hdrs(keys):
        return {k: v for k, v in keys.items() if k in ("scnt", "X-Apple-ID-Session-Id")}

    def write_session(self):
        path = os.path.join(self.tmp, "session.json")
        with open(path, "w") as f:
            json.dump(self.signin(), f)
        os.chmod(path, 0o600)
        return path


def icpd_env(session_path):
    env = dict(os.environ)
    env["ICPD_TEST_SESSION"] = session_path
    env.pop("ICPD_CONFIG", None)
    env["XDG_CONFIG_HOME"] = os.path.dirname(session_path)
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
