#!/usr/bin/python3
"""Tests of the fake iCloud's server core and sign-in side (stdlib unittest).

Run: /usr/bin/python3 tests/fake_icloud/test_server.py
Prints "N passed, M failed" as its last line; exit status 1 when M > 0.
"""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fakeclient as fc  # noqa: E402
import srp_server  # noqa: E402

VECTORS = os.environ.get("SRP_VECTORS", os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "srp-vectors.json"))
if not os.path.exists(VECTORS):
    VECTORS = os.path.join(HERE, "..", "..", "spec", "srp-vectors.json")

PW = "correct horse battery staple"
ACCOUNTS = [
    {"apple_id": "dev@example.com", "password": PW, "iterations": 1000, "code": "123456",
     "phones": [{"id": 1, "number": "+1 (555) 555-0181", "last_two": "81"},
                {"id": 2, "number": "+44 7700 900123", "last_two": "23"}]},
    {"apple_id": "fo@example.com", "password": PW, "protocol": "s2k_fo", "iterations": 1000,
     "salt_hex": "0066b4b87f47214aa96f3b7cf729af3b"},
    {"apple_id": "bridge@example.com", "password": PW, "iterations": 1000, "phone_list_location": "bridge",
     "code": "024680"},
    {"apple_id": "twosa@example.com", "password": PW, "iterations": 1000, "hsa_version": 1,
     "has_qualifying_device": False, "code": "654321"},
    {"apple_id": "plain@example.com", "password": PW, "iterations": 1000, "hsa_version": 0},
    {"apple_id": "short@example.com", "password": PW, "iterations": 1000, "session_ttl": 1.5,
     "trust_ttl": 600},
    {"apple_id": "adp@example.com", "password": PW, "iterations": 1000, "adp": True},
    {"apple_id": "fido@example.com", "password": PW, "iterations": 1000, "fido_only": True},
    {"apple_id": "locked@example.com", "password": PW, "iterations": 1000, "locked": True},
    {"apple_id": "toomany@example.com", "password": PW, "iterations": 1000, "too_many_codes": True},
    {"apple_id": "noweb@example.com", "password": PW, "iterations": 1000, "web_access_off": True},
    {"apple_id": "region@example.com", "password": PW, "iterations": 1000, "wrong_region": True},
    {"apple_id": "china@example.cn", "password": PW, "iterations": 1000, "domain": "cn"},
    {"apple_id": "rotate@example.com", "password": PW, "iterations": 1000, "rotate_code_on_push": True},
    {"apple_id": "faults@example.com", "password": PW, "iterations": 1000},
    {"apple_id": "escrow@example.com", "password": PW, "iterations": 1000, "escrow_on_trust": True,
     "code_409_success": True},
]


class Server:
    def __init__(self, hosts, reuse_dir=None):
        self.dir = reuse_dir or tempfile.mkdtemp(prefix="fakeicloud-")
        acc = os.path.join(self.dir, "accounts.json")
        with open(acc, "w") as f:
            json.dump(ACCOUNTS, f)
        self.log = os.path.join(self.dir, "requests.log")
        lib = os.path.join(self.dir, "library.json")
        with open(lib, "w") as f:
            json.dump({"generate": {"count": 5, "seed": 7}}, f)
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(HERE, "server.py"), "--port", "0",
             "--state-dir", os.path.join(self.dir, "state"), "--accounts", acc,
             "--hosts", hosts, "--control-port", "0", "--log", self.log, "--library", lib],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "stderr"), "w"))
        r = fc.wait_ready(os.path.join(self.dir, "state"))
        self.port, self.cport, self.ca = r["port"], r["control_port"], r["ca"]

    def client(self, apple_id, suffix="localhost"):
        return fc.Client(self.port, self.ca, suffix, apple_id)

    def ctl(self, method, path, body=None):
        return fc.control(self.cport, method, path, body)

    def stop(self, keep=False):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


SRV = None
SRV_APPLE = None


def setUpModule():
    global SRV, SRV_APPLE
    SRV = Server("localhost")
    SRV_APPLE = Server("apple")


def tearDownModule():
    for s in (SRV, SRV_APPLE):
        if s:
            s.stop()


def all_vectors():
    with open(VECTORS) as f:
        d = json.load(f)
    vs = list(d["vectors"])
    for e in d["edge_cases"].values():
        vs += e.get("vectors", [])
    return d, vs


