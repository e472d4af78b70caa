"""What icloudpd 1.32 writes for a fake library: {relative_path: (size, mtime)}.

Implements the naming and layout rules of cloudkit-photos.md §4.3, §4.4 and
§6 (section cited per rule), simulating icloudpd's per-asset loop over the
listing order so de-duplication (§6.7) comes out in the same order.

    expected_icloudpd_tree(library, options) -> dict

options (all optional, icloudpd flag in brackets):
    sizes            ["original"]           [--size, repeatable]
    live_photo_size  "original"             [--live-photo-size original|medium]
    live_policy      "suffix"               [--live-photo-mov-filename-policy suffix|original]
    file_match       "name-size-dedup-with-suffix"  [--file-match-policy ... | name-id7]
    skip_videos, skip_photos, skip_live_photos  False
    force_size       False                  [--force-size]
    album            None                   [--album NAME] (smart folder or user album)
    folder_structure "{:%Y/%m/%d}"          [--folder-structure], "none" = flat
    keep_unicode     False                  [--keep-unicode-in-filenames]
    library          "PrimarySync"          [--library]
    tz               None                   host time zone name for folders; None = process TZ
    recent           None                   [--recent N]
    existing         {}                     files already present {relpath: size}
    notes            a list; receives (relpath-or-name, reason) for files icloudpd cannot write

Values are (size, mtime) with mtime = floor(assetDate/1000); a name too long
for the filesystem yields its leftover "<base32>.part" file with mtime None
(download time).

Raises IcloudpdAbort when a listed record makes icloudpd stop (§6.1-1).
"""
import base64
import binascii
import datetime as dt
import os
import posixpath

import library as L

# §4.4 ITEM_TYPE_EXTENSIONS
UTI_EXT = {
    "public.heic": "HEIC", "public.heif": "HEIF", "public.jpeg": "JPG", "public.png": "PNG",
    "com.apple.quicktime-movie": "MOV", "com.adobe.raw-image": "DNG",
    "com.canon.cr2-raw-image": "CR2", "com.canon.crw-raw-image": "CRW",
    "com.sony.arw-raw-image": "ARW", "com.fuji.raw-image": "RAF",
    "com.panasonic.rw2-raw-image": "RW2", "com.nikon.nrw-raw-image": "NRF",
    "com.pentax.raw-image": "PEF", "com.nikon.raw-image": "NEF",
    "com.olympus.raw-image": "ORF", "com.canon.cr3-raw-image": "CR3",
    "com.olympus.or-raw-image": "ORF",
}
# §4.3 item type: these UTIs are images
IMAGE_UTIS = {"public.heic", "public.heif", "public.jpeg", "public.png"} | {
    u for u in UTI_EXT if "raw" in u}
MOVIE = "com.apple.quicktime-movie"

# §3.4 smart folder names -> index keys
SMART_ALBUMS = {
    "Favorites": ("smart", "FAVORITE"), "Videos": ("smart", "VIDEO"), "Live": ("smart", "LIVE"),
    "Panoramas": ("smart", "PANORAMA"), "Time-lapse": ("smart", "TIMELAPSE"),
    "Slo-mo": ("smart", "SLOMO"), "Screenshots": ("smart", "SCREENSHOT"),
    "Bursts": ("bursts",), "Hidden": ("hidden",), "Recently Deleted": ("deleted",),
}


class IcloudpdAbort(Exception):
    pass


def splitext(name):
    """Python os.path.splitext semantics (§6.1 last paragraph)."""
    return posixpath.splitext(name)


def add_suffix(suffix, name):
    stem, ext = splitext(name)
    return stem + suffix + ext


def raw_filename(lib, x):
    """§6.1-1: decoded filenameEnc, or None when absent."""
    fe = x.fname_enc
    if fe is None:
        if x.filename is None:
            return None
        return x.filename
    typ, val = fe.get("type"), fe.get("value")
    if typ == "STRING":
        return val
    if typ == "ENCRYPTED_BYTES":
        try:
            raw = base64.b64decode(val)          # lenient like Python's default
        except (binascii.Error, ValueError) as e:
            raise IcloudpdAbort("filenameEnc of %s: %s" % (x.uuid, e))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise IcloudpdAbort("filenameEnc of %s: %s" % (x.uuid, e))
    raise IcloudpdAbort("filenameEnc of %s has type %r" % (x.uuid, typ))


