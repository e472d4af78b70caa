"""Deterministic media bytes for the fake iCloud content host.

Every downloadable resource is a `Blob`: a small, format-correct prefix
(JPEG/PNG/HEIC/MOV/MP4/DNG/CR2/GIF headers), a filler region and a suffix,
exactly `size` bytes in total.  The filler is built from fixed-size segments
whose payload comes from SHAKE-256 over (key, segment index), so any byte
range can be produced without materialising the whole file, and two
different resources never share content.

Format notes (our own construction, standard container rules):
* JPEG: SOI, APP0 JFIF, optional APP1 Exif with DateTimeOriginal, COM
  segments as padding, then a complete 8x8 grey baseline image (DQT, SOF0,
  two one-symbol DHT tables, SOS, one entropy byte), EOI.
* PNG: signature, IHDR 1x1 grey, private ancillary chunks `icPd` as padding
  (CRC correct), IDAT, IEND.
* HEIC/MOV/MP4: `ftyp` box then one `mdat` box holding the filler.
* DNG/CR2: little-endian TIFF header (CR2 adds the "CR" marker), IFD0 with
  a few tags; filler after it (TIFF allows unreferenced bytes).
* GIF: GIF89a 1x1 image, filler as a comment extension of sub-blocks.
"""
import hashlib
import struct
import zlib

UTI_FORMAT = {
    "public.jpeg": "jpeg",
    "public.heic": "heic",
    "public.heif": "heic",
    "public.png": "png",
    "com.apple.quicktime-movie": "mov",
    "public.mpeg-4": "mp4",
    "com.adobe.raw-image": "dng",
    "com.canon.cr2-raw-image": "cr2",
    "com.compuserve.gif": "gif",
}


def format_for_uti(uti):
    return UTI_FORMAT.get(uti or "", "bin")


class _Filler:
    """Segmented filler: k segments, each header + payload + trailer."""

    def __init__(self, key, length, hdr, trl, maxp, minp, header_fn, trailer_fn):
        self.key = key
        self.length = length
        self.hdr = hdr
        self.trl = trl
        self.header_fn = header_fn
        self.trailer_fn = trailer_fn
        if length == 0:
            self.k = 0
            self.q = self.extra = 0
            return
        over = hdr + trl
        k = -(-length // (over + maxp))
        while True:
            total = length - k * over
            if total < 0:
                raise ValueError("filler too short for its segment overhead")
            q, extra = divmod(total, k)
            if q >= minp:
                break
            k -= 1
            if k <= 0:
                raise ValueError("cannot split filler of %d bytes" % length)
        if q + (1 if extra else 0) > maxp:
            raise ValueError("segment payload too large")
        self.k, self.q, self.extra = k, q, extra

    def _seg_start(self, i):
        over = self.hdr + self.trl
        return i * (over + self.q) + min(i, self.extra)

    def _seg_payload_len(self, i):
        return self.q + (1 if i < self.extra else 0)

    def segment(self, i):
        plen = self._seg_payload_len(i)
        payload = hashlib.shake_256(self.key + struct.pack(">Q", i)).digest(plen) if plen else b""
        return self.header_fn(plen) + payload + self.trailer_fn(payload)

    def _seg_index(self, off):
        over = self.hdr + self.trl
        big = over + self.q + 1
        if off < self.extra * big:
            return off // big
        return self.extra + (off - self.extra * big) // (over + self.q)

    def read(self, start, end):
        """Yield bytes of [start, end) of the filler."""
        if start >= end:
            return
        i = self._seg_index(start)
        while start < end and i < self.k:
            s0 = self._seg_start(i)
            seg = self.segment(i)
            a = start - s0
            b = min(len(seg), end - s0)
            yield seg[a:b]
            start = s0 + b
            i += 1


def _be16(n):
    return struct.pack(">H", n)


def _jpeg_exif(date_str):
    """APP1 Exif segment: IFD0 -> ExifIFD -> DateTimeOriginal (0x9003)."""
    dt = date_str.encode("ascii")[:19].ljust(19, b" ") + b"\0"
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8)
    ifd0 = struct.pack(">H", 1) + struct.pack(">HHII", 0x8769, 4, 1, 26) + struct.pack(">I", 0)
    exif_ifd = struct.pack(">H", 1) + struct.pack(">HHII", 0x9003, 2, 20, 44) + struct.pack(">I", 0)
    body = b"Exif\x00\x00" + tiff + ifd0 + exif_ifd + dt
    return b"\xff\xe1" + _be16(len(body) + 2) + body


