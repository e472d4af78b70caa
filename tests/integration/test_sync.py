"""icpd sync end to end against the fake iCloud: `icpd auth` once, then
`icpd sync` into a fresh directory must give exactly the tree icloudpd
would (tests/fake_icloud/expected_tree.py), a second run downloads
nothing, a lost state database is rebuilt by adoption with zero downloads,
and download faults (cut, short, slow, 429, 5xx) end in the right file or a
clear per-asset failure with exit 4, never a wrong file and never a partial
file outside the hidden temp folder.  The crash loop stops the sync after
state-changing step N and resumes.

Usage: /usr/bin/python3 test_sync.py /path/to/icpd
"""
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
import fakeenv_auth as fe  # noqa: E402  (the sign-in helpers' environment; lead will unify)

sys.path.insert(0, os.path.join(HERE, "..", "fake_icloud"))
import expected_tree as ET  # noqa: E402
import library as L  # noqa: E402

ICPD = None
USER = "sync@example.com"
PW = "correct horse battery staple"
N_ASSETS = 40


def walk(root):
    """{relpath: (size, mtime)} of every file under root except the hidden temp folder."""
    out = {}
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        if rel == ".icpd-tmp" or rel.startswith(".icpd-tmp" + os.sep):
            continue
        for f in files:
            p = os.path.join(d, f)
            st = os.lstat(p)
            out[os.path.normpath(os.path.join(rel, f))] = (st.st_size, int(st.st_mtime))
    return out


def tmp_entries(root):
    t = os.path.join(root, ".icpd-tmp")
    return sorted(os.listdir(t)) if os.path.isdir(t) else []


class Env:
    """A fake with one account and a generated library, signed in once."""

    def __init__(self, spec):
        self.tmp = tempfile.mkdtemp(prefix="icpd-sync-test-")
        self.spec = spec
        self.lib_path = os.path.join(self.tmp, "library.json")
        with open(self.lib_path, "w") as f:
            json.dump(spec, f)
        self.lib = L.Library.from_spec(json.loads(json.dumps(spec)))
        self.fake = fe.Fake([{"apple_id": USER, "password": PW, "iterations": 1000,
                              "library": self.lib_path}], hosts="localhost")
        self.cookies = os.path.join(self.tmp, "cookies")
        self.pw = os.path.join(self.tmp, "pw")
        with open(self.pw, "w") as f:
            f.write(PW + "\n")
        os.chmod(self.pw, 0o600)
        r = self.icpd("auth", stdin="\n123456\n")
        if r.returncode != 0:
            raise RuntimeError("icpd auth failed: %s" % r.stderr.decode("utf-8", "replace"))

    def stop(self):
        self.fake.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def icpd(self, cmd, *extra, stdin="", env=None, timeout=300):
        args = [cmd, "-u", USER, "--cookie-directory", self.cookies]
        if cmd in ("auth", "sync"):
            args += ["--password-file", self.pw] + self.fake.endpoint_args()
        args += list(extra)
        e = {"TZ": "UTC", "ICPD_TEST_BACKOFF_MS": "50"}
        e.update(self.fake.env())
        e.update(env or {})
        return fe.run_icpd(ICPD, args, stdin, e, timeout=timeout)

    def sync(self, out, *extra, env=None):
        return self.icpd("sync", "-d", out, "--no-progress-bar", *extra, env=env)

    def downloads(self):
        """Download requests (GETs on the content host) since the last reset."""
        return sum(1 for r in self.fake.requests()["requests"]
                   if r["method"] == "GET" and r["path"].startswith("/B/"))

    def fault(self, rule):
        self.fake.ctl("POST", "/faults", {"action": "cloudkit_fault", "rule": rule})

    def expected(self, **opts):
        opts.setdefault("tz", "UTC")
        return ET.expected_icloudpd_tree(self.lib, opts)


def show(r):
    return "exit %d\nstdout:\n%s\nstderr:\n%s" % (
        r.returncode, r.stdout.decode("utf-8", "replace")[-3000:],
        r.stderr.decode("utf-8", "replace")[-6000:])


