"""A small, independent iCloud web sign-in client for testing the fake.

SRP math written from auth-protocol.md section 4 (not shared with srp_server.py),
HTTPS via http.client to 127.0.0.1 with any Host/SNI, and a minimal cookie jar.
"""
import base64
import hashlib
import http.client
import json
import secrets
import socket
import ssl
import time
import urllib.parse

N = int(
    "ac6bdb41324a9a9bf166de5e1389582faf72b6651987ee07fc3192943db56050a37329cbb4a099ed8193e0757767a13dd"
    "52312ab4b03310dcd7f48a9da04fd50e8083969edb767b0cf6095179a163ab3661a05fbd5faaae82918a9962f0b93b855"
    "f97993ec975eeaa80d740adbf4ff747359d041d5c33ea71d281e446b14773bca97b43a23fb801676bd207a436c6481f1d"
    "2b9078717461a5b9d32e688f87748544523b524b0d57d5ea77a2775d2ecfa032cfbdbf52fb3786160279004e57ae6af87"
    "4e7303ce53299ccc041c7bc308d82a5698f3a8d0c38271ae35f8e9dbfbb694b5c803d89f7ae435de236d525f54759b65e"
    "372fcd68ef20fa7111f9e4aff73", 16)
g = 2
WIDGET = "d39ba9916b7251055b22c7f910e2ea796ee65e98b2ddecea8f5dde8d9d1a815d"


def sha(b):
    return hashlib.sha256(b).digest()


def be(n, width=None):
    if width is None:
        width = max(1, (n.bit_length() + 7) // 8) if n else 0
    return n.to_bytes(width, "big")


def client_proof(username, password, salt, iterations, protocol, a, B):
    """Return dict with every intermediate value (bytes/ints)."""
    p0 = sha(password.encode())
    pin = p0.hex().encode() if protocol == "s2k_fo" else p0
    pkey = hashlib.pbkdf2_hmac("sha256", pin, salt, iterations, 32)
    k = int.from_bytes(sha(be(N) + be(g, 256)), "big")
    x = int.from_bytes(sha(salt + sha(b":" + pkey)), "big")
    A = pow(g, a, N)
    u = int.from_bytes(sha(be(A, 256) + be(B, 256)), "big")
    base = (B - k * pow(g, x, N)) % N
    S = pow(base, a + u * x, N)
    K = sha(be(S))
    hx = bytes(i ^ j for i, j in zip(sha(be(N)), sha(be(g, 256))))
    M1 = sha(hx + sha(username.encode()) + salt + be(A) + be(B) + K)
    M2 = sha(be(A) + M1 + K)
    return {"pkey": pkey, "k": k, "x": x, "A": A, "u": u, "S": S, "K": K, "M1": M1, "M2": M2}


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body.decode())


class Jar:
    def __init__(self):
        self.cookies = {}   # (name, domain, host_only) -> (value, attrs)

    def store(self, host, set_cookie):
        parts = [p.strip() for p in set_cookie.split(";")]
        name, _, value = parts[0].partition("=")
        attrs = {}
        for p in parts[1:]:
            k, _, v = p.partition("=")
            attrs[k.strip().lower()] = v.strip()
        dom = attrs.get("domain", "").lstrip(".").lower()
        host_only = not dom
        if host_only:
            dom = host
        elif not (host == dom or host.endswith("." + dom)):
            return  # a browser would reject it
        self.cookies = {k: v for k, v in self.cookies.items() if not (k[0] == name and k[1] == dom)}
        self.cookies[(name, dom, host_only)] = (value, attrs)

    def header(self, host):
        out = []
        for (name, dom, host_only), (value, _) in self.cookies.items():
            if (host_only and host == dom) or (not host_only and (host == dom or host.endswith("." + dom))):
                out.append("%s=%s" % (name, value))
        return "; ".join(out)

    def get(self, name):
        for (n, _, _), (value, attrs) in self.cookies.items():
            if n == name:
                return value, attrs
        return None

    def drop(self, name):
        self.cookies = {k: v for k, v in self.cookies.items() if k[0] != name}


