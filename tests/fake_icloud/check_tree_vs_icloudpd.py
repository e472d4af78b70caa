#!/usr/bin/python3
"""Run the real icloudpd against the fake and compare its tree with
expected_tree.expected_icloudpd_tree() for several option sets.

    check_tree_vs_icloudpd.py [--binary PATH] [--assets 60] [--seed 1] [--quick]
                              [--icpd ICPD] [--manifest-dir DIR]

Needs root (a private mount + network namespace via unshare, server on
port 443, /etc/hosts bind-mounted inside the namespace only) and the npm
icloudpd binary.  Prints PASS/FAIL per option set and "N passed, M failed";
exits 77 (skipped) when root, unshare or the binary is missing.
The account has no second factor (hsaVersion 0), so icloudpd signs in by
itself (tooling.md §4d).  Unless --quick, a last phase runs icloudpd with
each of DELETION_CASES (--delete-after-download, --keep-icloud-recent-days,
a dry run) into an empty folder (and, with --icpd, icpd the same) and
checks both move the same assets to Recently Deleted (the dry run: icpd
only, moving none); the library is restored after each.

What is compared with the model, per option set: the set of relative paths
always; (size, mtime) of every file exactly, except
  --set-exif-datetime: JPEG files (.jpg/.jpeg) by path and mtime only (the
      model cannot predict the size of a JPEG icloudpd rewrote with piexif),
      and every JPEG must carry an EXIF DateTimeOriginal afterwards;
  --xmp-sidecar: the .xmp paths are "<file>.xmp" for every file of the tree
      except live-photo videos (cloudkit-photos.md §8.1); each must parse as
      XML with x:xmptk starting "icloudpd"; size/mtime of .xmp unpredicted.
Every tree's manifest {relpath: {size, sha256, mtime}} is written to
--manifest-dir as NN-<option set>.icloudpd.json.

With --icpd ICPD the same option set also runs `icpd sync` (after one
`icpd auth` with the password only) against the same fake and library in
its own directory; its manifest (NN-...icpd.json) must equal icloudpd's:
same relative paths, same SHA-256, same mtimes; under --set-exif-datetime
JPEGs by path + mtime + EXIF DateTimeOriginal (exiftool) instead of bytes;
.xmp sidecars by their XML content with x:xmptk left out.  Deliberate
differences (names with control characters -> "_", names over 255 bytes
icloudpd leaves as a .part) are printed as "expected difference" lines,
never skipped silently.  Each icpd comparison is its own PASS/FAIL line.
"""
import argparse
import hashlib
import json
import os
import re
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
    (["--set-exif-datetime"], {"exif": True}),               # model: JPEGs by path + mtime
    (["--xmp-sidecar"], {"xmp": True}),                      # model: .xmp by path
]
JPEG_EXT = (".jpg", ".jpeg")
CTL = re.compile("[\x00-\x1f\x7f]")


def walk(root):
    got = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            st = os.stat(p)
            got[os.path.relpath(p, root)] = (st.st_size, int(st.st_mtime))
    return got


def manifest(root):
    """{relpath: {"size", "sha256", "mtime"}} of every file under root."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            st = os.stat(p)
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            out[os.path.relpath(p, root)] = {"size": st.st_size, "sha256": h.hexdigest(),
                                             "mtime": int(st.st_mtime)}
    return out


def save_manifest(mdir, idx, args, opts, who, man):
    slug = re.sub(r"[^A-Za-z0-9]+", "-", " ".join(args) or "defaults").strip("-")
    if opts.get("tz", "UTC") != "UTC":
        slug += "-TZ-" + re.sub(r"[^A-Za-z0-9]+", "-", opts["tz"])
    path = os.path.join(mdir, "%02d-%s.%s.json" % (idx, slug, who))
    with open(path, "w") as f:
        json.dump({"args": args, "tz": opts.get("tz", "UTC"), "files": man}, f, indent=1,
                  sort_keys=True, ensure_ascii=True)
    return path


def exif_dates(root, rels):
    """{relpath: EXIF DateTimeOriginal or None} via one exiftool call."""
    rels = sorted(rels)
    if not rels:
        return {}
    r = subprocess.run(["exiftool", "-json", "-charset", "filename=utf8", "-DateTimeOriginal"]
                       + [os.path.join(root, x) for x in rels], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, timeout=300)
    got = {}
    for rec in json.loads(r.stdout.decode("utf-8", "replace") or "[]"):
        got[os.path.relpath(rec["SourceFile"], root)] = rec.get("DateTimeOriginal")
    return {x: got.get(x) for x in rels}


XMPTK = "{adobe:ns:meta/}xmptk"


def xmp_fields(path):
    """(xmptk, sorted (element path, attributes, text) of the sidecar) or raises."""
    import xml.etree.ElementTree as ET
    root = ET.parse(path).getroot()
    tk = root.get(XMPTK) or root.get("xmptk") or ""
    out = []

    def rec(e, where):
        here = where + "/" + e.tag
        attrs = tuple(sorted((k, v) for k, v in e.attrib.items() if k not in (XMPTK, "xmptk")))
        out.append((here, attrs, (e.text or "").strip()))
        for c in e:
            rec(c, here)
    rec(root, "")
    return tk, sorted(out)


def xmp_leaves(path):
    """The sidecar's values: (path below rdf:Description, attributes, text) of its leaves."""
    _, fields = xmp_fields(path)
    out = set()
    for where, attrs, text in fields:
        parts = where.split("/")
        desc = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description"
        if desc in parts and parts[-1] != desc:
            out.add(("/".join(parts[parts.index(desc) + 1:]), attrs, text))
    return out


