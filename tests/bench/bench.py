#!/usr/bin/python3
"""icpd vs the real icloudpd 1.32.2, side by side against the fake iCloud.

Run through tests/bench/run.sh (it builds icpd and installs icloudpd first).
Not part of the test suite: it asserts nothing, it measures and reports.

    bench.py --icpd PATH --icloudpd PATH [--quick] [--rounds N] [--rounds-100k N]
             [--scenarios list10k,resync10k,dl2k,list100k] [--work DIR] [--keep]

Both programs run unmodified inside one private mount + network namespace
(unshare --mount --net): loopback only, /etc/hosts maps Apple's host names to
127.0.0.1, the fake listens on 443 with --hosts apple, the fake's CA is
bind-mounted over the system bundle.  icloudpd gets REQUESTS_CA_BUNDLE, icpd
gets --ca-file; both use their built-in Apple endpoints.

Each scenario runs icpd and icloudpd alternately (A B A B ...).  Per run: wall
time (monotonic clock around fork..wait4), user+sys CPU seconds and peak RSS
from /usr/bin/time's wait4 rusage of the process tree (the kernel folds
reaped descendants in: icloudpd is a staticx launcher that runs the
PyInstaller bootloader, which forks the Python child and waits for it), the peak of the summed RSS of the live tree sampled from /proc every
50 ms, and the HTTP requests the fake saw (control API counters, reset before
every run).  The fake's own CPU seconds are recorded too, to show when the
server is the bottleneck.
"""
import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
FAKE = os.path.join(REPO, "tests", "fake_icloud")
PY = "/usr/bin/python3"
PW = "icpd-bench fake password"      # a password of the fake's test account, nothing real
APPLE_HOSTS = ("idmsa.apple.com setup.icloud.com www.icloud.com p42-ckdatabasews.icloud.com "
               "cvws.icloud-content.com")
BANDWIDTH = 10 * 1024 * 1024         # per-connection cap of the download scenario (bytes/s)
CLK = os.sysconf("SC_CLK_TCK")

# name -> (title, library size (full, quick), kind)
SCENARIOS = {
    "list10k": ("listing only, 10k assets", (10000, 300), "list"),
    "resync10k": ("no-op re-sync, 10k assets", (10000, 300), "resync"),
    "dl2k": ("first full download, 2k assets, 10 MB/s per connection", (2000, 200), "download"),
    "list100k": ("listing only, 100k assets", (100000, 1000), "list"),
}
ORDER = ["list10k", "resync10k", "dl2k", "list100k"]


def log(msg):
    print("[bench %s] %s" % (datetime.datetime.utcnow().strftime("%H:%M:%S"), msg), flush=True)


# ---------------------------------------------------------------- measuring
def proc_children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rfind(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree_rss_kb(root, skip_root=False):
    kids = proc_children_map()
    todo, total = ([root] if not skip_root else list(kids.get(root, []))), 0
    while todo:
        pid = todo.pop()
        todo.extend(kids.get(pid, []))
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def proc_cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def measure(argv, env, out_path, stdin_data=None, kill_at=None):
    """Run argv, return the measurements of its process tree.  kill_at: a
    time.time() after which the whole tree is killed (result marked)."""
    load0 = os.getloadavg()[0]
    killed = [False]
    # rusage comes from GNU time, not from our own wait4: Python starts
    # children with vfork, and the kernel carries the high-water RSS of the
    # pre-exec address space (this Python process, 20-60 MB) into the
    # child's ru_maxrss.  time(1) is a small C program that fork()s, so its
    # report is the tool's own (max over the tree: reaped descendants fold in).
    ru_path = out_path + ".rusage"
    argv = ["/usr/bin/time", "-o", ru_path, "-f", "%e %U %S %M"] + list(argv)
    with open(out_path, "wb") as out:
        p = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                             stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL)
        t0 = time.monotonic()
        if stdin_data is not None:
            p.stdin.write(stdin_data)
            p.stdin.close()
        peak = [0]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], tree_rss_kb(p.pid, skip_root=True))   # root = time(1)
                if kill_at and time.time() > kill_at and not killed[0]:
                    killed[0] = True
                    try:
                        os.killpg(p.pid, 9)
                    except OSError:
                        pass
                done.wait(0.05)
        th = threading.Thread(target=sample, daemon=True)
        th.start()
        _, status, _ = os.wait4(p.pid, 0)
        t1 = time.monotonic()
        done.set()
        th.join()
        p.returncode = os.waitstatus_to_exitcode(status)
    with open(ru_path) as f:
        last = f.read().strip().splitlines()[-1].split()   # "Command exited with non-zero status N" may precede
    e, u, sy, mx = float(last[0]), float(last[1]), float(last[2]), int(last[3])
    return {"wall": t1 - t0, "user": u, "sys": sy, "time_wall": e,
            "cpu": u + sy, "maxrss_mb": mx / 1024.0,
            "tree_rss_mb": peak[0] / 1024.0, "rc": p.returncode, "killed": killed[0],
            "load": (load0 + os.getloadavg()[0]) / 2}


