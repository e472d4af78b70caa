#!/usr/bin/python3
"""Checks run by run_icloudpd.sh inside the private namespaces.

Routes. (A) for the 2FA account (tooling.md section 4d: the binary's console 2FA
ignores REQUESTS_CA_BUNDLE for the phone list, so it cannot type a code
against a private CA): our own test client (fakeclient.py) does SRP + device
code + 2sv/trust once and gets a trust token; we put only {client_id,
trust_token} into icloudpd's session file; icloudpd then signs in with its
own SRP, presenting the trust token, and must get 200 (no second factor).
(B) The non-2FA account (hsaVersion 0) is signed in by icloudpd alone (412 ->
repair/complete).  (C) icloudpd does its own 2FA with --mfa-provider webui: we
POST the code to its web UI (no phone list needed).  Second runs must reuse
the session through validate.
"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fakeclient as fc  # noqa: E402

PW = "fake-icloud test password 1"   # a test-only password of the fake, not a secret
ACCOUNTS = [
    {"apple_id": "jdoe@example.com", "password": PW, "iterations": 20064, "code": "482913",
     "salt_hex": "5143aa0102030405060708090a0b0c0d"},
    {"apple_id": "plain@example.com", "password": PW, "iterations": 20064, "hsa_version": 0},
    {"apple_id": "fo@example.com", "password": PW, "iterations": 20064, "protocol": "s2k_fo"},
    {"apple_id": "webui@example.com", "password": PW, "iterations": 20064, "code": "305917"},
    {"apple_id": "china@example.cn", "password": PW, "iterations": 20064, "hsa_version": 0, "domain": "cn"},
    {"apple_id": "sms@example.com", "password": PW, "iterations": 20064, "code": "135790",
     "phones": [{"id": 1, "number": "+1 (555) 555-0142", "last_two": "42"},
                {"id": 7, "number": "+49 151 5550177", "last_two": "77"}]},
    {"apple_id": "smsbridge@example.com", "password": PW, "iterations": 20064, "code": "246813",
     "phone_list_location": "bridge"},
    # salt starting with 0x00: informational (pysrp's OpenSSL backend strips it, section 4.1.1)
    {"apple_id": "zerosalt@example.com", "password": PW, "iterations": 20064, "hsa_version": 0,
     "salt_hex": "00a1b2c3d4e5f60718293a4b5c6d7e8f"},
]

RESULTS = []


def check(name, ok, detail=""):
    RESULTS.append((name, bool(ok)))
    print("%s: %s%s" % ("PASS" if ok else "FAIL", name, (" -- " + detail) if (detail and not ok) else ""),
          flush=True)
    return ok


def write_config(w):
    with open(os.path.join(w, "accounts.json"), "w") as f:
        json.dump(ACCOUNTS, f, indent=1)
    with open(os.path.join(w, "library.json"), "w") as f:
        json.dump({"generate": {"count": 6, "seed": 11}}, f)


def main(w, binary, session_only=False):
    st = os.path.join(w, "state")
    log = os.path.join(w, "requests.log")
    srv = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "server.py"), "--port", "443",
                            "--hosts", "apple", "--state-dir", st, "--accounts", os.path.join(w, "accounts.json"),
                            "--library", os.path.join(w, "library.json"), "--control-port", "0", "--log", log],
                           stderr=open(os.path.join(w, "server.stderr"), "w"))
    try:
        ready = fc.wait_ready(st)
        return run_checks(w, binary, ready, session_only)
    finally:
        srv.terminate()
        try:
            srv.wait(5)
        except subprocess.TimeoutExpired:
            srv.kill()


def icloudpd(w, binary, user, *extra, password=PW, timeout=120):
    env = {"PATH": "/usr/bin:/bin", "HOME": os.path.join(w, "home"), "LANG": "C.UTF-8",
           "REQUESTS_CA_BUNDLE": os.path.join(w, "state", "ca.pem"), "TZ": "UTC"}
    args = [binary, "--username", user, "--password", password, "--password-provider", "parameter",
            "--cookie-directory", os.path.join(w, "cookies"), "--no-progress-bar",
            "--log-level", "debug"] + list(extra)
    t0 = time.time()
    try:
        p = subprocess.run(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        out, rc = p.stdout.decode(errors="replace"), p.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = (e.stdout or b"").decode(errors="replace"), -999
    with open(os.path.join(w, "icloudpd-%s-%d.log" % (user.split("@")[0], int(t0 * 1000))), "w") as f:
        f.write(out)
    # never print the whole log: it has tokens in debug lines
    return rc, out


def icloudpd_webui_2fa(w, binary, user, code, ctl, timeout=90):
    """Run icloudpd with --mfa-provider webui and type the code into its web UI (port 8080)."""
    import http.client
    import urllib.parse
    env = {"PATH": "/usr/bin:/bin", "HOME": os.path.join(w, "home"), "LANG": "C.UTF-8",
           "REQUESTS_CA_BUNDLE": os.path.join(w, "state", "ca.pem"), "TZ": "UTC"}
    args = [binary, "--username", user, "--password", PW, "--password-provider", "parameter",
            "--mfa-provider", "webui", "--auth-only", "--cookie-directory", os.path.join(w, "cookies"),
            "--no-progress-bar", "--log-level", "debug"]
    logf = open(os.path.join(w, "icloudpd-webui.log"), "w")
    p = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
    posted = None
    end = time.time() + timeout
    try:
        while time.time() < end and p.poll() is None:
            time.sleep(0.5)
            try:
                conn = http.client.HTTPConnection("127.0.0.1", 8080, timeout=5)
                conn.request("GET", "/status")
                page = conn.getresponse().read().decode(errors="replace")
                conn.close()
            except OSError:
                continue
            if posted is None and 'name="code"' in page:
                conn = http.client.HTTPConnection("127.0.0.1", 8080, timeout=10)
                conn.request("POST", "/code", body=urllib.parse.urlencode({"code": code}),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
                posted = conn.getresponse().status
                conn.close()
        try:
            rc = p.wait(max(1, end - time.time()))
        except subprocess.TimeoutExpired:
            rc = -999
    finally:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        logf.close()
    return rc, posted


def icloudpd_console_2fa(w, binary, user, answers, timeout=90):
    """Console 2FA (phone list + SMS).  The binary checks the phone-list/SMS calls
    against the CA bundle it extracts at start-up (tooling.md 4d), not against
    REQUESTS_CA_BUNDLE; so we give it a private TMPDIR and append the fake's CA to
    the extracted certifi/cacert.pem as soon as it appears.  The binary itself is
    not changed."""
    import glob
    import threading
    tmp = os.path.join(w, "tmp-" + user.split("@")[0])
    os.makedirs(tmp, exist_ok=True)
    ca = open(os.path.join(w, "state", "ca.pem"), "rb").read()
    done = set()
    stop = threading.Event()

    sizes = {}

    def patch():
        # append only once the extractor has finished the file (size stable, ends
        # with a whole certificate), and again if it is ever rewritten
        while not stop.is_set():
            for f in glob.glob(os.path.join(tmp, "_MEI*", "certifi", "cacert.pem")):
                try:
                    data = open(f, "rb").read()
                except OSError:
                    continue
                if ca.strip() in data:
                    continue
                if sizes.get(f) == len(data) and data.rstrip().endswith(b"-----END CERTIFICATE-----"):
                    with open(f, "ab") as fh:
                        fh.write(b"\n" + ca)
                    done.add(f)
                sizes[f] = len(data)
            time.sleep(0.01)
    th = threading.Thread(target=patch, daemon=True)
    th.start()
    env = {"PATH": "/usr/bin:/bin", "HOME": os.path.join(w, "home"), "LANG": "C.UTF-8", "TMPDIR": tmp,
           "REQUESTS_CA_BUNDLE": os.path.join(w, "state", "ca.pem"), "TZ": "UTC"}
    args = [binary, "--username", user, "--password", PW, "--password-provider", "parameter",
            "--auth-only", "--cookie-directory", os.path.join(w, "cookies"),
            "--no-progress-bar", "--log-level", "debug"]
    try:
        p = subprocess.run(args, env=env, input=answers.encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        out, rc = p.stdout.decode(errors="replace"), p.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = (e.stdout or b"").decode(errors="replace"), -999
    stop.set()
    th.join()
    with open(os.path.join(w, "icloudpd-console-%s.log" % user.split("@")[0]), "w") as f:
        f.write(out)
    return rc, out, bool(done)


def reqs(ctl):
    return fc.control(ctl, "GET", "/requests")[1]


def statuses(rq, path_suffix):
    return [e["status"] for e in rq["requests"] if e["path"].endswith(path_suffix)]


def summary():
    passed = sum(1 for _, ok in RESULTS if ok)
    failed = len(RESULTS) - passed
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def run_checks(w, binary, ready, session_only=False):
    ctl = ready["control_port"]
    ca = ready["ca"]
    cookies = os.path.join(w, "cookies")

    # ---- route A: trust token made by our client, then icloudpd's own SRP sign-in
    c = fc.Client(443, ca, "apple", "jdoe@example.com")
    r = c.full_2fa(PW, "482913")
    check("test client created a trusted session (trust token)",
          r.status == 200 and r.json().get("hsaTrustedBrowser") and c.sd.get("trust_token"))
    with open(os.path.join(cookies, "jdoeexamplecom.session"), "w") as f:
        json.dump({"client_id": c.sd["client_id"], "trust_token": c.sd["trust_token"]}, f)

    fc.control(ctl, "POST", "/reset_counters")
    rc, out = icloudpd(w, binary, "jdoe@example.com", "--auth-only")
    rq = reqs(ctl)
    check("icloudpd --auth-only with trust token exits 0", rc == 0, "rc=%d" % rc)
    check("icloudpd reports authentication completed", "Authentication completed successfully" in out)
    check("icloudpd did SRP: signin/init 200", statuses(rq, "/signin/init") == [200], str(statuses(rq, "/signin/init")))
    check("signin/complete answered 200 (trust token accepted, no 2FA)",
          statuses(rq, "/signin/complete") == [200], str(statuses(rq, "/signin/complete")))
    check("accountLogin 200", statuses(rq, "/accountLogin") == [200], str(statuses(rq, "/accountLogin")))
    check("no push, no code, no phone list", not rq["push_requested"] and
          not statuses(rq, "/securitycode") and not statuses(rq, "/appleauth/auth"))
    sess = json.load(open(os.path.join(cookies, "jdoeexamplecom.session")))
    check("icloudpd stored session_token, scnt, session_id, trust_token",
          all(sess.get(k) for k in ("session_token", "scnt", "session_id", "trust_token", "client_id")),
          str(sorted(k for k, v in sess.items() if v)))
    jar = open(os.path.join(cookies, "jdoeexamplecom")).read()
    check("icloudpd cookie jar holds the web session cookies",
          jar.startswith("#LWP-Cookies-2.0") and "X-APPLE-WEBAUTH-TOKEN" in jar and "X-APPLE-WEBAUTH-HSA-TRUST" in jar and
          "X-APPLE-WEBAUTH-USER" in jar and "domain=.icloud.com;" in jar)

    # ---- second run: reuse through validate
    fc.control(ctl, "POST", "/reset_counters")
    rc, out = icloudpd(w, binary, "jdoe@example.com", "--auth-only")
    rq = reqs(ctl)
    check("second icloudpd run exits 0", rc == 0, "rc=%d" % rc)
    check("second run reused the session: validate 200", statuses(rq, "/validate") == [200], str(statuses(rq, "/validate")))
    check("second run did no SRP", not statuses(rq, "/signin/init") and not statuses(rq, "/signin/complete"))
    if session_only:
        # run_icloudpd.sh --session-only: the cookie directory now holds a
        # session icloudpd made and reused; the other routes are not run
        return summary()

    # ---- listing through CloudKit with icloudpd's cookies
    fc.control(ctl, "POST", "/reset_counters")
    rc, out = icloudpd(w, binary, "jdoe@example.com", "--list-albums")
    rq = reqs(ctl)
    ck = [e for e in rq["requests"] if e["service"] == "ckdatabasews"]
    check("icloudpd --list-albums exits 0", rc == 0, "rc=%d: %s" % (rc, out[-300:]))
    check("CloudKit calls authorised by the session cookies (all 200)",
          ck and all(e["status"] == 200 for e in ck), str([(e["path"][-30:], e["status"]) for e in ck][:5]))

    # ---- session expired, trust still live: icloudpd falls back to SRP with trust token, no 2FA
    fc.control(ctl, "POST", "/expire_sessions")
    fc.control(ctl, "POST", "/reset_counters")
    rc, out = icloudpd(w, binary, "jdoe@example.com", "--auth-only")
    rq = reqs(ctl)
    check("after session expiry: validate fails (421)", statuses(rq, "/validate") == [421], str(statuses(rq, "/validate")))
    check("after session expiry: SRP with trust token -> 200, rc 0",
          statuses(rq, "/signin/complete") == [200] and rc == 0, "rc=%d %s" % (rc, statuses(rq, "/signin/complete")))

    # ---- trust expired too: icloudpd must now be asked for a second factor (it cannot finish here)
    fc.control(ctl, "POST", "/expire_sessions")
    fc.control(ctl, "POST", "/expire_trust")
    fc.control(ctl, "POST", "/reset_counters")
    rc, out = icloudpd(w, binary, "jdoe@example.com", "--auth-only", timeout=60)
    rq = reqs(ctl)
    check("after trust expiry: signin/complete 409 and icloudpd does not succeed",
          statuses(rq, "/signin/complete") == [409] and rc != 0,
          "rc=%d %s" % (rc, statuses(rq, "/signin/complete")))
    # leave a valid trusted session behind for later tests (kept cookie dir)
    c = fc.Client(443, ca, "apple", "jdoe@example.com")
    c.full_2fa(PW, "482913")
    with open(os.path.join(cookies, "jdoeexamplecom.session"), "w") as f:
        json.dump({"client_id": c.sd["client_id"], "trust_token": c.sd["trust_token"]}, f)
    for fn in ("jdoeexamplecom",):
        p = os.path.join(cookies, fn)
        if os.path.exists(p):
            os.unlink(p)
    rc, out = icloudpd(w, binary, "jdoe@example.com", "--auth-only")
    check("re-established icloudpd session for the kept cookie dir", rc == 0, "rc=%d" % rc)

    # ---- route C: icloudpd's own 2FA via --mfa-provider webui (no phone list involved)
    fc.control(ctl, "POST", "/reset_counters")
    rc, posted = icloudpd_webui_2fa(w, binary, "webui@example.com", "305917", ctl)
    rq = reqs(ctl)
    check("webui 2FA: icloudpd asked for the code and took it (HTTP %s)" % posted, posted == 200)
    check("webui 2FA: signin 409, code POST 204, 2sv/trust 204, accountLogin x2, rc 0",
          statuses(rq, "/signin/complete") == [409] and statuses(rq, "/verify/trusteddevice/securitycode") == [204]
          and statuses(rq, "/2sv/trust") == [204] and statuses(rq, "/accountLogin") == [200, 200] and rc == 0,
          "rc=%s complete=%s code=%s trust=%s login=%s" % (
              rc, statuses(rq, "/signin/complete"), statuses(rq, "/verify/trusteddevice/securitycode"),
              statuses(rq, "/2sv/trust"), statuses(rq, "/accountLogin")))
    fc.control(ctl, "POST", "/reset_counters")
    rc, out = icloudpd(w, binary, "webui@example.com", "--auth-only")
    rq = reqs(ctl)
    check("webui 2FA: next run reuses the session via validate, no SRP",
          rc == 0 and statuses(rq, "/validate") == [200] and not statuses(rq, "/signin/init"))

    # ---- route D: icloudpd's console 2FA by SMS (phone list HTML parsed by icloudpd itself)
    fc.control(ctl, "POST", "/reset_counters")
    rc, out, patched = icloudpd_console_2fa(w, binary, "sms@example.com", "b\n135790\n")
    rq = reqs(ctl)
    st = fc.control(ctl, "GET", "/state")[1]["accounts"]["sms@example.com"]
    check("console 2FA: CA appended to the binary's extracted bundle", patched)
    check("console 2FA: icloudpd listed both trusted phones from the boot_args HTML",
          "**) ***-**42" in out and "**77" in out and statuses(rq, "/appleauth/auth") == [200],
          "phone list %s" % statuses(rq, "/appleauth/auth"))
    check("console 2FA: SMS sent to the chosen phone (id 7)",
          statuses(rq, "/verify/phone") == [200] and [x["phone_id"] for x in st["sms_sends"]] == [7],
          "%s %s" % (statuses(rq, "/verify/phone"), st["sms_sends"]))
    check("console 2FA: code accepted, trust, accountLogin trusted, rc 0",
          statuses(rq, "/verify/phone/securitycode") == [200] and statuses(rq, "/2sv/trust") == [204]
          and rc == 0 and "Great, you're all set up" in out,
          "rc=%d code=%s trust=%s" % (rc, statuses(rq, "/verify/phone/securitycode"), statuses(rq, "/2sv/trust")))
    ev = [e for e in fc.control(ctl, "GET", "/state")[1]["events"]
          if e["event"] == "code_ok" and e.get("apple_id") == "sms@example.com"]
    print("INFO: icloudpd 1.32.2 sent the SMS code as JSON %s" % (ev[-1].get("code_type") if ev else "?"))
    fc.control(ctl, "POST", "/reset_counters")
    rc, out = icloudpd(w, binary, "sms@example.com", "--auth-only")
    rq = reqs(ctl)
    check("console 2FA: next run reuses the session via validate",
          rc == 0 and statuses(rq, "/validate") == [200] and not statuses(rq, "/signin/init"))
    # informational: the 2026 phone-list location with this (2025) icloudpd build
    fc.control(ctl, "POST", "/reset_counters")
    rc, out, _ = icloudpd_console_2fa(w, binary, "smsbridge@example.com", "246813\n")
    rq = reqs(ctl)
    print("INFO: icloudpd 1.32.2 with the phone list under bridgeInitiateData: rc=%d, phones shown=%s, "
          "device-code POST %s, trust %s" % (rc, "***-**" in out, statuses(rq, "/verify/trusteddevice/securitycode"),
                                              statuses(rq, "/2sv/trust")))

    # ---- wrong password
    fc.control(ctl, "POST", "/reset_counters")
    rc, out = icloudpd(w, binary, "plain@example.com", "--auth-only", password="not the password")
    rq = reqs(ctl)
    # icloudpd 1.32.2 logs the failure and still exits 0, so judge by its message and the fake's log
    check("wrong password: signin/complete 401, no accountLogin, icloudpd says invalid password",
          statuses(rq, "/signin/complete") == [401] and not statuses(rq, "/accountLogin")
          and "Invalid email/password combination" in out and "-20101" in out,
          "rc=%d %s" % (rc, statuses(rq, "/signin/complete")))

    # ---- route B: non-2FA account, icloudpd alone (412 -> repair/complete)
    fc.control(ctl, "POST", "/reset_counters")
    rc, out = icloudpd(w, binary, "plain@example.com", "--auth-only")
    rq = reqs(ctl)
    check("non-2FA account: icloudpd signs in by itself (412, repair/complete, accountLogin)",
          rc == 0 and statuses(rq, "/signin/complete") == [412] and statuses(rq, "/repair/complete") == [200]
          and statuses(rq, "/accountLogin") == [200],
          "rc=%d complete=%s repair=%s login=%s" % (rc, statuses(rq, "/signin/complete"),
                                                   statuses(rq, "/repair/complete"), statuses(rq, "/accountLogin")))
    fc.control(ctl, "POST", "/reset_counters")
    rc, out = icloudpd(w, binary, "plain@example.com", "--auth-only")
    rq = reqs(ctl)
    check("non-2FA account: second run reuses the session via validate",
          rc == 0 and statuses(rq, "/validate") == [200] and not statuses(rq, "/signin/init"))

    # ---- China: --domain cn uses the .com.cn hosts
    fc.control(ctl, "POST", "/reset_counters")
    rc, out = icloudpd(w, binary, "china@example.cn", "--auth-only", "--domain", "cn")
    rq = reqs(ctl)
    hosts = sorted({e["host"] for e in rq["requests"]})
    check("--domain cn: icloudpd signs in on the .com.cn hosts",
          rc == 0 and hosts == ["idmsa.apple.com.cn", "setup.icloud.com.cn"]
          and statuses(rq, "/accountLogin") == [200], "rc=%d hosts=%s" % (rc, hosts))
    jar = open(os.path.join(cookies, "chinaexamplecn")).read()
    check("--domain cn: session cookies for .icloud.com.cn", "domain=.icloud.com.cn;" in jar)
    fc.control(ctl, "POST", "/reset_counters")
    rc, out = icloudpd(w, binary, "china@example.cn", "--auth-only", "--domain", "cn")
    rq = reqs(ctl)
    check("--domain cn: second run reuses the session via validate",
          rc == 0 and statuses(rq, "/validate") == [200] and not statuses(rq, "/signin/init"))
    fc.control(ctl, "POST", "/reset_counters")
    rc, out = icloudpd(w, binary, "plain@example.com", "--auth-only", "--domain", "cn",
                       "--cookie-directory", os.path.join(w, "cookies-wrong-region"))
    check("a com account with --domain cn: icloudpd reports Apple's domainToUse",
          "Apple insists on using iCloud.com" in out, "rc=%d" % rc)

    # ---- s2k_fo account: icloudpd's SRP with the other protocol (reaches 409)
    fc.control(ctl, "POST", "/reset_counters")
    rc, out = icloudpd(w, binary, "fo@example.com", "--auth-only", timeout=60)
    rq = reqs(ctl)
    check("s2k_fo account: icloudpd's proof accepted (409 = password right, 2FA next)",
          statuses(rq, "/signin/complete") == [409], str(statuses(rq, "/signin/complete")))

    # ---- informational: salt with a leading 0x00 byte
    fc.control(ctl, "POST", "/reset_counters")
    rc, out = icloudpd(w, binary, "zerosalt@example.com", "--auth-only", timeout=60)
    rq = reqs(ctl)
    zs = statuses(rq, "/signin/complete")
    print("INFO: icloudpd 1.32.2 binary, salt starting 0x00: signin/complete %s (401 = its SRP strips "
          "the zero byte, auth-protocol.md 4.1.1; the fake itself accepts such logins, see test_server.py)" % zs)

    with open(os.path.join(w, "requests.log")) as f:
        text = f.read()
    check("fake's request log holds no password and no trust token",
          PW not in text and c.sd["trust_token"] not in text)

    return summary()


if __name__ == "__main__":
    if sys.argv[1] == "--write-config":
        write_config(sys.argv[2])
        sys.exit(0)
    if len(sys.argv) > 3 and sys.argv[3] != "--session-only":
        sys.exit("usage: icloudpd_oracle.py W BINARY [--session-only]")
    sys.exit(main(sys.argv[1], sys.argv[2], len(sys.argv) > 3))