_JPEG_TAIL = (
    b"\xff\xdb" + _be16(67) + b"\x00" + b"\x01" * 64
    + b"\xff\xc0" + _be16(11) + b"\x08" + _be16(8) + _be16(8) + b"\x01" + b"\x01\x11\x00"
    + b"\xff\xc4" + _be16(20) + b"\x00" + b"\x01" + b"\x00" * 15 + b"\x00"
    + b"\xff\xc4" + _be16(20) + b"\x10" + b"\x01" + b"\x00" * 15 + b"\x00"
    + b"\xff\xda" + _be16(8) + b"\x01" + b"\x01\x00" + b"\x00\x3f\x00"
    + b"\x3f"
    + b"\xff\xd9"
)
_JFIF = b"\xff\xe0" + _be16(16) + b"JFIF\x00\x01\x01\x00" + _be16(1) + _be16(1) + b"\x00\x00"


def _png_chunk(ctype, data):
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF)


_PNG_HEAD = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
_PNG_TAIL = _png_chunk(b"IDAT", zlib.compress(b"\x00\x80")) + _png_chunk(b"IEND", b"")


def _box(btype, payload):
    return struct.pack(">I", 8 + len(payload)) + btype + payload


def _tiff_ifd(entries, first_offset, extra_after=b""):
    out = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        out += struct.pack("<HHII", tag, typ, count, value)
    out += struct.pack("<I", 0)
    return out + extra_after


class Blob:
    """A resource's bytes: prefix + filler + suffix, exactly `size` bytes."""

    def __init__(self, fmt, size, key, comment=b"", exif_date=None):
        self.fmt = fmt
        self.size = int(size)
        self.key = key if isinstance(key, bytes) else str(key).encode()
        comment = comment[:200]
        tag = b"icpd-fake " + hashlib.sha256(self.key).hexdigest()[:16].encode() + b" " + comment
        self.prefix, self.suffix, args = self._layout(fmt, tag, exif_date)
        flen = self.size - len(self.prefix) - len(self.suffix)
        hdr, trl, maxp, minp, hfn, tfn = args
        if 0 < flen < hdr + trl + minp:
            # too small for one padding segment: absorb it in the comment
            self.prefix, self.suffix, args = self._layout(fmt, tag + b" " * flen, exif_date)
            flen = 0
        if flen < 0:
            raise ValueError("size %d below minimum %d for %s"
                             % (self.size, len(self.prefix) + len(self.suffix), fmt))
        self.filler = _Filler(self.key, flen, hdr, trl, maxp, minp, hfn, tfn)

    def _layout(self, fmt, tag, exif_date):
        raw = (0, 0, 65536, 1, lambda n: b"", lambda p: b"")
        if fmt == "jpeg":
            p = b"\xff\xd8" + _JFIF
            if exif_date:
                p += _jpeg_exif(exif_date)
            p += b"\xff\xfe" + _be16(len(tag) + 2) + tag
            args = (4, 0, 65533, 0, lambda n: b"\xff\xfe" + _be16(n + 2), lambda p_: b"")
            return p, _JPEG_TAIL, args
        if fmt == "png":
            p = _PNG_HEAD + _png_chunk(b"tEXt", b"Comment\x00" + tag)
            args = (8, 4, 65536, 0, lambda n: struct.pack(">I", n) + b"icPd",
                    lambda p_: struct.pack(">I", zlib.crc32(b"icPd" + p_) & 0xFFFFFFFF))
            return p, _PNG_TAIL, args
        if fmt in ("heic", "mov", "mp4"):
            if fmt == "heic":
                ftyp = _box(b"ftyp", b"heic" + b"\0\0\0\0" + b"mif1heic")
            elif fmt == "mov":
                ftyp = _box(b"ftyp", b"qt  " + b"\x00\x00\x02\x00" + b"qt  ")
            else:
                ftyp = _box(b"ftyp", b"mp42" + b"\0\0\0\0" + b"mp42isom")
            free = _box(b"free", tag)
            # mdat size covers the rest of the file (size computed here)
            head = ftyp + free
            mdat_len = self.size - len(head)
            if mdat_len < 8:
                raise ValueError("size too small for %s" % fmt)
            p = head + struct.pack(">I", mdat_len) + b"mdat"
            return p, b"", raw
        if fmt in ("dng", "cr2"):
            if fmt == "cr2":
                hdr = b"II*\x00" + struct.pack("<I", 16) + b"CR\x02\x00" + struct.pack("<I", 0)
                ifd_at = 16
            else:
                hdr = b"II*\x00" + struct.pack("<I", 8)
                ifd_at = 8
            entries = [(0x00FE, 4, 1, 0), (0x0100, 4, 1, 8), (0x0101, 4, 1, 8),
                       (0x010F, 2, 4, 0)]
            if fmt == "dng":
                entries.append((0xC612, 1, 4, 0x00000401))  # DNGVersion 1.4.0.0
            n = len(entries)
            ifd_len = 2 + 12 * n + 4
            make_at = ifd_at + ifd_len
            entries[3] = (0x010F, 2, 4, make_at)
            ifd = _tiff_ifd(entries, ifd_at)
            p = hdr + ifd + b"icp\x00" + tag
            return p, b"", raw
        if fmt == "gif":
            p = (b"GIF89a" + struct.pack("<HH", 1, 1) + b"\x80\x00\x00" + b"\x80\x80\x80\x00\x00\x00"
                 + b"\x21\xfe")
            s = (b"\x00" + b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00"
                 + b"\x02\x02\x44\x01\x00" + b"\x3b")
            args = (1, 0, 255, 1, lambda n: bytes([n]), lambda p_: b"")
            return p, s, args
        return tag, b"", raw

    def read(self, start=0, end=None):
        """Yield the bytes of [start, end) in chunks (end defaults to size)."""
        if end is None or end > self.size:
            end = self.size
        if start >= end:
            return
        pl = len(self.prefix)
        fl = self.filler.length
        if start < pl:
            yield self.prefix[start:min(end, pl)]
            start = pl
        if start < end and start < pl + fl:
            yield from self.filler.read(start - pl, min(end, pl + fl) - pl)
            start = pl + fl
        if start < end:
            s0 = pl + fl
            yield self.suffix[start - s0:end - s0]

    def bytes(self, start=0, end=None):
        return b"".join(self.read(start, end))