# ---------------------------------------------------------------- the fake
class Fake:
    def __init__(self, work, accounts_path):
        self.state = os.path.join(work, "state")
        self.errf = open(os.path.join(work, "fake.stderr"), "w")
        ready = os.path.join(self.state, "ready.json")
        if os.path.exists(ready):
            os.unlink(ready)
        self.proc = subprocess.Popen([PY, os.path.join(HERE, "fake_nodelay.py"), "--port", "443", "--hosts", "apple",
                                      "--state-dir", self.state, "--accounts", accounts_path,
                                      "--control-port", "0", "--render-cache"],
                                     stdout=subprocess.DEVNULL, stderr=self.errf)
        deadline = time.time() + 600
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("the fake did not start; see %s" % self.errf.name)
            time.sleep(0.2)
        time.sleep(0.2)
        with open(ready) as f:
            r = json.load(f)
        self.cport = r["control_port"]
        self.ca = r["ca"]

    def ctl(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.cport, path), data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b"null")

    def reset(self):
        self.ctl("POST", "/reset_counters")

    def counts(self):
        d = self.ctl("GET", "/requests")
        c = {"total": d["total"], "auth": 0, "cloudkit": 0, "download": 0}
        for k, n in d["counts"].items():
            path = k.split(" ", 1)[1]
            if path.startswith("/B/"):
                c["download"] += n
            elif path.startswith("/database/"):
                c["cloudkit"] += n
            else:
                c["auth"] += n
        return c

    def cpu(self):
        return proc_cpu_s(self.proc.pid)

    def rss_mb(self):
        return tree_rss_kb(self.proc.pid) / 1024.0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- tools
class Tool:
    def __init__(self, name, binary, work, fake):
        self.name, self.binary, self.work, self.fake = name, binary, work, fake

    def cookies(self, user):
        d = os.path.join(self.work, "cookies-%s-%s" % (self.name, user.split("@")[0]))
        os.makedirs(d, mode=0o700, exist_ok=True)
        return d


