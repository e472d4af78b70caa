"""Sign-in side of the fake iCloud: idmsa (SRP, 2FA, trust) and setup
(accountLogin, validate, legacy 2SA).  See auth-protocol.md sections 2-7.

State lives in AuthState; every handler takes a Request and returns a Response.
"""
import base64
import binascii
import json
import os
import secrets
import threading
import time
import uuid
from email.utils import formatdate

import srp_server
from http_types import Response, json_response

WRONG_PASSWORD = {"serviceErrors": [{
    "code": "-20101",
    "message": "Enter the email or phone number and password for your Apple Account.",
    "suppressDismissal": False}]}
LOCKED = {"serviceErrors": [{
    "code": "-20209",
    "message": "This Apple Account has been locked for security reasons. Visit iForgot to reset your account (https://iforgot.apple.com).",
    "suppressDismissal": False}]}
WRONG_CODE = {"service_errors": [{
    "code": "-21669", "title": "Incorrect Verification Code",
    "message": "Incorrect verification code.", "suppressDismissal": False}],
    "hasError": True}
WRONG_CODE_2SA = {"success": False, "errorTitle": "Invalid Code",
                  "errorMessage": "The code you entered is not valid.", "errorCode": -21669}
# [fake] not recorded from Apple: shapes chosen by the fake
SESSION_EXPIRED = {"serviceErrors": [{
    "code": "-20757", "message": "Your session has expired. Please sign in again.",
    "suppressDismissal": False}]}
TOO_MANY_CODES = {"service_errors": [{
    "code": "-22981", "title": "Too Many Codes",
    "message": "Too many verification codes have been sent. Enter the last code you received or try again later.",
    "suppressDismissal": False}], "hasError": True}

IDMSA_COMMON = [
    ("Cache-Control", "no-cache"), ("Cache-Control", "no-store"), ("Pragma", "no-cache"),
    ("Referrer-Policy", "origin"), ("Server", "Apple"),
    ("X-BuildVersion", "R4_1"), ("X-Content-Type-Options", "nosniff"),
    ("X-FRAME-OPTIONS", "DENY"),
]


def _tok(prefix: str, n: int = 24) -> str:
    return prefix + secrets.token_urlsafe(n)


def _cookie_date(ts: float) -> str:
    # Netscape style: "Fri, 12-Jan-2024 05:06:31 GMT"
    s = formatdate(ts, usegmt=True)  # "Fri, 12 Jan 2024 05:06:31 GMT"
    p = s.split(" ")
    return "%s %s-%s-%s %s GMT" % (p[0], p[1], p[2], p[3], p[4])


def parse_cookies(headers) -> dict:
    out = {}
    for line in headers.get_all("Cookie"):
        for part in line.split(";"):
            if "=" not in part:
                continue
            k, v = part.split("=", 1)
            k = k.strip()
            v = v.strip()
            if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
                v = v[1:-1].replace('\\"', '"')
            out[k] = v
    return out


class Conversation:
    """One idmsa sign-in (after a successful signin/complete)."""

    def __init__(self, account, host_cn: bool):
        self.id = uuid.uuid4().hex
        self.account = account
        self.host_cn = host_cn
        self.created = time.time()
        self.expires = self.created + account.session_ttl
        self.verified = False       # second factor done in this conversation
        self.trusted = False        # trust established (2sv/trust, trust token, 2SA trustBrowser)
        self.trust_token = None     # the live trust token this trust rests on
        self.needs_repair = False
        self.repaired = False
        self.fido = False
        self.alive = True

    def valid(self, now):
        return self.alive and now < self.expires


class WebSession:
    """setup-host session created by accountLogin (cookies)."""

    def __init__(self, account, conv, trusted, trust_token):
        self.account = account
        self.conv = conv
        self.trusted = trusted
        self.trust_token = trust_token
        self.created = time.time()
        self.expires = self.created + account.session_ttl
        self.alive = True
        self.tokens = set()

    def challenge(self):
        a = self.account
        if a.hsa_version < 1:
            return False
        if self.conv is not None and (self.conv.verified or self.conv.trusted):
            return False
        return not self.trusted


