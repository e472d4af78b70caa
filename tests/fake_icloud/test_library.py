#!/usr/bin/python3
"""Tests of the library generator, media bytes and the expected-icloudpd-tree helper.

Run: /usr/bin/python3 tests/fake_icloud/test_library.py   (prints "N passed, M failed")
"""
import base64
import collections
import json
import os
import plistlib
import struct
import subprocess
import sys
import tempfile
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import expected_tree as E  # noqa: E402
import library  # noqa: E402
import media  # noqa: E402


def one_asset_lib(**asset):
    """Library with exactly one PrimarySync asset (plus nothing else)."""
    a = {"date": "2018-07-31T07:22:24.816Z", "tz": 25200,
         "original": {"uti": "public.jpeg", "size": 5000}}
    a.update(asset)
    return library.Library.from_spec({"seed": "t", "zones": [{"name": "PrimarySync"}], "assets": [a]})


def lib_of(*assets, albums=()):
    base = {"date": "2018-07-31T07:22:24.816Z", "tz": 25200, "original": {"uti": "public.jpeg", "size": 5000}}
    out = []
    for a in assets:
        d = dict(base)
        d.update(a)
        out.append(d)
    return library.Library.from_spec({"seed": "t", "zones": [{"name": "PrimarySync"}], "albums": list(albums),
                                      "assets": out})


class Generator(unittest.TestCase):
    def test_deterministic(self):
        a = json.dumps(library.generate_spec(120, 4), sort_keys=True)
        b = json.dumps(library.generate_spec(120, 4), sort_keys=True)
        c = json.dumps(library.generate_spec(120, 5), sort_keys=True)
        self.assertEqual(a, b)
        self.assertNotEqual(a, c)
        l1, l2 = library.Library.generate(120, 4), library.Library.generate(120, 4)
        self.assertEqual([l1.master_name(x) for x in l1.assets], [l2.master_name(x) for x in l2.assets])
        self.assertEqual(len({l1.master_name(x) for x in l1.assets}), 120)

    def test_mix(self):
        lib = library.Library.generate(2000, 11, special=False)
        n = len(lib.assets)
        kinds = collections.Counter()
        for x in lib.assets:
            if "live" in x.res:
                kinds["live"] += 1
            elif x.is_video():
                kinds["video"] += 1
            elif "alt" in x.res:
                kinds["raw"] += 1
            elif "adjusted" in x.res:
                kinds["edited"] += 1
            else:
                kinds["photo"] += 1
        self.assertTrue(0.62 < kinds["photo"] / n < 0.78, kinds)
        for k in ("live", "video"):
            self.assertTrue(0.07 < kinds[k] / n < 0.13, kinds)
        for k in ("raw", "edited"):
            self.assertTrue(0.03 < kinds[k] / n < 0.07, kinds)
        utis = collections.Counter(x.res["original"].uti for x in lib.assets)
        for u in ("public.heic", "public.jpeg", "public.png", "com.apple.quicktime-movie",
                  "com.adobe.raw-image", "com.canon.cr2-raw-image"):
            self.assertGreater(utis[u], 0, u)
        live_jpeg = [x for x in lib.assets if "live" in x.res and x.res["original"].uti == "public.jpeg"]
        self.assertGreater(len(live_jpeg), 0)
        years = {library.iso(x.asset_date)[:4] for x in lib.assets}
        self.assertGreaterEqual(len(years), 10)
        self.assertGreaterEqual(len({x.tz for x in lib.assets}), 5)
        self.assertGreater(sum(x.favorite for x in lib.assets), 0)
        self.assertGreater(sum(x.hidden for x in lib.assets), 0)
        self.assertGreater(sum(x.deleted for x in lib.assets), 0)
        exif = [x.res["original"].exif for x in lib.assets if x.res["original"].uti == "public.jpeg"]
        self.assertTrue(any(exif) and not all(exif))
        # counter roll-over gives duplicate names across days
        names = collections.Counter(x.filename for x in lib.assets)
        self.assertTrue(any(v > 1 for v in names.values()))

    def test_spec_round_trip_and_cli(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "lib.json")
            subprocess.run([sys.executable, os.path.join(HERE, "gen_library.py"), "--assets", "70", "--seed", "3",
                            "--out", out, "--hostile", "all"], check=True, capture_output=True)
            a = library.Library.load(out)
        b = library.Library.generate(70, 3, hostile="all")
        self.assertEqual(json.dumps(a.to_spec(), sort_keys=True), json.dumps(b.to_spec(), sort_keys=True))
        c = library.Library.from_spec(a.to_spec())
        self.assertEqual([c.master_name(x) for x in c.assets], [a.master_name(x) for x in a.assets])
        self.assertEqual(len(a.assets), 70)
        g = library.Library.from_spec({"generate": {"count": 70, "seed": 3, "hostile": "all"}})
        self.assertEqual(json.dumps(g.to_spec(), sort_keys=True), json.dumps(b.to_spec(), sort_keys=True))

    def test_explicit_master_name(self):
        lib = one_asset_lib(master="AY6c+BsE0jjaXx9tmVGJM1D2VcEO", filename="IMG_7409.JPG")
        x = lib.assets[0]
        self.assertEqual(lib.master_name(x), "AY6c+BsE0jjaXx9tmVGJM1D2VcEO")
        self.assertEqual(lib.checksum(x, "original"), "AY6c+BsE0jjaXx9tmVGJM1D2VcEO")


