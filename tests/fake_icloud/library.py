"""The fake iCloud photo library: assets, albums, zones, change log.

A library is loaded from a JSON spec (see LIBRARY.md) or generated from
(count, seed).  Assets are kept as compact slot objects; CloudKit JSON
records are rendered per request by cloudkit.py, so a 100k-asset library
costs a few hundred bytes per asset, not a JSON tree.

Vocabulary (cloudkit-photos.md §4): one asset = one CPLMaster (the file,
recordName = original's fileChecksum) + one CPLAsset (the library entry,
recordName = UUID).
"""
import base64
import datetime as dt
import hashlib
import hmac
import json
import random
import struct
import threading
import uuid
from array import array

import media

DAY = 86400 * 1000
PRIMARY = "PrimarySync"
ROOT_FOLDER = "----Root-Folder----"

# resource slot -> (code, CloudKit field prefix, on asset record?)
SLOTS = {
    "original": (1, "resOriginal", False),
    "alt": (2, "resOriginalAlt", False),
    "live": (3, "resOriginalVidCompl", False),
    "medium": (4, "resJPEGMed", False),
    "thumb": (5, "resJPEGThumb", False),
    "vid_medium": (6, "resVidMed", False),
    "vid_small": (7, "resVidSmall", False),
    "adjusted": (8, "resJPEGFull", True),
    "adjusted_video": (9, "resVidFull", True),
    "asset_medium": (10, "resJPEGMed", True),
    "asset_thumb": (11, "resJPEGThumb", True),
}
CODE_SLOT = {v[0]: k for k, v in SLOTS.items()}
MASTER_SLOTS = [k for k, v in SLOTS.items() if not v[2]]
ASSET_SLOTS = [k for k, v in SLOTS.items() if v[2]]

SMART_TAGS = {
    # smartAlbum filter value -> predicate name (cloudkit-photos.md §3.4)
    "FAVORITE": "favorite", "VIDEO": "video", "LIVE": "live", "PANORAMA": "panorama",
    "TIMELAPSE": "timelapse", "SLOMO": "slomo", "SCREENSHOT": "screenshot",
    "DEPTH": "depth", "EXPOSURE": "exposure", "ANIMATED": "animated",
}
# count obj_type suffix -> smartAlbum tag
COUNT_SUFFIX = {
    "Favorite": "FAVORITE", "Video": "VIDEO", "Live": "LIVE", "Panorama": "PANORAMA",
    "Timelapse": "TIMELAPSE", "Slomo": "SLOMO", "Screenshot": "SCREENSHOT",
    "Depth": "DEPTH", "Exposure": "EXPOSURE", "Animated": "ANIMATED",
}


def parse_date(v):
    """ms since epoch from int/float ms or ISO-8601 text (Z or offset)."""
    if v is None:
        return None
    if isinstance(v, (int, float)):
        return int(v)
    s = str(v).replace("Z", "+00:00")
    d = dt.datetime.fromisoformat(s)
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    return int(d.timestamp() * 1000)


def iso(ms):
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Res:
    __slots__ = ("uti", "size", "w", "h", "exif", "checksum")

    def __init__(self, uti, size, w=0, h=0, exif=None, checksum=None):
        self.uti = uti
        self.size = int(size)
        self.w = int(w)
        self.h = int(h)
        self.exif = exif          # None/False: no EXIF; True: DateTimeOriginal from assetDate
        self.checksum = checksum  # explicit fileChecksum override (base64 text) or None

    def to_spec(self):
        d = {"uti": self.uti, "size": self.size}
        if self.w:
            d["w"] = self.w
            d["h"] = self.h
        if self.exif:
            d["exif"] = True
        if self.checksum:
            d["checksum"] = self.checksum
        return d


class Asset:
    __slots__ = (
        "serial", "uuid", "master_override", "zone", "filename", "fname_enc", "item_type",
        "asset_date", "added_date", "tz", "favorite", "hidden", "deleted", "expunge",
        "purged", "subtype", "subtype_v2", "render_type", "burst", "adjustment", "caption",
        "description", "keywords", "location", "orientation", "duration", "res", "albums",
        "mver", "aver", "edit_ver", "kind", "note", "mod_ms",
    )

    def __init__(self):
        self.res = {}
        self.albums = ()
        self.mver = 1
        self.aver = 1
        self.edit_ver = 0
        self.purged = False
        self.mod_ms = None

    # -- classification used by indexes (cloudkit-photos.md §3.4) --
    def is_video(self):
        return self.item_type == "com.apple.quicktime-movie" or self.kind == "video"

    def pred(self, name):
        if name == "favorite":
            return bool(self.favorite)
        if name == "video":
            return self.is_video()
        if name == "live":
            return "live" in self.res
        if name == "panorama":
            return self.subtype == 1
        if name == "slomo":
            return self.subtype == 100
        if name == "timelapse":
            return self.subtype == 101
        if name == "screenshot":
            return self.subtype_v2 == 3
        if name == "depth":
            return bool((self.render_type or 0) & 2)
        if name == "exposure":
            return bool((self.render_type or 0) & 4)
        if name == "animated":
            return self.item_type == "com.compuserve.gif"
        raise KeyError(name)


class Album:
    __slots__ = ("id", "name", "type", "parent", "position", "deleted", "idx")

    def __init__(self, id, name, type, parent, position, deleted=False, idx=0):
        self.id, self.name, self.type, self.parent = id, name, type, parent
        self.position, self.deleted, self.idx = position, deleted, idx


class Zone:
    __slots__ = ("name", "db", "owner", "idx")

    def __init__(self, name, db, owner, idx):
        self.name, self.db, self.owner, self.idx = name, db, owner, idx