class Icpd(Tool):
    def env(self):
        e = {k: v for k, v in os.environ.items() if not k.startswith("ICPD_") and "proxy" not in k.lower()}
        e.update({"TZ": "UTC", "HOME": self.work})
        return e

    def base(self, cmd, user):
        return [self.binary, cmd, "-u", user, "--cookie-directory", self.cookies(user),
                "--password-file", os.path.join(self.work, "pw"), "--ca-file", self.fake.ca]

    def sign_in(self, user):
        r = subprocess.run(self.base("auth", user), input=b"\n", env=self.env(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        if r.returncode != 0:
            raise RuntimeError("icpd auth failed: %s" % r.stdout.decode("utf-8", "replace")[-2000:])

    def forget_state(self, user):
        """Drop the state database (not the session): the next run starts from nothing."""
        d = self.cookies(user)
        for f in os.listdir(d):
            if f.startswith("icpd-") and ".db" in f:
                os.unlink(os.path.join(d, f))

    def argv(self, kind, user, out):
        a = self.base("sync", user) + ["-d", out, "--no-progress-bar"]
        if kind == "list":
            a.append("--dry-run")
        return a


class Icloudpd(Tool):
    def env(self):
        e = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        e.update({"TZ": "UTC", "HOME": self.work, "REQUESTS_CA_BUNDLE": self.fake.ca})
        return e

    def base(self, user):
        return [self.binary, "--username", user, "--password", PW, "--cookie-directory", self.cookies(user),
                "--no-progress-bar"]

    def sign_in(self, user):
        r = subprocess.run(self.base(user) + ["--auth-only"], env=self.env(), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        if r.returncode != 0:
            raise RuntimeError("icloudpd --auth-only failed: %s" % r.stdout.decode("utf-8", "replace")[-2000:])

    def forget_state(self, user):
        pass

    def argv(self, kind, user, out):
        a = self.base(user) + ["--directory", out]
        if kind == "list":
            a.append("--only-print-filenames")
        return a


def shown(argv):
    """argv for the report: paths shortened, the (fake) password masked."""
    out, hide = [], False
    for x in argv:
        if hide:
            out.append("'***'")
            hide = False
            continue
        hide = x == "--password"
        out.append(x)
    return " ".join(out)


def count_files(root):
    n = 0
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if not x.startswith(".icpd-tmp")]
        n += len(files)
    return n


# ---------------------------------------------------------------- scenarios
def user_of(name):
    return "bench-%s@example.com" % name


def one_run(a, t, kind, user, out, fake, logf):
    """One measured run of tool t (a fresh folder and state for listings and downloads), with
    the fake's CPU and request counts over it.  Returns (measures, argv); argv may hold the
    tool's password (icloudpd's --password): report it through shown() only."""
    if kind in ("list", "download"):
        t.forget_state(user)
        shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out, exist_ok=True)
    argv = t.argv(kind, user, out)
    fake.reset()
    fcpu0 = fake.cpu()
    m = measure(argv, t.env(), logf, kill_at=a.kill_at)
    m["fake_cpu"] = fake.cpu() - fcpu0
    m["requests"] = fake.counts()
    m["files"] = count_files(out)
    return m, argv


def run_scenario(a, name, tools, fake, results):
    title, sizes, kind = SCENARIOS[name]
    n = sizes[1] if a.quick else sizes[0]
    rounds = a.rounds_100k if name == "list100k" and a.rounds_100k else a.rounds
    user = user_of(name)
    sc = {"name": name, "title": title, "assets": n, "kind": kind, "rounds": rounds, "runs": [],
          "commands": {}, "notes": []}
    results["scenarios"][name] = sc
    log("%s: signing in both tools" % name)
    for t in tools:
        t.sign_in(user)
    outs = {t.name: os.path.join(a.work, "out-%s-%s" % (name, t.name)) for t in tools}
    if kind == "resync":
        icpd = tools[0]
        icpd.forget_state(user)
        shutil.rmtree(outs["icpd"], ignore_errors=True)
        fake.reset()
        log("%s: preparing: icpd downloads the %d-asset library once (not timed in the table)" % (name, n))
        m = measure(icpd.argv("download", user, outs["icpd"]), icpd.env(), os.path.join(a.work, name + "-prep.log"))
        c = fake.counts()
        files = count_files(outs["icpd"])
        sc["prep"] = dict(m, requests=c, files=files)
        if m["rc"] != 0:
            raise RuntimeError("prep sync failed, see %s-prep.log" % name)
        log("%s: prep took %.1f s, %d files; copying the tree for icloudpd" % (name, m["wall"], files))
        shutil.rmtree(outs["icloudpd"], ignore_errors=True)
        subprocess.run(["cp", "-a", outs["icpd"], outs["icloudpd"]], check=True)
        shutil.rmtree(os.path.join(outs["icloudpd"], ".icpd-tmp"), ignore_errors=True)
        sc["notes"].append("icloudpd's folder is a copy (cp -a, same sizes and mtimes) of the tree icpd "
                           "downloaded in the untimed preparation run, so both start from a complete "
                           "folder; icpd also has its state database with the sync tokens of that run.")
    if kind == "list":
        # the fake's render cache (--render-cache) keeps each record's JSON per
        # desiredKeys set: one untimed run of each tool first, so every timed
        # round of both tools is served from a warm cache
        sc["warmup"] = {}
        for t in tools:
            if a.stop_at and time.time() > a.stop_at:
                break
            log("%s: warm-up: %s lists the %d-asset library once (not timed in the table)" % (name, t.name, n))
            m, _ = one_run(a, t, kind, user, outs[t.name], fake,
                           os.path.join(a.work, "%s-%s-warmup.log" % (name, t.name)))
            sc["warmup"][t.name] = m
            log("%s %s warm-up: %.2f s wall, %.2f s cpu, rc %d, fake cpu %.1f s" %
                (name, t.name, m["wall"], m["cpu"], m["rc"], m["fake_cpu"]))
        sc["notes"].append("before the timed rounds, each tool ran the same listing once, untimed (warm-up: "
                           "%s), so the fake's render cache holds every record for both tools' desiredKeys and "
                           "no timed round pays the fake's first rendering" %
                           (", ".join("%s %.1f s wall, rc %d, fake CPU %.1f s" %
                                      (k, v["wall"], v["rc"], v["fake_cpu"]) for k, v in sc["warmup"].items())
                            or "skipped: past --stop-at"))
    for r in range(rounds):
        if a.stop_at and time.time() > a.stop_at:
            sc["notes"].append("rounds %d..%d not run: past --stop-at" % (r, rounds - 1))
            log("%s: past --stop-at, skipping rounds %d.." % (name, r))
            break
        for t in tools:
            logf = os.path.join(a.work, "%s-%s-%d.log" % (name, t.name, r))
            m, argv = one_run(a, t, kind, user, outs[t.name], fake, logf)
            sc["commands"][t.name] = shown(argv)
            m["tool"], m["round"] = t.name, r
            sc["runs"].append(m)
            log("%s %s round %d: %.2f s wall, %.2f s cpu, %.1f MB rss (tree %.1f), %d requests "
                "(%d downloads), %d files, rc %d, fake cpu %.1f s" %
                (name, t.name, r, m["wall"], m["cpu"], m["maxrss_mb"], m["tree_rss_mb"],
                 m["requests"]["total"], m["requests"]["download"], m["files"], m["rc"], m["fake_cpu"]))
            if m["killed"]:
                sc["notes"].append("%s round %d was KILLED at the --kill-at deadline after %.0f s; its numbers "
                                   "are not a result" % (t.name, r, m["wall"]))
            elif m["rc"] != 0:
                sc["notes"].append("%s round %d exited %d (log %s)" % (t.name, r, m["rc"], logf))
    return sc


# ---------------------------------------------------------------- report
def med(runs, tool, key):
    v = [r[key] for r in runs if r["tool"] == tool and not r.get("killed")]
    return statistics.median(v) if v else None


def med_req(runs, tool, key="total"):
    v = [r["requests"][key] for r in runs if r["tool"] == tool and not r.get("killed")]
    return statistics.median(v) if v else None


def summary(sc):
    s = {}
    for t in ("icpd", "icloudpd"):
        s[t] = {k: med(sc["runs"], t, k) for k in ("wall", "cpu", "maxrss_mb", "tree_rss_mb", "fake_cpu", "files")}
        s[t]["peak_mb"] = max(s[t]["maxrss_mb"] or 0, s[t]["tree_rss_mb"] or 0)
        s[t]["requests"] = med_req(sc["runs"], t)
        s[t]["downloads"] = med_req(sc["runs"], t, "download")
        s[t]["walls"] = [r["wall"] for r in sc["runs"] if r["tool"] == t]
    return s


def ratio(a, b):
    if not a or b is None:
        return None
    return b / a


def fmt(v, spec="%.2f"):
    return "–" if v is None else spec % v


TARGETS = {
    "list": ("≥ 10× faster", 10),
    "download": ("≥ 3× faster", 3),
    "resync": ("≥ 50× faster, ≤ 10 requests", 50),
}


def rss_floor(work):
    """Peak RSS of tests/bench/rss_floor.c (links libcurl, calls curl_global_init): what the
    distribution's libcurl costs any program before its own work.  {} when it cannot be built."""
    exe = os.path.join(work, "rss_floor")
    r = subprocess.run(["cc", "-O2", "-o", exe, os.path.join(HERE, "rss_floor.c"), "-lcurl"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        log("rss_floor.c did not build: %s" % r.stdout.decode("utf-8", "replace")[-500:])
        return {}
    out = subprocess.run([exe], stdout=subprocess.PIPE).stdout.decode()
    d = dict(line.split() for line in out.splitlines() if len(line.split()) == 2)
    libs = subprocess.run(["ldd", exe], stdout=subprocess.PIPE).stdout.decode().count("=>")
    return {"loaded_mb": int(d["loaded_kb"]) / 1024.0, "init_mb": int(d["init_kb"]) / 1024.0, "libs": libs}


def machine():
    info = {"nproc": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    info["mem_gb"] = int(line.split()[1]) / 1024.0 / 1024.0
        info["kernel"] = os.uname().release
        with open("/etc/debian_version") as f:
            info["debian"] = f.read().strip()
    except OSError:
        pass
    return info


def floor_text(f, results):
    """The measured libcurl floor, against the ≤ 1/5 budget (the smallest icloudpd peak / 5)."""
    if not f:
        return ""
    peaks = [summary(sc)["icloudpd"]["peak_mb"] for sc in results["scenarios"].values() if sc.get("runs")]
    peaks = [x for x in peaks if x]
    text = (": tests/bench/rss_floor.c, a few lines that link Debian's libcurl (%d shared libraries come "
            "with it) and call curl_global_init, peaks at %.1f MB RSS (%.1f MB before the init) — the floor "
            "under any client built on the distribution's libcurl" % (f["libs"], f["init_mb"], f["loaded_mb"]))
    if peaks:
        budget = min(peaks) / 5
        text += ", %.0f %% of the ≤ 1/5 budget (%.1f MB) before a single request" % (100 * f["init_mb"] / budget,
                                                                                    budget)
    return text


def write_report(a, results):
    lines = []
    m = results["machine"]
    lines.append("# icpd vs icloudpd 1.32.2 — benchmark results\n")
    lines.append("Written by `tests/bench/run.sh` (tests/bench/bench.py); do not edit by hand — "
                 "re-run the script. Chart: [chart.svg](chart.svg).\n")
    lines.append("* date: %s (UTC)%s" % (results["date"], "  — **`--quick` mode: small sizes, 1 round, "
                                                          "not the real benchmark**" if a.quick else ""))
    lines.append("* machine: %s CPUs (`nproc`), %.1f GB RAM, %s; Debian %s, kernel %s" %
                 (m.get("nproc"), m.get("mem_gb", 0), m.get("cpu", "?"), m.get("debian", "?"), m.get("kernel", "?")))
    lines.append("* icpd: commit `%s` (%s), release build (`--buildtype=release`), `%s`" %
                 (results["icpd_commit"], results["icpd_version"], a.icpd))
    lines.append("* icloudpd: npm `icloudpd@1.32.2` prebuilt binary, unmodified (`%s`)" % results["icloudpd_version"])
    lines.append("* fake iCloud: tests/fake_icloud/server.py on port 443 `--hosts apple`, libraries from the "
                 "compact `{\"generate\": {\"count\": N, \"seed\": S, \"hostile\": \"none\"}}` form; "
                 "both tools in the same private mount+net namespace (loopback only, /etc/hosts and CA "
                 "bundle bind-mounted), each tool with its built-in Apple endpoints")
    lines.append("* rounds: A B A B … (icpd first), %d per scenario%s; medians below" %
                 (a.rounds, (", %d for list100k" % a.rounds_100k) if a.rounds_100k else ""))
    lines.append("* command: `%s`" % results["argv"])
    loads = [r.get("load", 0) for sc in results["scenarios"].values() for r in sc["runs"]]
    if loads:
        lines.append("* machine load during the runs: 1-minute load average %.1f–%.1f on %s CPUs (other "
                     "work was running on the machine; wall times are inflated by CPU contention for both "
                     "tools alike — CPU seconds are the steadier measure)" % (min(loads), max(loads), m.get("nproc")))
    lines.append("* the fake runs through tests/bench/fake_nodelay.py (TCP_NODELAY on its sockets; without it "
                 "every response waits ~40 ms on delayed ACK, a fake-only artifact) with `--render-cache`: "
                 "the fake keeps each listed record's JSON (per desiredKeys set) and only re-computes the "
                 "downloadURL expiry and signature per request, so its answers are byte-identical to the "
                 "uncached fake's (tests/fake_icloud/test_cloudkit.py RenderCache) but cost ~10× less of its "
                 "CPU, which otherwise dominated the listing scenarios' wall time; the listing scenarios "
                 "start with one untimed warm-up run of each tool to fill that cache\n")
    lines.append("## Summary (medians)\n")
    lines.append("| scenario | assets | icpd wall s | icloudpd wall s | **speed ratio** | target | icpd CPU s | "
                 "icloudpd CPU s | CPU ratio | icpd peak RSS MB | icloudpd peak RSS MB | RSS ratio | "
                 "icpd requests | icloudpd requests | files icpd / icloudpd |")
    lines.append("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in ORDER:
        sc = results["scenarios"].get(name)
        if not sc or not sc["runs"]:
            continue
        s = summary(sc)
        i, p = s["icpd"], s["icloudpd"]
        tgt = TARGETS[sc["kind"]][0]
        lines.append("| %s | %d | %s | %s | **%s×** | %s | %s | %s | %s× | %s | %s | %s× | %s | %s | %s / %s |" % (
            sc["title"], sc["assets"], fmt(i["wall"]), fmt(p["wall"]), fmt(ratio(i["wall"], p["wall"]), "%.1f"), tgt,
            fmt(i["cpu"]), fmt(p["cpu"]), fmt(ratio(i["cpu"], p["cpu"]), "%.1f"),
            fmt(i["peak_mb"], "%.1f"), fmt(p["peak_mb"], "%.1f"), fmt(ratio(i["peak_mb"], p["peak_mb"]), "%.1f"),
            fmt(i["requests"], "%d"), fmt(p["requests"], "%d"), fmt(i["files"], "%d"), fmt(p["files"], "%d")))
    lines.append("")
    lines.append("Ratios are icloudpd ÷ icpd (higher = icpd better). Peak RSS = the larger of GNU time's "
                 "`%M` (wait4 `ru_maxrss` of the tree: its largest single process) and the sampled sum of RSS "
                 "over the live tree (50 ms). CPU = user + sys from GNU time (wait4; includes reaped children). "
                 "RSS counts shared library pages too" + floor_text(results.get("rss_floor") or {}, results) + ". "
                 "Requests = every HTTPS request the fake answered during the run (sign-in, CloudKit, "
                 "downloads).\n")
    lines.append("Targets of issue 8: listing ≥ 10×, capped full download ≥ 3×, no-op re-sync ≥ 50× and "
                 "≤ 10 requests, peak RSS < 30 MB at 100k and ≤ 1/5 of icloudpd's, CPU ≤ 1/5 of icloudpd's.\n")
    lines.append("| scenario | speed | requests | peak RSS | CPU |")
    lines.append("|---|---|---|---|---|")

    def verdict(ok, text):
        return ("met (%s)" if ok else "**NOT met** (%s)") % text
    for name in ORDER:
        sc = results["scenarios"].get(name)
        if not sc or not sc["runs"]:
            continue
        s = summary(sc)
        i, p = s["icpd"], s["icloudpd"]
        if i["wall"] is None or p["wall"] is None:
            continue
        sp, cp, mp = ratio(i["wall"], p["wall"]), ratio(i["cpu"], p["cpu"]), ratio(i["peak_mb"], p["peak_mb"])
        tgt = TARGETS[sc["kind"]][1]
        req = verdict(i["requests"] <= 10, "%d ≤ 10" % i["requests"]) if sc["kind"] == "resync" else "–"
        rss = verdict(mp >= 5, "%.1f× ≥ 5×" % mp)
        if name == "list100k":
            rss = verdict(mp >= 5 and i["peak_mb"] < 30, "%.1f MB < 30 MB, %.1f× ≥ 5×" % (i["peak_mb"], mp))
        lines.append("| %s | %s | %s | %s | %s |" % (name, verdict(sp >= tgt, "%.1f× ≥ %d×" % (sp, tgt)), req, rss,
                                                     verdict(cp >= 5, "%.1f× ≥ 5×" % cp)))
    lines.append("")
    lines.append("## Every run\n")
    lines.append("| scenario | tool | round | wall s | user s | sys s | maxrss MB | tree RSS MB | requests "
                 "(auth / CloudKit / downloads) | files | exit | fake CPU s | load avg |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for name in ORDER:
        sc = results["scenarios"].get(name)
        if not sc:
            continue
        for r in sc["runs"]:
            q = r["requests"]
            lines.append("| %s | %s | %d | %.2f | %.2f | %.2f | %.1f | %.1f | %d (%d / %d / %d) | %d | %s | %.1f | %.1f |" % (
                name, r["tool"], r["round"], r["wall"], r["user"], r["sys"], r["maxrss_mb"], r["tree_rss_mb"],
                q["total"], q["auth"], q["cloudkit"], q["download"], r["files"],
                "killed" if r.get("killed") else r["rc"], r["fake_cpu"], r.get("load", 0)))
    lines.append("")
    lines.append("## Commands per scenario\n")
    for name in ORDER:
        sc = results["scenarios"].get(name)
        if not sc:
            continue
        lines.append("### %s — %s (%d assets)\n" % (name, sc["title"], sc["assets"]))
        for t in ("icpd", "icloudpd"):
            if t in sc["commands"]:
                lines.append("* %s: `%s`" % (t, sc["commands"][t]))
        if "prep" in sc:
            pr = sc["prep"]
            lines.append("* preparation (untimed in the table): icpd full sync of the library, %.1f s wall, "
                         "%.1f s CPU, %.1f MB peak RSS, %d requests, %d files" %
                         (pr["wall"], pr["cpu"], pr["maxrss_mb"], pr["requests"]["total"], pr["files"]))
        for note in sc["notes"]:
            lines.append("* note: %s" % note)
        lines.append("")
    for extra in results.get("notes", []):
        lines.append(extra + "\n")
    prof = os.path.join(HERE, "PROFILE.md")
    if os.path.exists(prof):
        with open(prof) as f:
            lines.append(f.read())
    os.makedirs(a.out_dir, exist_ok=True)
    path = os.path.join(a.out_dir, "RESULTS.md")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
    write_svg(a, results)


def write_svg(a, results):
    rows = [(results["scenarios"][n], summary(results["scenarios"][n])) for n in ORDER
            if n in results["scenarios"] and results["scenarios"][n]["runs"]]
    if not rows:
        return
    import math
    W, left, panel, gap, rowh, top = 1000, 230, 330, 60, 54, 70
    H = top + rowh * len(rows) + 50
    col = {"icpd": "#2b7bb9", "icloudpd": "#d9822b"}
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
           'font-size="12">' % (W, H), '<rect width="100%" height="100%" fill="white"/>',
           '<text x="10" y="20" font-size="15" font-weight="bold">icpd vs icloudpd 1.32.2 '
           '(median of %s; log scale)</text>' % ("1 run, --quick" if a.quick else "the rounds")]

    def panel_svg(x0, title, key, unit):
        vals = [s[t][key] for _, s in rows for t in ("icpd", "icloudpd") if s[t][key]]
        lo = 10 ** math.floor(math.log10(min(vals)))
        hi = 10 ** math.ceil(math.log10(max(vals)))
        dec = max(1, round(math.log10(hi / lo)))

        def xs(v):
            return x0 + panel * math.log10(max(v, lo) / lo) / dec
        out.append('<text x="%d" y="45" font-weight="bold">%s</text>' % (x0, title))
        for k in range(dec + 1):
            v = lo * 10 ** k
            x = xs(v)
            out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>' % (x, top - 8, x, H - 40))
            out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#666">%g %s</text>' % (x, H - 25, v, unit))
        for i, (sc, s) in enumerate(rows):
            y = top + i * rowh
            for j, t in enumerate(("icpd", "icloudpd")):
                v = s[t][key]
                if not v:
                    continue
                yy = y + j * 20
                out.append('<rect x="%d" y="%d" width="%.1f" height="16" fill="%s"/>' %
                           (x0, yy, max(1.0, xs(v) - x0), col[t]))
                out.append('<text x="%.1f" y="%d" fill="#222">%.3g</text>' % (xs(v) + 4, yy + 12, v))
    for i, (sc, s) in enumerate(rows):
        y = top + i * rowh
        out.append('<text x="10" y="%d">%s</text>' % (y + 14, sc["name"]))
        out.append('<text x="10" y="%d" fill="#666" font-size="10">%d assets; %s× faster</text>' %
                   (y + 30, sc["assets"], fmt(ratio(s["icpd"]["wall"], s["icloudpd"]["wall"]), "%.1f")))
    panel_svg(left, "wall time (s)", "wall", "s")
    panel_svg(left + panel + gap, "peak RSS (MB)", "peak_mb", "MB")
    lx = W - 200
    for j, t in enumerate(("icpd", "icloudpd")):
        out.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>' %
                   (lx + j * 90, 10, col[t], lx + j * 90 + 16, 21, t))
    out.append("</svg>")
    with open(os.path.join(a.out_dir, "chart.svg"), "w") as f:
        f.write("\n".join(out) + "\n")


# ---------------------------------------------------------------- main
def utc_today(hhmm):
    """'HH:MM' (UTC, today) -> time.time() value; '' -> None."""
    if not hhmm:
        return None
    h, m = hhmm.split(":")
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.replace(hour=int(h), minute=int(m), second=0, microsecond=0).timestamp()


def inner(a):
    w = a.work
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["mount", "--bind", os.path.join(w, "hosts"), "/etc/hosts"], check=True)
    if os.path.exists("/etc/ssl/certs/ca-certificates.crt"):
        subprocess.run(["mount", "--bind", os.path.join(w, "state", "ca.pem"),
                        "/etc/ssl/certs/ca-certificates.crt"], check=True)
    with open(os.path.join(w, "results.json")) as f:
        results = json.load(f)
    log("starting the fake (generating libraries: %s)" % ", ".join(a.scenarios))
    t0 = time.monotonic()
    fake = Fake(w, os.path.join(w, "accounts.json"))
    log("fake ready in %.1f s, RSS %.0f MB" % (time.monotonic() - t0, fake.rss_mb()))
    tools = [Icpd("icpd", a.icpd, w, fake), Icloudpd("icloudpd", a.icloudpd, w, fake)]
    try:
        for name in a.scenarios:
            try:
                run_scenario(a, name, tools, fake, results)
            except Exception as e:   # report and go on with the next scenario
                log("%s FAILED: %s" % (name, e))
                results.setdefault("notes", []).append("**%s did not complete**: %s" % (name, e))
            results["fake_rss_mb"] = fake.rss_mb()
            with open(os.path.join(w, "results.json"), "w") as f:
                json.dump(results, f, indent=1)
            write_report(a, results)
    finally:
        fake.stop()
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--icpd", required=True)
    ap.add_argument("--icloudpd", required=True)
    ap.add_argument("--quick", action="store_true", help="small libraries, 1 round: try the harness")
    ap.add_argument("--rounds", type=int, default=None, help="runs per tool and scenario (default 3; quick 1)")
    ap.add_argument("--rounds-100k", type=int, default=0, help="rounds for list100k (default: --rounds)")
    ap.add_argument("--scenarios", default=",".join(ORDER), help="comma list of " + ",".join(ORDER))
    ap.add_argument("--assets", default="", help="override sizes, e.g. list100k=50000,dl2k=1000")
    ap.add_argument("--work", help="work directory (default: a new /var/tmp/icpd-bench.*)")
    ap.add_argument("--out-dir", default=HERE, help="where RESULTS.md and chart.svg go")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--size-scale", type=float, default=1.0,
                    help="file size factor of the download library (generator's size_scale; the default "
                         "files are 6-300 KB, too small for the 10 MB/s cap to bind)")
    ap.add_argument("--stop-at", default="", help="HH:MM UTC: start no new round after this")
    ap.add_argument("--kill-at", default="", help="HH:MM UTC: kill a run still going at this time")
    ap.add_argument("--report-only", metavar="WORKDIR",
                    help="rewrite RESULTS.md and chart.svg from WORKDIR/results.json (no runs)")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.rounds is None:
        a.rounds = 1 if a.quick else 3
    a.stop_at_s, a.kill_at_s = a.stop_at, a.kill_at
    a.stop_at, a.kill_at = utc_today(a.stop_at), utc_today(a.kill_at)
    a.scenarios = [s for s in a.scenarios.split(",") if s]
    for s in a.scenarios:
        if s not in SCENARIOS:
            ap.error("unknown scenario %r" % s)
    for kv in filter(None, a.assets.split(",")):
        k, v = kv.split("=")
        t, sizes, kind = SCENARIOS[k]
        SCENARIOS[k] = (t.replace("100k", v).replace("10k", v).replace("2k", v), (int(v), int(v)), kind)
    if a.inner:
        return inner(a)
    if a.report_only:
        with open(os.path.join(a.report_only, "results.json")) as f:
            write_report(a, json.load(f))
        return 0

    if os.geteuid() != 0:
        print("bench: needs root (unshare --net, port 443)", file=sys.stderr)
        return 2
    a.icpd, a.icloudpd = os.path.abspath(a.icpd), os.path.abspath(a.icloudpd)
    w = a.work or tempfile.mkdtemp(prefix="icpd-bench.", dir="/var/tmp")
    os.makedirs(w, exist_ok=True)
    a.work = w
    log("work directory %s" % w)
    accounts = []
    for name in a.scenarios:
        t, sizes, kind = SCENARIOS[name]
        n = sizes[1] if a.quick else sizes[0]
        spec = {"generate": {"count": n, "seed": "bench-%d" % n, "hostile": "none"}}
        if kind == "download":
            spec["faults"] = {"bandwidth": BANDWIDTH}
            if a.size_scale != 1.0:
                spec["generate"]["size_scale"] = a.size_scale
        lp = os.path.join(w, "lib-%s.json" % name)
        with open(lp, "w") as f:
            json.dump(spec, f)
        accounts.append({"apple_id": user_of(name), "password": PW, "hsa_version": 0, "iterations": 1000,
                         "library": lp})
    with open(os.path.join(w, "accounts.json"), "w") as f:
        json.dump({"accounts": accounts}, f)
    with open(os.path.join(w, "pw"), "w") as f:
        f.write(PW + "\n")
    os.chmod(os.path.join(w, "pw"), 0o600)
    with open(os.path.join(w, "hosts"), "w") as f:
        f.write("127.0.0.1 localhost\n::1 localhost\n127.0.0.1 %s\n" % APPLE_HOSTS)
    subprocess.run([PY, os.path.join(FAKE, "server.py"), "--certs-only", "--port", "443",
                    "--state-dir", os.path.join(w, "state"), "--accounts", os.path.join(w, "accounts.json")],
                   check=True, stdout=subprocess.DEVNULL)

    def out(cmd):
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return r.stdout.decode("utf-8", "replace").strip()
    commit = out(["git", "-C", REPO, "rev-parse", "--short=12", "HEAD"])
    if out(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no", "--", "src", "include"]):
        commit += "-dirty"
    floor = rss_floor(w)
    results = {"date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"), "machine": machine(),
               "rss_floor": floor,
               "icpd_commit": commit, "icpd_version": out([a.icpd, "--version"]).splitlines()[0],
               "icloudpd_version": " ".join(out([a.icloudpd, "--version"]).split()),
               "argv": "tests/bench/run.sh " + " ".join(sys.argv[1:]) if os.environ.get("ICPD_BENCH_ARGV") is None
               else os.environ["ICPD_BENCH_ARGV"], "scenarios": {}}
    with open(os.path.join(w, "results.json"), "w") as f:
        json.dump(results, f)
    argv = ["unshare", "--mount", "--net", "--propagation", "private", PY, os.path.abspath(__file__),
            "--inner", "--work", w, "--icpd", a.icpd, "--icloudpd", a.icloudpd, "--rounds", str(a.rounds),
            "--rounds-100k", str(a.rounds_100k), "--scenarios", ",".join(a.scenarios), "--out-dir", a.out_dir]
    if a.assets:
        argv += ["--assets", a.assets]
    if a.size_scale != 1.0:
        argv += ["--size-scale", str(a.size_scale)]
    if a.stop_at_s:
        argv += ["--stop-at", a.stop_at_s]
    if a.kill_at_s:
        argv += ["--kill-at", a.kill_at_s]
    if a.quick:
        argv.append("--quick")
    rc = subprocess.run(argv).returncode
    log("results: %s, %s" % (os.path.join(a.out_dir, "RESULTS.md"), os.path.join(a.out_dir, "chart.svg")))
    if not a.keep and rc == 0:
        shutil.rmtree(w, ignore_errors=True)
    else:
        log("work directory kept: %s" % w)
    return rc


if __name__ == "__main__":
    sys.exit(main())