class Media(unittest.TestCase):
    def test_sizes_and_ranges(self):
        import random
        rnd = random.Random(1)
        for fmt in ("jpeg", "png", "heic", "mov", "mp4", "dng", "cr2", "gif", "bin"):
            sizes = list(range(media.min_size(fmt, True), media.min_size(fmt, True) + 30)) + [65541, 131090, 200003]
            for size in sizes:
                b = media.Blob(fmt, size, b"key%d" % size, b"c", exif_date="2020:01:02 03:04:05" if fmt == "jpeg" else None)
                data = b.bytes()
                self.assertEqual(len(data), size, (fmt, size))
                for _ in range(3):
                    s = rnd.randrange(size)
                    e = rnd.randrange(s, size + 1)
                    self.assertEqual(b.bytes(s, e), data[s:e])

    def jpeg_segments(self, data):
        self.assertEqual(data[:2], b"\xff\xd8")
        i, segs = 2, []
        while True:
            self.assertEqual(data[i], 0xFF)
            m = data[i + 1]
            ln = struct.unpack(">H", data[i + 2:i + 4])[0]
            segs.append((m, data[i + 4:i + 2 + ln]))
            i += 2 + ln
            if m == 0xDA:
                break
        self.assertEqual(data[-2:], b"\xff\xd9")
        return segs

    def test_jpeg_structure_and_exif(self):
        b = media.Blob("jpeg", 150000, b"k", b"x", exif_date="2019:05:06 07:08:09").bytes()
        segs = self.jpeg_segments(b)
        markers = [m for m, _ in segs]
        self.assertEqual(markers[:2], [0xE0, 0xE1])
        self.assertIn(0xC0, markers)
        self.assertEqual(markers.count(0xC4), 2)
        exif = dict(segs)[0xE1]
        self.assertTrue(exif.startswith(b"Exif\0\0MM"))
        self.assertIn(b"2019:05:06 07:08:09\0", exif)
        nb = media.Blob("jpeg", 5000, b"k", b"x").bytes()
        self.assertNotIn(0xE1, [m for m, _ in self.jpeg_segments(nb)])
        try:
            from PIL import Image  # optional, Debian python3-pil
        except ImportError:
            return
        import io
        im = Image.open(io.BytesIO(b))
        im.load()
        self.assertEqual(im.size, (8, 8))
        self.assertEqual(im.getexif().get_ifd(0x8769).get(0x9003), "2019:05:06 07:08:09")

    def test_png_crc(self):
        data = media.Blob("png", 140000, b"k").bytes()
        self.assertEqual(data[:8], b"\x89PNG\r\n\x1a\n")
        i, types = 8, []
        while i < len(data):
            ln = struct.unpack(">I", data[i:i + 4])[0]
            ctype = data[i + 4:i + 8]
            crc = struct.unpack(">I", data[i + 8 + ln:i + 12 + ln])[0]
            self.assertEqual(crc, zlib.crc32(data[i + 4:i + 8 + ln]) & 0xFFFFFFFF)
            types.append(ctype)
            i += 12 + ln
        self.assertEqual(types[0], b"IHDR")
        self.assertEqual(types[-2:], [b"IDAT", b"IEND"])

    def test_container_headers(self):
        self.assertEqual(media.Blob("heic", 5000, b"k").bytes(0, 12)[4:12], b"ftypheic")
        self.assertEqual(media.Blob("mov", 5000, b"k").bytes(0, 12)[4:12], b"ftypqt  ")
        self.assertEqual(media.Blob("mp4", 5000, b"k").bytes(0, 12)[4:12], b"ftypmp42")
        self.assertEqual(media.Blob("dng", 5000, b"k").bytes(0, 4), b"II*\x00")
        cr2 = media.Blob("cr2", 5000, b"k").bytes(0, 10)
        self.assertEqual((cr2[:4], cr2[8:10]), (b"II*\x00", b"CR"))
        self.assertEqual(media.Blob("gif", 5000, b"k").bytes(0, 6), b"GIF89a")
        # mdat box covers the rest of the file exactly
        mov = media.Blob("mov", 7777, b"k").bytes()
        i = 0
        while i < len(mov):
            i += struct.unpack(">I", mov[i:i + 4])[0]
        self.assertEqual(i, 7777)
        self.assertNotEqual(media.Blob("heic", 5000, b"a").bytes(), media.Blob("heic", 5000, b"b").bytes())

    def test_bplist(self):
        import datetime as dt
        obj = {"lat": 48.1, "lon": -11.5, "alt": 500.0, "kw": ["a", "\u00e9t\u00e9", "x" * 20], "n": 123456,
               "t": dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc), "b": True}
        back = plistlib.loads(media.bplist(obj))
        self.assertEqual(back["kw"], obj["kw"])
        self.assertEqual(back["lon"], -11.5)
        self.assertEqual(back["n"], 123456)
        self.assertEqual(back["t"].replace(tzinfo=dt.timezone.utc), obj["t"])
        self.assertEqual(plistlib.loads(media.bplist([])), [])