# change-log entry kinds (packed in an array('q'): kind << 48 | a << 16 | b)
LOG_MASTER, LOG_ASSET, LOG_ALBUM, LOG_REL = 1, 2, 3, 4


def _pack(kind, a, b=0):
    return (kind << 48) | (a << 16) | b


def _unpack(v):
    return v >> 48, (v >> 16) & 0xFFFFFFFF, v & 0xFFFF


class TokenError(ValueError):
    pass


class Library:
    def __init__(self):
        self.lock = threading.RLock()   # shared by every service using this library
        self.assets = []           # by serial
        self.by_uuid = {}
        self.albums = []
        self.album_by_id = {}
        self.zones = []
        self.owner = "_0123456789abcdef0123456789abcdef"
        self.seed = 0
        self.key = b""
        self.faults = {}
        self.spec_extra = {}
        self.now_ms = None         # fixed clock for tests; None = wall clock
        self.log = array("q")
        self.latest = {}           # packed record key -> last seq (only after mutations)
        self._index_cache = {}
        self._by_date = {}
        self._version = 0
        self._checksum_override = {}
        self._rel_count = 0

    # ------------------------------------------------------------ clock
    def now(self):
        if self.now_ms is not None:
            return self.now_ms
        import time
        return int(time.time() * 1000)

    # ------------------------------------------------------------ loading
    @classmethod
    def load(cls, path):
        with open(path, "r", encoding="utf-8") as f:
            spec = json.load(f)
        return cls.from_spec(spec)

    @classmethod
    def from_spec(cls, spec):
        if "generate" in spec and not spec.get("assets"):
            g = dict(spec["generate"])
            lib = cls.generate(g.pop("count", 60), g.pop("seed", 1), **g)
            if "faults" in spec:
                lib.faults = spec["faults"]
            if "now" in spec:
                lib.now_ms = parse_date(spec["now"])
            return lib
        lib = cls()
        lib._build(spec)
        return lib

    def _build(self, spec):
        self.seed = spec.get("seed", 0)
        # the key (checksums, ids, tokens, URL signatures) depends only on
        # seed + owner, so to_spec() round trips keep every identifier
        self.owner = spec.get("owner") or "_" + hashlib.md5(b"owner%s" % str(self.seed).encode()).hexdigest()
        self.key = hashlib.sha256(b"icpd-fake-library\0%s\0%s" % (str(self.seed).encode(), self.owner.encode())).digest()
        self.faults = spec.get("faults", {})
        if spec.get("now") is not None:
            self.now_ms = parse_date(spec["now"])
        zones = spec.get("zones")
        if zones is None:
            zones = [{"name": PRIMARY, "db": "private"},
                     {"name": "SharedSync-" + str(uuid.UUID(bytes=self.key[:16])).upper(), "db": "private"}]
        for i, z in enumerate(zones):
            self.zones.append(Zone(z["name"], z.get("db", "private"), z.get("owner", self.owner), i))
        for i, a in enumerate(spec.get("albums", [])):
            al = Album(a.get("id") or str(uuid.UUID(bytes=hashlib.md5(self.key + b"al%d" % i).digest())).upper(),
                       a["name"], 3 if a.get("type") == "folder" else 0, a.get("parent"),
                       a.get("position", 1024 * (i + 1)), bool(a.get("deleted")), i)
            self.albums.append(al)
        for al in self.albums:
            self.album_by_id[al.id] = al
        by_name = {al.name: al for al in self.albums}
        for al in self.albums:
            if al.parent and al.parent not in self.album_by_id and al.parent in by_name:
                al.parent = by_name[al.parent].id
        self._by_album_name = by_name
        for a in spec.get("assets", []):
            self._add_asset(a)
        self._initial_log()

    def zone(self, name):
        for z in self.zones:
            if z.name == name:
                return z
        return None

    def zone_of(self, asset):
        return self.zones[asset.zone]

    def _add_asset(self, a):
        x = Asset()
        x.serial = len(self.assets)
        x.uuid = a.get("id") or str(uuid.UUID(bytes=hashlib.md5(self.key + b"as%d" % x.serial).digest())).upper()
        x.master_override = a.get("master")
        z = self.zone(a.get("zone", PRIMARY))
        if z is None:
            raise ValueError("asset %s: unknown zone %r" % (x.uuid, a.get("zone")))
        x.zone = z.idx
        x.filename = a.get("filename")
        x.fname_enc = a.get("filename_enc")  # exact {"type","value"} override
        x.kind = a.get("kind", "photo")
        x.note = a.get("note")
        for slot in SLOTS:
            r = a.get(slot)
            if r:
                x.res[slot] = Res(r["uti"], r["size"], r.get("w", 0), r.get("h", 0), r.get("exif"), r.get("checksum"))
        if "original" not in x.res:
            raise ValueError("asset %s has no original resource" % x.uuid)
        x.item_type = a.get("item_type", x.res["original"].uti)
        x.asset_date = parse_date(a.get("date", 0))
        x.added_date = parse_date(a.get("added", a.get("date", 0)))
        x.tz = int(a.get("tz", 0))
        x.favorite = bool(a.get("favorite"))
        x.hidden = bool(a.get("hidden"))
        d = a.get("deleted")
        x.deleted = bool(d)
        x.expunge = parse_date(d["expunge"]) if isinstance(d, dict) and "expunge" in d else (
            x.added_date + 30 * DAY if d else None)
        x.subtype = int(a.get("subtype", 0))
        x.subtype_v2 = int(a.get("subtype_v2", 2 if "live" in x.res else 0))
        x.render_type = int(a.get("render_type", 0))
        x.burst = a.get("burst")
        x.adjustment = a.get("adjustment_type")
        x.caption = a.get("caption")
        x.description = a.get("description")
        x.keywords = tuple(a["keywords"]) if a.get("keywords") else None
        x.location = a.get("location")
        x.orientation = int(a.get("orientation", 1))
        x.duration = int(a.get("duration", 0))
        alb = []
        for ref in a.get("albums", []):
            al = self.album_by_id.get(ref) or self._by_album_name.get(ref)
            if al is None:
                raise ValueError("asset %s: unknown album %r" % (x.uuid, ref))
            alb.append(al.idx)
        x.albums = tuple(alb)
        self.assets.append(x)
        self.by_uuid[x.uuid] = x
        for slot, r in x.res.items():
            if r.checksum:
                self._checksum_override[r.checksum] = (x.serial, SLOTS[slot][0])
        if x.master_override:
            self._checksum_override[x.master_override] = (x.serial, 1)
        return x

    def _initial_log(self):
        log = self.log
        for al in self.albums:
            log.append(_pack(LOG_ALBUM, al.idx))
        for x in self.assets:
            log.append(_pack(LOG_MASTER, x.serial))
            log.append(_pack(LOG_ASSET, x.serial))
        for x in self.assets:
            for ai in x.albums:
                log.append(_pack(LOG_REL, x.serial, ai))
        self.initial_len = len(log)

    # ------------------------------------------------------------ ids
    def checksum(self, x, slot):
        """fileChecksum (base64 text, 21 bytes starting 0x01) of a resource."""
        r = x.res[slot]
        if r.checksum:
            return r.checksum
        if slot == "original" and x.master_override:
            return x.master_override
        ver = x.edit_ver if SLOTS[slot][2] else 0
        h = hashlib.sha256(self.key + b"fc" + struct.pack(">IBH", x.serial, SLOTS[slot][0], ver)).digest()
        return base64.b64encode(b"\x01" + h[:20]).decode()

    def ref_checksum(self, x, slot):
        """referenceChecksum: encodes (serial, slot, edit version) + MAC so
        the content host can map a download path back to its resource."""
        ver = x.edit_ver if SLOTS[slot][2] else 0
        body = struct.pack(">IBH", x.serial, SLOTS[slot][0], ver)
        mac = hmac.new(self.key, b"ref" + body, hashlib.sha256).digest()[:13]
        return base64.b64encode(b"\x01" + body + mac).decode()

    def resolve_ref(self, ref_b64):
        """Inverse of ref_checksum -> (asset, slot) or None."""
        try:
            raw = base64.b64decode(ref_b64 + "=" * (-len(ref_b64) % 4), altchars=b"-_", validate=True)
        except (ValueError, TypeError):
            return None
        if len(raw) != 21 or raw[0] != 1:
            return None
        body = raw[1:8]
        if not hmac.compare_digest(raw[8:], hmac.new(self.key, b"ref" + body, hashlib.sha256).digest()[:13]):
            return None
        serial, code, ver = struct.unpack(">IBH", body)
        if serial >= len(self.assets) or code not in CODE_SLOT:
            return None
        x = self.assets[serial]
        slot = CODE_SLOT[code]
        if slot not in x.res or (SLOTS[slot][2] and ver != x.edit_ver):
            return None
        return x, slot

    def master_name(self, x):
        return self.checksum(x, "original")

    def blob(self, x, slot):
        r = x.res[slot]
        fmt = media.format_for_uti(r.uti)
        ver = x.edit_ver if SLOTS[slot][2] else 0
        key = self.key[:16] + struct.pack(">IBH", x.serial, SLOTS[slot][0], ver)
        exif = None
        if r.exif and fmt == "jpeg":
            t = dt.datetime.fromtimestamp(x.asset_date / 1000 + x.tz, dt.timezone.utc)
            exif = t.strftime("%Y:%m:%d %H:%M:%S")
        return media.Blob(fmt, r.size, key, comment=(x.uuid + " " + slot).encode(), exif_date=exif)

    def change_tag(self, x, kind):
        v = x.mver if kind == LOG_MASTER else x.aver
        n = (x.serial * 7919 + v * 104729 + kind) % (36 ** 5)
        s = ""
        while True:
            n, r = divmod(n, 36)
            s = "0123456789abcdefghijklmnopqrstuvwxyz"[r] + s
            if not n:
                break
        return s

    # ------------------------------------------------------------ indexes
    def visible(self, x):
        return not x.purged

    def index(self, key):
        """Ordered asset list for an index key (rank 0 first):
        ('all',) | ('added',) | ('smart', TAG) | ('bursts',) | ('hidden',) |
        ('deleted',) | ('album', album_id); each restricted to a zone via
        ('zone', idx) prefix in the cache key."""
        hit = self._index_cache.get(key)
        if hit is not None and hit[0] == self._version:
            return hit[1]
        zidx, kind = key[0], key[1]
        # assets of the zone sorted newest first; re-sorted only when assets
        # are added (flag changes keep the order), so a mutation costs one
        # O(n) filter per index instead of a sort
        srt = self._by_date.get(zidx)
        if srt is None or srt[0] != len(self.assets):
            lst = [x for x in self.assets if x.zone == zidx]
            lst.sort(key=lambda x: (-x.asset_date, x.serial))
            srt = (len(self.assets), lst)
            self._by_date[zidx] = srt
        by_date = srt[1]
        if kind == "all":
            out = [x for x in by_date if not (x.purged or x.deleted or x.hidden)]
        elif kind == "added":
            out = [x for x in by_date if not (x.purged or x.deleted or x.hidden)]
            out.sort(key=lambda x: (-x.added_date, x.serial))
        elif kind == "smart":
            pname = SMART_TAGS[key[2]]
            out = [x for x in by_date if not (x.purged or x.deleted or x.hidden) and x.pred(pname)]
        elif kind == "bursts":
            out = [x for x in by_date if not (x.purged or x.deleted or x.hidden) and x.burst]
        elif kind == "hidden":
            out = [x for x in by_date if not (x.purged or x.deleted) and x.hidden]
        elif kind == "deleted":
            out = [x for x in by_date if not x.purged and x.deleted]
            out.sort(key=lambda x: (-(x.expunge or 0), x.serial))
        elif kind == "album":
            al = self.album_by_id.get(key[2])
            if al is None or al.type != 0:
                out = []
            else:
                out = [x for x in by_date if not (x.purged or x.deleted or x.hidden) and al.idx in x.albums]
        else:
            raise KeyError(kind)
        self._index_cache[key] = (self._version, out)
        return out

    # ------------------------------------------------------------ change log
    def _touch(self, kind, a, b=0):
        v = _pack(kind, a, b)
        self.latest[v] = len(self.log)
        self.log.append(v)
        self._version += 1

    def entry_zone(self, packed):
        kind, a, b = _unpack(packed)
        if kind in (LOG_MASTER, LOG_ASSET, LOG_REL):
            return self.assets[a].zone
        return 0

    def changes(self, zidx, start, limit, scan_limit=20000):
        """Records changed in zone zidx from log position start.
        Returns (entries, next_pos, more).  Each entry (kind, a, b) is the
        latest change of that record (older duplicates are skipped)."""
        out = []
        pos = start
        n = len(self.log)
        scanned = 0
        while pos < n and len(out) < limit and scanned < scan_limit:
            v = self.log[pos]
            scanned += 1
            if self.latest.get(v, pos) == pos and self.entry_zone(v) == zidx:
                out.append(_unpack(v))
            pos += 1
        return out, pos, pos < n

    def zone_changed_since(self, zidx, start):
        for pos in range(start, len(self.log)):
            v = self.log[pos]
            if self.entry_zone(v) == zidx:
                return True
        return False

    def make_token(self, zone_tag, pos):
        body = struct.pack(">I", zlib_crc(zone_tag)) + struct.pack(">Q", pos) + self.key[:4]
        mac = hmac.new(self.key, b"tok" + body, hashlib.sha256).digest()[:11]
        return base64.b64encode(b"\x01" + b"\x00" * 5 + body + mac).decode()

    def parse_token(self, zone_tag, token):
        try:
            raw = base64.b64decode(token, validate=True)
        except (ValueError, TypeError):
            raise TokenError("Unknown sync continuation type")
        if len(raw) != 33 or raw[0] != 1 or raw[1:6] != b"\x00" * 5:
            raise TokenError("Unknown sync continuation type")
        body, mac = raw[6:22], raw[22:]
        if not hmac.compare_digest(mac, hmac.new(self.key, b"tok" + body, hashlib.sha256).digest()[:11]):
            raise TokenError("Invalid continuation format")
        ztag, pos = struct.unpack(">IQ", body[:12])
        if ztag != zlib_crc(zone_tag) or pos > len(self.log):
            raise TokenError("Invalid continuation format")
        return pos

    # ------------------------------------------------------------ mutations
    def find(self, ref):
        if isinstance(ref, int):
            return self.assets[ref]
        if ref in self.by_uuid:
            return self.by_uuid[ref]
        for x in self.assets:
            if self.master_name(x) == ref or x.filename == ref:
                return x
        raise KeyError("no asset %r" % (ref,))

    def mutate(self, op):
        with self.lock:
            return self._mutate(op)

    def _mutate(self, op):
        """Apply one between-run change; advances the sync tokens.
        op: {"op": add|delete|restore|purge|edit|favourite|unfavourite|hide|
        unhide|album_add|album_remove, "asset": <uuid|master|filename|serial>,
        ...}.  Returns the affected asset's uuid."""
        kind = op["op"]
        now = self.now()
        if kind == "add":
            spec = op.get("spec")
            if spec is None:
                rng = random.Random("%s-add-%d" % (self.seed, len(self.assets)))
                spec = _gen_photo_spec(rng, now - rng.randrange(0, 3 * DAY), "IMG_%04d.HEIC" % rng.randrange(1, 9999), "heic")
                spec["added"] = now
            x = self._add_asset(spec)
            self._touch(LOG_MASTER, x.serial)
            self._touch(LOG_ASSET, x.serial)
            for ai in x.albums:
                self._touch(LOG_REL, x.serial, ai)
            return x.uuid
        x = self.find(op["asset"])
        if x.purged:
            raise KeyError("asset %s already purged" % x.uuid)
        if kind == "delete":
            x.deleted = True
            x.expunge = now + 30 * DAY
            x.mver += 1
            self._touch(LOG_MASTER, x.serial)
        elif kind == "restore":
            x.deleted = False
            x.expunge = None
            x.mver += 1
            self._touch(LOG_MASTER, x.serial)
        elif kind == "purge":
            x.purged = True
            self._touch(LOG_MASTER, x.serial)
            for ai in x.albums:
                self._touch(LOG_REL, x.serial, ai)
        elif kind == "edit":
            base = x.res["original"]
            if x.is_video():
                x.res["adjusted_video"] = Res("com.apple.quicktime-movie", op.get("size", max(base.size // 2, 400)), base.w, base.h)
                x.adjustment = op.get("adjustment_type", "com.apple.video.slomo" if x.subtype == 100 else "com.apple.photo")
            else:
                x.res["adjusted"] = Res("public.jpeg", op.get("size", max(base.size // 2, 600)), base.w, base.h, True)
                x.res["asset_thumb"] = Res("public.jpeg", max(base.size // 20, 500), 360, 480)
                x.adjustment = op.get("adjustment_type", "com.apple.photo")
            x.edit_ver += 1
        elif kind in ("favourite", "favorite"):
            x.favorite = True
        elif kind in ("unfavourite", "unfavorite"):
            x.favorite = False
        elif kind == "hide":
            x.hidden = True
        elif kind == "unhide":
            x.hidden = False
        elif kind == "album_add":
            al = self.album_by_id.get(op["album"]) or self._by_album_name[op["album"]]
            if al.idx not in x.albums:
                x.albums = x.albums + (al.idx,)
            self._touch(LOG_REL, x.serial, al.idx)
        elif kind == "album_remove":
            al = self.album_by_id.get(op["album"]) or self._by_album_name[op["album"]]
            x.albums = tuple(i for i in x.albums if i != al.idx)
            self._touch(LOG_REL, x.serial, al.idx)
        else:
            raise ValueError("unknown mutation %r" % kind)
        if kind not in ("album_add", "album_remove"):
            x.aver += 1
            x.mod_ms = now
            self._touch(LOG_ASSET, x.serial)
        self._version += 1
        return x.uuid

    # ------------------------------------------------------------ export
    def to_spec(self):
        """Explicit JSON spec of the current state (purged assets dropped)."""
        out = {
            "version": 1, "seed": self.seed, "owner": self.owner,
            "zones": [{"name": z.name, "db": z.db} for z in self.zones],
            "albums": [], "assets": [],
        }
        if self.now_ms is not None:
            out["now"] = iso(self.now_ms)
        if self.faults:
            out["faults"] = self.faults
        for al in self.albums:
            d = {"id": al.id, "name": al.name, "type": "folder" if al.type == 3 else "album",
                 "position": al.position}
            if al.parent:
                d["parent"] = al.parent
            if al.deleted:
                d["deleted"] = True
            out["albums"].append(d)
        for x in self.assets:
            if x.purged:
                continue
            d = {"id": x.uuid}
            if x.master_override:
                d["master"] = x.master_override
            if x.zone:
                d["zone"] = self.zones[x.zone].name
            d["filename"] = x.filename
            if x.fname_enc is not None:
                d["filename_enc"] = x.fname_enc
            d["kind"] = x.kind
            if x.item_type != x.res["original"].uti:
                d["item_type"] = x.item_type
            d["date"] = iso(x.asset_date)
            d["added"] = iso(x.added_date)
            d["tz"] = x.tz
            for slot in SLOTS:
                if slot in x.res:
                    d[slot] = x.res[slot].to_spec()
            for attr, name in (("favorite", "favorite"), ("hidden", "hidden")):
                if getattr(x, attr):
                    d[name] = True
            if x.deleted:
                d["deleted"] = {"expunge": iso(x.expunge)}
            for attr, name in (("subtype", "subtype"), ("render_type", "render_type"),
                               ("duration", "duration")):
                if getattr(x, attr):
                    d[name] = getattr(x, attr)
            if x.subtype_v2 != (2 if "live" in x.res else 0):
                d["subtype_v2"] = x.subtype_v2
            if x.orientation != 1:
                d["orientation"] = x.orientation
            for attr in ("burst", "caption", "description", "location", "note"):
                if getattr(x, attr) is not None:
                    d[attr] = getattr(x, attr)
            if x.adjustment:
                d["adjustment_type"] = x.adjustment
            if x.keywords:
                d["keywords"] = list(x.keywords)
            if x.albums:
                d["albums"] = [self.albums[i].id for i in x.albums]
            out["assets"].append(d)
        return out

    # ------------------------------------------------------------ generation
    @classmethod
    def generate(cls, count, seed, **opts):
        spec = generate_spec(count, seed, **opts)
        lib = cls()
        lib._build(spec)
        return lib


def zlib_crc(s):
    import zlib
    return zlib.crc32(s.encode("utf-8")) & 0xFFFFFFFF


# ====================================================================
# Deterministic generator (see LIBRARY.md "generate")
# ====================================================================
TZS = [-28800, -25200, -18000, 0, 3600, 7200, 19800, 25200, 32400, 36000]
END_MS = parse_date("2026-10-31T12:00:00Z")
SPAN_MS = 10 * 365 * DAY


def _sz(rng, lo, hi, scale):
    return max(int(rng.randrange(lo, hi) * scale), 1)


def _photo_res(rng, fmt, scale, exif):
    uti = {"heic": "public.heic", "jpeg": "public.jpeg", "png": "public.png",
           "gif": "com.compuserve.gif"}[fmt]
    lo, hi = {"heic": (10000, 40000), "jpeg": (12000, 48000), "png": (6000, 20000),
              "gif": (3000, 9000)}[fmt]
    r = {"uti": uti, "size": max(_sz(rng, lo, hi, scale), media.min_size(fmt, True)), "w": 4032, "h": 3024}
    if fmt == "jpeg" and exif:
        r["exif"] = True
    return r


def _jpeg(rng, lo, hi, scale, w, h, exif=False):
    r = {"uti": "public.jpeg", "size": max(_sz(rng, lo, hi, scale), media.min_size("jpeg", True)), "w": w, "h": h}
    if exif:
        r["exif"] = True
    return r


def _gen_photo_spec(rng, date, name, fmt, scale=1.0):
    spec = {
        "filename": name, "kind": "photo", "date": date,
        "added": date + rng.choice([0, 1000, 60000, DAY, 40 * DAY]),
        "tz": rng.choice(TZS),
        "original": _photo_res(rng, fmt, scale, rng.random() < 0.7),
        "medium": _jpeg(rng, 2000, 6000, scale, 1536, 2048),
        "thumb": _jpeg(rng, 800, 2000, scale, 360, 480),
    }
    return spec


def generate_spec(count, seed, size_scale=1.0, hostile="safe", shared=None, albums=True,
                  special=None, now=None):
    """Expand {"generate": {...}} into an explicit spec dict (deterministic).

    hostile: "none" | "safe" | "all" — which hostile-name records to add
    (see LIBRARY.md; "all" adds records that make icloudpd abort).
    """
    rng = random.Random("icpd-fake-%s" % seed)
    scale = float(size_scale)
    if special is None:
        special = count >= 40
    key = hashlib.sha256(b"gen%s" % str(seed).encode()).digest()
    shared_zone = "SharedSync-" + str(uuid.UUID(bytes=key[:16])).upper()
    spec = {
        "version": 1, "seed": seed,
        "owner": "_" + hashlib.md5(key).hexdigest(),
        "zones": [{"name": PRIMARY, "db": "private"}, {"name": shared_zone, "db": "private"}],
        "albums": [], "assets": [],
    }
    if now is not None:
        spec["now"] = now
    album_names = []
    if albums:
        def aid(i):
            return str(uuid.UUID(bytes=hashlib.md5(key + b"album%d" % i).digest())).upper()
        spec["albums"] = [
            {"id": aid(0), "name": "Vacation", "type": "album", "position": 1024},
            {"id": aid(1), "name": "Family \U0001F46A", "type": "album", "position": 2048},
            {"id": aid(2), "name": "Trips", "type": "folder", "position": 3072},
            {"id": aid(3), "name": "Paris 2019", "type": "album", "parent": aid(2), "position": 4096},
            {"id": aid(4), "name": "Old stuff", "type": "album", "position": 5120, "deleted": True},
            {"id": aid(5), "name": "Empty", "type": "album", "position": 6144},
        ]
        album_names = [aid(0), aid(1), aid(3)]
    n_shared = shared if shared is not None else (3 if count >= 40 else 0)
    assets = spec["assets"]
    n_regular = max(count - (_n_special(hostile) if special else 0), 0)
    # dates: newest first is rank 0; spread over ten years
    dates = sorted((END_MS - rng.randrange(0, SPAN_MS) for _ in range(n_regular)))
    counter = rng.randrange(1, 9000)
    for i in range(n_regular):
        date = dates[i] - dates[i] % 1000 + rng.randrange(0, 1000)
        counter = counter % 9999 + 1
        if rng.random() < 0.004:
            counter = rng.randrange(1, 3000)      # new phone: the counter restarts
        name_no = counter
        r = rng.random()
        if r < 0.45:
            kind = "heic"
        elif r < 0.63:
            kind = "jpeg"
        elif r < 0.68:
            kind = "png"
        elif r < 0.70:
            kind = "gif"
        elif r < 0.79:
            kind = "live_heic"
        elif r < 0.80:
            kind = "live_jpeg"
        elif r < 0.90:
            kind = "video"
        elif r < 0.95:
            kind = "raw"
        else:
            kind = "edited"
        a = _gen_asset(rng, kind, date, name_no, scale)
        if kind == "jpeg" and rng.random() < 0.05:
            a["filename"] = "DSC_%04d.JPG" % rng.randrange(1, 40)   # camera imports: names repeat
        _decorate(rng, a, album_names)
        if n_shared and i % max(n_regular // n_shared, 1) == 1 and sum(1 for x in assets if x.get("zone")) < n_shared:
            a["zone"] = shared_zone
            a.pop("albums", None)
        assets.append(a)
    if special:
        assets.extend(_special_assets(rng, scale, hostile, album_names))
    return spec


def _gen_asset(rng, kind, date, no, scale):
    if kind in ("heic", "jpeg", "png", "gif"):
        ext = {"heic": "HEIC", "jpeg": "JPG", "png": "PNG", "gif": "GIF"}[kind]
        name = "IMG_%04d.%s" % (no, ext)
        a = _gen_photo_spec(rng, date, name, kind, scale)
        if kind == "png":
            a["subtype_v2"] = 3
            a["adjustment_type"] = "ScreenshotServices" if rng.random() < 0.3 else None
            if a["adjustment_type"] is None:
                del a["adjustment_type"]
        return a
    if kind in ("live_heic", "live_jpeg"):
        fmt = "heic" if kind == "live_heic" else "jpeg"
        a = _gen_photo_spec(rng, date, "IMG_%04d.%s" % (no, "HEIC" if fmt == "heic" else "JPG"), fmt, scale)
        a["kind"] = "live"
        a["live"] = {"uti": "com.apple.quicktime-movie", "size": _sz(rng, 20000, 60000, scale), "w": 1308, "h": 980}
        a["vid_medium"] = {"uti": "com.apple.quicktime-movie", "size": _sz(rng, 8000, 20000, scale), "w": 872, "h": 653}
        a["vid_small"] = {"uti": "com.apple.quicktime-movie", "size": _sz(rng, 3000, 8000, scale), "w": 581, "h": 436}
        return a
    if kind == "video":
        a = {
            "filename": "IMG_%04d.MOV" % no, "kind": "video", "date": date,
            "added": date + rng.choice([0, 2000, DAY]), "tz": rng.choice(TZS),
            "original": {"uti": "com.apple.quicktime-movie", "size": _sz(rng, 80000, 300000, scale), "w": 3840, "h": 2160},
            "medium": _jpeg(rng, 2000, 6000, scale, 1280, 720),
            "thumb": _jpeg(rng, 800, 2000, scale, 480, 270),
            "vid_medium": {"uti": "public.mpeg-4", "size": _sz(rng, 30000, 80000, scale), "w": 1280, "h": 720},
            "vid_small": {"uti": "public.mpeg-4", "size": _sz(rng, 10000, 30000, scale), "w": 640, "h": 360},
            "duration": rng.randrange(1, 120),
        }
        q = rng.random()
        if q < 0.15:
            a["subtype"] = 100  # slo-mo
        elif q < 0.25:
            a["subtype"] = 101  # time-lapse
        return a
    if kind == "raw":
        dng = rng.random() < 0.5
        uti = "com.adobe.raw-image" if dng else "com.canon.cr2-raw-image"
        ext = "DNG" if dng else "CR2"
        a = _gen_photo_spec(rng, date, "IMG_%04d.%s" % (no, ext), "jpeg", scale)
        a["original"] = {"uti": uti, "size": _sz(rng, 60000, 120000, scale), "w": 6000, "h": 4000}
        a["alt"] = _jpeg(rng, 12000, 40000, scale, 6000, 4000, exif=True)
        return a
    if kind == "edited":
        fmt = rng.choice(["heic", "jpeg"])
        a = _gen_photo_spec(rng, date, "IMG_%04d.%s" % (no, "HEIC" if fmt == "heic" else "JPG"), fmt, scale)
        a["adjusted"] = _jpeg(rng, 10000, 30000, scale, 4032, 3024, exif=True)
        a["asset_thumb"] = _jpeg(rng, 800, 2000, scale, 360, 480)
        a["adjustment_type"] = "com.apple.photo"
        return a
    raise ValueError(kind)


def _decorate(rng, a, album_names):
    r = rng.random
    if r() < 0.06:
        a["favorite"] = True
    if r() < 0.02:
        a["hidden"] = True
    if r() < 0.03:
        a["deleted"] = {"expunge": a["added"] + 30 * DAY}
    if a["kind"] == "photo" and a["original"]["uti"] == "public.heic":
        q = r()
        if q < 0.02:
            a["subtype"] = 1          # panorama
        elif q < 0.05:
            a["burst"] = "BURST-%08X" % rng.randrange(1 << 32)
        elif q < 0.08:
            a["render_type"] = 2      # portrait (depth)
        elif q < 0.09:
            a["render_type"] = 4      # long exposure
    if r() < 0.3:
        a["location"] = {"lat": round(rng.uniform(-60, 70), 6), "lon": round(rng.uniform(-170, 170), 6),
                         "alt": round(rng.uniform(0, 2000), 2), "speed": 0.0, "course": 0.0,
                         "horzAcc": 5.0, "vertAcc": 3.0, "timestamp": iso(a["date"])}
        if r() < 0.2:
            a["location"]["lng"] = a["location"].pop("lon")
    if r() < 0.1:
        a["caption"] = rng.choice(["Sunset", "Birthday cake", "Beach", "Caf\u00e9 au lait"])
    if r() < 0.05:
        a["description"] = "A longer description with \u00fcml\u00e4uts"
    if r() < 0.08:
        a["keywords"] = rng.sample(["holiday", "family", "food", "dog", "Stra\u00dfe"], 2)
    if album_names and r() < 0.12:
        a["albums"] = [rng.choice(album_names)]
    for k in ("date", "added"):
        a[k] = iso(a[k])
    if "deleted" in a:
        a["deleted"]["expunge"] = iso(parse_date(a["deleted"]["expunge"]))


def _n_special(hostile):
    return len(_special_assets(random.Random(0), 1.0, hostile, []))


def _special_assets(rng, scale, hostile, album_names):
    """Fixed set of tricky records (duplicates, Unicode, hostile names)."""
    out = []
    base = parse_date("2023-06-15T10:00:00Z")

    def photo(name, fmt="jpeg", minute=0, day=0, size=None, **kw):
        a = _gen_photo_spec(rng, base + day * DAY + minute * 60000, name, fmt, scale)
        if size is not None:
            a["original"]["size"] = size
        a["tz"] = 7200
        a.update(kw)
        for k in ("date", "added"):
            a[k] = iso(a[k])
        return a

    sz = max(int(20000 * scale), 600)
    # one of each kind the smart folders and size options need (§3.4, §4.3)
    cov_date = parse_date("2022-03-10T08:00:00Z")

    def cov(kind, no, minute, **kw):
        a = _gen_asset(rng, kind, cov_date + minute * 60000, no, scale)
        a["tz"] = -18000
        a.update(kw)
        for k in ("date", "added"):
            a[k] = iso(a[k])
        return a

    out.append(cov("heic", 6001, 1, subtype=1, note="panorama"))
    out.append(cov("video", 6002, 2, subtype=101, note="time-lapse"))
    out.append(cov("video", 6003, 3, subtype=100, note="slo-mo"))
    out.append(cov("heic", 6004, 4, burst="BURST-0001", note="burst 1/2"))
    out.append(cov("heic", 6005, 4, burst="BURST-0001", note="burst 2/2"))
    out.append(cov("heic", 6006, 5, render_type=2, note="portrait"))
    out.append(cov("heic", 6007, 6, render_type=4, note="long exposure"))
    out.append(cov("gif", 6008, 7, note="animated"))
    out.append(cov("png", 6009, 8, subtype_v2=3, note="screenshot"))
    out.append(cov("heic", 6010, 9, favorite=True, note="favourite"))
    out.append(cov("jpeg", 6011, 10, hidden=True, note="hidden"))
    out.append(cov("heic", 6012, 11, deleted={"expunge": "2026-12-01T00:00:00Z"}, note="recently deleted"))
    out.append(cov("live_heic", 6013, 12, favorite=True, note="HEIC live photo, favourite"))
    out.append(cov("live_jpeg", 6014, 13, note="JPEG live photo"))
    a = cov("raw", 6015, 14, note="RAW+JPEG")
    a["filename"] = "IMG_6015.DNG"
    a["original"]["uti"] = "com.adobe.raw-image"
    out.append(a)
    a = cov("raw", 6016, 15, note="RAW+JPEG")
    a["filename"] = "IMG_6016.CR2"
    a["original"]["uti"] = "com.canon.cr2-raw-image"
    out.append(a)
    a = cov("edited", 6017, 16, note="edited HEIC")
    a["filename"] = "IMG_6017.HEIC"
    a["original"] = _photo_res(rng, "heic", scale, False)
    out.append(a)
    out.append(cov("edited", 6018, 17, note="edited"))
    a = cov("video", 6019, 18, note="edited video (resVidFull)", adjustment_type="com.apple.video.slomo")
    a["adjusted_video"] = {"uti": "com.apple.quicktime-movie", "size": max(int(40000 * scale), 200), "w": 1920, "h": 1080}
    out.append(a)
    for a in out:
        if album_names and a.get("note") in ("panorama", "favourite", "JPEG live photo", "edited"):
            a["albums"] = [album_names[0]] if a["note"] != "edited" else [album_names[-1]]
    # duplicates (cloudkit-photos.md §6.7)
    out.append(photo("IMG_5001.JPG", minute=1, size=sz, note="dup same day same size (1)"))
    out.append(photo("IMG_5001.JPG", minute=2, size=sz, note="dup same day same size (2)"))
    out.append(photo("IMG_5002.JPG", minute=3, size=sz, note="dup same day different size (1)"))
    out.append(photo("IMG_5002.JPG", minute=4, size=sz + 777, note="dup same day different size (2)"))
    out.append(photo("IMG_5003.HEIC", "heic", minute=5, note="dup across days (1)"))
    out.append(photo("IMG_5003.HEIC", "heic", minute=5, day=3, note="dup across days (2)"))
    # JPEG live photo whose MOV collides with a same-day video of the same name
    lp = photo("IMG_5004.JPG", minute=6, kind="live", note="live JPEG; video IMG_5004.MOV same day")
    lp["live"] = {"uti": "com.apple.quicktime-movie", "size": max(int(30000 * scale), 200), "w": 1308, "h": 980}
    lp["vid_medium"] = {"uti": "com.apple.quicktime-movie", "size": max(int(12000 * scale), 200), "w": 872, "h": 653}
    lp["vid_small"] = {"uti": "com.apple.quicktime-movie", "size": max(int(5000 * scale), 200), "w": 581, "h": 436}
    lp["subtype_v2"] = 2
    out.append(lp)
    vid = photo("IMG_5004.MOV", minute=7, kind="video", note="video colliding with live MOV")
    vid["original"] = {"uti": "com.apple.quicktime-movie", "size": max(int(50000 * scale), 200), "w": 1920, "h": 1080}
    vid["medium"] = _jpeg(rng, 2000, 4000, scale, 1280, 720)
    vid["vid_medium"] = {"uti": "public.mpeg-4", "size": max(int(20000 * scale), 200), "w": 1280, "h": 720}
    vid["vid_small"] = {"uti": "public.mpeg-4", "size": max(int(8000 * scale), 200), "w": 640, "h": 360}
    out.append(vid)
    # Unicode and emoji
    out.append(photo("IMG_\u4e2d\u6587_7409.JPG", minute=8, note="CJK name"))
    out.append(photo("Caf\u00e9 \u00e9t\u00e9.HEIC", "heic", minute=9, note="accented name (NFC)"))
    out.append(photo("\U0001F389 Party.HEIC", "heic", minute=10, note="emoji name"))
    out.append(photo("IMG_5005\u202fPM.PNG", "png", minute=11, note="narrow no-break space"))
    out.append(photo("NOEXT", minute=12, note="name without extension"))
    out.append(photo("IMG_5006.jpeg", minute=13, note="lower-case .jpeg extension"))
    if hostile in ("safe", "all"):
        out.append(photo("../x.jpg", "heic", minute=14, note="path traversal, HEIC content"))
        out.append(photo("a/b/c.jpg", minute=15, note="slashes"))
        out.append(photo('i/n v:a\0l*i?d\\p<a>t"h|.JPG', minute=16, note="all cleaned characters"))
        out.append(photo("ctl\x01\x1f\x7fname.JPG", minute=17, note="control characters"))
        out.append(photo("\u00e9" * 145 + "_long.JPG", minute=18, note="300-byte UTF-8 name, short once ASCII-only"))
        out.append(photo(None, minute=19, note="no filenameEnc"))
        a = photo("IMG_5007.JPG", minute=20, note="filenameEnc type STRING")
        a["filename_enc"] = {"type": "STRING", "value": "IMG_5007.JPG"}
        out.append(a)
        a = photo("IMG_5008.JPG", minute=21, note="base64 with junk characters (Python decodes leniently)")
        a["filename_enc"] = {"type": "ENCRYPTED_BYTES", "value": "SU1HX!zUwMDguSlBH"}
        out.append(a)
        out.append(photo(".hidden.JPG", minute=22, note="leading dot"))
    if hostile == "all":
        out.append(photo("L" * 296 + ".JPG", minute=23, note="300-byte ASCII name (too long for most filesystems)"))
        a = photo("IMG_5009.JPG", minute=24, note="bad base64 padding (icloudpd aborts)")
        a["filename_enc"] = {"type": "ENCRYPTED_BYTES", "value": "SU1HXzUwMDkuSlB"}
        out.append(a)
        a = photo("IMG_5010.JPG", minute=25, note="not UTF-8 (icloudpd aborts)")
        a["filename_enc"] = {"type": "ENCRYPTED_BYTES", "value": "abcdefgh"}
        out.append(a)
    return out