def clean(name):
    """§6.1-3: replace < > : " / \\ | ? * NUL by '_'."""
    return "".join("_" if c in '<>:"/\\|?*\0' else c for c in name)


def base_name(lib, x, opts):
    raw = raw_filename(lib, x)
    if raw is None:
        # §6.1-2: 12-char recordName prefix + extension from itemType
        rn = lib.master_name(x)
        pref = "".join(c if c.isascii() and c.isalnum() else "_" for c in rn)[:12]
        name = "%s.%s" % (pref, UTI_EXT.get(x.item_type or "", "unknown"))
    else:
        name = clean(raw)                                     # §6.1-3
        if not opts.get("keep_unicode"):
            name = "".join(c for c in name if ord(c) < 0x80)  # §6.1-4
    if opts.get("file_match") == "name-id7":                  # §6.1-5
        id7 = base64.b64encode(lib.master_name(x).encode("utf-8")).decode()[:7]
        stem, ext = splitext(name)
        name = "%s_%s%s" % (stem, id7, ext)
    return name


def item_kind(x, cleaned_name):
    """§4.3 item type: 'image' | 'movie' | 'unknown'."""
    t = x.item_type
    if t is None:
        return "unknown"
    if t in IMAGE_UTIS:
        return "image"
    if t == MOVIE:
        return "movie"
    if cleaned_name.lower().endswith((".heic", ".png", ".jpg", ".jpeg")):
        return "image"
    return "movie"


def version_name(base, uti, kind, opts):
    """§6.2 version file name from base name and the version's UTI."""
    stem, ext = splitext(base)
    if kind != "movie" and uti == MOVIE:
        if not ext:
            return base
        if opts.get("live_policy", "suffix") == "suffix" and ext.lower() == ".heic":
            return stem + "_HEVC.MOV"
        return stem + ".MOV"
    e = UTI_EXT.get(uti)
    if e is None:
        e = ext[1:] if ext else ""
    return "%s.%s" % (stem, e)


def versions(lib, x, opts):
    """{size: (filename, size_bytes)} and {live_size: (...)} (§4.3, §6.2)."""
    base = base_name(lib, x, opts)
    # the default-cleaned name decides the item type for unknown UTIs (§4.3)
    kind = item_kind(x, base)

    def res(slot_asset, slot_master):
        if slot_asset and slot_asset in x.res:
            return slot_asset
        if slot_master and slot_master in x.res:
            return slot_master
        return None

    if kind == "movie":
        table = {"original": res(None, "original"), "medium": res(None, "vid_medium"),
                 "thumb": res(None, "vid_small")}
        live = {}
    else:
        table = {"original": res(None, "original"), "alternative": res(None, "alt"),
                 "medium": res("asset_medium", "medium"), "thumb": res("asset_thumb", "thumb"),
                 "adjusted": res("adjusted", None)}
        live = {"original": res(None, "live"), "medium": res(None, "vid_medium"),
                "thumb": res(None, "vid_small")}
    out = {}
    for size, slot in table.items():
        if slot is None:
            continue
        r = x.res[slot]
        name = version_name(base, r.uti, kind, opts)
        if size in ("medium", "thumb"):
            name = add_suffix("-" + size, name)               # §6.2 size suffix
        out[size] = [name, r.size, lib.checksum(x, slot)]
    lv = {}
    for size, slot in live.items():
        if slot is None:
            continue
        r = x.res[slot]
        lv[size] = [version_name(base, r.uti, kind, opts), r.size, lib.checksum(x, slot)]
    return kind, base, out, lv


def disambiguate(vers, sizes):
    """§6.3 size selection and the -adjusted / -alternative overrides."""
    res = {}
    for s in sizes:
        if s in vers:
            res[s] = list(vers[s])
    if "adjusted" in sizes:
        if "original" not in sizes:
            if "adjusted" not in res:
                res["adjusted"] = list(vers["original"])
        elif "adjusted" in res and res["original"][0] == res["adjusted"][0]:
            res["adjusted"][0] = add_suffix("-adjusted", res["adjusted"][0])
    if "alternative" in sizes:
        if "original" not in sizes and "adjusted" not in res:
            if "alternative" not in res:
                res["alternative"] = list(vers["original"])
        elif "alternative" in res:
            if ("adjusted" in res and res["adjusted"][0] == res["alternative"][0]) or \
                    ("original" in res and res["original"][0] == res["alternative"][0]):
                res["alternative"][0] = add_suffix("-alternative", res["alternative"][0])
    for s in sizes:
        if s not in ("original", "adjusted", "alternative") and s not in res:
            if "original" not in sizes:
                res["original"] = list(vers["original"])
    return res


