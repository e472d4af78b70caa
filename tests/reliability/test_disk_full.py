"""Disk full: --directory on a 2 MB tmpfs that fills mid-sync.

Expected: exit 6, a clear "disk full" message, only whole right files in
view, nothing corrupt in the state DB (integrity_check, no row claiming a
file that is not there whole); after the volume is grown (remount with a
bigger size, same contents) the next run completes the exact tree.  A
second case puts the cookie directory (state DB and session) on the full
volume too.

The test re-executes itself inside a private mount namespace (unshare -m),
so its mounts cannot leak; without unshare/mount (not root) it is skipped,
loudly (exit 77).

Usage: /usr/bin/python3 test_disk_full.py /path/to/icpd
"""
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reliab_env as R  # noqa: E402

NS_MARK = "ICPD_RELIAB_IN_MOUNT_NS"


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs",
                           path], stderr=subprocess.PIPE).returncode == 0


class DiskFull(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.environ.get(NS_MARK) != "1":
            raise unittest.SkipTest("not in a private mount namespace (unshare -m failed)")
        # ~6 MB of files: three times the volume
        cls.env = R.Env(60, 31, size_scale=4.0)
        cls.exp = cls.env.expected()
        cls.total = sum(v[0] for v in cls.exp.values())

    @classmethod
    def tearDownClass(cls):
        cls.env.stop()

    def check_consistent(self, out, cookies, when):
        for k, v in R.walk(out).items():
            self.assertEqual(v, self.exp.get(k), "%s: partial or wrong file %s" % (when, k))
        db = self.env.db_path(cookies)
        if db:
            files, ic = R.db_files(db, out)
            self.assertEqual(ic, ["ok"], when)
            got = R.walk(out)
            for k, (st, size) in files.items():
                if st in ("done", "adopted"):
                    self.assertEqual(got.get(k, (None,))[0], size,
                                     "%s: the DB holds %s as %s but the tree does not" %
                                     (when, k, st))

    def test_directory_fills(self):
        self.assertGreater(self.total, 5 * 1024 * 1024)
        out = os.path.join(self.env.tmp, "small")
        self.assertTrue(mount_tmpfs(out, "2m"), "mount tmpfs")
        self.addCleanup(subprocess.run, ["umount", "-l", out], stderr=subprocess.DEVNULL)
        cookies = self.env.clone_cookies("cookies-a")
        r = self.env.sync(out, "--threads", "2", cookies=cookies)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 6, R.show(r))
        self.assertRegex(err, r"disk full while writing '[^']*': No space left on device", err)
        self.assertIn("free space on the volume", err)
        got = R.walk(out)
        self.assertGreater(len(got), 0)
        self.assertLess(len(got), len(self.exp))
        self.check_consistent(out, cookies, "full")
        # a second run on the still-full volume: the same clean failure
        r = self.env.sync(out, "--threads", "2", cookies=cookies)
        self.assertEqual(r.returncode, 6, R.show(r))
        self.check_consistent(out, cookies, "still full")
        # grow the volume (contents kept): the next run completes
        subprocess.run(["mount", "-o", "remount,size=64m", out], check=True)
        r = self.env.sync(out, cookies=cookies)
        self.assertEqual(r.returncode, 0, R.show(r))
        self.assertEqual(R.walk(out), self.exp)
        self.assertEqual(R.tmp_entries(out), [])
        self.check_consistent(out, cookies, "after growing")
        r = self.env.icpd("verify", "-d", out, "--checksums", cookies=cookies)
        self.assertEqual(r.returncode, 0, R.show(r))

    def test_state_db_on_the_full_volume(self):
        vol = os.path.join(self.env.tmp, "vol")
        self.assertTrue(mount_tmpfs(vol, "2m"), "mount tmpfs")
        self.addCleanup(subprocess.run, ["umount", "-l", vol], stderr=subprocess.DEVNULL)
        cookies = os.path.join(vol, "cookies")
        shutil.copytree(self.env.clone_cookies("cookies-b"), cookies)
        out = os.path.join(vol, "photos")
        r = self.env.sync(out, "--threads", "2", cookies=cookies)
        self.assertEqual(r.returncode, 6, R.show(r))
        # whichever write hits the full volume first: a file ("disk full
        # while writing") or the state DB ("database or disk is full")
        self.assertRegex(r.stderr.decode(), r"level=error .*disk (is )?full", R.show(r))
        self.check_consistent(out, cookies, "full")
        subprocess.run(["mount", "-o", "remount,size=64m", vol], check=True)
        r = self.env.sync(out, cookies=cookies)
        self.assertEqual(r.returncode, 0, R.show(r))
        self.assertEqual(R.walk(out), self.exp)
        self.check_consistent(out, cookies, "after growing")


if __name__ == "__main__":
    if os.environ.get(NS_MARK) != "1" and shutil.which("unshare"):
        env = dict(os.environ, **{NS_MARK: "1"})
        # a private mount namespace, so nothing mounted here is seen outside
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "true"],
                           stderr=subprocess.DEVNULL)
        if r.returncode == 0:
            os.execvpe("unshare", ["unshare", "-m", "--propagation", "private",
                                   sys.executable] + sys.argv, env)
        print("*** SKIPPED: cannot unshare a mount namespace (needs root); the disk-full "
              "tests did NOT run ***", file=sys.stderr)
        sys.exit(77)
    R.set_icpd(sys.argv.pop(1))
    unittest.main(verbosity=2)