class TestSRPVectors(unittest.TestCase):
    def test_client_reproduces_every_vector(self):
        d, vs = all_vectors()
        self.assertGreaterEqual(len(vs), 7)
        inp = d["inputs"]
        for v in vs:
            with self.subTest(v["name"]):
                a = int(v.get("a_hex", inp["a_hex"]), 16)
                pr = fc.client_proof(inp["username"], inp["password"], bytes.fromhex(v["salt_hex"]),
                                     inp["iterations"], v["protocol"], a, int(v["B_hex"], 16))
                self.assertEqual(pr["pkey"].hex(), v["password_key_hex"])
                self.assertEqual(pr["x"], int(v["x_hex"], 16))
                self.assertEqual(pr["A"], int(v["A_hex"], 16))
                self.assertEqual(base64.b64encode(fc.be(pr["A"])).decode(), v["A_b64"])
                self.assertEqual(pr["u"], int(v["u_hex"], 16))
                self.assertEqual(pr["S"], int(v["S_hex"], 16))
                self.assertEqual(pr["K"].hex(), v["K_hex"])
                self.assertEqual(base64.b64encode(pr["M1"]).decode(), v["M1_b64"])
                self.assertEqual(base64.b64encode(pr["M2"]).decode(), v["M2_b64"])

    def test_server_reproduces_every_vector(self):
        d, vs = all_vectors()
        inp = d["inputs"]
        for v in vs:
            with self.subTest(v["name"]):
                salt = bytes.fromhex(v["salt_hex"])
                self.assertEqual(srp_server.K_MULT, int(v["k_hex"], 16))
                vv = srp_server.verifier(inp["password"], salt, inp["iterations"], v["protocol"])
                self.assertEqual(vv, int(v["v_hex"], 16))
                ss = srp_server.ServerSession(vv, salt, int(v.get("b_hex", inp["b_hex"]), 16))
                self.assertEqual(ss.B, int(v["B_hex"], 16))
                self.assertEqual(base64.b64encode(srp_server.minb(ss.B)).decode(), v["B_b64"])
                A = int(v["A_hex"], 16)
                u = srp_server.u_of(A, ss.B)
                self.assertEqual(u, int(v["u_hex"], 16))
                S = srp_server.server_S(A, vv, u, ss.b)
                self.assertEqual(S, int(v["S_hex"], 16))
                K = srp_server.session_K(S)
                self.assertEqual(K.hex(), v["K_hex"])
                self.assertEqual(srp_server.proof_M1(inp["username"], salt, A, ss.B, K).hex(), v["M1_hex"])
                ok, why = ss.verify(inp["username"], A, bytes.fromhex(v["M1_hex"]), bytes.fromhex(v["M2_hex"]))
                self.assertTrue(ok, why)
                self.assertEqual(ok, v["server_accepts_M1"])
                bad = bytes.fromhex(v["M1_hex"])
                ok, _ = ss.verify(inp["username"], A, bytes([bad[0] ^ 1]) + bad[1:], bytes.fromhex(v["M2_hex"]))
                self.assertFalse(ok)
                ok, why = ss.verify(inp["username"], A, bytes.fromhex(v["M1_hex"]), b"\0" * 32)
                self.assertEqual((ok, why), (False, "m2 mismatch"))

    def test_server_rejects_salt_stripping_client(self):
        d, vs = all_vectors()
        inp = d["inputs"]
        n = 0
        for v in vs:
            bad = v.get("client_that_strips_the_salt_sends")
            if not bad:
                continue
            n += 1
            salt = bytes.fromhex(v["salt_hex"])
            vv = srp_server.verifier(inp["password"], salt, inp["iterations"], v["protocol"])
            ss = srp_server.ServerSession(vv, salt, int(v["b_hex"], 16))
            m1 = bad.get("M1_hex") and bytes.fromhex(bad["M1_hex"]) or base64.b64decode(bad["M1_b64"])
            m2 = bad.get("M2_hex") and bytes.fromhex(bad["M2_hex"]) or base64.b64decode(bad["M2_b64"])
            A = int(bad.get("A_hex", v["A_hex"]), 16)
            ok, why = ss.verify(inp["username"], A, m1, m2)
            self.assertFalse(ok)
            self.assertEqual(why, "M1 mismatch")
        self.assertEqual(n, 2)


def h_expires(set_cookie):
    return re.search(r"(?i);\s*expires=", set_cookie) is not None


