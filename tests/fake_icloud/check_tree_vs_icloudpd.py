#!/usr/bin/python3
"""Run the real icloudpd against the fake and compare its tree with
expected_tree.expected_icloudpd_tree() for several option sets.

    check_tree_vs_icloudpd.py [--binary PATH] [--assets 60] [--seed 1] [--quick]

Needs root (a private mount + network namespace via unshare, server on
port 443, /etc/hosts bind-mounted inside the namespace only) and the npm
icloudpd binary.  Prints PASS/FAIL per option set and "N passed, M failed";
exits 77 (skipped) when root, unshare or the binary is missing.
The account has no second factor (hsaVersion 0), so icloudpd signs in by
itself (tooling.md §4d).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
DEFAULT_BIN = "/var/cache/icpd-test/icloudpd/node_modules/@icloudpd/linux-x64/bin/icloudpd"
PW = "fake-icloud tree test password"   # test-only password of the fake account
HOSTS = ("idmsa.apple.com www.icloud.com setup.icloud.com p42-ckdatabasews.icloud.com "
         "cvws.icloud-content.com")

# (icloudpd arguments, expected_tree options)
CASES = [
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
    (["--library", "@SHARED"], {"library": "@SHARED"}),     # the owner's SharedSync zone
    ([], {"tz": "Pacific/Honolulu"}),                        # folders follow the host TZ (§6.6)
]


def walk(root):
    got = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            st = os.stat(p)
            got[os.path.relpath(p, root)] = (st.st_size, int(st.st_mtime))
    return got


def run_icloudpd(a, w, st, out, args=()):
    env = dict(os.environ, TZ="UTC", REQUESTS_CA_BUNDLE=os.path.join(st, "ca.pem"))
    cmd = [a.binary, "--username", "tree@example.com", "--password", PW, "--directory", out,
           "--cookie-directory", os.path.join(w, "cookies"), "--no-progress-bar"] + list(args)
    with open(os.path.join(w, "icloudpd.log"), "w") as logf:
        rc = subprocess.run(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT, timeout=600).returncode
    with open(os.path.join(w, "icloudpd.log")) as f:
        downloaded = sum(1 for line in f if " Downloaded " in line)
    return rc, downloaded


def incremental(a, w, st, lib):
    """Run twice (second run must download nothing), then change the
    library through the control API and check the third run fetches exactly
    the new asset's files."""
    import urllib.request
    import expected_tree
    out = os.path.join(w, "out")
    shutil.rmtree(out, ignore_errors=True)
    rc1, n1 = run_icloudpd(a, w, st, out)
    first = walk(out)
    rc2, n2 = run_icloudpd(a, w, st, out)
    if (rc1, rc2, n2) != (0, 0, 0) or walk(out) != first or not n1:
        return False, "re-run: rc %d/%d, downloaded %d then %d" % (rc1, rc2, n1, n2)
    with open(os.path.join(st, "ready.json")) as f:
        cport = json.load(f)["control_port"]
    victim = lib.index((0, "all"))[3].uuid
    ops = [{"op": "add", "spec": {"filename": "IMG_9001.HEIC", "date": "2024-02-29T12:00:00Z", "tz": 3600,
                                  "original": {"uti": "public.heic", "size": 12345},
                                  "live": {"uti": "com.apple.quicktime-movie", "size": 23456}}},
           {"op": "delete", "asset": victim},
           {"op": "favourite", "asset": lib.index((0, "all"))[5].uuid}]
    for op in ops:
        body = dict(op, apple_id="tree@example.com")
        req = urllib.request.Request("http://127.0.0.1:%d/mutate" % cport, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            if r.status != 200:
                return False, "control /mutate answered %d" % r.status
        lib.mutate(op)
    prev = {k: v[0] for k, v in first.items()}
    new = expected_tree.expected_icloudpd_tree(lib, {"tz": "UTC", "existing": prev})
    rc3, n3 = run_icloudpd(a, w, st, out)
    want = dict(first)
    want.update(new)
    got = walk(out)
    if rc3 != 0 or got != want or n3 != len(new) or set(new) != {"2024/02/29/IMG_9001.HEIC",
                                                                 "2024/02/29/IMG_9001_HEVC.MOV"}:
        return False, "third run: rc %d, downloaded %d, new %s, diff %s" % (
            rc3, n3, sorted(new), sorted(set(got) ^ set(want)))
    return True, ""


def inner(a):
    import expected_tree
    import library
    w = a.work
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with open(os.path.join(w, "hosts"), "w") as f:
        f.write("127.0.0.1 localhost\n127.0.0.1 %s\n::1 localhost\n" % HOSTS)
    subprocess.run(["mount", "--bind", os.path.join(w, "hosts"), "/etc/hosts"], check=True)
    st = os.path.join(w, "state")
    srv = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "server.py"), "--port", "443",
                            "--hosts", "apple", "--state-dir", st, "--accounts", os.path.join(w, "accounts.json")],
                           stdout=subprocess.DEVNULL, stderr=open(os.path.join(w, "server.log"), "w"))
    passed = failed = 0
    try:
        for _ in range(100):
            if os.path.exists(os.path.join(st, "ready.json")):
                break
            time.sleep(0.1)
        lib = library.Library.load(os.path.join(w, "lib.json"))
        cases = CASES[:3] if a.quick else CASES
        shared = lib.zones[1].name
        for args, opts in cases:
            args = [shared if v == "@SHARED" else v for v in args]
            opts = {k: (shared if v == "@SHARED" else v) for k, v in opts.items()}
            out = os.path.join(w, "out")
            shutil.rmtree(out, ignore_errors=True)
            opts = dict(opts)
            opts.setdefault("tz", "UTC")
            env = dict(os.environ, TZ=opts["tz"], REQUESTS_CA_BUNDLE=os.path.join(st, "ca.pem"))
            cmd = [a.binary, "--username", "tree@example.com", "--password", PW, "--directory", out,
                   "--cookie-directory", os.path.join(w, "cookies"), "--no-progress-bar"] + args
            with open(os.path.join(w, "icloudpd.log"), "w") as logf:
                rc = subprocess.run(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT, timeout=600).returncode
            exp = expected_tree.expected_icloudpd_tree(lib, opts)
            got = walk(out) if os.path.isdir(out) else {}
            diffs = []
            for k in sorted(set(exp) | set(got)):
                e, g = exp.get(k), got.get(k)
                if e is not None and g is not None and e[1] is None:
                    e = (e[0], g[1])          # .part leftovers: mtime is the download time
                if e != g:
                    diffs.append("%r expected %s got %s" % (k, e, g))
            name = "icloudpd %s TZ=%s (%d files)" % (" ".join(args) or "(defaults)", opts["tz"], len(exp))
            if rc == 0 and not diffs and exp:
                passed += 1
                print("PASS: " + name, flush=True)
            else:
                failed += 1
                print("FAIL: %s rc=%d" % (name, rc), flush=True)
                for d in diffs[:20]:
                    print("    " + d)
        if not a.quick:
            ok, detail = incremental(a, w, st, lib)
            passed += ok
            failed += not ok
            print("%s: icloudpd re-run and between-run changes%s" % ("PASS" if ok else "FAIL",
                                                                    "" if ok else " -- " + detail), flush=True)
    finally:
        srv.terminate()
        srv.wait(10)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.environ.get("ICLOUDPD_BIN", DEFAULT_BIN))
    ap.add_argument("--assets", type=int, default=60)
    ap.add_argument("--seed", default="1")
    ap.add_argument("--quick", action="store_true", help="first three option sets only")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.inner:
        return inner(a)
    if os.geteuid() != 0 or not shutil.which("unshare") or not os.access(a.binary, os.X_OK):
        print("SKIP: needs root, unshare and the icloudpd binary (%s)" % a.binary)
        return 77
    w = tempfile.mkdtemp(prefix="icpd-tree-")
    subprocess.run(["/usr/bin/python3", os.path.join(HERE, "gen_library.py"), "--assets", str(a.assets),
                    "--seed", a.seed, "--hostile", "safe", "--out", os.path.join(w, "lib.json")], check=True,
                   stderr=subprocess.DEVNULL)
    with open(os.path.join(w, "accounts.json"), "w") as f:
        json.dump({"accounts": [{"apple_id": "tree@example.com", "password": PW, "hsa_version": 0,
                                 "library": os.path.join(w, "lib.json")}]}, f)
    cmd = ["unshare", "--mount", "--net", "--propagation", "private", "/usr/bin/python3", os.path.abspath(__file__),
           "--inner", "--work", w, "--binary", a.binary] + (["--quick"] if a.quick else [])
    rc = subprocess.run(cmd).returncode
    if rc == 0:
        shutil.rmtree(w, ignore_errors=True)
    else:
        print("work directory kept: " + w)
    return rc


if __name__ == "__main__":
    sys.exit(main())
