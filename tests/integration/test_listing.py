#!/usr/bin/python3
"""Listing against the fake iCloud: `icpd list assets|albums|libraries|changes`.

  test_listing.py ICPD_BINARY [unittest args]

The expected results come from the library spec the fake is started with
(cloudkit-photos.md §3–§4 say what each index holds and how each resource
maps to a size).  ICPD_LISTING_ASSETS sets the library size (default 10000).
Every class signs in with the real `icpd auth` once; `icpd list` then uses
the saved session like it does for a user.
"""
import base64
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakeenv_cloudkit as fe  # noqa: E402
from fakeenv_cloudkit import fake_library as L  # noqa: E402

ICPD = None
N_ASSETS = int(os.environ.get("ICPD_LISTING_ASSETS", "10000"))

IMAGE_UTIS = {"public.heic", "public.heif", "public.jpeg", "public.png", "com.adobe.raw-image",
              "com.canon.cr2-raw-image", "com.canon.crw-raw-image", "com.sony.arw-raw-image",
              "com.fuji.raw-image", "com.panasonic.rw2-raw-image", "com.nikon.nrw-raw-image",
              "com.pentax.raw-image", "com.nikon.raw-image", "com.olympus.raw-image",
              "com.canon.cr3-raw-image", "com.olympus.or-raw-image"}


def expected_name(x):
    """filenameEnc decoded per §4.1, None when absent or undecodable."""
    if x.fname_enc is not None:
        t, v = x.fname_enc.get("type"), x.fname_enc.get("value")
        if not isinstance(v, str):
            return None
        if t == "STRING":
            return v.replace("\0", "_")
        if t != "ENCRYPTED_BYTES":
            return None
        try:
            raw = base64.b64decode(v)
            return raw.decode("utf-8").replace("\0", "_")
        except (ValueError, UnicodeDecodeError):
            return None
    # a NUL cannot live in a C string: the decoder turns it into "_" (as icloudpd cleans it)
    return x.filename.replace("\0", "_") if x.filename is not None else None


def expected_kind(x, name):
    it = x.item_type
    if it is None:
        return "unknown"
    if it in IMAGE_UTIS:
        return "image"
    if it == "com.apple.quicktime-movie":
        return "movie"
    if name and name.lower().endswith((".heic", ".png", ".jpg", ".jpeg")):
        return "image"
    return "movie"


def expected_versions(x, kind):
    """size name -> (size, uti), asset record first (§4.3)."""
    r = x.res
    if kind == "movie":
        plan = {"original": ["original"], "medium": ["vid_medium"], "thumb": ["vid_small"]}
    else:
        plan = {"original": ["original"], "alternative": ["alt"],
                "medium": ["asset_medium", "medium"], "thumb": ["asset_thumb", "thumb"],
                "adjusted": ["adjusted"], "live_original": ["live"],
                "live_medium": ["vid_medium"], "live_thumb": ["vid_small"]}
    out = {}
    for size, slots in plan.items():
        for s in slots:
            if s in r:
                out[size] = (r[s].size, r[s].uti)
                break
    return out


def check_asset(tc, lib, x, got):
    name = expected_name(x)
    kind = expected_kind(x, name)
    tc.assertEqual(got["master_id"], lib.master_name(x))
    tc.assertEqual(got["asset_id"], x.uuid)
    tc.assertEqual(got["zone"], lib.zones[x.zone].name)
    tc.assertEqual(got["filename"], name, x.uuid)
    tc.assertEqual(got["item_type"], x.item_type)
    tc.assertEqual(got["kind"], kind, x.uuid)
    tc.assertEqual(got["asset_date"], x.asset_date)
    tc.assertEqual(got["added_date"], x.added_date)
    tc.assertEqual(got["tz_offset"], x.tz)
    tc.assertEqual(got["favorite"], bool(x.favorite))
    tc.assertEqual(got["hidden"], bool(x.hidden))
    tc.assertEqual(got["deleted"], bool(x.deleted))
    tc.assertEqual(got["orientation"], x.orientation)
    tc.assertEqual(got["adjustment_type"], x.adjustment or None)
    tc.assertEqual(got["caption"], x.caption)
    tc.assertEqual(got["description"], x.description)
    tc.assertEqual(got.get("keywords"), list(x.keywords) if x.keywords else None)
    if x.location:
        loc = got.get("location")
        tc.assertIsNotNone(loc, x.uuid)
        tc.assertAlmostEqual(loc["lat"], x.location["lat"], places=6)
        tc.assertAlmostEqual(loc["lon"], x.location.get("lon", x.location.get("lng")), places=6)
    else:
        tc.assertNotIn("location", got)
    want = expected_versions(x, kind)
    have = {k: (v["size"], v["uti"]) for k, v in got["versions"].items()}
    tc.assertEqual(have, want, x.uuid)
    for v in got["versions"].values():
        tc.assertIn("/${f}?", v["url"])