class TestSignIn(unittest.TestCase):
    def test_wrong_password_401_body(self):
        c = SRV.client("dev@example.com")
        r1, r2 = c.signin("wrong password")
        self.assertEqual(r1.status, 200)
        self.assertEqual(r1.header("Content-Type"), "text/html;charset=UTF-8")
        self.assertTrue(r1.header("scnt"))
        self.assertEqual(set(r1.json()), {"iteration", "salt", "protocol", "version", "b", "c"})
        self.assertEqual(r2.status, 401)
        self.assertEqual(r2.json(), {"serviceErrors": [{"code": "-20101", "message":
                         "Enter the email or phone number and password for your Apple Account.",
                         "suppressDismissal": False}]})
        self.assertIsNone(r2.header("X-Apple-Session-Token"))

    def test_unknown_user_and_bad_m2(self):
        c = SRV.client("nobody@example.com")
        r1, r2 = c.signin(PW)
        self.assertEqual(r1.status, 200)
        self.assertEqual(r2.status, 401)
        c = SRV.client("dev@example.com")
        _, r2 = c.signin(PW, mangle="m2")
        self.assertEqual(r2.status, 401)

    def test_hostile_input(self):
        c = SRV.client("dev@example.com")
        for body in (b"not json", b"[]", b'{"a": 5, "accountName": "dev@example.com"}',
                     b'{"a": "@@@", "accountName": "dev@example.com"}', b'{"accountName": null}'):
            r = c.request("POST", "idmsa.apple.localhost", "/appleauth/auth/signin/init", body,
                          {"Content-Type": "application/json"})
            self.assertEqual(r.status, 400, body)
        for body in (b"null", b"{}", b'{"c": 1}', b'{"c": "x", "m1": 3}'):
            r = c.request("POST", "idmsa.apple.localhost", "/appleauth/auth/signin/complete", body)
            self.assertEqual(r.status, 400, body)
        for body in (b"garbage", b"[]", b'{"dsWebAuthToken": 1}'):
            r = c.request("POST", "setup.icloud.localhost", "/setup/ws/1/accountLogin", body)
            self.assertEqual(r.status, 400, body)
        r = c.request("POST", "setup.icloud.localhost", "/setup/ws/1/accountLogin", None,
                      {"Content-Length": str(10 ** 12)})
        self.assertEqual(r.status, 413)
        self.assertEqual(c.validate().status, 421)   # still serving

    def test_reused_c_is_refused(self):
        c = SRV.client("dev@example.com")
        r1, r2 = c.signin(PW)
        self.assertEqual(r2.status, 409)
        r3 = c.idmsa("POST", "/signin/complete?isRememberMeEnabled=true",
                     {"accountName": "dev@example.com", "c": r1.json()["c"], "m1": "AA==", "m2": "AA==",
                      "rememberMe": True, "trustTokens": []})
        self.assertEqual(r3.status, 400)

    def test_device_code_flow(self):
        c = SRV.client("dev@example.com")
        st, before = SRV.ctl("GET", "/state")
        pushes0 = before["accounts"]["dev@example.com"]["pushes"]
        _, r = c.signin(PW)
        self.assertEqual(r.status, 409)
        for h in ("X-Apple-Session-Token", "X-Apple-ID-Session-Id", "scnt",
                  "X-Apple-ID-Account-Country", "X-Apple-TwoSV-Trust-Eligible", "X-Apple-Auth-Attributes"):
            self.assertTrue(r.header(h), h)
        self.assertEqual(r.header("Location"), "/auth")
        self.assertEqual(r.header("X-Apple-ID-Account-Country"), "USA")
        self.assertEqual(r.json()["authType"], "hsa2")
        tok1 = c.sd["session_token"]
        r = c.account_login()
        self.assertEqual(r.status, 200)
        j = r.json()
        self.assertTrue(j["hsaChallengeRequired"])
        self.assertFalse(j["hsaTrustedBrowser"])
        self.assertEqual(j["dsInfo"]["hsaVersion"], 2)
        self.assertTrue(j["dsInfo"]["hasICloudQualifyingDevice"])
        self.assertEqual(j["webservices"]["ckdatabasews"]["url"], "https://p42-ckdatabasews.icloud.localhost:%d" % SRV.port)
        self.assertIsNotNone(c.jar.get("X-APPLE-WEBAUTH-HSA-LOGIN"))
        # CloudKit refuses a session that still needs the second factor
        r = c.request("POST", "p42-ckdatabasews.icloud.localhost",
                      "/database/1/com.apple.photos.cloud/production/private/zones/list?dsid=" + j["dsInfo"]["dsid"], "{}")
        self.assertEqual(r.status, 401)
        # push
        r = c.idmsa("PUT", "/verify/trusteddevice/securitycode", None, {"Accept": "application/json"})
        self.assertIn(r.status, (200, 202))
        st, after = SRV.ctl("GET", "/state")
        self.assertEqual(after["accounts"]["dev@example.com"]["pushes"], pushes0 + 1)
        self.assertTrue(after["push_requested"])
        _, rq = SRV.ctl("GET", "/requests")
        self.assertTrue(rq["push_requested"])
        # wrong code
        r = c.idmsa("POST", "/verify/trusteddevice/securitycode", {"securityCode": {"code": "000000"}},
                    {"Accept": "application/json"})
        self.assertEqual(r.status, 400)
        self.assertEqual(r.header("X-Apple-I-Ercd"), "-21669")
        self.assertEqual(r.json(), {"service_errors": [{"code": "-21669", "title": "Incorrect Verification Code",
                                    "message": "Incorrect verification code.", "suppressDismissal": False}],
                                    "hasError": True})
        # trust before the code is refused
        r = c.idmsa("GET", "/2sv/trust")
        self.assertEqual(r.status, 401)
        self.assertIsNone(r.header("X-Apple-TwoSV-Trust-Token"))
        r = c.idmsa("POST", "/verify/trusteddevice/securitycode", {"securityCode": {"code": "123456"}},
                    {"Accept": "application/json"})
        self.assertEqual(r.status, 204)
        self.assertEqual(r.body, b"")
        self.assertNotEqual(c.sd["session_token"], tok1)
        r = c.idmsa("GET", "/2sv/trust")
        self.assertEqual(r.status, 204)
        self.assertTrue(r.header("X-Apple-TwoSV-Trust-Token"))
        self.assertTrue(r.header("X-Apple-Session-Token"))
        r = c.account_login()
        j = r.json()
        self.assertFalse(j["hsaChallengeRequired"])
        self.assertTrue(j["hsaTrustedBrowser"])
        self.assertTrue(j["isExtendedLogin"])
        sc = r.all("Set-Cookie")
        byname = {s.split("=", 1)[0]: s for s in sc}
        for n in ("X-APPLE-WEBAUTH-USER", "X-APPLE-WEBAUTH-TOKEN", "X-APPLE-DS-WEB-SESSION-TOKEN"):
            self.assertTrue(h_expires(byname[n]), n)
            self.assertIn("Domain=.icloud.localhost", byname[n])
        for n in ("X-APPLE-WEBAUTH-LOGIN", "X-APPLE-WEBAUTH-VALIDATE", "X-APPLE-UNIQUE-CLIENT-ID"):
            self.assertFalse(h_expires(byname[n]), n)
        self.assertTrue(any(n.startswith("X-APPLE-WEBAUTH-HSA-TRUST") for n in byname))
        self.assertEqual(byname["X-APPLE-WEBAUTH-USER"].split(";")[0],
                         'X-APPLE-WEBAUTH-USER="v=1:s=1:d=%s"' % j["dsInfo"]["dsid"])
        # validate: body null, cookies refreshed
        old = c.jar.get("X-APPLE-WEBAUTH-TOKEN")[0]
        r = c.validate()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["dsInfo"]["dsid"], j["dsInfo"]["dsid"])
        self.assertTrue(r.json()["hsaTrustedBrowser"])
        self.assertNotEqual(c.jar.get("X-APPLE-WEBAUTH-TOKEN")[0], old)
        # validate without cookies fails the way Apple does
        c2 = SRV.client("dev@example.com")
        r = c2.validate()
        self.assertEqual(r.status, 421)
        self.assertEqual(r.json(), {"success": False, "error": "Missing X-APPLE-WEBAUTH-TOKEN cookie"})
        # the trust token now skips the second factor on a password sign-in
        c3 = SRV.client("dev@example.com")
        c3.sd["trust_token"] = c.sd["trust_token"]
        pushes = SRV.ctl("GET", "/state")[1]["accounts"]["dev@example.com"]["pushes"]
        _, r = c3.signin(PW)
        self.assertEqual(r.status, 200)
        j = c3.account_login().json()
        self.assertFalse(j["hsaChallengeRequired"])
        self.assertTrue(j["hsaTrustedBrowser"])
        self.assertEqual(SRV.ctl("GET", "/state")[1]["accounts"]["dev@example.com"]["pushes"], pushes)
        # a made-up trust token does not
        c4 = SRV.client("dev@example.com")
        c4.sd["trust_token"] = "HSARMTKNSRVXWFlafake"
        _, r = c4.signin(PW)
        self.assertEqual(r.status, 409)

    def _sms(self, apple_id, code, location):
        c = SRV.client(apple_id)
        _, r = c.signin(PW)
        self.assertEqual(r.status, 409)
        c.account_login()
        # HTML phone list (what icloudpd parses), no cookies, like icloudpd's bare requests
        r = c.request("GET", "idmsa.apple.localhost", "/appleauth/auth",
                      headers=c.auth_headers({"Accept": "text/html"}), jar=False)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("Content-Type").startswith("text/html"))
        html = r.body.decode()
        m = re.search(r'<script type="application/json" class="boot_args">(.*?)</script>', html, re.S)
        self.assertIsNotNone(m)
        boot = json.loads(m.group(1))
        two = boot["direct"]["twoSV"]
        if location == "bridge":
            self.assertNotIn("phoneNumberVerification", two)
            pnv = two["bridgeInitiateData"]["phoneNumberVerification"]
        else:
            self.assertNotIn("bridgeInitiateData", two)
            pnv = two["phoneNumberVerification"]
        phones = pnv["trustedPhoneNumbers"]
        self.assertTrue(phones)
        self.assertEqual(set(phones[0]), {"numberWithDialCode", "pushMode", "obfuscatedNumber", "lastTwoDigits", "id"})
        self.assertIn("\u2022", phones[0]["obfuscatedNumber"])
        self.assertIn('class="pre"', html)
        # JSON variant
        r = c.idmsa("GET", "", extra={"Accept": "application/json"})
        self.assertEqual(r.json()["trustedPhoneNumbers"], phones)
        pid = phones[-1]["id"]
        sends = len(SRV.ctl("GET", "/state")[1]["accounts"][apple_id]["sms_sends"])
        r = c.idmsa("PUT", "/verify/phone", {"phoneNumber": {"id": pid}, "mode": "sms"},
                    {"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(r.status, 200)
        st = SRV.ctl("GET", "/state")[1]["accounts"][apple_id]
        self.assertEqual(len(st["sms_sends"]), sends + 1)
        self.assertEqual(st["sms_sends"][-1]["phone_id"], pid)
        r = c.idmsa("PUT", "/verify/phone", {"phoneNumber": {"id": 99}, "mode": "sms"})
        self.assertEqual(r.status, 400)
        r = c.idmsa("POST", "/verify/phone/securitycode",
                    {"phoneNumber": {"id": pid}, "securityCode": {"code": "999999"}, "mode": "sms"})
        self.assertEqual(r.status, 400)
        self.assertEqual(r.header("X-Apple-I-Ercd"), "-21669")
        if code.startswith("0"):
            # a client that sends the code as a number loses the leading zero
            r = c.idmsa("POST", "/verify/phone/securitycode",
                        {"phoneNumber": {"id": pid}, "securityCode": {"code": int(code)}, "mode": "sms"})
            self.assertEqual(r.status, 400)
        r = c.idmsa("POST", "/verify/phone/securitycode",
                    {"phoneNumber": {"id": pid}, "securityCode": {"code": code}, "mode": "sms"},
                    {"Accept": "application/json; charset=utf-8"})
        self.assertEqual(r.status, 200)
        r = c.idmsa("GET", "/2sv/trust")
        self.assertEqual(r.status, 204)
        j = c.account_login().json()
        self.assertTrue(j["hsaTrustedBrowser"])
        self.assertFalse(j["hsaChallengeRequired"])

    def test_sms_flow_old_location(self):
        self._sms("dev@example.com", "123456", "old")

    def test_sms_flow_bridge_location_and_leading_zero_code(self):
        self._sms("bridge@example.com", "024680", "bridge")

    def test_phone_list_needs_the_sign_in_context(self):
        c = SRV.client("dev@example.com")
        r = c.idmsa("GET", "")
        self.assertEqual(r.status, 401)

    def test_legacy_2sa(self):
        c = SRV.client("twosa@example.com")
        _, r = c.signin(PW)
        self.assertEqual(r.status, 409)
        j = c.account_login().json()
        self.assertEqual(j["dsInfo"]["hsaVersion"], 1)
        self.assertTrue(j["hsaChallengeRequired"])
        dsid = j["dsInfo"]["dsid"]
        r = c.setup("GET", "listDevices", dsid=dsid)
        devs = r.json()["devices"]
        self.assertEqual(devs[0]["deviceType"], "SMS")
        self.assertEqual(set(devs[0]), {"deviceType", "areaCode", "phoneNumber", "deviceId"})
        r = c.setup("POST", "sendVerificationCode", devs[0], dsid=dsid)
        self.assertEqual(r.json(), {"success": True})
        r = c.setup("POST", "validateVerificationCode", dict(devs[0], verificationCode="111111", trustBrowser=True), dsid=dsid)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"success": False, "errorTitle": "Invalid Code",
                                    "errorMessage": "The code you entered is not valid.", "errorCode": -21669})
        r = c.setup("POST", "validateVerificationCode", dict(devs[0], verificationCode="654321", trustBrowser=True), dsid=dsid)
        self.assertEqual(r.json(), {"success": True})
        j = c.account_login().json()
        self.assertFalse(j["hsaChallengeRequired"])
        self.assertTrue(j["hsaTrustedBrowser"])
        r = c.idmsa("GET", "/2sv/trust")
        self.assertEqual(r.status, 404)

    def test_non_2fa_412_repair(self):
        c = SRV.client("plain@example.com")
        _, r = c.signin(PW)
        self.assertEqual(r.status, 412)
        self.assertTrue(r.header("X-Apple-Session-Token"))
        r = c.account_login()
        self.assertEqual(r.status, 421)
        r = c.idmsa("POST", "/repair/complete", {})
        self.assertEqual(r.status, 200)
        r = c.account_login()
        self.assertEqual(r.status, 200)
        j = r.json()
        self.assertEqual(j["dsInfo"]["hsaVersion"], 0)
        self.assertFalse(j["hsaChallengeRequired"])
        self.assertEqual(c.validate().status, 200)

    def test_s2k_fo_with_zero_led_salt(self):
        c = SRV.client("fo@example.com")
        r1, r2 = c.signin(PW)
        self.assertEqual(r1.json()["protocol"], "s2k_fo")
        self.assertEqual(base64.b64decode(r1.json()["salt"])[0], 0)
        self.assertEqual(r2.status, 409)
        _, r2 = SRV.client("fo@example.com").signin(PW + "x")
        self.assertEqual(r2.status, 401)

    def test_session_expiry_while_trust_valid_then_trust_expiry(self):
        c = SRV.client("short@example.com")
        j = c.full_2fa(PW, "123456").json()
        self.assertTrue(j["hsaTrustedBrowser"])
        self.assertEqual(c.validate().status, 200)
        time.sleep(1.7)  # session_ttl 1.5 s, trust_ttl 600 s
        r = c.validate()
        self.assertEqual(r.status, 421)
        self.assertEqual(c.account_login().status, 421)  # the old session token is gone too
        pushes = SRV.ctl("GET", "/state")[1]["accounts"]["short@example.com"]["pushes"]
        _, r = c.signin(PW)
        self.assertEqual(r.status, 200)   # trust token still live: no second factor
        self.assertTrue(c.account_login().json()["hsaTrustedBrowser"])
        self.assertEqual(c.validate().status, 200)
        self.assertEqual(SRV.ctl("GET", "/state")[1]["accounts"]["short@example.com"]["pushes"], pushes)
        st, out = SRV.ctl("POST", "/expire_trust", {"apple_id": "short@example.com"})
        self.assertGreaterEqual(out["expired"], 1)
        self.assertEqual(c.validate().status, 421)
        _, r = c.signin(PW)
        self.assertEqual(r.status, 409)
        j = c.account_login().json()
        self.assertTrue(j["hsaChallengeRequired"])
        self.assertFalse(j["hsaTrustedBrowser"])

    def test_expire_sessions_control(self):
        c = SRV.client("dev@example.com")
        c.full_2fa(PW, "123456")
        self.assertEqual(c.validate().status, 200)
        st, out = SRV.ctl("POST", "/expire_sessions", {"apple_id": "dev@example.com"})
        self.assertGreaterEqual(out["expired"], 1)
        self.assertEqual(c.validate().status, 421)
        r = c.request("POST", "p42-ckdatabasews.icloud.localhost",
                      "/database/1/com.apple.photos.cloud/production/private/zones/list", "{}")
        self.assertEqual(r.status, 421)
        _, r = c.signin(PW)   # trust survives session expiry
        self.assertEqual(r.status, 200)

    def test_rotating_code_on_push(self):
        c = SRV.client("rotate@example.com")
        c.signin(PW)
        c.idmsa("PUT", "/verify/trusteddevice/securitycode", None, {"Accept": "application/json"})
        code1 = SRV.ctl("GET", "/state")[1]["accounts"]["rotate@example.com"]["code"]
        c.idmsa("PUT", "/verify/trusteddevice/securitycode", None, {"Accept": "application/json"})
        code2 = SRV.ctl("GET", "/state")[1]["accounts"]["rotate@example.com"]["code"]
        if code1 == code2:  # 1 in a million: push once more
            c.idmsa("PUT", "/verify/trusteddevice/securitycode", None, {"Accept": "application/json"})
            code2 = SRV.ctl("GET", "/state")[1]["accounts"]["rotate@example.com"]["code"]
        r = c.idmsa("POST", "/verify/trusteddevice/securitycode", {"securityCode": {"code": code1}})
        self.assertEqual(r.status, 400)
        r = c.idmsa("POST", "/verify/trusteddevice/securitycode", {"securityCode": {"code": code2}})
        self.assertEqual(r.status, 204)