class SyncTree(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = Env(L.generate_spec(N_ASSETS, 7, hostile="none"))

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def setUp(self):
        self.out = tempfile.mkdtemp(prefix="icpd-sync-out-", dir=self.env.tmp)
        for f in os.listdir(self.env.cookies):
            if f.startswith("icpd-") and ".db" in f:
                os.unlink(os.path.join(self.env.cookies, f))
        self.env.fake.reset()

    def test_tree_second_run_adoption_status_verify(self):
        exp = self.env.expected()
        self.assertGreater(len(exp), 30)
        r = self.env.sync(self.out, "--report-json", os.path.join(self.env.tmp, "r1.json"))
        self.assertEqual(r.returncode, 0, show(r))
        self.assertEqual(walk(self.out), exp)
        self.assertEqual(tmp_entries(self.out), [])
        self.assertEqual(self.env.downloads(), len(exp))
        with open(os.path.join(self.env.tmp, "r1.json")) as f:
            rep = json.load(f)
        self.assertEqual((rep["result"], rep["downloaded"], rep["failed"]), ("ok", len(exp), 0))
        self.assertEqual(rep["bytes"], sum(v[0] for v in exp.values()))
        # modes
        some = os.path.join(self.out, sorted(exp)[0])
        self.assertEqual(os.stat(some).st_mode & 0o777, 0o644)
        self.assertEqual(os.stat(os.path.dirname(some)).st_mode & 0o777, 0o755)

        # second run: nothing downloaded, few CloudKit requests (sync tokens)
        self.env.fake.reset()
        r = self.env.sync(self.out)
        self.assertEqual(r.returncode, 0, show(r))
        self.assertEqual(self.env.downloads(), 0)
        ck = sum(1 for q in self.env.fake.requests()["requests"]
                 if "/database/1/" in q["path"])
        self.assertLessEqual(ck, 10, "second run CloudKit requests")
        self.assertEqual(walk(self.out), exp)

        # the state database is lost: adoption, zero downloads
        for f in os.listdir(self.env.cookies):
            if f.startswith("icpd-") and ".db" in f:
                os.unlink(os.path.join(self.env.cookies, f))
        self.env.fake.reset()
        r = self.env.sync(self.out, "--report-json", os.path.join(self.env.tmp, "r3.json"))
        self.assertEqual(r.returncode, 0, show(r))
        self.assertEqual(self.env.downloads(), 0)
        with open(os.path.join(self.env.tmp, "r3.json")) as f:
            rep = json.load(f)
        self.assertEqual((rep["adopted"], rep["downloaded"]), (len(exp), 0))

        r = self.env.icpd("status", "--json")
        self.assertEqual(r.returncode, 0, show(r))
        st = json.loads(r.stdout)
        self.assertEqual(st["files_adopted"], len(exp))
        self.assertEqual(st["last_run"]["result"], "ok")
        self.assertTrue(st["database"].startswith(self.env.cookies))
        self.assertIsNotNone(st["trust_expires"], st)
        self.assertGreater(st["trust_days_left"], 0)
        r = self.env.icpd("verify", "-d", self.out)
        self.assertEqual(r.returncode, 0, show(r))
        # a damaged file is found by verify (exit 4) and replaced by the next sync
        victim = os.path.join(self.out, sorted(exp)[1])
        with open(victim, "r+b") as f:
            f.truncate(10)
        r = self.env.icpd("verify", "-d", self.out)
        self.assertEqual(r.returncode, 4, show(r))
        self.assertIn(sorted(exp)[1], r.stdout.decode())

    def test_adopts_icloudpd_tree(self):
        """A tree icloudpd filled (simulated by expected sizes and mtimes with
        the fake's bytes) is adopted with zero downloads."""
        exp = self.env.expected()
        r = self.env.sync(self.out)
        self.assertEqual(r.returncode, 0, show(r))
        # move the tree aside as "icloudpd's", lose the state, sync over it
        other = self.out + "-icloudpd"
        shutil.copytree(self.out, other, ignore=shutil.ignore_patterns(".icpd-tmp"))
        for f in os.listdir(self.env.cookies):
            if f.startswith("icpd-") and ".db" in f:
                os.unlink(os.path.join(self.env.cookies, f))
        self.env.fake.reset()
        r = self.env.sync(other)
        self.assertEqual(r.returncode, 0, show(r))
        self.assertEqual(self.env.downloads(), 0)
        self.assertEqual(walk(other), exp)

    def test_icloudpd_style_command_line(self):
        """icloudpd's flags and no command behave as icpd sync."""
        args = ["--username", USER, "--directory", self.out, "--cookie-directory",
                self.env.cookies, "--password-file", self.env.pw, "--no-progress-bar",
                "--folder-structure", "{:%Y/%m}"] + self.env.fake.endpoint_args()
        e = {"TZ": "UTC"}
        e.update(self.env.fake.env())
        r = fe.run_icpd(ICPD, args, "", e, timeout=300)
        self.assertEqual(r.returncode, 0, show(r))
        self.assertEqual(walk(self.out), self.env.expected(folder_structure="{:%Y/%m}"))

    def test_incremental_add_and_auto_delete(self):
        spec = L.generate_spec(12, 5, hostile="none", albums=False)
        env = Env(spec)
        self.addCleanup(env.stop)
        out = os.path.join(env.tmp, "out")
        r = env.sync(out)
        self.assertEqual(r.returncode, 0, show(r))
        before = env.expected()
        self.assertEqual(walk(out), before)
        # a new photo: the incremental run fetches exactly its file(s)
        lib2 = L.Library.from_spec(json.loads(json.dumps(spec)))
        uid = env.fake.ctl("POST", "/mutate", {"apple_id": USER, "op": "add"})
        env.fake.reset()
        r = env.sync(out)
        self.assertEqual(r.returncode, 0, show(r))
        got = walk(out)
        new = sorted(set(got) - set(before))
        self.assertEqual(len(new), env.downloads(), show(r))
        self.assertGreaterEqual(len(new), 1, (uid, show(r)))
        # delete one asset in iCloud: --auto-delete removes its local files only
        victim = lib2.assets[0]
        env.fake.ctl("POST", "/mutate", {"apple_id": USER, "op": "delete", "asset": victim.uuid})
        lib2.mutate({"op": "delete", "asset": victim.uuid})
        gone = sorted(set(before) - set(ET.expected_icloudpd_tree(lib2, {"tz": "UTC"})))
        self.assertGreaterEqual(len(gone), 1)
        r = env.sync(out, "--auto-delete", "--report-json", os.path.join(env.tmp, "rep.json"))
        self.assertEqual(r.returncode, 0, show(r))
        with open(os.path.join(env.tmp, "rep.json")) as f:
            self.assertEqual(json.load(f)["deleted"], len(gone))
        after = walk(out)
        for g in gone:
            self.assertNotIn(g, after)
        self.assertEqual(set(after), set(got) - set(gone))
        # a file icpd does not know is never deleted: put one back by hand
        with open(os.path.join(out, gone[0]), "wb") as f:
            f.write(b"mine")
        r = env.sync(out, "--auto-delete")
        self.assertEqual(r.returncode, 0, show(r))
        self.assertIn(gone[0], walk(out))

    def test_state_never_under_the_photo_directory(self):
        inner = os.path.join(self.out, "cookies")
        args = ["sync", "-u", USER, "-d", self.out, "--cookie-directory", inner,
                "--password-file", self.env.pw] + self.env.fake.endpoint_args()
        r = fe.run_icpd(ICPD, args, "", dict(self.env.fake.env()))
        self.assertEqual(r.returncode, 2, show(r))
        self.assertIn("inside the photo directory", r.stderr.decode())
        self.assertFalse(os.path.exists(inner))

    def test_dry_run_and_only_print_filenames(self):
        r = self.env.sync(self.out, "--dry-run")
        self.assertEqual(r.returncode, 0, show(r))
        self.assertEqual(walk(self.out), {})
        self.assertEqual(self.env.downloads(), 0)
        r = self.env.sync(self.out, "--only-print-filenames")
        self.assertEqual(r.returncode, 0, show(r))
        printed = sorted(os.path.relpath(p, self.out) for p in r.stdout.decode().splitlines())
        self.assertEqual(printed, sorted(self.env.expected()))
        self.assertEqual(self.env.downloads(), 0)

    def test_xmp_sidecars_and_exif(self):
        r = self.env.sync(self.out, "--xmp-sidecar", "--set-exif-datetime")
        self.assertEqual(r.returncode, 0, show(r))
        got = walk(self.out)
        media = [k for k in got if not k.endswith(".xmp")]
        xmps = [k for k in got if k.endswith(".xmp")]
        self.assertGreater(len(xmps), 10)
        for x in xmps:
            self.assertIn(x[:-4], media)
            with open(os.path.join(self.out, x)) as f:
                self.assertIn('x:xmptk="icpd ', f.read())
        # exiftool (what Immich reads sidecars with) sees the date with its offset
        tags = json.loads(subprocess.run(
            ["exiftool", "-j", "-G1", os.path.join(self.out, xmps[0])],
            stdout=subprocess.PIPE, check=True).stdout)[0]
        self.assertRegex(tags.get("XMP-exif:DateTimeOriginal", ""),
                         r"^\d{4}:\d\d:\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d$", tags)
        self.assertTrue(tags.get("XMP-x:XMPToolkit", "").startswith("icpd "), tags)
        # every JPEG now has DateTimeOriginal = the asset date (UTC here); the
        # ones the fake made without it were edited (their size changed)
        exp = self.env.expected()
        jpegs = [k for k in media if k.lower().endswith((".jpg", ".jpeg"))]
        self.assertGreater(len(jpegs), 0)
        edited = 0
        for k in jpegs:
            path = os.path.join(self.out, k)
            dto = subprocess.run(["exiftool", "-s3", "-DateTimeOriginal", path],
                                 stdout=subprocess.PIPE, check=True).stdout.decode().strip()
            self.assertTrue(dto, "no DateTimeOriginal in %s" % k)
            if os.path.getsize(path) != exp[k][0]:
                edited += 1
                want = time.strftime("%Y:%m:%d %H:%M:%S", time.gmtime(exp[k][1]))
                self.assertEqual(dto, want, k)
            self.assertEqual(int(os.stat(path).st_mtime), exp[k][1], k)
        self.assertGreater(edited, 0, "no JPEG lacked DateTimeOriginal: the edit was not exercised")
        # a second run rewrites nothing and downloads nothing
        self.env.fake.reset()
        before = walk(self.out)
        r = self.env.sync(self.out, "--xmp-sidecar", "--set-exif-datetime")
        self.assertEqual(r.returncode, 0, show(r))
        self.assertEqual(self.env.downloads(), 0)
        self.assertEqual(walk(self.out), before)

    def test_crash_loop(self):
        exp = self.env.expected()
        for n in (1, 2, 5, 17, 40):
            out = tempfile.mkdtemp(prefix="icpd-crash-%d-" % n, dir=self.env.tmp)
            for f in os.listdir(self.env.cookies):
                if f.startswith("icpd-") and ".db" in f:
                    os.unlink(os.path.join(self.env.cookies, f))
            r = self.env.sync(out, env={"ICPD_TEST_STOP_AFTER_STEP": str(n)})
            self.assertEqual(r.returncode, -9, "step %d: %s" % (n, show(r)))
            got = walk(out)
            for k, v in got.items():
                self.assertEqual(v, exp.get(k), "step %d: partial or unexpected file %s" % (n, k))
            r = self.env.sync(out)
            self.assertEqual(r.returncode, 0, "resume after step %d: %s" % (n, show(r)))
            self.assertEqual(walk(out), exp, "after step %d" % n)
            self.assertEqual(tmp_entries(out), [])
            r = self.env.icpd("verify", "-d", out, "--checksums")
            self.assertEqual(r.returncode, 0, show(r))


# The option sets of the icloudpd interop check (tests/fake_icloud/
# check_tree_vs_icloudpd.py), whose model expected_tree.py matches what the
# real icloudpd 1.32.2 wrote.
OPTION_SETS = [
    ([], {}),
    (["--size", "adjusted"], {"sizes": ["adjusted"]}),
    (["--size", "medium"], {"sizes": ["medium"]}),
    (["--size", "thumb"], {"sizes": ["thumb"]}),
    (["--size", "original", "--size", "adjusted", "--size", "alternative"],
     {"sizes": ["original", "adjusted", "alternative"]}),
    (["--live-photo-mov-filename-policy", "original"], {"live_policy": "original"}),
    (["--file-match-policy", "name-id7"], {"file_match": "name-id7"}),
    (["--skip-videos"], {"skip_videos": True}),
    (["--album", "Vacation"], {"album": "Vacation"}),
    (["--album", "Favorites"], {"album": "Favorites"}),
    (["--folder-structure", "none"], {"folder_structure": "none"}),
    (["--folder-structure", "{:%Y/%m}"], {"folder_structure": "{:%Y/%m}"}),
    (["--live-photo-size", "medium"], {"live_photo_size": "medium"}),
    (["--keep-unicode-in-filenames"], {"keep_unicode": True}),
    (["--library", "@SHARED"], {"library": "@SHARED"}),
]


class OptionSets(unittest.TestCase):
    """icpd's tree equals icloudpd's for every option set (same paths, sizes,
    mtimes), on a library with hostile but writable names."""

    @classmethod
    def setUpClass(cls):
        cls.env = Env(L.generate_spec(N_ASSETS, 21, hostile="safe"))

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def test_option_sets(self):
        shared = [z["name"] for z in self.env.spec["zones"] if z["name"].startswith("SharedSync-")]
        for i, (args, opts) in enumerate(OPTION_SETS):
            with self.subTest(args=" ".join(args) or "(defaults)"):
                args = list(args)
                if opts.get("library") == "@SHARED":
                    args[1] = shared[0]
                    opts = dict(opts, library=shared[0])
                for f in os.listdir(self.env.cookies):
                    if f.startswith("icpd-") and ".db" in f:
                        os.unlink(os.path.join(self.env.cookies, f))
                out = os.path.join(self.env.tmp, "opt%d" % i)
                exp = self.env.expected(**opts)
                # icloudpd cannot write a name longer than 255 bytes and leaves
                # its .part; icpd shortens the name instead (naming.h)
                exp = {k: v for k, v in exp.items() if v[1] is not None}
                # icpd replaces control characters in names by '_' where icloudpd
                # keeps them (naming.h: they break terminals, logs and importers)
                exp = {re.sub("[\x00-\x1f\x7f\x80-\x9f]", "_", k): v for k, v in exp.items()}
                r = self.env.sync(out, *args)
                self.assertEqual(r.returncode, 0, show(r))
                got = walk(out)
                long_names = {k for k in got if len(os.path.basename(k).encode()) >= 250}
                self.assertEqual({k: v for k, v in got.items() if k not in long_names}, exp)


class RandomKills(unittest.TestCase):
    def test_sigkill_at_random_points(self):
        """SIGKILL the sync at random moments (downloads paced so kills land
        mid-transfer), rerun each time: never a partial or wrong file in view,
        and the last run ends with exactly the expected tree."""
        import random
        import time
        spec = L.generate_spec(60, 9, hostile="none", albums=False)
        spec["faults"] = {"bandwidth": 400000}
        env = Env(spec)
        self.addCleanup(env.stop)
        exp = env.expected()
        out = os.path.join(env.tmp, "out")
        rng = random.Random(1234)
        kills = 0
        for i in range(8):
            args = [ICPD, "sync", "-u", USER, "--cookie-directory", env.cookies,
                    "--password-file", env.pw, "-d", out, "--no-progress-bar",
                    "--threads", "4"] + env.fake.endpoint_args()
            e = {"TZ": "UTC", "ICPD_TEST_BACKOFF_MS": "50"}
            e.update(env.fake.env())
            p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 env=fe.icpd_env(e))
            time.sleep(rng.uniform(0.2, 1.5))
            if p.poll() is None:
                p.kill()
                kills += 1
            p.wait()
            for k, v in walk(out).items():
                self.assertEqual(v, exp.get(k), "kill %d: partial or unexpected file %s" % (i, k))
        self.assertGreaterEqual(kills, 3)
        r = env.sync(out)
        self.assertEqual(r.returncode, 0, show(r))
        self.assertEqual(walk(out), exp)
        self.assertEqual(tmp_entries(out), [])
        r = env.icpd("verify", "-d", out, "--checksums")
        self.assertEqual(r.returncode, 0, show(r))