class AuthState:
    def __init__(self, store, hosts_mode: str, port: int, events=None, state_file=None):
        self.state_file = state_file
        self.store = store
        self.hosts_mode = hosts_mode
        self.port = port
        self.lock = threading.RLock()
        self.pending = {}            # c -> (account or None, ServerSession, account_name, created)
        self.conv_keys = {}          # session-id / scnt / session-token / aasp -> Conversation
        self.web_tokens = {}         # X-APPLE-WEBAUTH-TOKEN value -> WebSession
        self.trust = {}              # trust token -> (account, expires)
        self.events = events if events is not None else []
        self.counters = {"pushes": 0, "sms_sends": 0, "code_ok": 0, "code_wrong": 0,
                         "signin_ok": 0, "signin_wrong_password": 0, "trust_issued": 0,
                         "trust_skips": 0}

    # ---------- persistence (sessions survive a restart with the same state dir) ----------
    def save(self):
        if not self.state_file:
            return
        now = time.time()
        with self.lock:
            convs, webs = {}, {}
            keys = {}
            for k, conv in self.conv_keys.items():
                if conv.valid(now):
                    convs[conv.id] = conv
                    keys[k] = conv.id
            tokens = {}
            for t, ws in self.web_tokens.items():
                if ws.alive and now < ws.expires:
                    webs[id(ws)] = ws
                    tokens[t] = str(id(ws))
            out = {
                "version": 1,
                "conversations": {cid: {
                    "apple_id": c.account.apple_id, "host_cn": c.host_cn, "created": c.created,
                    "expires": c.expires, "verified": c.verified, "trusted": c.trusted,
                    "trust_token": c.trust_token, "needs_repair": c.needs_repair,
                    "repaired": c.repaired, "fido": c.fido} for cid, c in convs.items()},
                "conv_keys": keys,
                "web_sessions": {str(i): {
                    "apple_id": w.account.apple_id, "conv": w.conv.id if w.conv and w.conv.id in convs else None,
                    "trusted": w.trusted, "trust_token": w.trust_token, "created": w.created,
                    "expires": w.expires} for i, w in webs.items()},
                "web_tokens": tokens,
                "trust": {t: [a.apple_id, exp] for t, (a, exp) in self.trust.items() if exp > now},
            }
            tmp = self.state_file + ".tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(out, f)
            os.replace(tmp, self.state_file)

    def load(self):
        if not self.state_file or not os.path.exists(self.state_file):
            return 0
        with open(self.state_file) as f:
            d = json.load(f)
        convs = {}
        for cid, c in d.get("conversations", {}).items():
            acc = self.store.find(c["apple_id"])
            if acc is None:
                continue
            conv = Conversation(acc, c["host_cn"])
            conv.id = cid
            for k in ("created", "expires", "verified", "trusted", "trust_token",
                      "needs_repair", "repaired", "fido"):
                setattr(conv, k, c[k])
            convs[cid] = conv
        webs = {}
        for wid, w in d.get("web_sessions", {}).items():
            acc = self.store.find(w["apple_id"])
            if acc is None:
                continue
            ws = WebSession(acc, convs.get(w["conv"]), w["trusted"], w["trust_token"])
            ws.created, ws.expires = w["created"], w["expires"]
            webs[wid] = ws
        with self.lock:
            for k, cid in d.get("conv_keys", {}).items():
                if cid in convs:
                    self.conv_keys[k] = convs[cid]
            for t, wid in d.get("web_tokens", {}).items():
                if wid in webs:
                    self.web_tokens[t] = webs[wid]
                    webs[wid].tokens.add(t)
            for t, (aid, exp) in d.get("trust", {}).items():
                acc = self.store.find(aid)
                if acc is not None:
                    self.trust[t] = (acc, exp)
        return len(webs)

    # ---------- helpers ----------
    def _event(self, kind, **kw):
        kw["event"] = kind
        kw["ts"] = time.time()
        with self.lock:
            self.events.append(kw)
            if len(self.events) > 10000:
                del self.events[:1000]
        if kind not in ("push", "sms", "code_wrong", "signin_failed", "domain_to_use",
                        "account_login_bad_token", "validate_failed", "signin_locked"):
            self.save()

    def _count(self, name):
        with self.lock:
            self.counters[name] = self.counters.get(name, 0) + 1

    def is_cn(self, req):
        return req.host.endswith(".cn")

    def cookie_domain(self, req):
        if self.hosts_mode == "localhost":
            # not ".localhost": libcurl (with libpsl) refuses a cookie for a bare TLD
            return ".icloud.localhost"
        return ".icloud.com.cn" if self.is_cn(req) else ".icloud.com"

    def base_url(self, service, cn, partition=42):
        port = "" if self.port == 443 else ":%d" % self.port
        if self.hosts_mode == "localhost":
            host = {"ckdatabasews": "p%d-ckdatabasews.icloud.localhost" % partition,
                    "content": "cvws.icloud-content.localhost"}[service]
        else:
            suffix = ".cn" if cn else ""
            host = {"ckdatabasews": "p%d-ckdatabasews.icloud.com%s" % (partition, suffix),
                    "content": "cvws.icloud-content.com%s" % suffix}[service]
        return "https://%s%s" % (host, port)

    def _new_keys(self, conv, headers, token=True, session_id=True):
        """Issue fresh scnt (+ session id, + session token) mapped to conv."""
        scnt = _tok("scnt-", 18)
        with self.lock:
            self.conv_keys[scnt] = conv
            headers.append(("scnt", scnt))
            if session_id:
                sid = _tok("sid-", 18)
                self.conv_keys[sid] = conv
                headers.append(("X-Apple-ID-Session-Id", sid))
            if token:
                st = _tok("st-", 36)
                self.conv_keys[st] = conv
                headers.append(("X-Apple-Session-Token", st))
        headers.append(("X-Apple-ID-Account-Country", conv.account.country))

    def find_conv(self, req):
        now = time.time()
        cands = [req.headers.get("X-Apple-ID-Session-Id"), req.headers.get("scnt"),
                 req.headers.get("X-Apple-Session-Token"), parse_cookies(req.headers).get("aasp")]
        with self.lock:
            for c in cands:
                if c and c in self.conv_keys:
                    conv = self.conv_keys[c]
                    if conv.valid(now):
                        return conv
        return None

    def trust_valid(self, token, account):
        if not token:
            return False
        with self.lock:
            t = self.trust.get(token)
        return bool(t and t[0] is account and time.time() < t[1])

    def find_web(self, req):
        """Return (WebSession|None, reason)."""
        ck = parse_cookies(req.headers)
        tok = ck.get("X-APPLE-WEBAUTH-TOKEN")
        if not tok:
            return None, "Missing X-APPLE-WEBAUTH-TOKEN cookie"
        if not ck.get("X-APPLE-WEBAUTH-USER"):
            return None, "Missing X-APPLE-WEBAUTH-USER cookie"
        with self.lock:
            ws = self.web_tokens.get(tok)
        if ws is None or not ws.alive or time.time() >= ws.expires:
            return None, "Invalid global session"
        if ck.get("X-APPLE-WEBAUTH-USER") != "v=1:s=1:d=%s" % ws.account.dsid:
            return None, "Invalid global session"
        if ws.trust_token and not self.trust_valid(ws.trust_token, ws.account):
            return None, "Invalid global session"
        return ws, "ok"

    def idmsa_resp(self, status, obj=None, headers=None, ctype="application/json;charset=UTF-8",
                   body=None):
        h = list(IDMSA_COMMON)
        h.append(("X-Apple-I-Request-ID", str(uuid.uuid4())))
        if headers:
            h.extend(headers)
        if body is None:
            body = b"" if obj is None else json.dumps(obj).encode()
        h.append(("Content-Type", ctype))
        return Response(status=status, headers=h, body=body)

    # ---------- control ----------
    def expire_sessions(self, apple_id=None):
        n = 0
        with self.lock:
            for ws in self.web_tokens.values():
                if apple_id is None or ws.account.apple_id.lower() == apple_id.lower():
                    if ws.alive:
                        n += 1
                    ws.alive = False
            for conv in self.conv_keys.values():
                if apple_id is None or conv.account.apple_id.lower() == apple_id.lower():
                    conv.alive = False
        self._event("expire_sessions", count=n)
        return n

    def expire_trust(self, apple_id=None):
        n = 0
        with self.lock:
            for t, (acc, exp) in list(self.trust.items()):
                if apple_id is None or acc.apple_id.lower() == apple_id.lower():
                    self.trust[t] = (acc, 0)
                    n += 1
        self._event("expire_trust", count=n)
        return n

    def state(self):
        now = time.time()
        with self.lock:
            accts = {}
            for a in self.store.accounts:
                accts[a.apple_id] = {
                    "code": a.current_code, "pushes": a.pushes,
                    "sms_sends": list(a.sms_sends),
                    "live_web_sessions": len({id(w) for w in self.web_tokens.values()
                                              if w.account is a and w.alive and now < w.expires}),
                    "live_trust_tokens": sum(1 for (acc, exp) in self.trust.values()
                                             if acc is a and now < exp),
                    "config": a.public(),
                }
            return {"accounts": accts, "counters": dict(self.counters),
                    "events": list(self.events[-200:]),
                    "push_requested": self.counters.get("pushes", 0) > 0}

    def reset_counters(self):
        with self.lock:
            for k in self.counters:
                self.counters[k] = 0
            for a in self.store.accounts:
                a.pushes = 0
                a.sms_sends = []

    # ---------- idmsa ----------
    def handle_idmsa(self, req):
        p = req.path
        base = "/appleauth/auth"
        if not p.startswith(base):
            return self.idmsa_resp(404, {"error": "not found"})
        sub = p[len(base):].rstrip("/")
        m = req.method
        if m == "POST" and sub == "/signin/init":
            return self.signin_init(req)
        if m == "POST" and sub == "/signin/complete":
            return self.signin_complete(req)
        if m == "POST" and sub == "/signin":
            # removed raw-password sign-in (section 3.14): recorded shape
            return self.idmsa_resp(200, body=b"{}", ctype="text/html;charset=UTF-8",
                                   headers=[("X-Apple-I-Rscd", "401"), ("scnt", _tok("scnt-", 18))])
        if m == "POST" and sub == "/repair/complete":
            return self.repair_complete(req)
        if m == "GET" and sub == "":
            return self.phone_list(req)
        if sub == "/verify/trusteddevice/securitycode" and m == "PUT":
            return self.push(req)
        if sub == "/verify/trusteddevice/securitycode" and m == "POST":
            return self.submit_code(req, sms=False)
        if sub == "/verify/phone" and m == "PUT":
            return self.send_sms(req)
        if sub == "/verify/phone/securitycode" and m == "POST":
            return self.submit_code(req, sms=True)
        if sub == "/2sv/trust" and m == "GET":
            return self.trust_session(req)
        return self.idmsa_resp(404, {"serviceErrors": [{"code": "-404", "message": "not found"}]})

    def _json_body(self, req):
        try:
            obj = json.loads(req.body.decode("utf-8")) if req.body else None
        except (ValueError, UnicodeDecodeError):
            return None
        return obj

    def signin_init(self, req):
        body = self._json_body(req)
        if not isinstance(body, dict) or not isinstance(body.get("a"), str) \
                or not isinstance(body.get("accountName"), str):
            return self.idmsa_resp(400, {"serviceErrors": [{"code": "-20001", "message": "bad request"}]},
                                   headers=[("scnt", _tok("scnt-", 18))])
        try:
            A = srp_server.to_int(base64.b64decode(body["a"], validate=True))
        except (binascii.Error, ValueError):
            return self.idmsa_resp(400, {"serviceErrors": [{"code": "-20001", "message": "bad request"}]})
        acc = self.store.find(body["accountName"])
        protocols = body.get("protocols") or ["s2k"]
        if acc is not None:
            if acc.protocol not in protocols:
                return self.idmsa_resp(400, {"serviceErrors": [{"code": "-20001", "message": "unsupported protocol"}]})
            ss = srp_server.ServerSession(acc.verifier, acc.salt)
            salt, it, proto = acc.salt, acc.iterations, acc.protocol
        else:
            # unknown user: answer like a real one (no enumeration), fail at complete
            salt = secrets.token_bytes(16)
            ss = srp_server.ServerSession(srp_server.new_secret(), salt)
            it, proto = 20000, "s2k"
        c = "d-%03d-%s:MSA" % (secrets.randbelow(1000), uuid.uuid4())
        with self.lock:
            now = time.time()
            for k in [k for k, v in self.pending.items() if now - v[3] > 600]:
                del self.pending[k]
            self.pending[c] = (acc, ss, body["accountName"], now, A)
        out = {"iteration": it, "salt": base64.b64encode(salt).decode(), "protocol": proto,
               "version": 1, "b": base64.b64encode(srp_server.minb(ss.B)).decode(), "c": c}
        return self.idmsa_resp(200, out, ctype="text/html;charset=UTF-8",
                               headers=[("scnt", _tok("scnt-", 18))])

    def signin_complete(self, req):
        body = self._json_body(req)
        if not isinstance(body, dict):
            return self.idmsa_resp(400, {"serviceErrors": [{"code": "-20001", "message": "bad request"}]})
        c = body.get("c")
        with self.lock:
            pend = self.pending.pop(c, None) if isinstance(c, str) else None
        scnt_only = [("scnt", _tok("scnt-", 18))]
        if pend is None:
            return self.idmsa_resp(400, {"serviceErrors": [{"code": "-20001", "message": "unknown or reused c"}]},
                                   headers=scnt_only)
        acc, ss, init_name, _, A = pend
        name = body.get("accountName")
        try:
            m1 = base64.b64decode(body.get("m1") or "", validate=True)
            m2 = base64.b64decode(body.get("m2") or "", validate=True)
        except (binascii.Error, ValueError, TypeError):
            m1 = m2 = b""
        ok = False
        detail = "unknown account"
        if acc is not None and isinstance(name, str) and name == init_name:
            ok, detail = ss.verify(name, A, m1, m2)
        elif acc is not None:
            detail = "accountName differs from init"
        if not ok:
            self._count("signin_wrong_password")
            self._event("signin_failed", detail=detail)
            return self.idmsa_resp(401, WRONG_PASSWORD, headers=scnt_only)
        if acc.locked:
            self._event("signin_locked")
            return self.idmsa_resp(401, LOCKED, headers=scnt_only)
        self._count("signin_ok")
        conv = Conversation(acc, self.is_cn(req))
        h = []
        # trust token presented?
        tts = body.get("trustTokens") or []
        live = None
        if isinstance(tts, list):
            for t in tts:
                if isinstance(t, str) and self.trust_valid(t, acc):
                    live = t
                    break
        self._new_keys(conv, h)
        h.append(("X-Apple-TwoSV-Trust-Eligible", "true"))
        h.append(("X-Apple-Auth-Attributes", _tok("attr-", 12)))
        h.append(("Set-Cookie", "aasp=%s; Domain=%s; Path=/; Secure; HttpOnly" % (
            self._aasp(conv), "idmsa.apple.com.cn" if self.is_cn(req) else (
                "idmsa.apple.localhost" if self.hosts_mode == "localhost" else "idmsa.apple.com"))))
        if acc.hsa_version == 0:
            conv.needs_repair = True
            self._event("signin_412", apple_id=acc.apple_id)
            return self.idmsa_resp(412, {"authType": "sa"}, headers=h)
        if live and acc.escrow_on_trust:
            # reported (unconfirmed) iOS 26.4 behaviour: trust accepted, escrow proof wanted.
            # The fake has no escrow endpoints; the ordinary 2FA path still works.
            h.append(("X-Apple-EDP", "1"))
            h.append(("X-Apple-PDP", "1"))
            self._event("signin_escrow", apple_id=acc.apple_id)
            return self.idmsa_resp(409, {"authType": "hsa2"}, headers=h)
        if live and not acc.fido_only:
            conv.trusted = True
            conv.verified = True
            conv.trust_token = live
            self._count("trust_skips")
            self._event("signin_trusted", apple_id=acc.apple_id)
            return self.idmsa_resp(200, {"authType": "hsa2" if acc.hsa_version == 2 else "hsa"}, headers=h)
        h.append(("Location", "/auth"))
        out = {"authType": "hsa2" if acc.hsa_version == 2 else "hsa"}
        if acc.fido_only:
            conv.fido = True
            out["fsaChallenge"] = {"challenge": base64.b64encode(secrets.token_bytes(32)).decode(),
                                   "keyHandles": [base64.b64encode(secrets.token_bytes(16)).decode()],
                                   "rpId": "apple.com"}
            out["keyNames"] = ["YubiKey 5C"]
        self._event("signin_409", apple_id=acc.apple_id)
        return self.idmsa_resp(409, out, headers=h)

    def _aasp(self, conv):
        k = "aasp-" + conv.id
        with self.lock:
            self.conv_keys[k] = conv
        return k

    def _need_conv(self, req):
        conv = self.find_conv(req)
        if conv is None:
            return None, self.idmsa_resp(401, SESSION_EXPIRED, headers=[("scnt", _tok("scnt-", 18))])
        return conv, None

    def repair_complete(self, req):
        conv, err = self._need_conv(req)
        if err:
            return err
        if not conv.needs_repair:
            return self.idmsa_resp(400, {"serviceErrors": [{"code": "-20001", "message": "no repair pending"}]})
        conv.repaired = True
        self._event("repaired", apple_id=conv.account.apple_id)
        h = []
        self._new_keys(conv, h)
        return self.idmsa_resp(200, {}, headers=h)

    def _phone_payload(self, acc):
        sc = {"length": 6, "tooManyCodesSent": acc.too_many_codes,
              "tooManyCodesValidated": False, "securityCodeLocked": acc.too_many_codes,
              "securityCodeCooldown": False}
        phones = [p.entry() for p in acc.phones]
        pnv = {"trustedPhoneNumbers": phones, "securityCode": sc,
               "authenticationType": "hsa2", "hsa2Account": True,
               "restrictedAccount": False, "managedAccount": False}
        if phones:
            pnv["trustedPhoneNumber"] = phones[0]
        two = {"supportedPushModes": ["voice", "sms"]}
        if acc.phone_list_location == "bridge":
            two["bridgeInitiateData"] = {"phoneNumberVerification": pnv}
        else:
            two["phoneNumberVerification"] = pnv
        return {"direct": {"isReact": True, "authUserType": "hsa2", "hasTrustedDevices": True,
                           "twoSV": two, "authFactors": ["robocall", "sms", "generatedcode"],
                           "urlContext": "/appleauth", "authType": "hsa2",
                           "authInitialRoute": "auth/verify/phone"},
                "additional": {"canRoute2sv": True}}, pnv

    def phone_list(self, req):
        conv, err = self._need_conv(req)
        if err:
            return err
        boot, pnv = self._phone_payload(conv.account)
        h = [("scnt", _tok("scnt-", 18))]
        accept = (req.headers.get("Accept") or "").lower()
        if accept.startswith("application/json"):
            return self.idmsa_resp(200, {"trustedPhoneNumbers": pnv["trustedPhoneNumbers"],
                                         "phoneNumberVerification": pnv,
                                         "securityCode": pnv["securityCode"]}, headers=h)
        js = json.dumps(boot).replace("</", "<\\/")
        html = ('<!DOCTYPE html><html><head><title>Apple Account</title>'
                '<script type="application/json" class="pre">{"sk7":true}</script>'
                '<script type="application/json" class="boot_args">%s</script>'
                '<script type="application/json" class="post">{}</script>'
                '</head><body></body></html>') % js
        return self.idmsa_resp(200, body=html.encode("utf-8"), headers=h,
                               ctype="text/html;charset=UTF-8")

    def push(self, req):
        conv, err = self._need_conv(req)
        if err:
            return err
        acc = conv.account
        h = [("scnt", _tok("scnt-", 18))]
        if conv.fido:
            return self.idmsa_resp(400, WRONG_CODE, headers=h + [("X-Apple-I-Ercd", "-21669")])
        if acc.too_many_codes:
            return self.idmsa_resp(423, TOO_MANY_CODES, headers=h)
        with self.store.lock:
            acc.pushes += 1
            if acc.rotate_code_on_push:
                acc.current_code = "%06d" % secrets.randbelow(1000000)
        self._count("pushes")
        self._event("push", apple_id=acc.apple_id)
        return self.idmsa_resp(202, {"trustedDeviceCount": 1,
                                     "securityCode": {"length": 6, "tooManyCodesSent": False,
                                                      "tooManyCodesValidated": False,
                                                      "securityCodeLocked": False},
                                     "phoneNumberVerification": self._phone_payload(acc)[1]},
                               headers=h)

    def send_sms(self, req):
        conv, err = self._need_conv(req)
        if err:
            return err
        acc = conv.account
        body = self._json_body(req)
        h = [("scnt", _tok("scnt-", 18))]
        try:
            pid = int(body["phoneNumber"]["id"])
            mode = body.get("mode", "sms")
        except (KeyError, TypeError, ValueError):
            return self.idmsa_resp(400, {"service_errors": [{"code": "-20001", "message": "bad request"}], "hasError": True}, headers=h)
        phone = next((p for p in acc.phones if p.id == pid), None)
        if phone is None or mode not in ("sms", "voice"):
            return self.idmsa_resp(400, {"service_errors": [{"code": "-21667", "message": "unknown phone"}], "hasError": True}, headers=h)
        if acc.too_many_codes:
            return self.idmsa_resp(423, TOO_MANY_CODES, headers=h)
        with self.store.lock:
            acc.sms_sends.append({"phone_id": pid, "mode": mode, "ts": time.time()})
            if acc.rotate_code_on_push:
                acc.current_code = "%06d" % secrets.randbelow(1000000)
        self._count("sms_sends")
        self._event("sms", apple_id=acc.apple_id, phone_id=pid, mode=mode)
        return self.idmsa_resp(200, {"trustedPhoneNumber": phone.entry(), "mode": mode,
                                     "securityCode": {"length": 6, "tooManyCodesSent": False,
                                                      "tooManyCodesValidated": False,
                                                      "securityCodeLocked": False}}, headers=h)

    def submit_code(self, req, sms):
        conv, err = self._need_conv(req)
        if err:
            return err
        acc = conv.account
        body = self._json_body(req)
        code = None
        try:
            code = body["securityCode"]["code"]
            if sms:
                pid = int(body["phoneNumber"]["id"])
                if not any(p.id == pid for p in acc.phones):
                    code = None
        except (KeyError, TypeError, ValueError):
            code = None
        h = [("scnt", _tok("scnt-", 18))]
        code_type = type(code).__name__
        if isinstance(code, int) and not isinstance(code, bool):
            # icloudpd sends the SMS code as a JSON number and users report it working;
            # a lost leading zero still makes it wrong
            code = str(code)
        if not isinstance(code, str) or conv.fido or code != acc.current_code:
            self._count("code_wrong")
            self._event("code_wrong", apple_id=acc.apple_id, sms=sms, code_type=code_type)
            return self.idmsa_resp(400, WRONG_CODE, headers=h + [("X-Apple-I-Ercd", "-21669")])
        conv.verified = True
        self._count("code_ok")
        self._event("code_ok", apple_id=acc.apple_id, sms=sms, code_type=code_type)
        h = []
        self._new_keys(conv, h)
        h.append(("X-Apple-Auth-Attributes", _tok("attr-", 12)))
        h.append(("X-Apple-OAuth-Grant-Code", _tok("gc-", 12)))
        if acc.code_409_success:
            return self.idmsa_resp(409, {"securityCode": {"code": code, "valid": True}}, headers=h)
        if sms:
            return self.idmsa_resp(200, {"trustedPhoneNumber": acc.phones[0].entry() if acc.phones else {},
                                         "securityCode": {"code": code, "valid": True}, "mode": "sms"}, headers=h)
        return self.idmsa_resp(204, None, headers=h)

    def trust_session(self, req):
        conv, err = self._need_conv(req)
        if err:
            return err
        acc = conv.account
        if acc.hsa_version < 2:
            return self.idmsa_resp(404, {"serviceErrors": [{"code": "-404", "message": "not found"}]})
        if not conv.verified:
            return self.idmsa_resp(401, {"serviceErrors": [{"code": "-21669", "message": "second factor not verified"}]},
                                   headers=[("scnt", _tok("scnt-", 18))])
        t = _tok("HSARMTKNSRVXWFla", 48)
        with self.lock:
            self.trust[t] = (acc, time.time() + acc.trust_ttl)
        conv.trusted = True
        conv.trust_token = t
        self._count("trust_issued")
        self._event("trust", apple_id=acc.apple_id)
        h = []
        self._new_keys(conv, h)
        h.append(("X-Apple-TwoSV-Trust-Token", t))
        h.append(("X-Apple-Auth-Attributes", _tok("attr-", 12)))
        h.append(("X-Apple-OAuth-Grant-Code", _tok("gc-", 12)))
        return self.idmsa_resp(204, None, headers=h, ctype="text/html;charset=UTF-8")

    # ---------- setup ----------
    def setup_resp(self, req, status, obj, cookies=()):
        origin = "https://www.icloud.com.cn" if self.is_cn(req) else "https://www.icloud.com"
        h = [("Access-Control-Allow-Credentials", "true"),
             ("Access-Control-Allow-Origin", origin),
             ("Cache-Control", "no-cache, no-store, private"),
             ("Server", "AppleHttpServer/fake"),
             ("X-Apple-Request-UUID", str(uuid.uuid4())),
             ("x-apple-user-partition", "32")]
        for c in cookies:
            h.append(("Set-Cookie", c))
        body = json.dumps(obj).encode()
        h.append(("Content-Type", "application/json; charset=UTF-8"))
        return Response(status=status, headers=h, body=body)

    def handle_setup(self, req):
        p = req.path
        base = "/setup/ws/1"
        if not p.startswith(base + "/"):
            return self.setup_resp(req, 404, {"success": False, "error": "not found"})
        sub = p[len(base):]
        if req.method == "POST" and sub == "/accountLogin":
            return self.account_login(req)
        if req.method == "POST" and sub == "/validate":
            return self.validate(req)
        if req.method == "GET" and sub == "/listDevices":
            return self.list_devices(req)
        if req.method == "POST" and sub == "/sendVerificationCode":
            return self.send_2sa(req)
        if req.method == "POST" and sub == "/validateVerificationCode":
            return self.validate_2sa(req)
        if req.method == "POST" and sub == "/logout":
            ws, _ = self.find_web(req)
            if ws:
                ws.alive = False
            return self.setup_resp(req, 200, {"success": True})
        return self.setup_resp(req, 404, {"success": False, "error": "not found"})

    def region_mismatch(self, req, acc):
        if acc.wrong_region:
            return "iCloud.com" if (self.is_cn(req) or acc.domain == "cn") else "iCloud.com.cn"
        if self.hosts_mode == "localhost":
            return None
        if acc.domain == "cn" and not self.is_cn(req):
            return "iCloud.com.cn"
        if acc.domain == "com" and self.is_cn(req):
            return "iCloud.com"
        return None

    def account_json(self, req, ws):
        acc = ws.account
        cn = self.is_cn(req) or (self.hosts_mode == "localhost" and acc.domain == "cn")
        ck = self.base_url("ckdatabasews", cn, acc.partition)
        sfx = ".cn" if cn else ""
        port = "" if self.port == 443 else ":%d" % self.port
        setup_host = "setup.icloud.localhost" if self.hosts_mode == "localhost" else "setup.icloud.com" + sfx
        idmsa_host = "idmsa.apple.localhost" if self.hosts_mode == "localhost" else "idmsa.apple.com" + sfx
        challenge = ws.challenge()
        ds = {
            "lastName": acc.last_name, "iCDPEnabled": acc.adp, "dsid": acc.dsid,
            "hsaEnabled": acc.hsa_version >= 1, "hsaVersion": acc.hsa_version,
            "locale": "en-us_US", "isManagedAppleID": False, "countryCode": acc.country,
            "primaryEmailVerified": True, "aDsID": str(uuid.uuid5(uuid.NAMESPACE_DNS, acc.dsid)),
            "locked": acc.locked, "hasICloudQualifyingDevice": acc.has_qualifying_device,
            "primaryEmail": acc.apple_id, "appleId": acc.apple_id,
            "appleIdEntries": [{"isPrimary": True, "type": "EMAIL", "value": acc.apple_id}],
            "isWebAccessAllowed": not acc.web_access_off, "fullName": "%s %s" % (acc.first_name, acc.last_name),
            "firstName": acc.first_name, "languageCode": "en-us", "statusCode": 2,
            "notificationId": str(uuid.uuid5(uuid.NAMESPACE_URL, acc.dsid)), "pcsDeleted": False,
        }
        return {
            "dsInfo": ds,
            "hasMinimumDeviceForPhotosWeb": True,
            "iCDPEnabled": acc.adp,
            "webservices": {
                "ckdatabasews": {"pcsRequired": True, "url": ck, "status": "active"},
                "photos": {"pcsRequired": True, "url": ck.replace("ckdatabasews", "photosws"),
                           "uploadUrl": ck.replace("ckdatabasews", "uploadphotosws"), "status": "active"},
                "account": {"iCloudEnv": {"shortId": "p", "vipSuffix": "prod"},
                            "url": "https://%s%s" % (setup_host, port), "status": "active"},
            },
            "pcsEnabled": True,
            "configBag": {"urls": {
                "accountLogin": "https://%s%s/setup/ws/1/accountLogin" % (setup_host, port),
                "accountLoginUI": "https://%s%s/appleauth/auth/signin?widgetKey=" % (idmsa_host, port)},
                "accountCreateEnabled": True},
            "hsaTrustedBrowser": bool(ws.trusted),
            "appsOrder": ["mail", "contacts", "calendar", "photos", "iclouddrive"],
            "version": 2,
            "isExtendedLogin": True,
            "pcsServiceIdentitiesIncluded": False,
            "hsaChallengeRequired": challenge,
            "requestInfo": {"country": "CN" if acc.domain == "cn" else "US",
                            "timeZone": "EST", "region": "NC"},
            "pcsDeleted": False,
            "iCloudInfo": {"SafariBookmarksHasMigratedToCloudKit": False},
            "apps": {"photos": {}, "iclouddrive": {}},
            "isRepairNeeded": False, "termsUpdateNeeded": False, "isUnderMaintenance": False,
        }

    def session_cookies(self, req, ws, token, first):
        dom = self.cookie_domain(req)
        now = time.time()
        exp = _cookie_date(now + 30 * 86400)
        kb_exp = _cookie_date(now + 60 * 86400)
        acc = ws.account
        tail = ";Path=/;Domain=%s;Secure" % dom
        out = [
            'X-APPLE-WEBAUTH-USER="v=1:s=1:d=%s";Expires=%s%s;HttpOnly' % (acc.dsid, exp, tail),
            'X-APPLE-WEBAUTH-TOKEN="%s";Expires=%s%s;HttpOnly' % (token, exp, tail),
            'X-APPLE-DS-WEB-SESSION-TOKEN="%s";Expires=%s%s;HttpOnly' % (_tok("dsws", 24), exp, tail),
            'X-APPLE-WEBAUTH-VALIDATE="v=1:t=%s~~"%s' % (_tok("", 16), tail),
            'X-APPLE-WEBAUTH-PCS-Photos="%s";Expires=%s%s;HttpOnly' % (_tok("pcsphotos-", 16), exp, tail),
            'X-APPLE-WEBAUTH-PCS-Sharing="%s";Expires=%s%s;HttpOnly' % (_tok("pcssharing-", 16), exp, tail),
        ]
        if first:
            out += [
                'X-APPLE-UNIQUE-CLIENT-ID="%s"%s' % (_tok("", 8), tail),
                'X-APPLE-WEBAUTH-LOGIN="v=1:t=%s~~"%s;HttpOnly' % (_tok("", 16), tail),
                'X_APPLE_WEB_KB-%s="v=1:t=%s~~";Expires=%s%s;HttpOnly' % (
                    acc.dsid[-6:], _tok("", 16), kb_exp, tail),
            ]
            if ws.challenge():
                out.append('X-APPLE-WEBAUTH-HSA-LOGIN="v=2:t=%s~~"%s;HttpOnly' % (_tok("", 16), tail))
        if ws.trusted:
            texp = exp
            if ws.trust_token:
                with self.lock:
                    t = self.trust.get(ws.trust_token)
                if t:
                    texp = _cookie_date(t[1])
            out.append('X-APPLE-WEBAUTH-HSA-TRUST-%s="v=1:t=%s~~";Expires=%s%s;HttpOnly' % (
                acc.dsid[-6:], _tok("", 16), texp, tail))
        return out

    def _issue_web_token(self, ws):
        t = "v=2:t=" + _tok("", 32) + "~~"
        with self.lock:
            self.web_tokens[t] = ws
            ws.tokens.add(t)
        return t

    def account_login(self, req):
        body = None
        try:
            body = json.loads(req.body.decode("utf-8")) if req.body else None
        except (ValueError, UnicodeDecodeError):
            pass
        if not isinstance(body, dict) or not isinstance(body.get("dsWebAuthToken"), str):
            return self.setup_resp(req, 400, {"success": False, "error": "bad request"})
        now = time.time()
        with self.lock:
            conv = self.conv_keys.get(body["dsWebAuthToken"])
        if conv is None or not conv.valid(now):
            self._event("account_login_bad_token")
            return self.setup_resp(req, 421, {"success": False, "error": "Invalid session token"})
        acc = conv.account
        if acc.web_access_off:
            return self.setup_resp(req, 421, {"success": False, "error": "Missing X-APPLE-WEBAUTH-USER cookie"})
        dtu = self.region_mismatch(req, acc)
        if dtu:
            self._event("domain_to_use", apple_id=acc.apple_id, domain=dtu)
            return self.setup_resp(req, 200, {"domainToUse": dtu})
        if conv.needs_repair and not conv.repaired:
            return self.setup_resp(req, 421, {"success": False, "error": "repair required"})
        tt = body.get("trustToken")
        trusted = conv.trusted
        trust_token = conv.trust_token
        if not trusted and isinstance(tt, str) and self.trust_valid(tt, acc) and not acc.fido_only:
            trusted = True
            trust_token = tt
        ws = WebSession(acc, conv, trusted, trust_token if trusted else None)
        tok = self._issue_web_token(ws)
        self._event("account_login", apple_id=acc.apple_id, trusted=trusted, challenge=ws.challenge())
        return self.setup_resp(req, 200, self.account_json(req, ws), self.session_cookies(req, ws, tok, True))

    def validate(self, req):
        ws, reason = self.find_web(req)
        if ws is None:
            self._event("validate_failed", reason=reason)
            return self.setup_resp(req, 421, {"success": False, "error": reason})
        if ws.account.web_access_off:
            return self.setup_resp(req, 421, {"success": False, "error": "Missing X-APPLE-WEBAUTH-USER cookie"})
        dtu = self.region_mismatch(req, ws.account)
        if dtu:
            return self.setup_resp(req, 200, {"domainToUse": dtu})
        tok = self._issue_web_token(ws)
        self._event("validate_ok", apple_id=ws.account.apple_id)
        return self.setup_resp(req, 200, self.account_json(req, ws), self.session_cookies(req, ws, tok, False))

    def list_devices(self, req):
        ws, reason = self.find_web(req)
        if ws is None:
            return self.setup_resp(req, 421, {"success": False, "error": reason})
        devs = [{"deviceType": "SMS", "areaCode": "", "phoneNumber": "*******" + p.last_two,
                 "deviceId": str(p.id)} for p in ws.account.phones]
        return self.setup_resp(req, 200, {"devices": devs})

    def send_2sa(self, req):
        ws, reason = self.find_web(req)
        if ws is None:
            return self.setup_resp(req, 421, {"success": False, "error": reason})
        acc = ws.account
        try:
            dev = json.loads(req.body.decode())
            pid = int(dev["deviceId"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return self.setup_resp(req, 400, {"success": False, "error": "bad device"})
        if not any(p.id == pid for p in acc.phones):
            return self.setup_resp(req, 200, {"success": False, "errorMessage": "unknown device", "errorCode": -21667})
        with self.store.lock:
            acc.sms_sends.append({"phone_id": pid, "mode": "2sa", "ts": time.time()})
        self._count("sms_sends")
        self._event("sms", apple_id=acc.apple_id, phone_id=pid, mode="2sa")
        return self.setup_resp(req, 200, {"success": True})

    def validate_2sa(self, req):
        ws, reason = self.find_web(req)
        if ws is None:
            return self.setup_resp(req, 421, {"success": False, "error": reason})
        acc = ws.account
        try:
            dev = json.loads(req.body.decode())
            code = dev["verificationCode"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return self.setup_resp(req, 400, {"success": False, "error": "bad request"})
        if not isinstance(code, str) or code != acc.current_code:
            self._count("code_wrong")
            return self.setup_resp(req, 200, WRONG_CODE_2SA)
        self._count("code_ok")
        conv = ws.conv
        if conv is not None:
            conv.verified = True
            if dev.get("trustBrowser"):
                conv.trusted = True
        ws.trusted = bool(dev.get("trustBrowser"))
        self._event("code_ok", apple_id=acc.apple_id, sms=True, mode="2sa")
        return self.setup_resp(req, 200, {"success": True})

    # ---------- for CloudKit / downloads ----------
    def authorize_cloudkit(self, req):
        """Return (account, None) or (None, Response)."""
        ws, reason = self.find_web(req)
        if ws is None:
            return None, json_response({"success": False, "error": reason}, 421)
        acc = ws.account
        if acc.web_access_off:
            return None, json_response({"success": False, "error": "Missing X-APPLE-WEBAUTH-USER cookie"}, 421)
        if acc.fido_only or ws.challenge():
            return None, json_response({"uuid": str(uuid.uuid4()), "serverErrorCode": "AUTHENTICATION_REQUIRED",
                                        "reason": "no auth method found"}, 401)
        dsid = (req.query.get("dsid") or [None])[0]
        if dsid is not None and dsid != acc.dsid:
            return None, json_response({"uuid": str(uuid.uuid4()), "serverErrorCode": "AUTHENTICATION_FAILED",
                                        "reason": "dsid does not match the session"}, 401)
        return acc, None