DEDUP = re.compile(r"^(.*)-(\d+)(\.[^./]+)$")


def exif_dedup_quirk(k, tree, root):
    """icloudpd quirk (cloudkit-photos.md §6.7 "practical consequences"): under
    --set-exif-datetime the first of two same-named, same-size JPEGs is rewritten,
    so the second no longer matches its size and lands as <stem>-<S>.<ext>.
    True only for exactly that shape: k = <stem>-<S>.jpg of S bytes, <stem>.jpg
    present with another size and an EXIF DateTimeOriginal."""
    m = DEDUP.match(k)
    if not m or not k.lower().endswith(JPEG_EXT):
        return False
    base = m.group(1) + m.group(3)
    size = int(m.group(2))
    if base not in tree or tree[k]["size"] != size or tree[base]["size"] == size:
        return False
    return bool(exif_dates(root, [base])[base])


def model_diffs(lib, opts, out, man):
    """Compare icloudpd's tree with the model; returns (expected file count, diffs)."""
    import expected_tree
    mopts = {k: v for k, v in opts.items() if k not in ("exif", "xmp")}
    exp = expected_tree.expected_icloudpd_tree(lib, mopts)
    got = {k: (v["size"], v["mtime"]) for k, v in man.items()}
    diffs = []
    if opts.get("xmp"):
        # §8.1: a sidecar beside every file except live-photo videos
        nolive = expected_tree.expected_icloudpd_tree(lib, dict(mopts, skip_live_photos=True))
        for k in nolive:
            exp[k + ".xmp"] = "xmp"
    jpegs = []
    notes = []
    for k in sorted(set(exp) | set(got)):
        e, g = exp.get(k), got.get(k)
        if e is None and opts.get("exif") and exif_dedup_quirk(k, man, out):
            notes.append("icloudpd EXIF dedup quirk (§6.7): %r (%d bytes) beside the rewritten %r"
                         % (k, man[k]["size"], DEDUP.sub(r"\1\3", k)))
            continue
        if e == "xmp":
            if g is None:
                diffs.append("%r expected (sidecar) got None" % k)
                continue
            try:
                tk, _ = xmp_fields(os.path.join(out, k))
            except Exception as ex:  # noqa: BLE001 - any parse failure is a finding
                diffs.append("%r sidecar does not parse: %s" % (k, ex))
                continue
            if not tk.startswith("icloudpd"):
                diffs.append("%r sidecar xmptk %r" % (k, tk))
            continue
        if e is not None and g is not None and e[1] is None:
            e = (e[0], g[1])          # .part leftovers: mtime is the download time
        if opts.get("exif") and e is not None and g is not None and k.lower().endswith(JPEG_EXT):
            jpegs.append(k)
            e, g = e[1], g[1]         # EXIF-rewritten JPEG: path + mtime only
        if e != g:
            diffs.append("%r expected %s got %s" % (k, e, g))
    if opts.get("exif"):
        for k, d in exif_dates(out, jpegs).items():
            if not d:
                diffs.append("%r has no EXIF DateTimeOriginal after --set-exif-datetime" % k)
    return len(exp), diffs, notes


def icpd_common(a, w, st, cookies):
    return ["--username", "tree@example.com", "--cookie-directory", cookies,
            "--password-file", os.path.join(w, "password"), "--ca-file", os.path.join(st, "ca.pem")]


