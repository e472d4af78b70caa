"""The crash loop: stop the sync after every state-changing step N
(ICPD_TEST_STOP_AFTER_STEP, a hidden test switch: SIGKILL right after step
N), resume, and compare with a clean run: the same tree (paths, sizes,
mtimes), nothing left in the hidden temp folder, the state DB intact and
holding the same done-set.  Then SIGKILL at random moments of a larger sync
(downloads paced so kills land mid-transfer), rerun each time: never a
partial or wrong file in view, the DB always passes integrity_check, and
the last run ends with exactly the expected tree.

Sizes: the every-N loop uses a 60-asset library (RELIAB_CRASH_ASSETS; the
200-asset loop takes ~20 minutes on 2 cores, over this suite's budget);
the random kills use 500 assets (RELIAB_KILL_ASSETS), 20 kills.

Usage: /usr/bin/python3 test_crash_loop.py /path/to/icpd
"""
import concurrent.futures
import os
import random
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reliab_env as R  # noqa: E402

CRASH_ASSETS = int(os.environ.get("RELIAB_CRASH_ASSETS", "60"))
KILL_ASSETS = int(os.environ.get("RELIAB_KILL_ASSETS", "500"))
KILLS = int(os.environ.get("RELIAB_KILLS", "20"))
WORKERS = 2


class CrashLoop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = R.Env(CRASH_ASSETS, 11)

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def one_step(self, n, exp, clean_done):
        """Stop after step n, check, resume, check.  Returns (n, stop exit
        code, problems)."""
        env = self.env
        cookies = env.clone_cookies("cookies-%d" % n)
        out = os.path.join(env.tmp, "out-%d" % n)
        problems = []
        r = env.sync(out, env={"ICPD_TEST_STOP_AFTER_STEP": str(n)}, cookies=cookies)
        stopped = r.returncode
        if stopped not in (-9, 0):
            problems.append("stop run: %s" % R.show(r))
        for k, v in R.walk(out).items():
            if exp.get(k) != v:
                problems.append("after the stop: partial or unexpected file %s %s" % (k, v))
        db = env.db_path(cookies)
        if db:
            files, ic = R.db_files(db, out)
            if ic != ["ok"]:
                problems.append("after the stop: integrity_check %s" % ic)
            for k, (st, size) in files.items():
                if st in ("done", "adopted") and exp.get(k, (None,))[0] != size:
                    problems.append("after the stop: DB says %s is %s (%s), the tree %s"
                                    % (k, st, size, exp.get(k)))
        r = env.sync(out, cookies=cookies)
        if r.returncode != 0:
            problems.append("resume: %s" % R.show(r))
        got = R.walk(out)
        if got != exp:
            problems.append("resume: tree differs: missing %s, extra %s, changed %s" % (
                sorted(set(exp) - set(got))[:5], sorted(set(got) - set(exp))[:5],
                sorted(k for k in got if k in exp and got[k] != exp[k])[:5]))
        if R.tmp_entries(out):
            problems.append("resume: left in the temp folder: %s" % R.tmp_entries(out))
        files, ic = R.db_files(env.db_path(cookies), out)
        if ic != ["ok"]:
            problems.append("resume: integrity_check %s" % ic)
        if R.done_set(files) != clean_done:
            problems.append("resume: done-set differs from the clean run's")
        bad = {k: v for k, v in files.items() if v[0] not in ("done", "adopted")}
        if bad:
            problems.append("resume: rows not done: %s" % list(bad.items())[:5])
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(cookies, ignore_errors=True)
        return n, stopped, problems

    def test_stop_after_every_step(self):
        env = self.env
        exp = env.expected()
        self.assertGreaterEqual(len(exp), CRASH_ASSETS * 0.9)
        clean = os.path.join(env.tmp, "clean")
        ccook = env.clone_cookies("cookies-clean")
        r = env.sync(clean, cookies=ccook)
        self.assertEqual(r.returncode, 0, R.show(r))
        self.assertEqual(R.walk(clean), exp)
        files, ic = R.db_files(env.db_path(ccook), clean)
        self.assertEqual(ic, ["ok"])
        clean_done = R.done_set(files)
        self.assertEqual(clean_done, {k: v[0] for k, v in exp.items()})

        # Two state-changing steps per file (file committed, state recorded);
        # go on until a run is no longer stopped, then one batch more.
        limit = 3 * len(exp) + 10
        results = {}
        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
            n = 1
            first_full = None
            while n <= limit and (first_full is None or n <= first_full + WORKERS):
                batch = list(range(n, n + WORKERS * 2))
                for k, stopped, problems in pool.map(
                        lambda k: self.one_step(k, exp, clean_done), batch):
                    results[k] = (stopped, problems)
                    if stopped == 0 and first_full is None:
                        first_full = k
                n += len(batch)
        elapsed = time.time() - t0
        self.assertIsNotNone(first_full, "the sync was still being stopped at step %d" % limit)
        total_steps = first_full - 1
        print("crash loop: %d assets, %d files, %d steps, %d stop/resume pairs in %.0f s"
              % (CRASH_ASSETS, len(exp), total_steps, len(results), elapsed))
        self.assertGreaterEqual(total_steps, 2 * len(exp))
        for k in sorted(results):
            stopped, problems = results[k]
            with self.subTest(step=k):
                self.assertEqual(problems, [])
                self.assertEqual(stopped, -9 if k <= total_steps else 0)


class RandomKills(unittest.TestCase):
    def test_sigkill_at_random_points(self):
        env = R.Env(KILL_ASSETS, 13, faults={"bandwidth": 8000})
        self.addCleanup(env.stop)
        exp = env.expected()
        out = os.path.join(env.tmp, "out")
        rng = random.Random(20261127)
        kills = 0
        t0 = time.time()
        for i in range(KILLS):
            p = env.popen_sync(out, "--threads", "4", stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.3, 2.5))
            if p.poll() is None:
                p.kill()
                kills += 1
            p.wait()
            for k, v in R.walk(out).items():
                self.assertEqual(v, exp.get(k), "kill %d: partial or unexpected file %s" % (i, k))
            db = env.db_path()
            if db:
                files, ic = R.db_files(db, out)
                self.assertEqual(ic, ["ok"], "kill %d" % i)
                for k, (st, size) in files.items():
                    if st in ("done", "adopted"):
                        self.assertEqual(size, exp[k][0], "kill %d: DB row %s" % (i, k))
        # each kill must land in a running sync, or the test proves little
        self.assertGreaterEqual(kills, KILLS - 2)
        r = env.sync(out, timeout=600)
        self.assertEqual(r.returncode, 0, R.show(r))
        self.assertEqual(R.walk(out), exp)
        self.assertEqual(R.tmp_entries(out), [])
        files, ic = R.db_files(env.db_path(), out)
        self.assertEqual(ic, ["ok"])
        self.assertEqual(R.done_set(files), {k: v[0] for k, v in exp.items()})
        r = env.icpd("verify", "-d", out, "--checksums")
        self.assertEqual(r.returncode, 0, R.show(r))
        print("random kills: %d assets, %d files, %d of %d runs killed, %.0f s"
              % (KILL_ASSETS, len(exp), kills, KILLS, time.time() - t0))


if __name__ == "__main__":
    R.set_icpd(sys.argv.pop(1))
    unittest.main(verbosity=2)
