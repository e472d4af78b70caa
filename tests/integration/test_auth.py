#!/usr/bin/python3
"""Sign-in integration tests: the real icpd binary against the fake iCloud.

usage: test_auth.py ICPD_BINARY [unittest args]

Every answer a person would type is fed line by line on stdin (not a
terminal), exactly as `icpd auth` reads it; the fake's request log and
counters prove what icpd did on the wire.
"""
import base64
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import unittest

import fakeenv_auth as fe

ICPD = None
PW = "correct horse battery staple"
UNICODE_PW = "p\u00e4ssw\u00f6rd \u2713 \u5bc6\u7801"
ITER = 1000


def acct(apple_id, **kw):
    d = {"apple_id": apple_id, "password": PW, "iterations": ITER}
    d.update(kw)
    return d


ACCOUNTS = [
    acct("device@example.com"),
    acct("reuse@example.com"),
    acct("sms@example.com"),
    acct("sms2@example.com", phone_list_location="bridge", code="012345",
         phones=[{"id": 3, "number": "+1 (555) 555-0133"}, {"id": 7, "number": "+49 170 5550177"}]),
    acct("legacy@example.com", hsa_version=1),
    acct("repair@example.com", hsa_version=0),
    acct("wrongpw@example.com"),
    acct("wrongcode@example.com"),
    acct("threecodes@example.com"),
    acct("throttle@example.com"),
    acct("throttle2@example.com"),
    acct("adp@example.com", adp=True),
    acct("fido@example.com", fido_only=True),
    acct("locked@example.com", locked=True),
    acct("toomany@example.com", too_many_codes=True),
    acct("noweb@example.com", web_access_off=True),
    acct("region@example.com", wrong_region=True),
    acct("fo@example.com", protocol="s2k_fo"),
    acct("zerosalt@example.com", salt_hex="00a1b2c3d4e5f60718293a4b5c6d7e8f"),
    acct("zerosaltfo@example.com", protocol="s2k_fo", salt_hex="0000b2c3d4e5f60718293a4b5c6d7e8f"),
    acct("unicode@example.com", password=UNICODE_PW),
    acct("debug@example.com"),
    acct("import@example.com"),
    acct("expire@example.com"),
    acct("mixedcase@example.com"),
    acct("china@example.cn", domain="cn"),
    acct("tty@example.com"),
]

FAKE = None


def setUpModule():
    global FAKE
    FAKE = fe.Fake(ACCOUNTS)


def tearDownModule():
    if FAKE:
        FAKE.stop()


class AuthTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="icpd-auth-test-")
        self.cookies = os.path.join(self.tmp, "cookies")
        FAKE.reset()

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- helpers ----
    def pwfile(self, password=PW, mode=0o600):
        path = os.path.join(self.tmp, "password")
        with open(path, "w", encoding="utf-8") as f:
            f.write(password + "\n")
        os.chmod(path, mode)
        return path

    def icpd(self, cmd, user, extra=(), stdin="", env=None, password=PW, fake=None):
        fake = fake or FAKE
        args = [cmd, "-u", user, "--cookie-directory", self.cookies] + fake.endpoint_args()
        if password is not None:
            args += ["--password-file", self.pwfile(password)]
        args += list(extra)
        e = dict(fake.env())
        e.update(env or {})
        r = fe.run_icpd(ICPD, args, stdin, e)
        r.out = r.stdout.decode("utf-8", "replace")
        r.err = r.stderr.decode("utf-8", "replace")
        return r

    def ok(self, r):
        self.assertEqual(r.returncode, 0, "icpd failed:\nstdout:\n%s\nstderr:\n%s" % (r.out, r.err))

    def code(self, r, want):
        self.assertEqual(r.returncode, want, "want exit %d:\nstdout:\n%s\nstderr:\n%s"
                         % (want, r.out, r.err))

    def first_signin(self, user, stdin="\n123456\n"):
        r = self.icpd("auth", user, stdin=stdin)
        self.ok(r)
        return r

    # ---- first sign-in, three kinds of second factor ----
    def test_device_code_push_before_code(self):
        r = self.first_signin("device@example.com")
        self.assertRegex(r.out, r"trusted until about \d{4}-\d\d-\d\d")
        self.assertIn("press Enter to send a code to your devices, or type s for SMS", r.err)
        log = [(e["method"], e["path"]) for e in FAKE.requests()["requests"]]
        push = log.index(("PUT", "/appleauth/auth/verify/trusteddevice/securitycode"))
        submit = log.index(("POST", "/appleauth/auth/verify/trusteddevice/securitycode"))
        self.assertLess(push, submit, "the explicit push must come before the code")
        self.assertLess(submit, log.index(("GET", "/appleauth/auth/2sv/trust")))
        c = FAKE.counters()
        self.assertEqual((c["pushes"], c["code_ok"], c["trust_issued"]), (1, 1, 1))
        # the session directory holds nothing readable by others
        for name in os.listdir(self.cookies):
            mode = stat.S_IMODE(os.stat(os.path.join(self.cookies, name)).st_mode)
            self.assertEqual(mode & 0o077, 0, "%s has mode %o" % (name, mode))

    def test_status_after_auth_before_any_sync(self):
        """Right after 'icpd auth' (no sync yet), 'icpd status' shows the
        session's trust and 'never', exit 0; with no session either (a wrong
        folder), it is an error that says what to do."""
        def status(*extra):
            r = fe.run_icpd(ICPD, ["status", "-u", "device@example.com", "--cookie-directory",
                                   self.cookies, *extra], "", FAKE.env())
            r.out = r.stdout.decode("utf-8", "replace")
            r.err = r.stderr.decode("utf-8", "replace")
            return r

        r = status()
        self.code(r, 2)
        self.assertIn("no state database and no session", r.err)
        self.assertIn("run 'icpd auth' and 'icpd sync' first", r.err)
        self.first_signin("device@example.com")
        r = status()
        self.ok(r)
        self.assertIn("state database: none yet", r.out)
        self.assertIn("last run: never", r.out)
        self.assertRegex(r.out, r"trusted session: expires about \d{4}-\d\d-\d\d.*\(\d+ days left\)")
        r = status("--json")
        self.ok(r)
        j = json.loads(r.out)
        self.assertIsNone(j["database"])
        self.assertIsNone(j["last_run"])
        self.assertEqual((j["assets"], j["files_done"], j["runs"]), (0, 0, 0))
        self.assertGreater(j["trust_days_left"], 0)
        self.assertNotIn("session_note", j)

    def test_empty_line_reprints_prompt_and_code_typed_directly(self):
        # someone attached late: empty lines at the password prompt re-print
        # it; a code they already have is sent without a new push
        r = self.icpd("auth", "device@example.com", password=None,
                      stdin="\n\n%s\n123456\n" % PW)
        self.ok(r)
        self.assertEqual(r.err.count("iCloud password for device@example.com:"), 3)
        self.assertEqual(FAKE.counters()["pushes"], 0)
        self.assertEqual(FAKE.counters()["code_ok"], 1)

    def test_terminal_no_echo_and_reprint(self):
        """On a terminal (kubectl attach -it): the password is not echoed, an
        empty line re-prints the prompt, and sync on a terminal may ask too."""
        user = "tty@example.com"
        base = ["--cookie-directory", self.cookies] + FAKE.endpoint_args()
        rc, shown = fe.run_icpd_tty(ICPD, ["auth", "-u", user] + base, [
            ("iCloud password for %s: " % user, ""),
            ("iCloud password for %s: " % user, PW),
            ("or type s for SMS", ""),
            ("enter the 6-digit code", ""),
            ("enter the 6-digit code", "123456"),
        ], env=FAKE.env())
        self.assertEqual(rc, 0, shown)
        self.assertNotIn(PW, shown, "the password was echoed")
        self.assertEqual(shown.count("iCloud password for %s: " % user), 2, shown)
        self.assertEqual(shown.count("enter the 6-digit code"), 2, shown)
        self.assertRegex(shown, r"trusted until about \d{4}-")
        # sync on a terminal, trust gone: it asks instead of exiting 3
        FAKE.ctl("POST", "/expire_sessions", {"apple_id": user})
        FAKE.ctl("POST", "/expire_trust", {"apple_id": user})
        rc, shown = fe.run_icpd_tty(ICPD, ["sync", "--auth-only", "-u", user] + base, [
            ("iCloud password for %s: " % user, PW),
            ("or type s for SMS", ""),
            ("enter the 6-digit code", "123456"),
        ], env=FAKE.env())
        self.assertEqual(rc, 0, shown)
        self.assertNotIn(PW, shown)

    def test_sms_single_number(self):
        r = self.first_signin("sms@example.com", stdin="s\n123456\n")
        self.assertIn("a code was sent to", r.err)
        st = FAKE.state("sms@example.com")
        self.assertEqual([s["phone_id"] for s in st["sms_sends"]], [1])
        self.assertEqual(FAKE.counters()["pushes"], 0)
        self.assertEqual(FAKE.count("GET", "/appleauth/auth"), 1)
        self.assertEqual(FAKE.count("POST", "/verify/phone/securitycode"), 1)

    def test_sms_choose_second_number_bridge_location_leading_zero_code(self):
        r = self.first_signin("sms2@example.com", stdin="s\n2\n012345\n")
        self.assertIn("\u2022\u202277", r.err)
        st = FAKE.state("sms2@example.com")
        self.assertEqual([s["phone_id"] for s in st["sms_sends"]], [7])
        self.assertEqual(FAKE.counters()["code_ok"], 1)

    def test_legacy_2sa(self):
        r = self.first_signin("legacy@example.com", stdin="123456\n")
        self.assertIn("two-step", r.err)
        self.assertEqual(FAKE.count("GET", "/setup/ws/1/listDevices"), 1)
        self.assertEqual(FAKE.count("POST", "/setup/ws/1/validateVerificationCode"), 1)
        self.assertEqual(FAKE.count("GET", "/2sv/trust"), 0)
        # and the next run needs nothing
        FAKE.reset()
        self.ok(self.icpd("sync", "legacy@example.com", ["--auth-only"], password=None))
        self.assertEqual(FAKE.count("POST", "/signin/init"), 0)

    def test_non_2fa_account_repair_412(self):
        r = self.icpd("auth", "repair@example.com")
        self.ok(r)
        self.assertEqual(FAKE.count("POST", "/repair/complete"), 1)
        self.assertEqual(FAKE.counters()["pushes"], 0)

    # ---- reuse ----
    def test_second_run_reuses_session_without_password_or_code(self):
        self.first_signin("reuse@example.com")
        FAKE.reset()
        r = self.icpd("sync", "reuse@example.com", ["--auth-only"], password=None)
        self.ok(r)
        self.assertRegex(r.out, r"trusted until about")
        self.assertEqual(FAKE.count("POST", "/setup/ws/1/validate"), 1)
        self.assertEqual(FAKE.count("POST", "/signin/init"), 0)
        self.assertEqual(FAKE.count("POST", "/signin/complete"), 0)
        self.assertEqual(FAKE.counters()["pushes"], 0)
        # icloudpd style: flags and no command mean sync
        FAKE.reset()
        self.ok(self.icpd("--auth-only", "reuse@example.com", password=None))
        self.assertEqual(FAKE.count("POST", "/signin/init"), 0)
        self.assertEqual(FAKE.count("POST", "/setup/ws/1/validate"), 1)
        # icpd auth on a valid session does not ask for anything either
        FAKE.reset()
        self.ok(self.icpd("auth", "reuse@example.com", password=None))
        self.assertEqual(FAKE.count("POST", "/signin/init"), 0)

    def test_expired_session_valid_trust_password_without_code_then_trust_expired(self):
        user = "expire@example.com"
        self.first_signin(user)
        FAKE.ctl("POST", "/expire_sessions", {"apple_id": user})
        FAKE.reset()
        # no password source and no terminal: exit 3, one line naming icpd auth
        r = self.icpd("sync", user, ["--auth-only"], password=None)
        self.code(r, 3)
        self.assertEqual(len([l for l in r.err.splitlines() if "icpd auth" in l]), 1, r.err)
        self.assertEqual(FAKE.count("POST", "/signin/init"), 0)
        # with the password: SRP sends the trust token, no code needed
        FAKE.reset()
        r = self.icpd("sync", user, ["--auth-only"])
        self.ok(r)
        self.assertEqual(FAKE.count("POST", "/signin/complete"), 1)
        c = FAKE.counters()
        self.assertEqual((c["trust_skips"], c["pushes"], c["code_ok"]), (1, 0, 0))
        # trust and session expire: sync cannot go on without a person
        FAKE.ctl("POST", "/expire_sessions", {"apple_id": user})
        FAKE.ctl("POST", "/expire_trust", {"apple_id": user})
        FAKE.reset()
        r = self.icpd("sync", user, ["--auth-only"])
        self.code(r, 3)
        self.assertEqual(len([l for l in r.err.splitlines() if "icpd auth" in l]), 1, r.err)
        self.assertEqual(FAKE.counters()["pushes"], 0, "sync must never trigger a push")
        # and icpd auth brings it back
        self.first_signin(user)

    def test_validate_421_falls_back_to_stored_tokens_without_password(self):
        self.first_signin("reuse@example.com")
        for status in ("421", "450"):
            FAKE.reset()
            FAKE.fault(path_regex="/setup/ws/1/validate", action=status)
            r = self.icpd("sync", "reuse@example.com", ["--auth-only"], password=None)
            self.ok(r)
            counts = FAKE.requests()["counts"]
            self.assertEqual(counts.get("POST /setup/ws/1/accountLogin"), 1, counts)
            self.assertNotIn("POST /appleauth/auth/signin/init", counts)

    def test_headers_on_the_wire(self):
        """auth-protocol.md §3.1, read from icpd's own (redacted) debug trace."""
        r = self.icpd("auth", "device@example.com", ["--log-level", "debug"], stdin="\n123456\n")
        self.ok(r)
        reqs = {}
        cur = None
        for line in r.err.splitlines():
            m = re.search(r'msg="> (GET|POST|PUT) ([^"\s]+)', line)
            if m:
                cur = (m.group(1), m.group(2).split("?")[0])
                reqs.setdefault(cur, [])
                continue
            m = re.search(r'msg="> ([^"]*)"', line)
            if m and cur:
                reqs[cur].append(m.group(1))
        init = reqs[("POST", "https://idmsa.apple.com/appleauth/auth/signin/init")]
        self.assertIn("Origin: https://idmsa.apple.com", init)
        self.assertIn("Referer: https://idmsa.apple.com/", init)
        for h in ("X-Apple-Widget-Key: d39ba9916b7251055b22c7f910e2ea796ee65e98b2ddecea8f5dde8d9d1a815d",
                  "X-Apple-OAuth-Client-Id: d39ba9916b7251055b22c7f910e2ea796ee65e98b2ddecea8f5dde8d9d1a815d",
                  "X-Apple-OAuth-Client-Type: firstPartyAuth",
                  "X-Apple-OAuth-Redirect-URI: https://www.icloud.com",
                  "X-Apple-OAuth-Require-Grant-Code: true",
                  "X-Apple-OAuth-Response-Mode: web_message",
                  "X-Apple-OAuth-Response-Type: code",
                  "Content-Type: application/json"):
            self.assertIn(h, init)
        self.assertTrue(any(h.startswith("X-Apple-OAuth-State: auth-") for h in init), init)
        complete = reqs[("POST", "https://idmsa.apple.com/appleauth/auth/signin/complete")]
        self.assertTrue(any(h.lower().startswith("scnt:") for h in complete), complete)
        push = reqs[("PUT", "https://idmsa.apple.com/appleauth/auth/verify/trusteddevice/securitycode")]
        self.assertIn("Origin: https://www.icloud.com", push)
        self.assertIn("Accept: application/json", push)
        self.assertTrue(any(h.startswith("X-Apple-ID-Session-Id:") for h in push), push)
        login = reqs[("POST", "https://setup.icloud.com/setup/ws/1/accountLogin")]
        self.assertIn("Origin: https://www.icloud.com", login)
        self.assertFalse(any(h.startswith("X-Apple-Widget-Key") for h in login), login)

    # ---- failures ----
    def test_wrong_password_exit_3(self):
        r = self.icpd("auth", "wrongpw@example.com", password="not the password")
        self.code(r, 3)
        self.assertIn("app-specific", r.err)
        self.assertEqual(FAKE.count("POST", "/signin/complete"), 1)
        self.assertFalse(os.path.exists(self.cookies) and any(
            n.endswith(".session") for n in os.listdir(self.cookies) if "wrongpw" in n), r.err)

    def test_wrong_code_then_right_code(self):
        r = self.first_signin("wrongcode@example.com", stdin="\n000000\n123456\n")
        self.assertIn("not accepted", r.err)
        c = FAKE.counters()
        self.assertEqual((c["code_wrong"], c["code_ok"], c["pushes"]), (1, 1, 1))

    def test_three_wrong_codes_exit_3(self):
        r = self.icpd("auth", "threecodes@example.com", stdin="\n000000\n111111\n222222\n123456\n")
        self.code(r, 3)
        self.assertEqual(FAKE.counters()["code_wrong"], 3)
        self.assertEqual(FAKE.counters()["code_ok"], 0)

    def test_throttled_at_signin_exit_5_no_more_calls(self):
        FAKE.fault(path_regex="/signin/init", action="503", count=0)
        r = self.icpd("auth", "throttle@example.com")
        self.code(r, 5)
        rq = FAKE.requests()
        self.assertEqual(rq["total"], 1, rq["counts"])
        self.assertEqual(rq["counts"], {"POST /appleauth/auth/signin/init": 1})

    def test_throttled_at_validate_stops_before_any_signin(self):
        self.first_signin("throttle2@example.com")
        FAKE.reset()
        FAKE.fault(path_regex="/setup/ws/1/validate", action="429", retry_after=120, count=0)
        r = self.icpd("sync", "throttle2@example.com", ["--auth-only"])
        self.code(r, 5)
        self.assertIn("120", r.err)
        rq = FAKE.requests()
        self.assertEqual(rq["counts"], {"POST /setup/ws/1/validate": 1})

    def test_adp_exit_7(self):
        r = self.icpd("auth", "adp@example.com", stdin="\n123456\n")
        self.code(r, 7)
        self.assertIn("Advanced Data Protection", r.err)
        self.assertEqual(FAKE.counters()["pushes"], 0, "no code for an account we cannot use")

    def test_fido_only_exit_7(self):
        r = self.icpd("auth", "fido@example.com", stdin="\n123456\n")
        self.code(r, 7)
        self.assertIn("security keys", r.err)

    def test_locked_exit_7(self):
        r = self.icpd("auth", "locked@example.com")
        self.code(r, 7)
        self.assertIn("locked", r.err)

    def test_web_access_off_exit_7(self):
        r = self.icpd("auth", "noweb@example.com")
        self.code(r, 7)
        self.assertIn("Access iCloud Data on the Web", r.err)

    def test_too_many_codes_exit_5(self):
        r = self.icpd("auth", "toomany@example.com", stdin="\n123456\n")
        self.code(r, 5)
        self.assertEqual(FAKE.counters()["code_ok"], 0)
        r = self.icpd("auth", "toomany@example.com", stdin="s\n123456\n")
        self.code(r, 5)

    def test_wrong_region_exit_2(self):
        r = self.icpd("auth", "region@example.com")
        self.code(r, 2)
        self.assertIn("--domain cn", r.err)

    def test_domain_cn_uses_cn_hosts(self):
        FAKE.proxy.connects.clear()
        r = self.icpd("auth", "china@example.cn", ["--domain", "cn"], stdin="\n123456\n")
        self.ok(r)
        hosts = set(FAKE.proxy.connects)
        self.assertIn("idmsa.apple.com.cn:443", hosts)
        self.assertIn("setup.icloud.com.cn:443", hosts)
        self.assertEqual([h for h in hosts if ".cn:" not in h], [], hosts)
        # the same account through the international hosts: told to use cn
        shutil.rmtree(self.cookies)
        r = self.icpd("auth", "china@example.cn", stdin="\n123456\n")
        self.code(r, 2)
        self.assertIn("--domain cn", r.err)
        # and an international account through the .cn hosts: told to use com
        r = self.icpd("auth", "device@example.com", ["--domain", "cn"], stdin="\n123456\n")
        self.code(r, 2)
        self.assertIn("--domain com", r.err)

    # ---- SRP variants ----
    def test_s2k_fo(self):
        self.first_signin("fo@example.com")
        self.assertEqual(FAKE.counters()["signin_wrong_password"], 0)

    def test_salt_with_leading_zero_bytes(self):
        self.first_signin("zerosalt@example.com")
        self.first_signin("zerosaltfo@example.com")
        self.assertEqual(FAKE.counters()["signin_wrong_password"], 0)

    def test_non_ascii_password(self):
        r = self.icpd("auth", "unicode@example.com", stdin="\n123456\n", password=UNICODE_PW)
        self.ok(r)
        # the same password from ICPD_PASSWORD after the session is dropped
        FAKE.ctl("POST", "/expire_sessions", {"apple_id": "unicode@example.com"})
        r = self.icpd("sync", "unicode@example.com", ["--auth-only"], password=None,
                      env={"ICPD_PASSWORD": UNICODE_PW})
        self.ok(r)
        self.assertEqual(FAKE.counters()["signin_wrong_password"], 0)

    def test_username_is_lowercased(self):
        self.ok(self.icpd("auth", "MixedCase@Example.COM", stdin="\n123456\n"))
        FAKE.reset()
        # the session is found again under any spelling
        self.ok(self.icpd("sync", "mixedcase@example.COM", ["--auth-only"], password=None))
        self.assertEqual(FAKE.count("POST", "/signin/init"), 0)

    # ---- password sources ----
    def test_password_sources(self):
        user = "device@example.com"
        # group-readable password file: warned about, still used
        r = self.icpd("auth", user, stdin="\n123456\n", password=None,
                      extra=["--password-file", self.pwfile(mode=0o640)])
        self.ok(r)
        self.assertIn("can be read by other users", r.err)
        FAKE.ctl("POST", "/expire_sessions", {"apple_id": user})
        # a command prints the password; only its first line counts
        cmd = "printf '%%s\\nsecond line\\n' '%s'" % PW
        r = self.icpd("sync", user, ["--auth-only", "--password-command", cmd], password=None)
        self.ok(r)
        FAKE.ctl("POST", "/expire_sessions", {"apple_id": user})
        r = self.icpd("sync", user, ["--auth-only", "--password-command", "exit 4"], password=None)
        self.code(r, 2)
        self.assertIn("exit status 4", r.err)
        # -p works with a warning
        r = self.icpd("sync", user, ["--auth-only", "-p", PW], password=None)
        self.ok(r)
        self.assertIn("visible to every user", r.err)
        # ICPD_PASSWORD leaves the environment once read: a password command
        # (which wins over it) must not see it
        FAKE.ctl("POST", "/expire_sessions", {"apple_id": user})
        cmd = "test -z \"$ICPD_PASSWORD\" && printf '%%s\\n' '%s'" % PW
        r = self.icpd("sync", user, ["--auth-only", "--password-command", cmd], password=None,
                      env={"ICPD_PASSWORD": "leaked"})
        self.ok(r)

    # ---- icloudpd migration ----
    def test_import_icloudpd_session_without_password_or_code(self):
        user = "import@example.com"
        c = FAKE.client(user)
        r = c.full_2fa(PW, "123456")
        self.assertEqual(r.status, 200)
        pydir = os.path.join(self.tmp, "pyicloud")
        write_icloudpd_files(pydir, user, c)
        FAKE.reset()
        r = self.icpd("auth", user, ["--import-icloudpd", pydir], password=None)
        self.ok(r)
        self.assertEqual(FAKE.count("POST", "/signin/init"), 0)
        self.assertEqual(FAKE.counters()["pushes"], 0)
        # automatic: icloudpd's files in the cookie directory itself
        shutil.rmtree(self.cookies)
        shutil.copytree(pydir, self.cookies)
        FAKE.reset()
        r = self.icpd("sync", user, ["--auth-only"], password=None)
        self.ok(r)
        self.assertEqual(FAKE.count("POST", "/signin/init"), 0)

    # test_import_session_made_by_real_icloudpd: its own meson test,
    # integration_auth_icloudpd_import (test_icloudpd_import.py)

    # ---- secrets never in clear ----
    def test_debug_run_leaks_no_secret(self):
        user = "debug@example.com"
        r = self.icpd("auth", user, ["--log-level", "debug"], stdin="\n123456\n")
        self.ok(r)
        FAKE.ctl("POST", "/expire_sessions", {"apple_id": user})
        r2 = self.icpd("sync", user, ["--auth-only", "--log-level", "debug"])
        self.ok(r2)
        r3 = self.icpd("sync", user, ["--auth-only", "--log-level", "debug"], password=None)
        self.ok(r3)
        out = r.out + r.err + r2.out + r2.err + r3.out + r3.err
        self.assertIn("> POST", out, "debug tracing must be on for this test to mean anything")
        self.assertIn("X-Apple-Session-Token", out, "the token header is traced (redacted)")
        files = b""
        for root, _, names in os.walk(self.cookies):
            for n in names:
                with open(os.path.join(root, n), "rb") as f:
                    files += f.read()
        self.assertTrue(files, "the cookie directory is empty")
        # what the fake hands out, by shape: every pattern below matches a
        # value the fake really sent (checked against the fake's own client)
        c = FAKE.client(user)
        probe = c.full_2fa(PW, "123456")
        values = [c.sd["session_token"], c.sd["trust_token"], c.sd["scnt"], c.sd["session_id"]]
        values += [v for (v, _) in c.jar.cookies.values()]
        for pat in SECRET_PATTERNS:
            self.assertTrue(any(re.search(pat, v) for v in values), "pattern %s matches nothing" % pat)
        self.assertEqual(probe.status, 200)
        for pat in SECRET_PATTERNS:
            self.assertIsNone(re.search(pat, out), "output leaks %s" % pat)
            self.assertIsNone(re.search(pat.encode(), files), "cookie directory leaks %s" % pat)
        self.assertNotIn(PW, out)
        self.assertNotIn(PW.encode(), files)
        self.assertNotIn(base64.b64encode(PW.encode()), files)