class Listing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.spec = L.generate_spec(N_ASSETS, 11)
        cls.fake = fe.Fake(cls.spec)
        try:
            cls.cookies = cls.fake.sign_in(ICPD)
        except Exception:
            cls.fake.cleanup()
            raise
        cls.env = fe.icpd_env(cls.fake.tmp)
        cls.lib = L.Library.from_spec(cls.spec)

    @classmethod
    def tearDownClass(cls):
        cls.fake.cleanup()

    def icpd(self, *args, check=True):
        r = subprocess.run([ICPD, "list", *args, *self.fake.account_args(self.cookies),
                            "--log-level", "info"], env=self.env, capture_output=True, text=True, timeout=600)
        if check and r.returncode != 0:
            self.fail("icpd list %s exited %d: %s" % (" ".join(args), r.returncode, r.stderr[-3000:]))
        return r

    def assets(self, *args):
        r = self.icpd("assets", *args)
        return [json.loads(line) for line in r.stdout.splitlines()], r

    def ck_requests(self):
        reqs = self.fake.requests()
        return [e for e in reqs["requests"] if e.get("service") == "ckdatabasews"]

    def expect(self, pred, zone="PrimarySync"):
        out = [x for x in self.lib.assets if self.lib.zones[x.zone].name == zone and not x.purged
               and pred(x)]
        out.sort(key=lambda x: (-x.asset_date, x.serial))
        return out

    def compare(self, got, want):
        self.assertEqual([g["asset_id"] for g in got], [x.uuid for x in want])
        for g, x in zip(got, want):
            check_asset(self, self.lib, x, g)

    def test_whole_library_sequential_and_parallel(self):
        want = self.expect(lambda x: not x.hidden and not x.deleted)
        self.assertGreater(len(want), N_ASSETS * 0.8)
        for par in ("1", "4"):
            with self.subTest(parallelism=par):
                self.fake.reset_counters()
                t0 = time.time()
                got, r = self.assets("--listing-parallelism", par)
                dt = time.time() - t0
                self.compare(got, want)
                n = len(self.ck_requests())
                print("\nparallelism %s: %d assets, %d CloudKit requests, %.2f s" % (par, len(got), n, dt),
                      file=sys.stderr)
                # the records the fake's hostile specials break are reported, not dropped silently
                self.assertIn("listed %d assets" % len(got), r.stderr)

    def test_peak_memory(self):
        """Constant memory: the peak RSS of a whole listing stays under 30 MB
        (the issue's bound for 100k assets; pages are held, never the library)."""
        ldd = subprocess.run(["ldd", ICPD], capture_output=True, text=True).stdout
        if "libasan" in ldd:
            self.skipTest("icpd is built with AddressSanitizer: its RSS is not icpd's")
        # /usr/bin/time, not wait4() from here: ru_maxrss keeps the peak of the
        # forked Python before exec
        if not os.path.exists("/usr/bin/time"):
            self.skipTest("/usr/bin/time (Debian package 'time') is missing: peak RSS NOT measured")
        out = os.path.join(self.fake.tmp, "rss")
        for par in ("1", "4"):
            r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out, ICPD, "list", "assets",
                                *self.fake.account_args(self.cookies), "--listing-parallelism", par],
                               env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, timeout=600)
            self.assertEqual(r.returncode, 0, r.stderr[-2000:])
            with open(out) as f:
                kib = int(f.read().split()[-1])
            print("\nparallelism %s: peak RSS %d KiB for %d assets" % (par, kib, N_ASSETS),
                  file=sys.stderr)
            self.assertLess(kib, 30 * 1024)

    def test_smart_folders(self):
        folders = {
            "Favorites": lambda x: x.favorite, "Videos": lambda x: x.is_video(),
            "Live": lambda x: "live" in x.res, "Panoramas": lambda x: x.subtype == 1,
            "Slo-mo": lambda x: x.subtype == 100, "Time-lapse": lambda x: x.subtype == 101,
            "Screenshots": lambda x: x.subtype_v2 == 3, "Bursts": lambda x: bool(x.burst),
            "Portrait": lambda x: bool((x.render_type or 0) & 2),
            "Long Exposure": lambda x: bool((x.render_type or 0) & 4),
            "Animated": lambda x: x.item_type == "com.compuserve.gif",
        }
        for name, pred in folders.items():
            with self.subTest(folder=name):
                got, _ = self.assets(name, "--listing-parallelism", "4")
                want = self.expect(lambda x, p=pred: not x.hidden and not x.deleted and p(x))
                self.assertGreater(len(want), 0, name)
                self.compare(got, want)
        got, _ = self.assets("Hidden")
        self.compare(got, self.expect(lambda x: x.hidden and not x.deleted))
        got, _ = self.assets("Recently Deleted")
        want = [x for x in self.lib.assets if self.lib.zones[x.zone].name == "PrimarySync"
                and x.deleted and not x.purged]
        want.sort(key=lambda x: (-(x.expunge or 0), x.serial))
        self.compare(got, want)

    def test_albums(self):
        r = self.icpd("albums", "--json")
        albums = json.loads(r.stdout)
        by_name = {a["name"]: a for a in albums}
        self.assertNotIn("Old stuff", by_name)           # deleted album
        self.assertEqual(by_name["Trips"]["kind"], "folder")
        self.assertEqual(by_name["Paris 2019"]["parent_id"], by_name["Trips"]["id"])
        for name in ("Vacation", "Family \U0001F46A", "Paris 2019", "Empty"):
            with self.subTest(album=name):
                al = self.lib._by_album_name[name]
                want = self.expect(lambda x: not x.hidden and not x.deleted and al.idx in x.albums)
                self.assertEqual(by_name[name]["count"], len(want))
                got, _ = self.assets(name)
                self.compare(got, want)
        # not a terminal: JSON even without --json
        r = self.icpd("albums")
        self.assertEqual(json.loads(r.stdout), albums)
        # a terminal: a table with the counts
        out = self.on_tty("albums")
        self.assertRegex(out, r"ALBUM\s+KIND\s+ASSETS")
        self.assertRegex(out, r"\n\s+Paris 2019\s+album\s+%d\b" % by_name["Paris 2019"]["count"])
        self.assertRegex(out, r"\nVacation\s+album\s+%d\b" % by_name["Vacation"]["count"])
        out = self.on_tty("libraries")
        self.assertRegex(out, r"PrimarySync\s+private\s+\d+")

    def on_tty(self, *args):
        import pty
        master, slave = pty.openpty()
        try:
            p = subprocess.Popen([ICPD, "list", *args, *self.fake.account_args(self.cookies)],
                                 env=self.env,
                                 stdout=slave, stderr=subprocess.PIPE)
            os.close(slave)
            chunks = []
            while True:
                try:
                    b = os.read(master, 65536)
                except OSError:
                    break
                if not b:
                    break
                chunks.append(b)
            p.wait(timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr.read())
            p.stderr.close()
        finally:
            os.close(master)
        return b"".join(chunks).decode("utf-8").replace("\r\n", "\n")

    def test_libraries_and_shared(self):
        r = self.icpd("libraries", "--json")
        libs = {lib["name"]: lib for lib in json.loads(r.stdout)}
        shared = [n for n in libs if n.startswith("SharedSync-")]
        self.assertEqual(len(shared), 1)
        self.assertEqual(libs["PrimarySync"]["count"],
                         len(self.expect(lambda x: not x.hidden and not x.deleted)))
        want = self.expect(lambda x: not x.hidden and not x.deleted, zone=shared[0])
        self.assertGreater(len(want), 0)
        got, _ = self.assets("--library", shared[0])
        self.compare(got, want)
        r = self.icpd("assets", "--library", "NoSuchLibrary", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("unknown library 'NoSuchLibrary'", r.stderr)

    def test_retry_on_503_and_429(self):
        self.fake.ctl("POST", "/faults", {"service": "ckdatabasews", "path_regex": "records/query",
                                          "action": "503", "retry_after": 1, "nth": 3, "count": 2})
        self.fake.ctl("POST", "/faults", {"service": "ckdatabasews", "path_regex": "records/query",
                                          "action": "429", "retry_after": 1, "nth": 6, "count": 1})
        try:
            got, r = self.assets("Favorites", "--listing-parallelism", "1")
        finally:
            self.fake.ctl("DELETE", "/faults")
        self.compare(got, self.expect(lambda x: x.favorite and not x.hidden and not x.deleted))
        self.assertIn("retrying", r.stderr)


    def test_pipelined_batches_with_faults(self):
        """Parallel listing keeps the next batch of pages on the wire while it
        decodes one.  Faults that land on batches sent ahead must not cost
        an asset, a duplicate or a second session validation."""
        want = self.expect(lambda x: not x.hidden and not x.deleted)
        # records/query number 1 is CheckIndexingState, 2-5 the first batch;
        # 6-13 (the second batch, and the third, sent ahead while the second
        # was being handled) answer 421: one validation, then the third
        # batch (sent with the old cookies) is retried as it is
        self.fake.reset_counters()
        self.fake.ctl("POST", "/faults", {"service": "ckdatabasews", "path_regex": "/records/query$",
                                          "action": "421", "nth": 6, "count": 8})
        try:
            got, r = self.assets("--listing-parallelism", "4")
        finally:
            self.fake.ctl("DELETE", "/faults")
        self.compare(got, want)
        self.assertEqual(r.stderr.count("validating it again"), 1, r.stderr[-3000:])
        self.assertEqual(sum(1 for e in self.ck_requests() if e.get("status") == 421), 8)
        # a 503 with Retry-After in a batch sent ahead
        self.fake.ctl("POST", "/faults", {"service": "ckdatabasews", "path_regex": "/records/query$",
                                          "action": "503", "retry_after": 1, "nth": 7, "count": 1})
        try:
            got, r = self.assets("--listing-parallelism", "4")
        finally:
            self.fake.ctl("DELETE", "/faults")
        self.compare(got, want)
        self.assertIn("retrying", r.stderr)
        # a persistent failure from the second batch on: the run stops with
        # the batch sent ahead (the third) still unread, which is dropped
        self.fake.reset_counters()
        self.fake.ctl("POST", "/faults", {"service": "ckdatabasews", "path_regex": "/records/query$",
                                          "action": "503", "retry_after": 0, "nth": 6, "count": 0})
        try:
            r = self.icpd("assets", "--listing-parallelism", "4", check=False)
        finally:
            self.fake.ctl("DELETE", "/faults")
        self.assertEqual(r.returncode, 5, r.stderr[-3000:])
        self.assertIn("after 6 attempts", r.stderr)
        # second batch 4 + its first page's 5 retries + the third batch 4
        self.assertEqual(sum(1 for e in self.ck_requests() if e.get("status") == 503), 13)


class Errors(unittest.TestCase):
    """Error mapping in one place (cloudkit-photos.md §1.5)."""

    @classmethod
    def setUpClass(cls):
        cls.spec = L.generate_spec(150, 9)
        cls.fake = fe.Fake(cls.spec)
        try:
            cls.cookies = cls.fake.sign_in(ICPD)
        except Exception:
            cls.fake.cleanup()
            raise
        cls.env = fe.icpd_env(cls.fake.tmp)

    @classmethod
    def tearDownClass(cls):
        cls.fake.cleanup()

    def tearDown(self):
        self.fake.ctl("DELETE", "/faults")
        self.fake.ctl("POST", "/accounts", {"apple_id": fe.USER, "adp": False})

    def run_list(self, *args):
        return subprocess.run([ICPD, "list", *args, *self.fake.account_args(self.cookies),
                               "--listing-parallelism", "1"], env=self.env, capture_output=True,
                              text=True, timeout=300)

    def fault(self, **f):
        self.fake.ctl("POST", "/faults", dict({"service": "ckdatabasews"}, **f))

    def test_adp_access_denied_exits_7(self):
        """CloudKit's ACCESS_DENIED (what the fake answers for an ADP account)
        maps to exit 7 with the hint.  Injected on zones/list: with ADP on the
        account itself, the sign-in check below stops icpd before CloudKit."""
        self.fault(path_regex="zones/list", action="status", count=0,
                   params={"status": 403, "content_type": "application/json",
                           "body": json.dumps({"serverErrorCode": "ACCESS_DENIED",
                                               "reason": "private db access disabled for this "
                                                         "account"})})
        r = self.run_list("assets")
        self.assertEqual(r.returncode, 7, r.stderr)
        self.assertIn("ACCESS_DENIED", r.stderr)
        self.assertIn("Access iCloud Data on the Web", r.stderr)

    def test_adp_account_stops_at_sign_in_exits_7(self):
        """The session check sees iCDPEnabled and stops before any CloudKit call."""
        self.fake.ctl("POST", "/accounts", {"apple_id": fe.USER, "adp": True})
        self.fake.reset_counters()
        r = self.run_list("assets")
        self.assertEqual(r.returncode, 7, r.stderr)
        self.assertIn("Advanced Data Protection is on", r.stderr)
        self.assertIn("Access iCloud Data on the Web", r.stderr)
        self.assertFalse([e for e in self.fake.requests()["requests"]
                          if e.get("service") == "ckdatabasews"])

    def test_zone_not_found_says_finish_setup(self):
        self.fault(path_regex="zones/list", action="status", count=0,
                   params={"status": 200, "content_type": "application/json",
                           "body": json.dumps({"serverErrorCode": "ZONE_NOT_FOUND", "reason": "x"})})
        r = self.run_list("libraries")
        self.assertEqual(r.returncode, 7, r.stderr)
        self.assertIn("finish setting up iCloud", r.stderr)

    def test_persistent_421_asks_for_auth(self):
        """421 on every query: the session is validated again once, then icpd
        gives up with exit 3 and asks for 'icpd auth'."""
        self.fault(path_regex="records/query", action="421", count=0)
        r = self.run_list("assets", "--log-level", "info")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("icpd auth", r.stderr)
        self.assertEqual(r.stderr.count("validating it again"), 1, r.stderr)

    def test_persistent_503_is_bounded(self):
        self.fault(path_regex="records/query", action="503", retry_after=0, count=0)
        t0 = time.time()
        r = self.run_list("assets")
        self.assertEqual(r.returncode, 5, r.stderr)
        self.assertIn("after 6 attempts", r.stderr)
        self.assertLess(time.time() - t0, 120)

    def test_malformed_json_is_retried(self):
        self.fault(path_regex="records/query", action="malformed_json", nth=2, count=1)
        r = self.run_list("assets")
        self.assertEqual(r.returncode, 0, r.stderr)
        lib = L.Library.from_spec(self.spec)
        n = len([x for x in lib.assets if lib.zones[x.zone].name == "PrimarySync" and not x.hidden
                 and not x.deleted])
        self.assertEqual(len(r.stdout.splitlines()), n)


class RealSignIn(unittest.TestCase):
    """`icpd auth` once, then `icpd list` signs in with the saved session
    (auth_ensure_session), and re-validates once on a 421 from CloudKit."""

    @classmethod
    def setUpClass(cls):
        cls.spec = L.generate_spec(120, 4)
        cls.fake = fe.Fake(cls.spec)
        cls.cookies = os.path.join(cls.fake.tmp, "cookies")
        cls.pw = os.path.join(cls.fake.tmp, "pw")
        with open(cls.pw, "w") as f:
            f.write(fe.PASSWORD + "\n")
        os.chmod(cls.pw, 0o600)

    @classmethod
    def tearDownClass(cls):
        cls.fake.cleanup()

    def run_icpd(self, cmd, *args, stdin="", env_extra=None):
        p = self.fake.port
        env = {k: v for k, v in os.environ.items() if not k.startswith("ICPD_")}
        env.update(env_extra or {})
        argv = [ICPD, *cmd, "-u", fe.USER, "--cookie-directory", self.cookies,
                "--password-file", self.pw, "--ca-file", self.fake.ca,
                "--auth-root", "https://idmsa.apple.localhost:%d" % p,
                "--auth-endpoint", "https://idmsa.apple.localhost:%d/appleauth/auth" % p,
                "--setup-endpoint", "https://setup.icloud.localhost:%d/setup/ws/1" % p,
                "--home-endpoint", "https://www.icloud.localhost:%d" % p, *args]
        return subprocess.run(argv, input=stdin, env=env, capture_output=True, text=True,
                              timeout=300)

    def test_list_after_auth_and_revalidate_on_421(self):
        r = self.run_icpd(["auth"], stdin="123456\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        # the removed test back door stays removed: a session file named in
        # ICPD_TEST_SESSION is neither read nor mentioned, the saved session is used
        bogus = os.path.join(self.fake.tmp, "bogus-session.json")
        with open(bogus, "w") as f:
            json.dump({"dsid": "1", "ckdatabasews_url": "https://127.0.0.1:1", "client_id": "x",
                       "cookies": ""}, f)
        self.fake.reset_counters()
        r = self.run_icpd(["list", "libraries"], "--json", env_extra={"ICPD_TEST_SESSION": bogus})
        self.assertEqual(r.returncode, 0, r.stderr)
        names = [x["name"] for x in json.loads(r.stdout)]
        self.assertIn("PrimarySync", names)
        self.assertNotIn("ICPD_TEST_SESSION", r.stderr)
        self.assertNotIn("test session", r.stderr)
        self.assertTrue(any(e.get("service") == "ckdatabasews"
                            for e in self.fake.requests()["requests"]))
        with open(ICPD, "rb") as f:
            self.assertNotIn(b"ICPD_TEST_SESSION", f.read())
        self.fake.ctl("POST", "/faults", {"service": "ckdatabasews", "path_regex": "records/query",
                                          "action": "421", "nth": 2, "count": 1})
        try:
            r = self.run_icpd(["list", "assets"], "--log-level", "info")
        finally:
            self.fake.ctl("DELETE", "/faults")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("validating it again", r.stderr)
        lib = L.Library.from_spec(self.spec)
        n = len([x for x in lib.assets if lib.zones[x.zone].name == "PrimarySync" and not x.hidden
                 and not x.deleted])
        self.assertEqual(len(r.stdout.splitlines()), n)
        # a parallel batch where every page gets 421: one re-validation, all retried
        self.fake.ctl("POST", "/faults", {"service": "ckdatabasews", "path_regex": "/records/query$",
                                          "action": "421", "nth": 2, "count": 2})
        try:
            r = self.run_icpd(["list", "assets"], "--log-level", "info", "--listing-parallelism", "4")
        finally:
            self.fake.ctl("DELETE", "/faults")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr.count("validating it again"), 1, r.stderr)
        self.assertEqual(len(r.stdout.splitlines()), n)


class Incremental(unittest.TestCase):
    """Sync tokens: full listing, then nothing, then exactly the changes."""

    def setUp(self):
        self.spec = L.generate_spec(2000, 5)
        self.fake = fe.Fake(self.spec)
        try:
            self.cookies = self.fake.sign_in(ICPD)
        except Exception:
            self.fake.cleanup()
            raise
        self.env = fe.icpd_env(self.fake.tmp)
        self.tokens = os.path.join(self.fake.tmp, "tokens")

    def tearDown(self):
        self.fake.cleanup()

    def changes(self):
        r = subprocess.run([ICPD, "list", "changes", self.tokens,
                            *self.fake.account_args(self.cookies), "--log-level", "info"],
                           env=self.env, capture_output=True, text=True,
                           timeout=600)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        return [json.loads(line) for line in r.stdout.splitlines()], r

    def ck_count(self):
        reqs = self.fake.requests()
        return len([e for e in reqs["requests"]
                    if e.get("service") == "ckdatabasews"])

    def test_tokens(self):
        lib = L.Library.from_spec(self.spec)
        visible = [x for x in lib.assets if lib.zones[x.zone].name == "PrimarySync"
                   and not x.hidden and not x.deleted]
        got, r = self.changes()
        self.assertIn("full listing", r.stderr)
        self.assertEqual(sorted(g["asset_id"] for g in got), sorted(x.uuid for x in visible))
        self.assertTrue(all(g["change"] == "new" for g in got))

        self.fake.reset_counters()
        got, r = self.changes()
        self.assertEqual(got, [])
        self.assertIn("incremental listing", r.stderr)
        n = self.ck_count()
        print("\nsecond listing, nothing new: %d CloudKit requests" % n, file=sys.stderr)
        self.assertLessEqual(n, 3)

        plain = [x for x in visible if not x.favorite and x.item_type == "public.heic"
                 and "adjusted" not in x.res]
        edit, delete, hide, fav = plain[0], plain[1], plain[2], plain[3]
        added = self.fake.mutate({"op": "add"})["result"]
        self.fake.mutate({"op": "edit", "asset": edit.uuid})
        self.fake.mutate({"op": "delete", "asset": delete.uuid})
        self.fake.mutate({"op": "hide", "asset": hide.uuid})
        self.fake.mutate({"op": "favourite", "asset": fav.uuid})
        got, r = self.changes()
        kinds = {g["asset_id"]: g["change"] for g in got}
        self.assertEqual(kinds, {added: "new", edit.uuid: "edited", delete.uuid: "soft-deleted",
                                 hide.uuid: "hidden", fav.uuid: "favorited"})
        edited = [g for g in got if g["asset_id"] == edit.uuid][0]
        self.assertIn("adjusted", edited["versions"])
        self.assertEqual(edited["filename"], edit.filename)

        got, r = self.changes()
        self.assertEqual(got, [])

        # purge (hard delete after Recently Deleted): both halves come back purged
        self.fake.mutate({"op": "purge", "asset": delete.uuid})
        got, r = self.changes()
        self.assertEqual(sorted((g["change"], g["asset_id"] or g["master_id"]) for g in got),
                         sorted([("purged", delete.uuid), ("purged", lib.master_name(delete))]))
        self.assertTrue(all(g.get("purged") for g in got))

    def test_many_asset_only_changes(self):
        """More asset-only changes than one lookup batch (200): looked up as the
        feed goes, each reported once."""
        got, r = self.changes()
        lib = L.Library.from_spec(self.spec)
        plain = [x for x in lib.assets if lib.zones[x.zone].name == "PrimarySync"
                 and not x.hidden and not x.deleted and not x.favorite][:450]
        for x in plain:
            self.fake.mutate({"op": "favourite", "asset": x.uuid})
        got, r = self.changes()
        self.assertEqual(sorted(g["asset_id"] for g in got), sorted(x.uuid for x in plain))
        self.assertTrue(all(g["change"] == "favorited" and g["favorite"] for g in got))
        self.assertIn("450 assets (0 records skipped)", r.stderr)

    def test_garbage_token_falls_back(self):
        with open(self.tokens, "w") as f:
            f.write("zone:private:PrimarySync\tAQAAAAAAgarbagegarbagegarbage==\n")
        got, r = self.changes()
        self.assertIn("rejected", r.stderr)
        self.assertIn("full listing", r.stderr)
        lib = L.Library.from_spec(self.spec)
        visible = [x for x in lib.assets if lib.zones[x.zone].name == "PrimarySync"
                   and not x.hidden and not x.deleted]
        self.assertEqual(sorted(g["asset_id"] for g in got), sorted(x.uuid for x in visible))


if __name__ == "__main__":
    ICPD = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