def icpd_auth(a, w, st):
    with open(os.path.join(w, "password"), "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(PW + "\n")
    cookies = os.path.join(w, "icpd-cookies-auth")
    shutil.rmtree(cookies, ignore_errors=True)
    with open(os.path.join(w, "icpd-auth.log"), "w") as logf:
        rc = subprocess.run([a.icpd, "auth"] + icpd_common(a, w, st, cookies), stdin=subprocess.DEVNULL,
                            stdout=logf, stderr=subprocess.STDOUT, timeout=120).returncode
    return rc, cookies


def run_icpd(a, w, st, auth_cookies, out, args, tz, tag):
    """icpd sync with icloudpd's flags into out, from a fresh copy of the signed-in cookie dir."""
    cookies = os.path.join(w, "icpd-cookies")
    shutil.rmtree(cookies, ignore_errors=True)
    shutil.copytree(auth_cookies, cookies, symlinks=True)
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, TZ=tz)
    env.pop("REQUESTS_CA_BUNDLE", None)
    log = os.path.join(w, "icpd-%s.log" % tag)
    with open(log, "w") as logf:
        rc = subprocess.run([a.icpd, "sync"] + icpd_common(a, w, st, cookies)
                            + ["--directory", out, "--no-progress-bar"] + list(args), env=env,
                            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                            timeout=600).returncode
    return rc


def adopt_icloudpd_tree(a, w, st, auth_cookies, ref_root, ref, icpd_man, args, tz):
    """icpd sync, with no state database, over a copy of the tree icloudpd wrote: every
    file icloudpd saved at the path icpd expects is adopted (zero downloads); icpd downloads
    only the files it names differently (the expected differences), and rewrites nothing
    of icloudpd's.  Returns (ok, detail)."""
    out = os.path.join(w, "out-adopt")
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(ref_root, out, symlinks=True)
    cookies = os.path.join(w, "icpd-cookies-adopt")
    shutil.rmtree(cookies, ignore_errors=True)
    shutil.copytree(auth_cookies, cookies, symlinks=True)
    report = os.path.join(w, "adopt-report.json")
    env = dict(os.environ, TZ=tz)
    env.pop("REQUESTS_CA_BUNDLE", None)
    with open(os.path.join(w, "icpd-adopt.log"), "w") as logf:
        rc = subprocess.run([a.icpd, "sync"] + icpd_common(a, w, st, cookies)
                            + ["--directory", out, "--no-progress-bar", "--report-json", report]
                            + list(args), env=env, stdin=subprocess.DEVNULL, stdout=logf,
                            stderr=subprocess.STDOUT, timeout=600).returncode
    if rc != 0:
        return False, "icpd sync over icloudpd's tree exited %d" % rc
    with open(report) as f:
        rep = json.load(f)
    after = manifest(out)
    changed = sorted(k for k in ref if after.get(k) != ref[k])
    # what icpd's own tree has and icloudpd's has not: the only files it may download
    own = sorted(set(icpd_man) - set(ref))
    want = len(own)
    if changed:
        return False, "icpd changed icloudpd's files: %s" % changed[:5]
    if rep.get("downloaded") != want:
        return False, "downloaded %r files, expected %d (%s)" % (rep.get("downloaded"), want, own)
    if rep.get("adopted", 0) < len(ref) - 2:
        return False, "adopted %r of icloudpd's %d files" % (rep.get("adopted"), len(ref))
    return True, ("icpd over icloudpd's tree (no state DB): %d files adopted, %d downloaded %s, "
                  "none of icloudpd's changed" % (rep.get("adopted", 0), want, own))