def min_size(fmt, exif=False):
    """Smallest size a Blob of this format can have."""
    return {
        "jpeg": 330 + (60 if exif else 0),
        "png": 160,
        "heic": 120,
        "mov": 120,
        "mp4": 120,
        "dng": 160,
        "cr2": 160,
        "gif": 120,
    }.get(fmt, 64)


# ---------------------------------------------------------------- bplist
def bplist(obj):
    """Serialise dict/list/str/int/float/bool/bytes/datetime as a binary
    property list (bplist00), enough for keywordsEnc and locationEnc."""
    import datetime as _dt
    objects = []

    def add(o):
        idx = len(objects)
        objects.append(None)
        if isinstance(o, dict):
            keys = [add(k) for k in o.keys()]
            vals = [add(v) for v in o.values()]
            objects[idx] = ("dict", keys, vals)
        elif isinstance(o, (list, tuple)):
            objects[idx] = ("array", [add(v) for v in o])
        else:
            objects[idx] = ("scalar", o)
        return idx

    add(obj)
    n = len(objects)
    ref_size = 1 if n < 256 else 2

    def ref(i):
        return struct.pack(">B" if ref_size == 1 else ">H", i)

    def count_marker(high, cnt):
        if cnt < 15:
            return bytes([(high << 4) | cnt])
        return bytes([(high << 4) | 0xF]) + enc_int(cnt)

    def enc_int(v):
        if 0 <= v < 256:
            return b"\x10" + struct.pack(">B", v)
        if 0 <= v < 65536:
            return b"\x11" + struct.pack(">H", v)
        if 0 <= v < 2 ** 32:
            return b"\x12" + struct.pack(">I", v)
        return b"\x13" + struct.pack(">q", v)

    body = b""
    offsets = []
    for o in objects:
        offsets.append(8 + len(body))
        kind = o[0]
        if kind == "dict":
            _, ks, vs = o
            body += count_marker(0xD, len(ks)) + b"".join(ref(k) for k in ks) + b"".join(ref(v) for v in vs)
        elif kind == "array":
            body += count_marker(0xA, len(o[1])) + b"".join(ref(v) for v in o[1])
        else:
            v = o[1]
            if v is True:
                body += b"\x09"
            elif v is False:
                body += b"\x08"
            elif isinstance(v, int):
                body += enc_int(v)
            elif isinstance(v, float):
                body += b"\x23" + struct.pack(">d", v)
            elif isinstance(v, _dt.datetime):
                epoch = _dt.datetime(2001, 1, 1, tzinfo=_dt.timezone.utc)
                if v.tzinfo is None:
                    v = v.replace(tzinfo=_dt.timezone.utc)
                body += b"\x33" + struct.pack(">d", (v - epoch).total_seconds())
            elif isinstance(v, bytes):
                body += count_marker(0x4, len(v)) + v
            elif isinstance(v, str):
                try:
                    enc = v.encode("ascii")
                    body += count_marker(0x5, len(enc)) + enc
                except UnicodeEncodeError:
                    enc = v.encode("utf-16-be")
                    body += count_marker(0x6, len(enc) // 2) + enc
            else:
                raise TypeError("bplist: unsupported %r" % type(v))
    table_at = 8 + len(body)
    off_size = 1 if table_at < 256 else (2 if table_at < 65536 else 4)
    fmtc = {1: ">B", 2: ">H", 4: ">I"}[off_size]
    table = b"".join(struct.pack(fmtc, x) for x in offsets)
    trailer = struct.pack(">6xBBQQQ", off_size, ref_size, n, 0, table_at)
    return b"bplist00" + body + table + trailer
