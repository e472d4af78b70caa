#!/usr/bin/python3
"""`icpd auth --import-icloudpd` on a cookie directory that the real
icloudpd 1.32.2 wrote: icloudpd signs in against the fake itself
(tests/fake_icloud/run_icloudpd.sh --session-only, its own private copy),
then icpd adopts the session with no password and no code.

usage: test_icloudpd_import.py ICPD_BINARY [unittest args]

Exit 77 (meson: SKIP), with the reason on stderr, when the real icloudpd
cannot run here (no root, unshare not permitted, no icloudpd binary and no
npm): then nothing was checked.  Every other problem in making the
icloudpd session is a failure, not a skip.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import fakeenv_auth as fe

ICPD = None
SESSION = None  # the kept icloudpd cookie directory, fake state and accounts.json
USER = "jdoe@example.com"  # the account icloudpd_oracle.py signs in (route A)


def make_icloudpd_session(dest):
    """Run the real icloudpd against the fake; returns (exit code, its output)."""
    r = subprocess.run(["sh", os.path.join(fe.FAKE_DIR, "run_icloudpd.sh"), "--session-only", dest],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    return r.returncode, r.stdout.decode("utf-8", "replace")


class ImportRealIcloudpdSession(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="icpd-import-test-")
        self.cookies = os.path.join(self.tmp, "cookies")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def icpd(self, cmd, extra, fake):
        args = [cmd, "-u", USER, "--cookie-directory", self.cookies] + fake.endpoint_args()
        r = fe.run_icpd(ICPD, args + list(extra), "", fake.env())
        r.out = r.stdout.decode("utf-8", "replace")
        r.err = r.stderr.decode("utf-8", "replace")
        return r

    def ok(self, r):
        self.assertEqual(r.returncode, 0, "icpd failed:\nstdout:\n%s\nstderr:\n%s" % (r.out, r.err))

    def test_import_session_made_by_real_icloudpd(self):
        """icpd adopts icloudpd's cookie directory and uses it with no
        password (none given) and no code (stdin empty)."""
        fake = fe.Fake(os.path.join(SESSION, "accounts.json"),
                       state_from=os.path.join(SESSION, "state"))
        try:
            pydir = os.path.join(self.tmp, "icloudpd-cookies")
            shutil.copytree(os.path.join(SESSION, "cookies"), pydir)
            self.assertTrue(os.path.exists(os.path.join(pydir, "jdoeexamplecom.session")),
                            sorted(os.listdir(pydir)))
            r = self.icpd("auth", ["--import-icloudpd", pydir], fake)
            self.ok(r)
            log = fake.requests()["counts"]
            self.assertEqual(log.get("POST /setup/ws/1/validate"), 1, log)
            self.assertNotIn("POST /appleauth/auth/signin/init", log)
            self.assertEqual(fake.counters()["pushes"], 0)
            # the imported session is now icpd's own: reused without icloudpd's files
            shutil.rmtree(pydir)
            r = self.icpd("sync", ["--auth-only"], fake)
            self.ok(r)
            self.assertNotIn("POST /appleauth/auth/signin/init", fake.requests()["counts"])
        finally:
            fake.stop()


def main():
    global ICPD, SESSION
    ICPD = os.path.abspath(sys.argv.pop(1))
    work = tempfile.mkdtemp(prefix="icpd-icloudpd-session-")
    try:
        SESSION = os.path.join(work, "session")
        rc, out = make_icloudpd_session(SESSION)
        if rc == 77:
            print("*" * 70 + "\nSKIP (77): the real icloudpd could not run here, so no session "
                  "made by it was imported; NOTHING was checked:\n" + out[-3000:] + "\n" + "*" * 70,
                  file=sys.stderr)
            return 77
        if rc != 0:
            print("FAIL: run_icloudpd.sh --session-only exited %d:\n%s" % (rc, out[-6000:]),
                  file=sys.stderr)
            return 1
        print(out[-1500:], file=sys.stderr)
        prog = unittest.main(verbosity=2, exit=False)
        res = prog.result
        # a skipped or empty run is not a pass
        if not res.wasSuccessful() or res.skipped or res.testsRun == 0:
            return 1
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