class Client:
    def __init__(self, port, ca, suffix="localhost", apple_id="", country="USA"):
        self.port = port
        self.ctx = ssl.create_default_context(cafile=ca)
        self.suffix = suffix    # "localhost", "apple", "apple-cn"
        self.jar = Jar()
        self.sd = {"client_id": "auth-" + secrets.token_hex(8)}
        self.apple_id = apple_id
        self.log = []

    def host(self, svc):
        if self.suffix == "localhost":
            return {"idmsa": "idmsa.apple.localhost", "setup": "setup.icloud.localhost",
                    "www": "www.icloud.localhost"}[svc]
        cn = ".cn" if self.suffix == "apple-cn" else ""
        return {"idmsa": "idmsa.apple.com" + cn, "setup": "setup.icloud.com" + cn,
                "www": "www.icloud.com" + cn}[svc]

    def request(self, method, host, path, body=None, headers=None, jar=True):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        tls = self.ctx.wrap_socket(sock, server_hostname=host)
        conn = http.client.HTTPConnection(host, self.port, timeout=10)
        conn.sock = tls
        h = {"Host": host if self.port == 443 else "%s:%d" % (host, self.port)}
        if jar:
            c = self.jar.header(host)
            if c:
                h["Cookie"] = c
        h.update(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        hdrs = r.getheaders()
        conn.close()
        resp = Resp(r.status, hdrs, data)
        for k, v in hdrs:
            if k.lower() == "set-cookie":
                self.jar.store(host, v)
        for hname, key in (("scnt", "scnt"), ("X-Apple-ID-Session-Id", "session_id"),
                           ("X-Apple-Session-Token", "session_token"),
                           ("X-Apple-ID-Account-Country", "account_country"),
                           ("X-Apple-TwoSV-Trust-Token", "trust_token")):
            v = resp.header(hname)
            if v:
                self.sd[key] = v
        self.log.append((method, host, path, r.status))
        return resp

    def auth_headers(self, extra=None):
        home = "https://" + self.host("www")
        h = {"Accept": "application/json, text/javascript", "Content-Type": "application/json",
             "X-Apple-OAuth-Client-Id": WIDGET, "X-Apple-OAuth-Client-Type": "firstPartyAuth",
             "X-Apple-OAuth-Redirect-URI": home, "X-Apple-OAuth-Require-Grant-Code": "true",
             "X-Apple-OAuth-Response-Mode": "web_message", "X-Apple-OAuth-Response-Type": "code",
             "X-Apple-OAuth-State": self.sd["client_id"], "X-Apple-Widget-Key": WIDGET,
             "Origin": home, "Referer": home + "/"}
        for key, hname in (("scnt", "scnt"), ("session_id", "X-Apple-ID-Session-Id")):
            if self.sd.get(key):
                h[hname] = self.sd[key]
        h.update(extra or {})
        return h

    def idmsa(self, method, sub, body=None, extra=None):
        return self.request(method, self.host("idmsa"), "/appleauth/auth" + sub, body, self.auth_headers(extra))

    def signin(self, password, username=None, trust=True, mangle=None):
        """signin/init + signin/complete; returns (init_resp, complete_resp)."""
        user = (username or self.apple_id).lower()
        while True:
            a = int.from_bytes(secrets.token_bytes(32), "big")
            if len(be(pow(g, a, N))) == 256:
                break
        A = pow(g, a, N)
        r1 = self.idmsa("POST", "/signin/init", {"a": base64.b64encode(be(A)).decode(),
                                                  "accountName": user, "protocols": ["s2k", "s2k_fo"]})
        if r1.status != 200:
            return r1, None
        j = r1.json()
        salt = base64.b64decode(j["salt"])
        B = int.from_bytes(base64.b64decode(j["b"]), "big")
        pr = client_proof(user, password, salt, j["iteration"], j["protocol"], a, B)
        m1, m2 = pr["M1"], pr["M2"]
        if mangle == "m2":
            m2 = bytes([m2[0] ^ 1]) + m2[1:]
        body = {"accountName": user, "c": j["c"], "m1": base64.b64encode(m1).decode(),
                "m2": base64.b64encode(m2).decode(), "rememberMe": True,
                "trustTokens": [self.sd["trust_token"]] if (trust and self.sd.get("trust_token")) else []}
        r2 = self.idmsa("POST", "/signin/complete?isRememberMeEnabled=true", body)
        return r1, r2

    def account_login(self):
        return self.request("POST", self.host("setup"), "/setup/ws/1/accountLogin",
                            {"accountCountryCode": self.sd.get("account_country"),
                             "dsWebAuthToken": self.sd.get("session_token"), "extended_login": True,
                             "trustToken": self.sd.get("trust_token", "")},
                            {"Origin": "https://" + self.host("www"), "Referer": "https://" + self.host("www") + "/"})

    def validate(self):
        return self.request("POST", self.host("setup"), "/setup/ws/1/validate", "null",
                            {"Origin": "https://" + self.host("www")})

    def setup(self, method, sub, body=None, dsid=""):
        q = urllib.parse.urlencode({"clientBuildNumber": "2522Project44", "clientMasteringNumber": "2522B2",
                                    "clientId": self.sd["client_id"], "dsid": dsid})
        return self.request(method, self.host("setup"), "/setup/ws/1/%s?%s" % (sub, q), body)

    def full_2fa(self, password, code):
        _, r = self.signin(password)
        if r.status == 200:
            return self.account_login()
        self.account_login()
        self.idmsa("PUT", "/verify/trusteddevice/securitycode", None, {"Accept": "application/json"})
        self.idmsa("POST", "/verify/trusteddevice/securitycode", {"securityCode": {"code": code}},
                   {"Accept": "application/json"})
        self.idmsa("GET", "/2sv/trust")
        return self.account_login()


def wait_ready(state_dir, timeout=20):
    import os
    path = os.path.join(state_dir, "ready.json")
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
        time.sleep(0.05)
    raise RuntimeError("fake server did not become ready")


def control(port, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = json.loads(r.read().decode() or "null")
    conn.close()
    return r.status, data