def listing(lib, opts):
    """Assets in icloudpd's processing order (§3.2-§3.4)."""
    z = lib.zone(opts.get("library", L.PRIMARY))
    if z is None:
        raise IcloudpdAbort("Unknown library: %s" % opts.get("library"))
    album = opts.get("album")
    if not album:
        return lib.index((z.idx, "all"))
    users = {al.name: al for al in lib.albums if not al.deleted}
    if album in users:          # user albums replace smart folders of the same name (§3.3)
        return lib.index((z.idx, "album", users[album].id))
    if album in SMART_ALBUMS:
        return lib.index((z.idx,) + SMART_ALBUMS[album])
    raise IcloudpdAbort("album %r not found" % album)


def expected_icloudpd_tree(lib, options=None):
    opts = dict(options or {})
    sizes = []
    for s in opts.get("sizes") or ["original"]:
        if s not in sizes:
            sizes.append(s)                                   # §6.3 duplicates removed
    files = dict(opts.get("existing") or {})                  # relpath -> size
    tree = {}
    notes = opts.get("notes")
    folder = opts.get("folder_structure", "{:%Y/%m/%d}")
    tzname = opts.get("tz")
    tz = None
    if tzname:
        from zoneinfo import ZoneInfo
        tz = ZoneInfo(tzname)
    items = listing(lib, opts)
    if opts.get("recent") is not None:
        items = items[:int(opts["recent"])]
    for x in items:
        kind, base, vers, live = versions(lib, x, opts)
        if opts.get("skip_videos") and kind == "movie":
            continue
        if opts.get("skip_photos") and kind == "image":
            continue
        # §6.6 folder from assetDate in the host's local zone
        secs = x.asset_date / 1000.0
        created = dt.datetime.fromtimestamp(secs, tz) if tz else dt.datetime.fromtimestamp(secs)
        if folder.lower() == "none":
            ddir = ""
        else:
            ddir = posixpath.normpath(folder.format(created))
        mtime = x.asset_date // 1000                          # §5.4 mtime = floor(assetDate/1000)
        chosen = disambiguate(vers, sizes)

        def place(name, size, checksum, allow_original_fallback):
            path = posixpath.join(ddir, name) if ddir else name
            exists = path in files
            orig_path = None
            if not exists and allow_original_fallback:         # §6.7-1 legacy -original
                orig_path = add_suffix("-original", path)
                exists = orig_path in files
            if exists and opts.get("file_match", "name-size-dedup-with-suffix") != "name-id7":
                if files[orig_path or path] != size:           # §6.7-2 size differs
                    if "." in path:
                        head, tail = path.rsplit(".", 1)
                        path = "%s-%d.%s" % (head, size, tail)
                    exists = path in files
            if exists:
                return
            if any(len(part.encode("utf-8")) > 255 for part in path.split("/")):
                # §5.2: the body lands in <base32(b64decode(fileChecksum))>.part,
                # the rename to the too-long name fails and the .part stays
                # (seen with icloudpd 1.32.2); its mtime is the download time.
                part = base64.b32encode(base64.b64decode(checksum)).decode() + ".part"
                ppath = posixpath.join(ddir, part) if ddir else part
                if notes is not None:
                    notes.append((path, "name longer than 255 bytes: icloudpd cannot write it; leaves " + ppath))
                files[ppath] = size
                tree[ppath] = (size, None)
                return
            files[path] = size
            tree[path] = (size, mtime)

        for s in sizes:                                        # §6.3 download loop
            ds = s
            if s not in chosen and s != "original":
                if opts.get("force_size"):
                    continue
                if "original" in sizes:
                    continue
                ds = "original"
            name, size, checksum = chosen[ds]
            place(name, size, checksum, ds == "original")
        if not opts.get("skip_live_photos"):                   # §6.5 live-photo video
            lps = opts.get("live_photo_size", "original")
            if lps in live:
                name, size, checksum = live[lps]
                if lps != "original":
                    name = add_suffix("-" + lps, name)
                place(name, size, checksum, False)
    return tree