class SyncFaults(unittest.TestCase):
    """One fake per case: the fake's download rules count per path and
    cannot be cleared."""

    def run_with(self, rules, *extra):
        spec = L.generate_spec(12, 3, hostile="none", albums=False)
        env = Env(spec)
        self.addCleanup(env.stop)
        for rule in rules:
            env.fault(rule)
        out = os.path.join(env.tmp, "out")
        rep = os.path.join(env.tmp, "report.json")
        r = env.sync(out, "--report-json", rep, *extra)
        with open(rep) as f:
            report = json.load(f)
        return env, out, r, report

    def assert_exact(self, env, out, r):
        self.assertEqual(r.returncode, 0, show(r))
        self.assertEqual(walk(out), env.expected())
        self.assertEqual(tmp_entries(out), [])

    def test_cut_body_resumes(self):
        env, out, r, _ = self.run_with([{"target": "download", "action": "cut", "after_bytes": 3000}])
        self.assert_exact(env, out, r)

    def test_short_body_resumes(self):
        env, out, r, _ = self.run_with([{"target": "download", "action": "short", "missing": 100}])
        self.assert_exact(env, out, r)

    def test_429_and_5xx_retried(self):
        env, out, r, _ = self.run_with([
            {"target": "download", "action": "status", "status": 429, "retry_after": 1},
            {"target": "download", "nth": 2, "action": "status", "status": 503}])
        self.assert_exact(env, out, r)

    def test_slow_drip(self):
        env, out, r, _ = self.run_with([{"target": "download", "action": "drip", "rate": 200000}])
        self.assert_exact(env, out, r)

    def test_html_error_page_never_becomes_a_file(self):
        env, out, r, _ = self.run_with([{"target": "download", "action": "status", "status": 200}])
        self.assertIn(r.returncode, (0, 4), show(r))
        exp = env.expected()
        for k, v in walk(out).items():
            self.assertEqual(v, exp.get(k), "wrong file %s" % k)

    def test_one_file_keeps_failing_exit_4(self):
        spec = L.generate_spec(12, 3, hostile="none", albums=False)
        env = Env(spec)
        self.addCleanup(env.stop)
        exp = env.expected()
        out = os.path.join(env.tmp, "out")
        r = env.sync(out)
        self.assertEqual(r.returncode, 0, show(r))
        victim = sorted(exp)[0]
        os.unlink(os.path.join(out, victim))
        # all downloads fail from now on; only the victim is fetched again
        env.fault({"target": "download", "action": "status", "status": 503, "times": 0})
        rep = os.path.join(env.tmp, "report.json")
        r = env.sync(out, "--report-json", rep)
        self.assertEqual(r.returncode, 4, show(r))
        with open(rep) as f:
            report = json.load(f)
        self.assertEqual((report["failed"], report["exit_code"]), (1, 4))
        self.assertTrue(report["failures"][0]["path"].endswith(victim))
        self.assertEqual(report["failures"][0]["error"], "HTTP 503")
        want = dict(exp)
        del want[victim]
        self.assertEqual(walk(out), want)
        self.assertEqual(tmp_entries(out), [])

    def test_disk_full_exit_6(self):
        """A full volume (a small tmpfs) stops the run with exit 6 and a clear
        message; what was saved is whole, nothing partial is in view, and a
        rerun with space completes the tree."""
        spec = L.generate_spec(12, 3, hostile="none", albums=False)
        env = Env(spec)
        self.addCleanup(env.stop)
        exp = env.expected()
        out = os.path.join(env.tmp, "small")
        os.makedirs(out)
        total = sum(v[0] for v in exp.values())
        # Room for the two largest files at once (two transfers run), so
        # some file always lands whatever order they go in, and for well
        # under the whole library, so the volume always fills.
        sizes = sorted(v[0] for v in exp.values())
        size_k = max(64, (sizes[-1] + sizes[-2]) // 1024 + 64)
        self.assertLess(size_k * 1024, total * 2 // 3, "library too small to fill the volume")
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dk" % size_k, "tmpfs", out],
                          stderr=subprocess.DEVNULL).returncode != 0:
            self.skipTest("cannot mount a tmpfs here (needs root)")
        self.addCleanup(subprocess.run, ["umount", "-l", out], stderr=subprocess.DEVNULL)
        r = env.sync(out, "--threads", "2")
        self.assertEqual(r.returncode, 6, show(r))
        self.assertIn("disk full", r.stderr.decode())
        got = walk(out)
        self.assertGreater(len(got), 0)
        self.assertLess(len(got), len(exp))
        for k, v in got.items():
            self.assertEqual(v, exp.get(k), "partial or wrong file %s" % k)
        subprocess.run(["umount", "-l", out], check=True)
        r = env.sync(out)
        self.assertEqual(r.returncode, 0, show(r))
        self.assertEqual(walk(out), exp)

    def test_session_expiry_between_runs(self):
        """The web session expired (trust still valid): the next sync signs in
        again with the stored trust token and the password file, no code."""
        spec = L.generate_spec(12, 3, hostile="none", albums=False)
        env = Env(spec)
        self.addCleanup(env.stop)
        out = os.path.join(env.tmp, "out")
        r = env.sync(out)
        self.assertEqual(r.returncode, 0, show(r))
        env.fake.ctl("POST", "/expire_sessions", {"apple_id": USER})
        env.fake.ctl("POST", "/mutate", {"apple_id": USER, "op": "add"})
        r = env.sync(out, "--report-json", os.path.join(env.tmp, "rep.json"))
        self.assertEqual(r.returncode, 0, show(r))
        with open(os.path.join(env.tmp, "rep.json")) as f:
            self.assertGreaterEqual(json.load(f)["downloaded"], 1)
        self.assertEqual(tmp_entries(out), [])

    def test_session_expiry_mid_listing(self):
        """A 421 on the second listing page: icpd validates the session again
        and the run ends with the exact tree."""
        spec = L.generate_spec(130, 4, hostile="none", albums=False)
        env = Env(spec)
        self.addCleanup(env.stop)
        env.fake.ctl("POST", "/faults", {"action": "421", "path_regex": "/records/query",
                                         "nth": 2, "count": 1})
        out = os.path.join(env.tmp, "out")
        r = env.sync(out, "--listing-parallelism", "1")
        self.assertEqual(r.returncode, 0, show(r))
        self.assertIn("validating it again", r.stderr.decode())
        self.assertEqual(walk(out), env.expected())

    def test_persistent_failure_exit_4(self):
        spec = L.generate_spec(12, 3, hostile="none", albums=False)
        lib = L.Library.from_spec(json.loads(json.dumps(spec)))
        exp = ET.expected_icloudpd_tree(lib, {"tz": "UTC"})
        # every download fails, every time: each file is a clear failure
        env = Env(spec)
        self.addCleanup(env.stop)
        out = os.path.join(env.tmp, "out")
        env.fault({"target": "download", "action": "status", "status": 500, "times": 0})
        rep = os.path.join(env.tmp, "report.json")
        r = env.sync(out, "--report-json", rep)
        self.assertEqual(r.returncode, 4, show(r))
        with open(rep) as f:
            report = json.load(f)
        self.assertEqual(report["exit_code"], 4)
        self.assertEqual(report["failed"], len(exp))
        self.assertTrue(all(x["error"] == "HTTP 500" for x in report["failures"]))
        self.assertEqual(walk(out), {})
        self.assertIn("failed", r.stderr.decode())
        self.assertEqual(tmp_entries(out), [])


class SyncDeleteInICloud(unittest.TestCase):
    """--delete-after-download and --keep-icloud-recent-days: one fake per
    case, since they change the library."""

    def make_env(self, n=14, seed=5):
        spec = L.generate_spec(n, seed, hostile="none", albums=False)
        env = Env(spec)
        self.addCleanup(env.stop)
        return env

    @staticmethod
    def library(env):
        return {a["uuid"]: a for a in env.fake.ctl("GET", "/library?apple_id=" + USER)["assets"]}

    @staticmethod
    def listed(env):
        """Assets of the main listing (what a plain sync plans)."""
        return {x.uuid for x in env.lib.assets
                if x.zone == 0 and not (x.deleted or x.hidden or x.purged)}

    @staticmethod
    def trashed(before, after):
        return {u for u, a in after.items() if a["deleted"] and not before[u]["deleted"]}

    @staticmethod
    def modify_requests(env):
        return sum(1 for r in env.fake.requests()["requests"]
                   if r["method"] == "POST" and r["path"].endswith("/records/modify"))

    def test_delete_after_download_moves_exactly_the_verified_assets(self):
        env = self.make_env(14, 1)   # 4 live photos and one already in Recently Deleted
        listed = self.listed(env)
        self.assertGreater(len(listed), 8)
        # one live photo whose video never downloads: its photo is saved,
        # but the asset is not whole locally, so it stays in iCloud
        victim = next(x for x in env.lib.assets if x.uuid in listed and "live" in x.res)
        fc = env.lib.checksum(victim, "live").replace("+", "-").replace("/", "_")
        env.fake.reset()
        env.fault({"target": "download", "op": fc, "action": "status", "status": 500, "times": 0})
        before = self.library(env)
        out = os.path.join(env.tmp, "out")
        rep = os.path.join(env.tmp, "rep.json")
        r = env.sync(out, "--delete-after-download", "--report-json", rep)
        self.assertEqual(r.returncode, 4, show(r))
        after = self.library(env)
        self.assertEqual(self.trashed(before, after), listed - {victim.uuid}, show(r))
        self.assertFalse(after[victim.uuid]["deleted"])
        # nothing else changed: hidden, purged and other zones untouched
        for u, a in after.items():
            if u not in listed:
                self.assertEqual(a, before[u])
        with open(rep) as f:
            report = json.load(f)
        self.assertEqual((report["icloud_trashed"], report["icloud_trash_kept"],
                          report["icloud_trash_failed"]), (len(listed) - 1, 1, 0))
        self.assertEqual(report["failed"], 1)
        # every file but the failed video is on disk; one request for all of them
        exp = env.expected()
        self.assertEqual(len(walk(out)), len(exp) - 1)
        self.assertEqual(self.modify_requests(env), 1)
        err = r.stderr.decode()
        self.assertIn("keeping '", err)
        self.assertEqual(err.count("to Recently Deleted in iCloud") - 1, len(listed) - 1, err)
        # the next run lists only the victim; its video still fails, so it stays
        before, n = after, self.modify_requests(env)
        r = env.sync(out, "--delete-after-download")
        self.assertEqual(r.returncode, 4, show(r))
        self.assertEqual(self.trashed(before, self.library(env)), set())
        self.assertEqual(self.modify_requests(env), n)

    def count(self, env, path_end):
        return sum(1 for r in env.fake.requests()["requests"]
                   if r["method"] == "POST" and r["path"].endswith(path_end))

    def test_asset_changed_in_icloud_meanwhile_stays(self):
        env = self.make_env(8, 3)
        listed = self.listed(env)
        victim = sorted(listed)[0]
        env.fake.reset()
        # someone favourites it in Photos between our listing and our records/modify
        env.fault({"target": "cloudkit", "op": "records/modify", "action": "mutate",
                   "mutation": {"op": "favourite", "asset": victim}})
        before = self.library(env)
        out = os.path.join(env.tmp, "out")
        r = env.sync(out, "--delete-after-download")
        self.assertEqual(r.returncode, 4, show(r))
        self.assertEqual(self.trashed(before, self.library(env)), listed - {victim})
        err = r.stderr.decode()
        self.assertIn("CONFLICT", err)
        self.assertIn("%d assets moved to Recently Deleted, 0 kept (not verified locally), 1 refused"
                      % (len(listed) - 1), err)
        # the conflict was checked once with records/lookup: not deleted, so it stays
        self.assertEqual((self.count(env, "/records/modify"), self.count(env, "/records/lookup")),
                         (1, 1))
        self.assertEqual(walk(out), env.expected())

    def test_lost_answer_is_not_a_failure(self):
        env = self.make_env(8, 3)
        listed = self.listed(env)
        env.fake.reset()
        # the modify goes through but its answer is lost: the retry meets only
        # conflicts, and records/lookup shows they are ours
        env.fault({"target": "cloudkit", "op": "records/modify", "action": "lost_answer"})
        before = self.library(env)
        out = os.path.join(env.tmp, "out")
        r = env.sync(out, "--delete-after-download")
        self.assertEqual(r.returncode, 0, show(r))
        self.assertEqual(self.trashed(before, self.library(env)), listed)
        self.assertEqual((self.count(env, "/records/modify"), self.count(env, "/records/lookup")),
                         (2, 1))

    def test_keep_icloud_recent_days_and_dry_run(self):
        env = self.make_env(16, 9)
        listed = self.listed(env)
        now_ms = time.time() * 1000
        age = {x.uuid: int((now_ms - x.asset_date) // 86400000) for x in env.lib.assets
               if x.uuid in listed}
        ages = sorted(set(age.values()))
        # a cut with at least two days on each side, so the clock cannot move an asset across
        cuts = [b for a, b in zip(ages, ages[1:]) if b - a >= 3]
        self.assertTrue(cuts, ages)
        keep = cuts[len(cuts) // 2] - 1
        old = {u for u, d in age.items() if d >= keep}
        self.assertTrue(0 < len(old) < len(listed), (keep, ages))
        out = os.path.join(env.tmp, "out")
        before = self.library(env)
        # a dry run changes nothing, in iCloud or on disk, and says what it would do
        env.fake.reset()
        r = env.sync(out, "--keep-icloud-recent-days", "0", "--dry-run")
        self.assertEqual(r.returncode, 0, show(r))
        self.assertEqual(self.library(env), before)
        self.assertEqual(self.modify_requests(env), 0)
        self.assertEqual(env.downloads(), 0)
        self.assertFalse(os.path.exists(out) and walk(out))
        self.assertIn("dry run: %d assets would be moved to Recently Deleted" % len(listed),
                      r.stderr.decode())
        # N days: everything downloads, only the older assets leave iCloud
        env.fake.reset()
        r = env.sync(out, "--keep-icloud-recent-days", str(keep))
        self.assertEqual(r.returncode, 0, show(r))
        self.assertEqual(walk(out), env.expected())
        after = self.library(env)
        self.assertEqual(self.trashed(before, after), old)
        self.assertEqual(self.modify_requests(env), 1)
        # 0 = every downloaded asset; nothing to download now, the rest go
        env.fake.reset()
        r = env.sync(out, "--keep-icloud-recent-days", "0")
        self.assertEqual(r.returncode, 0, show(r))
        self.assertEqual(env.downloads(), 0)
        self.assertEqual(self.trashed(after, self.library(env)), listed - old)
        self.assertEqual(self.modify_requests(env), 1)
        # and the tree is untouched by all that
        self.assertEqual(walk(out), env.expected())

    def test_refused_combinations(self):
        env = self.make_env(4, 2)
        out = os.path.join(env.tmp, "out")
        before = self.library(env)
        for args, what in ((["--auto-delete", "--delete-after-download"], "--auto-delete"),
                           (["--auto-delete", "--keep-icloud-recent-days", "0"], "--auto-delete"),
                           (["--delete-after-download", "--keep-icloud-recent-days", "3"],
                            "cannot be used together")):
            with self.subTest(args=args):
                env.fake.reset()
                r = env.sync(out, *args)
                self.assertEqual(r.returncode, 2, show(r))
                self.assertIn(what, r.stderr.decode())
                self.assertEqual(env.fake.requests()["total"], 0)
        self.assertEqual(self.library(env), before)
        self.assertFalse(os.path.exists(out))


class UrlRefresh(unittest.TestCase):
    """Download URLs live about an hour (cloudkit-photos.md §5.1).  A sync
    that outlives them asks records/lookup for fresh ones, in batches (at
    most 100 files, 200 records, per request), and still ends with the
    exact tree."""

    N = 150

    def setUp(self):
        spec = L.generate_spec(self.N, 5, hostile="none", albums=False)
        self.env = Env(spec)
        self.addCleanup(self.env.stop)
        self.out = os.path.join(self.env.tmp, "out")
        self.rep = os.path.join(self.env.tmp, "report.json")

    def lookups(self):
        return self.env.fake.count("POST", "/records/lookup")

    def refresh_lines(self, r):
        """(fresh, asked) of each refresh icpd made (debug log)."""
        return [(int(a), int(b)) for a, b in
                re.findall(r"refreshed (\d+) of (\d+) download URLs", r.stderr.decode())]

    def check(self, r):
        self.assertEqual(r.returncode, 0, show(r))
        with open(self.rep) as f:
            report = json.load(f)
        self.assertEqual(report["failed"], 0, report["failures"][:5])
        exp = self.env.expected()
        self.assertEqual(walk(self.out), exp)
        self.assertEqual(tmp_entries(self.out), [])
        self.assertEqual(report["downloaded"], len(exp))
        lines = self.refresh_lines(r)
        # one records/lookup per refresh, each for at most 100 files
        self.assertEqual(len(lines), self.lookups(), show(r))
        self.assertTrue(all(1 <= asked <= 100 for _, asked in lines), lines)
        return exp, lines

    def test_urls_expire_mid_run(self):
        """After 20 downloads the content host's clock jumps past the hour of
        every URL listed so far: each refused URL is refreshed, the waiting
        ones with it, and nothing fails."""
        self.env.fault({"expire_urls_after": 20})
        r = self.env.sync(self.out, "--report-json", self.rep, "--log-level", "debug")
        exp, lines = self.check(r)
        gone = sum(1 for q in self.env.fake.requests()["requests"]
                   if q["path"].startswith("/B/") and q["status"] == 410)
        self.assertGreaterEqual(gone, 1, "no URL expired: the test tests nothing")
        refreshed = sum(fresh for fresh, _ in lines)
        self.assertGreaterEqual(refreshed, gone)
        # batched: the transfers in flight at the jump and the waiting files
        # share lookups of up to 100 files each (one per file would be well
        # over a hundred); a little slack for files listed while the first
        # refused transfer was on the wire
        self.assertLessEqual(self.lookups(), (len(exp) + 99) // 100 + 2, lines)
        print("\n%d files, %d refused with 410, %d records/lookup requests refreshing %d URLs"
              % (len(exp), gone, self.lookups(), refreshed), file=sys.stderr)

    def test_listing_older_than_the_url_lifetime(self):
        """URLs older than the limit are refreshed before they are tried (the
        limit shortened from 55 min to 0.5 s, downloads slowed): the host
        never refuses one."""
        self.env.fault({"bandwidth": 400000})
        r = self.env.sync(self.out, "--report-json", self.rep, "--log-level", "debug",
                          env={"ICPD_TEST_URL_MAX_AGE_MS": "500"})
        exp, lines = self.check(r)
        self.assertGreaterEqual(self.lookups(), 1, show(r))
        # batched: how many lookups depends on how long the run takes (a
        # wave per half of the age limit); each serves the whole waiting
        # queue, so on average well over ten files (one per file would be 1)
        self.assertGreaterEqual(sum(f for f, _ in lines), 10 * self.lookups(), lines)
        refused = [q for q in self.env.fake.requests()["requests"]
                   if q["path"].startswith("/B/") and q["status"] >= 400]
        self.assertEqual(refused, [])
        print("\n%d files, %d records/lookup requests refreshing %d URLs"
              % (len(exp), self.lookups(), sum(f for f, _ in lines)), file=sys.stderr)


def main():
    global ICPD
    if len(sys.argv) < 2:
        print("usage: test_sync.py /path/to/icpd", file=sys.stderr)
        return 2
    ICPD = os.path.abspath(sys.argv.pop(1))
    prog = unittest.main(exit=False, verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