class TestModes(unittest.TestCase):
    def test_locked(self):
        _, r = SRV.client("locked@example.com").signin(PW)
        self.assertEqual(r.status, 401)
        self.assertEqual(r.json()["serviceErrors"][0]["code"], "-20209")

    def test_fido_only(self):
        c = SRV.client("fido@example.com")
        _, r = c.signin(PW)
        self.assertEqual(r.status, 409)
        j = r.json()
        self.assertIn("fsaChallenge", j)
        self.assertIn("keyNames", j)
        r = c.idmsa("POST", "/verify/trusteddevice/securitycode", {"securityCode": {"code": "123456"}})
        self.assertEqual(r.status, 400)
        self.assertTrue(c.account_login().json()["hsaChallengeRequired"])

    def test_too_many_codes(self):
        c = SRV.client("toomany@example.com")
        c.signin(PW)
        r = c.idmsa("GET", "", extra={"Accept": "application/json"})
        sc = r.json()["securityCode"]
        self.assertTrue(sc["tooManyCodesSent"])
        self.assertTrue(sc["securityCodeLocked"])
        r = c.idmsa("PUT", "/verify/trusteddevice/securitycode", None, {"Accept": "application/json"})
        self.assertEqual(r.status, 423)
        r = c.idmsa("PUT", "/verify/phone", {"phoneNumber": {"id": 1}, "mode": "sms"})
        self.assertEqual(r.status, 423)

    def test_web_access_off(self):
        c = SRV.client("noweb@example.com")
        _, r = c.signin(PW)
        self.assertEqual(r.status, 409)
        r = c.account_login()
        self.assertEqual(r.status, 421)
        self.assertIn("Missing X-APPLE-WEBAUTH-USER cookie", r.body.decode())

    def test_wrong_region(self):
        c = SRV.client("region@example.com")
        c.signin(PW)
        r = c.account_login()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"domainToUse": "iCloud.com.cn"})

    def test_adp(self):
        c = SRV.client("adp@example.com")
        j = c.full_2fa(PW, "123456").json()
        self.assertTrue(j["iCDPEnabled"])
        self.assertTrue(j["dsInfo"]["iCDPEnabled"])
        import server as srvmod
        if srvmod._cloudkit is None:
            self.fail("cloudkit.py missing: cannot check ACCESS_DENIED")
        r = c.request("POST", "p42-ckdatabasews.icloud.localhost",
                      "/database/1/com.apple.photos.cloud/production/private/zones/list?dsid=" + j["dsInfo"]["dsid"], "{}")
        self.assertEqual(r.json().get("serverErrorCode"), "ACCESS_DENIED")

    def test_cloudkit_behind_session(self):
        import server as srvmod
        if srvmod._cloudkit is None:
            self.fail("cloudkit.py missing")
        c = SRV.client("dev@example.com")
        j = c.full_2fa(PW, "123456").json()
        base = "/database/1/com.apple.photos.cloud/production/private/zones/list"
        r = c.request("POST", "p42-ckdatabasews.icloud.localhost", base + "?dsid=" + j["dsInfo"]["dsid"], "{}")
        self.assertEqual(r.status, 200)
        self.assertIn("zones", r.json())
        r = c.request("POST", "p42-ckdatabasews.icloud.localhost", base + "?dsid=1", "{}")
        self.assertEqual(r.status, 401)
        r = c.request("POST", "p42-ckdatabasews.icloud.localhost", base, "{}", jar=False)
        self.assertEqual(r.status, 421)
        self.assertEqual(r.json()["error"], "Missing X-APPLE-WEBAUTH-TOKEN cookie")

    def test_escrow_and_409_code_success_modes(self):
        c = SRV.client("escrow@example.com")
        _, r = c.signin(PW)
        self.assertEqual(r.status, 409)
        self.assertIsNone(r.header("X-Apple-EDP"))
        r = c.idmsa("POST", "/verify/trusteddevice/securitycode", {"securityCode": {"code": "000000"}})
        self.assertEqual(r.status, 400)
        r = c.idmsa("POST", "/verify/trusteddevice/securitycode", {"securityCode": {"code": "123456"}})
        self.assertEqual(r.status, 409)
        self.assertTrue(r.json()["securityCode"]["valid"])
        self.assertTrue(r.header("X-Apple-Session-Token"))
        self.assertEqual(c.idmsa("GET", "/2sv/trust").status, 204)
        self.assertTrue(c.account_login().json()["hsaTrustedBrowser"])
        c2 = SRV.client("escrow@example.com")
        c2.sd["trust_token"] = c.sd["trust_token"]
        _, r = c2.signin(PW)
        self.assertEqual(r.status, 409)
        self.assertEqual((r.header("X-Apple-EDP"), r.header("X-Apple-PDP")), ("1", "1"))

    def test_live_account_update(self):
        c = SRV.client("faults@example.com")
        st, out = SRV.ctl("POST", "/accounts", {"apple_id": "faults@example.com", "locked": True})
        self.assertEqual(st, 200)
        _, r = c.signin(PW)
        self.assertEqual(r.status, 401)
        SRV.ctl("POST", "/accounts", {"apple_id": "faults@example.com", "locked": False})
        _, r = c.signin(PW)
        self.assertEqual(r.status, 409)
        st, _ = SRV.ctl("POST", "/accounts", {"apple_id": "faults@example.com", "password": "x"})
        self.assertEqual(st, 400)