def icpd_vs_icloudpd(opts, ref_root, ref, got_root, got):
    """Compare icpd's manifest with icloudpd's; returns (diffs, expected-difference notes)."""
    diffs, notes = [], []
    ref_left = dict(ref)
    got_left = dict(got)
    pairs = []
    for k in sorted(ref):
        if k in got_left:
            pairs.append((k, k))
            ref_left.pop(k)
            got_left.pop(k)
    for k in sorted(ref_left):
        alt = CTL.sub("_", k)                   # icpd: control characters -> "_"
        if alt != k and alt in got_left:
            pairs.append((k, alt))
            ref_left.pop(k)
            got_left.pop(alt)
            notes.append("control characters: icloudpd %r, icpd %r" % (k, alt))
    for k in sorted(ref_left):                  # icloudpd's leftover .part of a > 255-byte name
        if not k.endswith(".part"):
            continue
        same = [g for g in sorted(got_left) if got_left[g]["sha256"] == ref_left[k]["sha256"]
                and os.path.dirname(g) == os.path.dirname(k)
                and len(os.path.basename(g).encode()) <= 255]
        if same:
            g = same[0]
            notes.append("name over 255 bytes: icloudpd left %r, icpd wrote %r (same bytes)" % (k, g))
            ref_left.pop(k)
            got_left.pop(g)
            if got[g]["mtime"] != ref[k]["mtime"]:
                notes.append("  (mtime of that .part is icloudpd's download time: %d, icpd %d)"
                             % (ref[k]["mtime"], got[g]["mtime"]))
    for k in sorted(ref_left):
        if opts.get("exif") and exif_dedup_quirk(k, ref, ref_root):
            notes.append("icloudpd EXIF dedup quirk (§6.7): icloudpd also saved %r (%d bytes, a second "
                         "same-named same-size asset); icpd keeps one file as without EXIF editing"
                         % (k, ref[k]["size"]))
            continue
        diffs.append("%r only in icloudpd's tree %s" % (k, ref_left[k]))
    for k in sorted(got_left):
        diffs.append("%r only in icpd's tree %s" % (k, got_left[k]))
    exif_pairs = []
    xmp_extra = {}
    nxmp = 0
    for r, g in pairs:
        e, x = ref[r], got[g]
        if opts.get("xmp") and r.endswith(".xmp"):
            # both sidecars carry the write time as mtime: not compared; the
            # values icloudpd wrote must all be in icpd's (root element and
            # xmptk differ by design: x:xmpmeta, icpd's own stamp)
            nxmp += 1
            try:
                fe = xmp_leaves(os.path.join(ref_root, r))
                fg = xmp_leaves(os.path.join(got_root, g))
            except Exception as ex:  # noqa: BLE001 - a parse failure is a finding
                diffs.append("%r sidecar does not parse: %s" % (g, ex))
                continue
            if fe - fg:
                diffs.append("%r sidecar lacks icloudpd's values %s" % (g, sorted(fe - fg)[:4]))
            for f in fg - fe:
                tag = f[0].split("}")[-1]
                xmp_extra[tag] = xmp_extra.get(tag, 0) + 1
            continue
        if e["mtime"] != x["mtime"]:
            diffs.append("%r mtime icloudpd %d icpd %d" % (g, e["mtime"], x["mtime"]))
        if e["sha256"] == x["sha256"]:
            continue
        if opts.get("exif") and r.lower().endswith(JPEG_EXT):
            exif_pairs.append((r, g))
            continue
        diffs.append("%r bytes differ: icloudpd %d bytes sha256 %s..., icpd %d bytes sha256 %s..."
                     % (g, e["size"], e["sha256"][:12], x["size"], x["sha256"][:12]))
    if nxmp:
        notes.append("%d sidecars compared by their values (icloudpd's all present in icpd's), not bytes "
                     "or mtime; icpd adds %s" % (nxmp, ", ".join("%s x%d" % kv for kv in sorted(xmp_extra.items()))
                                                 or "nothing"))
    if exif_pairs:
        de = exif_dates(ref_root, [r for r, _ in exif_pairs])
        dg = exif_dates(got_root, [g for _, g in exif_pairs])
        for r, g in exif_pairs:
            if not de[r] or de[r] != dg[g]:
                diffs.append("%r EXIF DateTimeOriginal icloudpd %r icpd %r" % (g, de[r], dg[g]))
        notes.append("%d EXIF-edited JPEGs compared by path + mtime + DateTimeOriginal, not bytes"
                     % len(exif_pairs))
    return diffs, notes


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


def _control(st, method, path, body=None):
    import urllib.request
    with open(os.path.join(st, "ready.json")) as f:
        cport = json.load(f)["control_port"]
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (cport, path), data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read().decode())


def _in_recently_deleted(st):
    lib = _control(st, "GET", "/library?apple_id=tree@example.com")
    return {x["uuid"]: x for x in lib["assets"] if x["deleted"] and not x["purged"]}


DELETION_CASES = [
    ["--delete-after-download"],
    ["--keep-icloud-recent-days", "0"],
    ["--keep-icloud-recent-days", "1000"],     # only assets at least 1000 days old
    # icpd only: icloudpd 1.32.2 with --dry-run --delete-after-download never ends (it steps
    # the listing offset back for every would-be deletion, so it lists the same page again
    # and again; seen here, 10 min timeout)
    ["--dry-run", "--delete-after-download"],
]