class ExpectedTree(unittest.TestCase):
    """Rules of cloudkit-photos.md §6, checked against the spec's worked examples (§6.9)."""

    def tree(self, lib, **opts):
        opts.setdefault("tz", "UTC")
        return E.expected_icloudpd_tree(lib, opts)

    def test_default_and_id7(self):
        lib = one_asset_lib(master="AY6c+BsE0jjaXx9tmVGJM1D2VcEO", filename="IMG_7409.JPG",
                            live={"uti": "com.apple.quicktime-movie", "size": 3000},
                            thumb={"uti": "public.jpeg", "size": 700},
                            vid_medium={"uti": "com.apple.quicktime-movie", "size": 900})
        self.assertEqual(self.tree(lib), {"2018/07/31/IMG_7409.JPG": (5000, 1533021744),
                                          "2018/07/31/IMG_7409.MOV": (3000, 1533021744)})
        self.assertEqual(set(self.tree(lib, file_match="name-id7")),
                         {"2018/07/31/IMG_7409_QVk2Yyt.JPG", "2018/07/31/IMG_7409_QVk2Yyt.MOV"})
        self.assertEqual(set(self.tree(lib, sizes=["original", "thumb"], file_match="name-id7")),
                         {"2018/07/31/IMG_7409_QVk2Yyt.JPG", "2018/07/31/IMG_7409_QVk2Yyt-thumb.JPG",
                          "2018/07/31/IMG_7409_QVk2Yyt.MOV"})
        self.assertEqual(set(self.tree(lib, live_photo_size="medium")),
                         {"2018/07/31/IMG_7409.JPG", "2018/07/31/IMG_7409-medium.MOV"})
        self.assertEqual(set(self.tree(lib, folder_structure="none")), {"IMG_7409.JPG", "IMG_7409.MOV"})
        self.assertEqual(set(self.tree(lib, folder_structure="{:%Y/%B}")), {"2018/July/IMG_7409.JPG", "2018/July/IMG_7409.MOV"})
        # host time zone decides the folder (§6.6): 07:22 UTC is the previous day in Los Angeles
        self.assertEqual(set(self.tree(lib, tz="America/Los_Angeles")),
                         {"2018/07/31/IMG_7409.JPG", "2018/07/31/IMG_7409.MOV"})
        self.assertEqual(set(self.tree(lib, tz="Pacific/Honolulu")),
                         {"2018/07/30/IMG_7409.JPG", "2018/07/30/IMG_7409.MOV"})
        self.assertEqual(self.tree(lib, skip_live_photos=True), {"2018/07/31/IMG_7409.JPG": (5000, 1533021744)})

    def test_heic_live_policies(self):
        lib = one_asset_lib(filename="IMG_0512.HEIC", original={"uti": "public.heic", "size": 4000},
                            live={"uti": "com.apple.quicktime-movie", "size": 3000})
        self.assertEqual(set(self.tree(lib)), {"2018/07/31/IMG_0512.HEIC", "2018/07/31/IMG_0512_HEVC.MOV"})
        self.assertEqual(set(self.tree(lib, live_policy="original")),
                         {"2018/07/31/IMG_0512.HEIC", "2018/07/31/IMG_0512.MOV"})

    def test_missing_and_hostile_names(self):
        lib = lib_of({"master": "AY6c+BsE0jjaXx9tmVGJM1D2VcEO", "filename": None},
                     {"filename": 'i/n v:a\0l*i?d\\p<a>t"h|.JPG', "date": "2018-07-31T07:22:20Z"},
                     {"filename": "IMG_\u4e2d\u6587_7409.JPG", "date": "2018-07-31T07:22:19Z"},
                     {"filename": "../x.jpg", "original": {"uti": "public.heic", "size": 10}, "date": "2018-07-31T07:22:18Z"},
                     {"filename": "NOEXT", "date": "2018-07-31T07:22:17Z"},
                     {"filename": "IMG_0001.jpeg", "date": "2018-07-31T07:22:16Z"})
        got = {p.split("/")[-1] for p in self.tree(lib)}
        self.assertEqual(got, {"AY6c_BsE0jja.JPG", "i_n v_a_l_i_d_p_a_t_h_.JPG", "IMG__7409.JPG", ".._x.HEIC",
                               "NOEXT.JPG", "IMG_0001.JPG"})
        got = {p.split("/")[-1] for p in self.tree(lib, keep_unicode=True)}
        self.assertIn("IMG_\u4e2d\u6587_7409.JPG", got)

    def test_dedup_by_size(self):
        lib = lib_of({"filename": "IMG_7409.JPG", "original": {"uti": "public.jpeg", "size": 1884695}},
                     {"filename": "IMG_7409.JPG", "original": {"uti": "public.jpeg", "size": 1884695},
                      "date": "2018-07-31T07:22:00Z"},
                     {"filename": "IMG_7409.JPG", "original": {"uti": "public.jpeg", "size": 999},
                      "date": "2018-07-31T07:21:00Z"})
        self.assertEqual(set(self.tree(lib)), {"2018/07/31/IMG_7409.JPG", "2018/07/31/IMG_7409-999.JPG"})
        # name-id7 never collides (distinct masters)
        self.assertEqual(len(self.tree(lib, file_match="name-id7")), 3)
        # pre-existing legacy "-original" file of the same size counts as present (§6.7-1)
        t = self.tree(lib, existing={"2018/07/31/IMG_7409-original.JPG": 1884695})
        self.assertEqual(set(t), {"2018/07/31/IMG_7409-999.JPG"})

    def test_sizes_adjusted_alternative(self):
        lib = one_asset_lib(filename="IMG_0001.JPG", adjusted={"uti": "public.jpeg", "size": 777},
                            medium={"uti": "public.jpeg", "size": 600})
        self.assertEqual(set(self.tree(lib, sizes=["original", "adjusted"])),
                         {"2018/07/31/IMG_0001.JPG", "2018/07/31/IMG_0001-adjusted.JPG"})
        self.assertEqual(self.tree(lib, sizes=["adjusted"]), {"2018/07/31/IMG_0001.JPG": (777, 1533021744)})
        self.assertEqual(self.tree(lib, sizes=["medium"]), {"2018/07/31/IMG_0001-medium.JPG": (600, 1533021744)})
        # no thumb: the original is fetched under its own name (§6.3)
        self.assertEqual(self.tree(lib, sizes=["thumb"]), {"2018/07/31/IMG_0001.JPG": (5000, 1533021744)})
        self.assertEqual(self.tree(lib, sizes=["thumb"], force_size=True), {})
        heic = one_asset_lib(filename="IMG_0002.HEIC", original={"uti": "public.heic", "size": 4000},
                             adjusted={"uti": "public.jpeg", "size": 777})
        self.assertEqual(set(self.tree(heic, sizes=["original", "adjusted"])),
                         {"2018/07/31/IMG_0002.HEIC", "2018/07/31/IMG_0002.JPG"})
        plain = one_asset_lib(filename="IMG_0003.HEIC", original={"uti": "public.heic", "size": 4000})
        self.assertEqual(self.tree(plain, sizes=["adjusted"]), {"2018/07/31/IMG_0003.HEIC": (4000, 1533021744)})
        raw = one_asset_lib(filename="IMG_7409.CR2", original={"uti": "com.canon.cr2-raw-image", "size": 9000},
                            alt={"uti": "public.jpeg", "size": 3000})
        self.assertEqual(set(self.tree(raw, sizes=["original", "alternative"])),
                         {"2018/07/31/IMG_7409.CR2", "2018/07/31/IMG_7409.JPG"})
        self.assertEqual(set(self.tree(raw)), {"2018/07/31/IMG_7409.CR2"})

    def test_videos_albums_recent(self):
        al = {"id": "ALBUM-1", "name": "Trip", "type": "album"}
        lib = lib_of({"filename": "IMG_0001.MOV", "original": {"uti": "com.apple.quicktime-movie", "size": 9000},
                      "vid_medium": {"uti": "public.mpeg-4", "size": 800}, "albums": ["ALBUM-1"]},
                     {"filename": "IMG_0002.JPG", "date": "2018-07-30T07:00:00Z", "favorite": True},
                     {"filename": "IMG_0003.GIF", "original": {"uti": "com.compuserve.gif", "size": 400},
                      "date": "2018-07-29T07:00:00Z"},
                     {"filename": "IMG_0004.JPG", "date": "2018-07-28T07:00:00Z", "hidden": True},
                     albums=[al])
        self.assertEqual(set(self.tree(lib)), {"2018/07/31/IMG_0001.MOV", "2018/07/30/IMG_0002.JPG",
                                               "2018/07/29/IMG_0003.GIF"})
        # a GIF counts as a movie for icloudpd (§4.3: unknown UTI, name not .heic/.png/.jpg)
        self.assertEqual(set(self.tree(lib, skip_videos=True)), {"2018/07/30/IMG_0002.JPG"})
        self.assertEqual(set(self.tree(lib, sizes=["medium"])), {"2018/07/31/IMG_0001-medium.MOV",
                                                                  "2018/07/30/IMG_0002.JPG", "2018/07/29/IMG_0003.GIF"})
        self.assertEqual(set(self.tree(lib, album="Trip")), {"2018/07/31/IMG_0001.MOV"})
        self.assertEqual(set(self.tree(lib, album="Favorites")), {"2018/07/30/IMG_0002.JPG"})
        self.assertEqual(set(self.tree(lib, album="Hidden")), {"2018/07/28/IMG_0004.JPG"})
        self.assertEqual(set(self.tree(lib, recent=1)), {"2018/07/31/IMG_0001.MOV"})

    def test_abort_and_long_names(self):
        for bad in ("SU1HXzUwMDkuSlB", "abcdefgh"):
            lib = one_asset_lib(filename="x.JPG", filename_enc={"type": "ENCRYPTED_BYTES", "value": bad})
            with self.assertRaises(E.IcloudpdAbort):
                self.tree(lib)
        lib = one_asset_lib(filename="x.JPG", filename_enc={"type": "ENCRYPTED_BYTES", "value": "SU1HX!zUwMDguSlBH"})
        self.assertEqual(set(self.tree(lib)), {"2018/07/31/IMG_5008.JPG"})
        lib = one_asset_lib(filename="\u00e9" * 145 + "_long.JPG")
        self.assertEqual(set(self.tree(lib)), {"2018/07/31/_long.JPG"})
        notes = []
        t = self.tree(lib, keep_unicode=True, notes=notes)
        part = base64.b32encode(base64.b64decode(lib.master_name(lib.assets[0]))).decode() + ".part"
        self.assertEqual(t, {"2018/07/31/" + part: (5000, None)})
        self.assertTrue(part.endswith("======.part"))
        self.assertEqual(len(notes), 1)

    def test_generated_library_tree(self):
        lib = library.Library.generate(80, 1)
        t = self.tree(lib)
        names = {p.split("/")[-1] for p in t}
        for want in ("IMG_5001.JPG", "IMG_5002.JPG", "IMG_5002-20000.JPG", "IMG_5004.MOV", "IMG_5004-30000.MOV",
                     ".._x.HEIC", "a_b_c.JPG", "i_n v_a_l_i_d_p_a_t_h_.JPG", " Party.HEIC", "IMG__7409.JPG",
                     "NOEXT.JPG", "_long.JPG", "IMG_5005PM.PNG", "IMG_5008.JPG"):
            self.assertIn(want, names)
        self.assertEqual(sum(1 for p in t if p.endswith("/IMG_5003.HEIC")), 2)
        with self.assertRaises(E.IcloudpdAbort):
            self.tree(library.Library.generate(80, 1, hostile="all"))


def run():
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    res = unittest.TextTestRunner(verbosity=1, stream=sys.stderr).run(suite)
    failed = len(res.failures) + len(res.errors)
    print("%d passed, %d failed" % (res.testsRun - failed, failed))
    return 1 if failed or res.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(run())