class TestFaults(unittest.TestCase):
    def tearDown(self):
        SRV.ctl("DELETE", "/faults")

    def test_503_then_recovers(self):
        st, out = SRV.ctl("POST", "/faults", {"path_regex": "/signin/init$", "action": "503"})
        self.assertEqual(st, 200)
        c = SRV.client("faults@example.com")
        r1, _ = c.signin(PW)
        self.assertEqual(r1.status, 503)
        self.assertIn(b"Service Temporarily Unavailable", r1.body)
        r1, r2 = c.signin(PW)
        self.assertEqual(r1.status, 200)
        self.assertEqual(r2.status, 409)

    def test_nth_and_count_and_retry_after(self):
        SRV.ctl("POST", "/faults", {"path_regex": "/validate$", "nth": 2, "count": 2,
                                    "action": "429", "retry_after": 7})
        c = SRV.client("faults@example.com")
        c.full_2fa(PW, "123456")
        got = [c.validate() for _ in range(5)]
        self.assertEqual([r.status for r in got], [200, 429, 429, 200, 200])
        self.assertEqual(got[1].header("Retry-After"), "7")
        faults = SRV.ctl("GET", "/faults")[1]["faults"]
        self.assertEqual((faults[0]["seen"], faults[0]["fired"]), (3, 2))

    def test_each_builtin_action(self):
        c = SRV.client("faults@example.com")
        c.full_2fa(PW, "123456")
        for action, status in (("500", 500), ("421", 421), ("401", 401), ("450", 450), ("403", 403)):
            SRV.ctl("POST", "/faults", {"path_regex": "/validate$", "action": action})
            r = c.validate()
            self.assertEqual(r.status, status, action)
        SRV.ctl("POST", "/faults", {"path_regex": "/validate$", "action": "malformed_json"})
        r = c.validate()
        self.assertEqual(r.status, 200)
        with self.assertRaises(ValueError):
            json.loads(r.body)
        SRV.ctl("POST", "/faults", {"path_regex": "/validate$", "action": "close"})
        with self.assertRaises(Exception):
            c.validate()
        SRV.ctl("POST", "/faults", {"service": "setup", "action": "status",
                                    "params": {"status": 502, "body": "bad gateway", "content_type": "text/plain"}})
        r = c.validate()
        self.assertEqual((r.status, r.body), (502, b"bad gateway"))
        SRV.ctl("POST", "/faults", {"service": "setup", "action": "status",
                                    "params": {"status": 200, "body": "{}", "content_type": "text/html",
                                               "headers": [["X-Apple-I-Rscd", "401"]]}})
        r = c.validate()
        self.assertEqual((r.status, r.header("X-Apple-I-Rscd")), (200, "401"))
        self.assertEqual(c.validate().status, 200)
        st, out = SRV.ctl("POST", "/faults", {"action": "no-such-action"})
        self.assertEqual(st, 400)

    def test_request_log_and_counters(self):
        SRV.ctl("POST", "/reset_counters")
        c = SRV.client("faults@example.com")
        c.signin(PW)
        c.signin("bad")
        _, rq = SRV.ctl("GET", "/requests")
        self.assertEqual(rq["counts"].get("POST /appleauth/auth/signin/init"), 2)
        self.assertEqual(rq["counts"].get("POST /appleauth/auth/signin/complete"), 2)
        self.assertEqual([e["status"] for e in rq["requests"] if e["path"].endswith("complete")], [409, 401])
        self.assertFalse(rq["push_requested"])
        with open(SRV.log) as f:
            text = f.read()
        self.assertIn('"path": "/appleauth/auth/signin/complete"', text)
        self.assertNotIn(PW, text)
        self.assertNotIn(c.sd["session_token"], text)
        self.assertNotIn(c.sd["scnt"], text)