def _restore(st, uuids):
    for u in uuids:
        _control(st, "POST", "/mutate", {"apple_id": "tree@example.com", "op": "restore", "asset": u})


def _twin(lib, uuid):
    """The asset shares name, day (UTC) and original size with another one:
    icloudpd takes the other's file for it (name + size match) and, under
    --keep-icloud-recent-days, deletes it from iCloud though its own bytes
    were never downloaded; icpd keeps it (README, "Deleting")."""
    x = lib.by_uuid[uuid]

    def key(y):
        return (y.zone, y.filename, y.asset_date // 86400000, y.res["original"].size)
    return any(y is not x and not (y.deleted or y.hidden or y.purged) and key(y) == key(x)
               for y in lib.assets)


def deletion(a, w, st, auth_cookies, lib):
    """Deleting in iCloud: icloudpd into an empty folder with each of
    DELETION_CASES, then icpd the same from the same library state; both
    must move the same assets to Recently Deleted (none in a dry run).  The
    library is restored after each run."""
    results = []
    before = _in_recently_deleted(st)
    for args in DELETION_CASES:
        dry = "--dry-run" in args
        moved = {}
        if not dry:
            out = os.path.join(w, "out-delete")
            shutil.rmtree(out, ignore_errors=True)
            rc, n = run_icloudpd(a, w, st, out, args)
            moved = {u: x for u, x in _in_recently_deleted(st).items() if u not in before}
            _restore(st, moved)
            ok = rc == 0 and n > 0 and moved and _in_recently_deleted(st).keys() == before.keys()
            results.append((ok, "icloudpd %s: rc %d, %d files, %d assets moved to Recently Deleted"
                                % (" ".join(args), rc, n, len(moved))))
        if auth_cookies is None:
            continue
        iout = os.path.join(w, "out-icpd-delete")
        irc = run_icpd(a, w, st, auth_cookies, iout, args, "UTC", "delete")
        imoved = {u: x for u, x in _in_recently_deleted(st).items() if u not in before}
        _restore(st, imoved)
        diff, notes = [], []
        for u, x in sorted(list(moved.items()) + list(imoved.items())):
            if (u in moved) == (u in imoved):
                continue
            line = "%s (%s) only %s" % (x["filename"], u, "icloudpd" if u in moved else "icpd")
            if u in moved and "--keep-icloud-recent-days" in args and _twin(lib, u):
                notes.append(line + ": a name-and-size twin whose own bytes were never downloaded")
            else:
                diff.append(line)
        ok = irc == 0 and (bool(imoved) or dry) and not diff
        results.append((ok, "icpd sync %s moves the same %d assets as icloudpd%s: rc %d%s"
                            % (" ".join(args), len(imoved), " (none: dry run)" if dry else "", irc,
                               "".join("\n    " + d for d in diff[:20])
                               + "".join("\n    expected difference: " + n for n in notes))))
    return results


def inner(a):
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
        cases = list(enumerate(CASES[:3] if a.quick else CASES))
        if a.cases:
            cases = [(i, CASES[i]) for i in map(int, a.cases.split(","))]
        shared = lib.zones[1].name
        mdir = a.manifest_dir or os.path.join(w, "manifests")
        os.makedirs(mdir, exist_ok=True)
        auth_cookies = None
        if a.icpd:
            rc, auth_cookies = icpd_auth(a, w, st)
            ok = rc == 0
            passed += ok
            failed += not ok
            print("%s: icpd auth (password only, default Apple endpoints via /etc/hosts) rc=%d"
                  % ("PASS" if ok else "FAIL", rc), flush=True)
            if not ok:
                with open(os.path.join(w, "icpd-auth.log")) as f:
                    print("    " + f.read()[-2000:].replace("\n", "\n    "))
                auth_cookies = None
        for idx, (args, opts) in cases:
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
            man = manifest(out) if os.path.isdir(out) else {}
            mpath = save_manifest(mdir, idx, args, opts, "icloudpd", man)
            nexp, diffs, mnotes = model_diffs(lib, opts, out, man)
            name = "icloudpd %s TZ=%s (%d files)" % (" ".join(args) or "(defaults)", opts["tz"], nexp)
            if rc == 0 and not diffs and nexp:
                passed += 1
                print("PASS: %s -> %s" % (name, os.path.basename(mpath)), flush=True)
            else:
                failed += 1
                print("FAIL: %s rc=%d" % (name, rc), flush=True)
                for d in diffs[:20]:
                    print("    " + d)
            for n in mnotes:
                print("    expected difference from the model: " + n)
            if auth_cookies is None:
                continue
            iout = os.path.join(w, "out-icpd")
            irc = run_icpd(a, w, st, auth_cookies, iout, args, opts["tz"], "%02d" % idx)
            iman = manifest(iout) if os.path.isdir(iout) else {}
            save_manifest(mdir, idx, args, opts, "icpd", iman)
            idiffs, notes = icpd_vs_icloudpd(opts, out, man, iout, iman)
            iname = "icpd sync %s TZ=%s == icloudpd's tree (%d files)" % (
                " ".join(args) or "(defaults)", opts["tz"], len(man))
            if irc == 0 and not idiffs and man:
                passed += 1
                print("PASS: " + iname, flush=True)
            else:
                failed += 1
                print("FAIL: %s rc=%d" % (iname, irc), flush=True)
                for d in idiffs[:30]:
                    print("    " + d)
                if len(idiffs) > 30:
                    print("    ... %d more" % (len(idiffs) - 30))
            for n in notes:
                print("    expected difference: " + n)
            if idx == 0 and irc == 0 and man:
                ok, detail = adopt_icloudpd_tree(a, w, st, auth_cookies, out, man, iman, args,
                                                 opts["tz"])
                passed += ok
                failed += not ok
                print("%s: %s" % ("PASS" if ok else "FAIL", detail), flush=True)
        if not a.quick and not a.cases:
            ok, detail = incremental(a, w, st, lib)
            passed += ok
            failed += not ok
            print("%s: icloudpd re-run and between-run changes%s" % ("PASS" if ok else "FAIL",
                                                                    "" if ok else " -- " + detail), flush=True)
        if not a.quick:
            for ok, detail in deletion(a, w, st, auth_cookies, lib):
                passed += ok
                failed += not ok
                print("%s: %s" % ("PASS" if ok else "FAIL", detail), flush=True)
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
    ap.add_argument("--icpd", help="also run this icpd binary per option set and compare its tree")
    ap.add_argument("--manifest-dir", help="where to keep the manifests (default: the work directory)")
    ap.add_argument("--cases", help="only these option sets (comma-separated indices; debugging)")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.inner:
        return inner(a)
    if os.geteuid() != 0 or not shutil.which("unshare") or not os.access(a.binary, os.X_OK):
        print("SKIP: needs root, unshare and the icloudpd binary (%s)" % a.binary)
        return 77
    if a.icpd and not os.access(a.icpd, os.X_OK):
        print("SKIP: the icpd binary %s is not executable" % a.icpd)
        return 77
    if not shutil.which("exiftool"):
        print("SKIP: needs exiftool (Debian libimage-exiftool-perl) for the EXIF comparisons")
        return 77
    a.manifest_dir = os.path.abspath(a.manifest_dir or os.path.join(tempfile.gettempdir(),
                                                                    "icpd-interop-manifests"))
    shutil.rmtree(a.manifest_dir, ignore_errors=True)
    os.makedirs(a.manifest_dir)
    w = tempfile.mkdtemp(prefix="icpd-tree-")
    subprocess.run(["/usr/bin/python3", os.path.join(HERE, "gen_library.py"), "--assets", str(a.assets),
                    "--seed", a.seed, "--hostile", "safe", "--out", os.path.join(w, "lib.json")], check=True,
                   stderr=subprocess.DEVNULL)
    with open(os.path.join(w, "accounts.json"), "w") as f:
        json.dump({"accounts": [{"apple_id": "tree@example.com", "password": PW, "hsa_version": 0,
                                 "library": os.path.join(w, "lib.json")}]}, f)
    cmd = ["unshare", "--mount", "--net", "--propagation", "private", "/usr/bin/python3", os.path.abspath(__file__),
           "--inner", "--work", w, "--binary", a.binary, "--manifest-dir", a.manifest_dir]
    cmd += (["--quick"] if a.quick else []) + (["--cases", a.cases] if a.cases else []) + (["--icpd", os.path.abspath(a.icpd)] if a.icpd else [])
    rc = subprocess.run(cmd).returncode
    print("manifests kept in " + a.manifest_dir)
    if rc == 0:
        shutil.rmtree(w, ignore_errors=True)
    else:
        print("work directory kept: " + w)
    return rc


if __name__ == "__main__":
    sys.exit(main())