# Token shapes of the fake (tests/fake_icloud/auth.py): session tokens,
# trust tokens, scnt, session ids, the web token and the other cookies.
SECRET_PATTERNS = [
    r"st-[A-Za-z0-9_-]{20,}",
    r"HSARMTKNSRVXWFla[A-Za-z0-9_-]{20,}",
    r"scnt-[A-Za-z0-9_-]{10,}",
    r"sid-[A-Za-z0-9_-]{10,}",
    r"v=2:t=[A-Za-z0-9_-]{20,}",
    r"dsws[A-Za-z0-9_-]{20,}",
    r"pcsphotos-[A-Za-z0-9_-]{10,}",
    r"aasp-[0-9a-f]{16,}",
]


def write_icloudpd_files(d, apple_id, client):
    """icloudpd's cookie directory for apple_id, from the fake's own client:
    <name> (LWP cookie jar) and <name>.session (JSON), name = apple_id
    without non-word characters (auth-protocol.md §6.1)."""
    os.makedirs(d, exist_ok=True)
    name = re.sub(r"\W", "", apple_id)
    lines = ["#LWP-Cookies-2.0"]
    for (cname, dom, host_only), (value, attrs) in client.jar.cookies.items():
        v = value.replace("\\", "\\\\").replace('"', '\\"')
        parts = ['Set-Cookie3: %s="%s"' % (cname, v), 'path="/"',
                 'domain="%s"' % (dom if host_only else "." + dom), "path_spec"]
        if not host_only:
            parts.append("domain_dot")
        parts.append("secure")
        exp = attrs.get("expires")
        if exp:
            import email.utils
            import time
            t = email.utils.parsedate_to_datetime(exp.replace("-", " "))
            parts.append('expires="%s"' % time.strftime("%Y-%m-%d %H:%M:%SZ", t.utctimetuple()))
        else:
            parts.append("discard")
        parts.append("HttpOnly=None")
        parts.append("version=0")
        lines.append("; ".join(parts))
    with open(os.path.join(d, name), "w") as f:
        f.write("\n".join(lines) + "\n")
    sd = dict(client.sd)
    with open(os.path.join(d, name + ".session"), "w") as f:
        json.dump(sd, f)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: test_auth.py ICPD_BINARY [unittest args]")
    ICPD = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