class TestLibraryControl(unittest.TestCase):
    def test_library_state_follows_mutations(self):
        st, lib = SRV.ctl("GET", "/library")
        self.assertEqual(st, 200)
        self.assertEqual(len(lib["assets"]), 5)
        x = next(a for a in lib["assets"] if not a["deleted"] and not a["purged"])
        self.assertEqual(sorted(x), ["deleted", "filename", "hidden", "purged", "uuid", "zone"])
        st, _ = SRV.ctl("POST", "/mutate", {"op": "delete", "asset": x["uuid"]})
        self.assertEqual(st, 200)
        try:
            got = {a["uuid"]: a for a in SRV.ctl("GET", "/library")[1]["assets"]}
            self.assertTrue(got[x["uuid"]]["deleted"])
        finally:
            SRV.ctl("POST", "/mutate", {"op": "restore", "asset": x["uuid"]})
        got = {a["uuid"]: a for a in SRV.ctl("GET", "/library")[1]["assets"]}
        self.assertFalse(got[x["uuid"]]["deleted"])


class TestLibcurl(unittest.TestCase):
    """icpd uses libcurl: its cookie engine (with libpsl) must take our cookies."""

    @unittest.skipUnless(shutil.which("curl"), "curl CLI not installed")
    def test_curl_cookie_engine_carries_the_session_to_cloudkit(self):
        c = SRV.client("plain@example.com")
        _, r = c.signin(PW)
        self.assertEqual(r.status, 412)
        c.idmsa("POST", "/repair/complete", {})
        d = tempfile.mkdtemp(prefix="curljar-")
        try:
            jar = os.path.join(d, "jar")
            body = json.dumps({"accountCountryCode": "USA", "dsWebAuthToken": c.sd["session_token"],
                               "extended_login": True, "trustToken": ""})

            def curl(url, data, *extra):
                p = subprocess.run(["curl", "-sS", "--cacert", SRV.ca, "-b", jar, "-c", jar, "-X", "POST",
                                    "--data-binary", data, "-o", os.path.join(d, "out"), "-w", "%{http_code}",
                                    url] + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
                with open(os.path.join(d, "out"), "rb") as f:
                    return p.stdout.decode(), f.read()

            code, out = curl("https://setup.icloud.localhost:%d/setup/ws/1/accountLogin" % SRV.port, body)
            self.assertEqual(code, "200")
            ck = json.loads(out)["webservices"]["ckdatabasews"]["url"]
            dsid = json.loads(out)["dsInfo"]["dsid"]
            with open(jar) as f:
                self.assertIn("X-APPLE-WEBAUTH-TOKEN", f.read())
            code, out = curl("https://setup.icloud.localhost:%d/setup/ws/1/validate" % SRV.port, "null")
            self.assertEqual(code, "200")
            code, out = curl(ck + "/database/1/com.apple.photos.cloud/production/private/zones/list?dsid=" + dsid, "{}")
            self.assertEqual(code, "200", out[:200])
        finally:
            shutil.rmtree(d, ignore_errors=True)


class TestRestart(unittest.TestCase):
    def test_sessions_and_trust_survive_a_restart(self):
        s1 = Server("localhost")
        try:
            c = s1.client("dev@example.com")
            self.assertTrue(c.full_2fa(PW, "123456").json()["hsaTrustedBrowser"])
            with open(os.path.join(s1.dir, "state", "ca.pem")) as f:
                ca1 = f.read()
            st = os.stat(os.path.join(s1.dir, "state", "auth-state.json"))
            self.assertEqual(st.st_mode & 0o777, 0o600)
            s1.stop(keep=True)
            s2 = Server("localhost", reuse_dir=s1.dir)
            s1 = s2
            with open(s2.ca) as f:
                self.assertEqual(f.read(), ca1)   # same CA: saved clients keep trusting it
            c.port = s2.port
            r = c.validate()
            self.assertEqual(r.status, 200)
            self.assertTrue(r.json()["hsaTrustedBrowser"])
            c2 = s2.client("dev@example.com")
            c2.sd["trust_token"] = c.sd["trust_token"]
            _, r = c2.signin(PW)
            self.assertEqual(r.status, 200)
            s2.ctl("POST", "/expire_sessions")
            self.assertEqual(c.validate().status, 421)
        finally:
            s1.stop()


class TestHostsAndChina(unittest.TestCase):
    def test_routing_unknown_host(self):
        c = SRV.client("dev@example.com")
        r = c.request("GET", "localhost", "/")
        self.assertEqual(r.status, 404)
        r = c.request("GET", "www.icloud.localhost", "/")
        self.assertEqual(r.status, 200)
        r = c.request("GET", "www.localhost", "/")   # short names route too
        self.assertEqual(r.status, 200)

    def test_apple_hosts_com(self):
        c = SRV_APPLE.client("dev@example.com", "apple")
        j = c.full_2fa(PW, "123456").json()
        self.assertEqual(j["webservices"]["ckdatabasews"]["url"],
                         "https://p42-ckdatabasews.icloud.com:%d" % SRV_APPLE.port)
        v, attrs = c.jar.get("X-APPLE-WEBAUTH-TOKEN")
        self.assertEqual(attrs["domain"], ".icloud.com")
        self.assertEqual(c.validate().status, 200)

    def test_cn_hosts(self):
        c = SRV_APPLE.client("china@example.cn", "apple-cn")
        _, r = c.signin(PW)
        self.assertEqual(r.status, 409)
        self.assertEqual(r.header("X-Apple-ID-Account-Country"), "CHN")
        self.assertIn("idmsa.apple.com.cn", r.header("Set-Cookie"))
        j = c.full_2fa(PW, "123456").json()
        self.assertTrue(j["hsaTrustedBrowser"])
        self.assertEqual(j["webservices"]["ckdatabasews"]["url"],
                         "https://p42-ckdatabasews.icloud.com.cn:%d" % SRV_APPLE.port)
        v, attrs = c.jar.get("X-APPLE-WEBAUTH-TOKEN")
        self.assertEqual(attrs["domain"], ".icloud.com.cn")
        self.assertEqual(c.validate().status, 200)

    def test_region_mismatch(self):
        c = SRV_APPLE.client("china@example.cn", "apple")
        c.signin(PW)
        self.assertEqual(c.account_login().json(), {"domainToUse": "iCloud.com.cn"})
        c = SRV_APPLE.client("dev@example.com", "apple-cn")
        c.signin(PW)
        self.assertEqual(c.account_login().json(), {"domainToUse": "iCloud.com"})


class Counting(unittest.TextTestResult):
    pass


def main():
    t0 = time.time()
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    runner = unittest.TextTestRunner(verbosity=2, resultclass=Counting)
    res = runner.run(suite)
    failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    passed = res.testsRun - failed - len(res.skipped)
    print("elapsed %.1f s" % (time.time() - t0))
    if res.skipped:
        print("%d skipped (counted as neither)" % len(res.skipped))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
