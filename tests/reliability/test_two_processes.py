"""Two icpd processes on one account at once.

- Same cookie directory (the normal case: a CronJob run overlapping a
  manual one): the second waits for the session lock and, if the first is
  still busy after the wait, exits with a clear message naming the other
  process; it never writes into the tree.  When the first ends within the
  wait, the second goes on and finds nothing left to do.
- Different cookie directories (so different sessions and state DBs), one
  --directory: the two runs must not interleave inside one file (shared
  temp names in the hidden temp folder); at the end the tree is exactly
  the expected one and a checksum verify passes.

Usage: /usr/bin/python3 test_two_processes.py /path/to/icpd
"""
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reliab_env as R  # noqa: E402


class TwoProcesses(unittest.TestCase):
    def test_same_cookie_directory_second_exits_clearly(self):
        env = R.Env(20, 21)
        self.addCleanup(env.stop)
        out = os.path.join(env.tmp, "out")
        # ~80 s of paced downloads: longer than the second run's lock wait
        total = sum(v[0] for v in env.expected().values())
        env.fault({"target": "download", "action": "drip", "rate": max(total // 80, 1),
                   "times": 0})
        first = env.popen_sync(out, "--threads", "1", stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: first.poll() is None and first.kill())
        time.sleep(1.5)
        self.assertIsNone(first.poll(), "the first run ended too soon for this test")
        t0 = time.time()
        r = env.sync(out, "--threads", "1")
        waited = time.time() - t0
        err = r.stderr.decode()
        self.assertIsNone(first.poll(), "the first run ended during the second's wait")
        self.assertNotEqual(r.returncode, 0, R.show(r))
        self.assertIn("another icpd is using the session", err, R.show(r))
        self.assertIn("pid %d" % first.pid, err)
        self.assertGreaterEqual(waited, 5, "it should wait a while before giving up")
        self.assertNotIn("downloaded", err)
        first.kill()
        first.wait()
        r = env.sync(out)
        self.assertEqual(r.returncode, 0, R.show(r))
        self.assertEqual(R.walk(out), env.expected())

    def test_same_cookie_directory_second_waits(self):
        env = R.Env(20, 22)
        self.addCleanup(env.stop)
        out = os.path.join(env.tmp, "out")
        # the first run holds the lock ~4 s (slow downloads), then ends
        total = sum(v[0] for v in env.expected().values())
        env.fault({"target": "download", "action": "drip", "rate": max(total // 4, 1),
                   "times": 0})
        first = env.popen_sync(out, "--threads", "1", stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        time.sleep(0.8)
        t0 = time.time()
        self.assertIsNone(first.poll(), "the first run ended too soon for this test")
        r = env.sync(out, "--report-json", os.path.join(env.tmp, "r2.json"))
        self.assertGreater(time.time() - t0, 1.5, "the second run did not wait")
        o1, e1 = first.communicate(timeout=120)
        self.assertEqual(first.returncode, 0, e1.decode()[-3000:])
        self.assertEqual(r.returncode, 0, R.show(r))
        self.assertEqual(R.walk(out), env.expected())
        with open(os.path.join(env.tmp, "r2.json")) as f:
            import json
            rep = json.load(f)
        self.assertEqual(rep["downloaded"], 0, "the second run found work the first did")

    def test_two_cookie_directories_one_tree(self):
        env = R.Env(60, 23, size_scale=1.0, faults={"bandwidth": 400000})
        self.addCleanup(env.stop)
        exp = env.expected()
        out = os.path.join(env.tmp, "out")
        other = env.clone_cookies("cookies-b")
        a = env.popen_sync(out, "--threads", "3", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        b = subprocess.Popen([R.ICPD] + env.args("sync", "-d", out, "--no-progress-bar",
                                                 "--threads", "3", cookies=other),
                             env=env.environ(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, ea = a.communicate(timeout=300)
        _, eb = b.communicate(timeout=300)
        msg = "A: exit %d %s\nB: exit %d %s" % (a.returncode, ea.decode()[-2000:],
                                                 b.returncode, eb.decode()[-2000:])
        # one may refuse (a clear message, exit != 0) or both may finish; in
        # every case the tree holds only whole, right files
        for k, v in R.walk(out).items():
            self.assertEqual(v, exp.get(k), "interleaved or wrong file %s\n%s" % (k, msg))
        self.assertTrue(a.returncode == 0 or b.returncode == 0, msg)
        # the runs overlapped (both downloading at once is what used to
        # interleave inside one temp file): one of them saw the other
        self.assertIn("another icpd is syncing into", (ea + eb).decode(), msg)
        for rc, e in ((a.returncode, ea), (b.returncode, eb)):
            if rc != 0:
                self.assertIn("another icpd", e.decode(), msg)
        r = env.sync(out)
        self.assertEqual(r.returncode, 0, R.show(r))
        self.assertEqual(R.walk(out), exp)
        self.assertEqual(R.tmp_entries(out), [])
        r = env.icpd("verify", "-d", out, "--checksums")
        self.assertEqual(r.returncode, 0, R.show(r))


if __name__ == "__main__":
    R.set_icpd(sys.argv.pop(1))
    unittest.main(verbosity=2)
