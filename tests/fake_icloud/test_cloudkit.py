#!/usr/bin/python3
"""Handler-level tests of the fake CloudKit photos service and content host.

Run: /usr/bin/python3 tests/fake_icloud/test_cloudkit.py   (prints "N passed, M failed")
"""
import base64
import io
import json
import os
import plistlib
import re
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cloudkit  # noqa: E402
import library  # noqa: E402
from http_types import Headers, Request  # noqa: E402

BASE = {"ckdatabasews": "https://p42-ckdatabasews.localhost:8443", "content": "https://cvws.localhost:8443"}
MAIN = "CPLAssetAndMasterByAssetDateWithoutHiddenOrDeleted"
NOW = library.parse_date("2026-11-20T12:00:00Z")


class Acct:
    def __init__(self, adp=False):
        self.adp = adp


def make(count=80, seed=1, **kw):
    lib = library.Library.generate(count, seed, **kw)
    lib.now_ms = NOW
    return lib, cloudkit.CloudKitService(lib, BASE)


def post(svc, db, op, body, account=None, raw=None):
    req = Request("POST", "p42-ckdatabasews.localhost", cloudkit.PREFIX + db + "/" + op, {}, Headers(),
                  raw if raw is not None else json.dumps(body).encode(), "ckdatabasews", account)
    r = svc.handle(req)
    return r.status, (json.loads(r.body) if r.body else None), r


def page(svc, rank, rtype=MAIN, extra=(), zone="PrimarySync", limit=200, db="private", desired=None, direction="ASCENDING"):
    filters = [{"fieldName": "startRank", "fieldValue": {"type": "INT64", "value": rank}, "comparator": "EQUALS"},
               {"fieldName": "direction", "fieldValue": {"type": "STRING", "value": direction}, "comparator": "EQUALS"}]
    filters.extend(extra)
    body = {"query": {"filterBy": filters, "recordType": rtype}, "resultsLimit": limit,
            "zoneID": {"zoneName": zone}}
    if desired is not None:
        body["desiredKeys"] = desired
    st, b, _ = post(svc, db, "records/query", body)
    assert st == 200, (st, b)
    return b


def list_all(svc, rtype=MAIN, extra=(), zone="PrimarySync", limit=200):
    """icloudpd's paging loop (§3.2): returns [(master, asset)]."""
    rank, out, pages = 0, [], 0
    while True:
        b = page(svc, rank, rtype, extra, zone, limit)
        pages += 1
        masters = [r for r in b["records"] if r["recordType"] == "CPLMaster"]
        assets = {r["fields"]["masterRef"]["value"]["recordName"]: r
                  for r in b["records"] if r["recordType"] == "CPLAsset"}
        if not masters:
            return out, pages
        for m in masters:
            out.append((m, assets[m["recordName"]]))
            rank += 1
        assert pages < 10000


def smart(tag):
    return [{"fieldName": "smartAlbum", "comparator": "EQUALS", "fieldValue": {"type": "STRING", "value": tag}}]


def count(svc, obj, zone="PrimarySync"):
    st, b, _ = post(svc, "private", "internal/records/query/batch", {"batch": [{
        "resultsLimit": 1, "query": {"filterBy": {"fieldName": "indexCountID", "fieldValue": {
            "type": "STRING_LIST", "value": [obj]}, "comparator": "IN"}, "recordType": "HyperionIndexCountLookup"},
        "zoneWide": True, "zoneID": {"zoneName": zone}}]})
    assert st == 200
    rec = b["batch"][0]["records"][0]
    assert rec["recordType"] == "IndexCountResult" and rec["recordName"] == obj
    return rec["fields"]["itemCount"]["value"]


def fname(master):
    fe = master["fields"].get("filenameEnc")
    if fe is None:
        return None
    if fe["type"] == "STRING":
        return fe["value"]
    try:
        return base64.b64decode(fe["value"]).decode("utf-8")
    except Exception:
        return ("BAD", fe["value"])


def get(svc, url, rng=None, quote_braces=True):
    if quote_braces:
        url = url.replace("${f}", "$%7Bf%7D")
    u = urllib.parse.urlsplit(url)
    hdrs = [("Range", rng)] if rng else []
    req = Request("GET", u.hostname, u.path, urllib.parse.parse_qs(u.query, keep_blank_values=True),
                  Headers(hdrs), b"", "content", None)
    r = svc.handle_download(req)
    data = r.body
    if r.stream is not None:
        buf = io.BytesIO()
        r.stream(buf)
        data = buf.getvalue()
    return r, data


def hdr(resp, name):
    for k, v in resp.headers:
        if k.lower() == name.lower():
            return v
    return None


class ZonesAndIndexing(unittest.TestCase):
    def test_zones_list(self):
        lib, svc = make()
        st, b, _ = post(svc, "private", "zones/list", {})
        names = [z["zoneID"]["zoneName"] for z in b["zones"]]
        self.assertEqual(names[0], "PrimarySync")
        self.assertEqual(len(names), 2)
        self.assertTrue(names[1].startswith("SharedSync-") and len(names[1]) == len("SharedSync-") + 36)
        for z in b["zones"]:
            self.assertEqual(z["zoneID"]["zoneType"], "REGULAR_CUSTOM_ZONE")
            self.assertTrue(z["zoneID"]["ownerRecordName"].startswith("_"))
        self.assertFalse(b["moreComing"])
        self.assertTrue(b["syncToken"].startswith("AQAAAAAA"))
        st, b, _ = post(svc, "shared", "zones/list", {})
        self.assertEqual(st, 200)
        self.assertEqual(b["zones"], [])

    def test_shared_database_participant_zone(self):
        spec = library.generate_spec(45, 3)
        spec["zones"].append({"name": "SharedSync-00000000-1111-2222-3333-444444444444", "db": "shared"})
        spec["assets"][0]["zone"] = "SharedSync-00000000-1111-2222-3333-444444444444"
        lib = library.Library.from_spec(spec)
        svc = cloudkit.CloudKitService(lib, BASE)
        st, b, _ = post(svc, "shared", "zones/list", {})
        self.assertEqual([z["zoneID"]["zoneName"] for z in b["zones"]],
                         ["SharedSync-00000000-1111-2222-3333-444444444444"])
        b = page(svc, 0, zone="SharedSync-00000000-1111-2222-3333-444444444444", db="shared")
        self.assertEqual(len(b["records"]), 2)
        # the same zone is not reachable through the private database
        st, b, _ = post(svc, "private", "records/query", {"query": {"recordType": MAIN},
                        "zoneID": {"zoneName": "SharedSync-00000000-1111-2222-3333-444444444444"}})
        self.assertEqual(b["serverErrorCode"], "ZONE_NOT_FOUND")

    def test_check_indexing_state(self):
        lib, svc = make()
        for zid in ({"zoneName": "PrimarySync"},
                    {"zoneName": "PrimarySync", "ownerRecordName": lib.owner, "zoneType": "REGULAR_CUSTOM_ZONE"}):
            st, b, _ = post(svc, "private", "records/query", {"query": {"recordType": "CheckIndexingState"}, "zoneID": zid})
            self.assertEqual(st, 200)
            f = b["records"][0]["fields"]
            self.assertEqual(f["state"]["value"], "FINISHED")
            self.assertEqual(f["progress"]["value"], 100)
        st, b, _ = post(svc, "private", "records/query", {"query": {"recordType": "CheckIndexingState"},
                                                          "zoneID": {"zoneName": "NoSuchZone"}})
        self.assertEqual(b["serverErrorCode"], "ZONE_NOT_FOUND")

    def test_hostile_bodies(self):
        lib, svc = make(45, 2)
        for op, raw in (("records/query", b"[]"), ("records/query", b"not json"),
                        ("records/query", b'{"query": "x"}'),
                        ("records/query", b'{"query": {"recordType": "%s", "filterBy": [{"fieldName": "startRank", "fieldValue": {"value": "abc"}}]}}' % MAIN.encode()),
                        ("records/query", b'{"query": {"recordType": "%s", "filterBy": 7}}' % MAIN.encode()),
                        ("internal/records/query/batch", b'{"batch": [1, 2]}'),
                        ("changes/zone", b'{"zones": "x"}'),
                        ("records/modify", b'{"operations": [7]}'),
                        ("zones/list", b'"x"')):
            st, b, _ = post(svc, "private", op, None, raw=raw)
            self.assertIn(st, (200, 400), (op, raw))
            self.assertEqual(b["serverErrorCode"], "BAD_REQUEST", (op, raw))
        st, b, _ = post(svc, "private", "no/such/op", {})
        self.assertEqual(st, 404)
        st, b, _ = post(svc, "public", "zones/list", {})
        self.assertEqual(st, 400)

    def test_adp_access_denied(self):
        lib, svc = make()
        st, b, _ = post(svc, "private", "zones/list", {}, account=Acct(adp=True))
        self.assertEqual(b["serverErrorCode"], "ACCESS_DENIED")
        self.assertIn("private db access disabled", b["reason"])
        st, b, _ = post(svc, "private", "zones/list", {}, account=Acct(adp=False))
        self.assertIn("zones", b)


class Listing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lib, cls.svc = make(250, 7)

    def test_page_layout_and_pairing(self):
        b = page(self.svc, 0)
        recs = b["records"]
        self.assertEqual(len(recs), 200)
        types = [r["recordType"] for r in recs]
        self.assertEqual(types, ["CPLMaster"] * 100 + ["CPLAsset"] * 100)
        for m, a in zip(recs[:100], recs[100:]):
            self.assertEqual(a["fields"]["masterRef"]["value"]["recordName"], m["recordName"])
            res = m["fields"]["resOriginalRes"]["value"]
            self.assertEqual(res["fileChecksum"], m["recordName"])
            self.assertEqual(m["fields"]["resOriginalFingerprint"]["value"], m["recordName"])
            self.assertEqual(len(base64.b64decode(res["fileChecksum"])), 21)
            self.assertEqual(base64.b64decode(res["fileChecksum"])[0], 1)
        self.assertIn("continuationMarker", b)
        self.assertTrue(b["syncToken"].startswith("AQAAAAAA"))

    def test_paging_to_end_newest_first(self):
        got, pages = list_all(self.svc)
        expect = [x for x in self.lib.assets if not x.hidden and not x.deleted and x.zone == 0]
        self.assertEqual(len(got), len(expect))
        self.assertEqual(pages, -(-len(expect) // 100) + 1)   # full/partial pages + the empty one
        dates = [a["fields"]["assetDate"]["value"] for _, a in got]
        self.assertEqual(dates, sorted(dates, reverse=True))
        self.assertEqual(len({a["recordName"] for _, a in got}), len(got))
        for _, a in got:
            self.assertEqual(a["fields"]["isHidden"]["value"], 0)
            self.assertNotIn("isDeleted", a["fields"])
        # a page beyond the end is empty and has no continuationMarker
        b = page(self.svc, len(got))
        self.assertEqual(b["records"], [])
        self.assertNotIn("continuationMarker", b)

    def test_small_pages_and_descending(self):
        got, pages = list_all(self.svc, limit=7)   # 3 pairs per page
        full, _ = list_all(self.svc)
        self.assertEqual([a["recordName"] for _, a in got], [a["recordName"] for _, a in full])
        self.assertEqual(pages, -(-len(full) // 3) + 1)
        b = page(self.svc, 0, direction="DESCENDING", limit=2)
        self.assertEqual(b["records"][1]["recordName"], full[-1][1]["recordName"])

    def test_counts_equal_listings(self):
        z = self.lib.zones[0]
        n, _ = list_all(self.svc)
        self.assertEqual(count(self.svc, "CPLAssetByAssetDateWithoutHiddenOrDeleted"), len(n))
        for suffix, tag in library.COUNT_SUFFIX.items():
            got, _ = list_all(self.svc, "CPLAssetAndMasterInSmartAlbumByAssetDate", smart(tag))
            self.assertEqual(count(self.svc, "CPLAssetInSmartAlbumByAssetDate:" + suffix), len(got), suffix)
            self.assertGreater(len(got), 0, "smart folder %s is empty in the default library" % tag)
        for rtype, obj in (("CPLBurstStackAssetAndMasterByAssetDate", "CPLAssetBurstStackAssetByAssetDate"),
                           ("CPLAssetAndMasterHiddenByAssetDate", "CPLAssetHiddenByAssetDate"),
                           ("CPLAssetAndMasterDeletedByExpungedDate", "CPLAssetDeletedByExpungedDate")):
            got, _ = list_all(self.svc, rtype)
            self.assertGreater(len(got), 0, rtype)
            self.assertEqual(count(self.svc, obj), len(got), obj)
        for al in self.lib.albums:
            got, _ = list_all(self.svc, "CPLContainerRelationLiveByAssetDate", [
                {"fieldName": "parentId", "comparator": "EQUALS", "fieldValue": {"type": "STRING", "value": al.id}}])
            self.assertEqual(count(self.svc, "CPLContainerRelationNotDeletedByAssetDate:" + al.id), len(got))
        del z

    def test_smart_folder_membership(self):
        checks = {
            "FAVORITE": lambda m, a: a["fields"]["isFavorite"]["value"] == 1,
            "VIDEO": lambda m, a: m["fields"]["itemType"]["value"] == "com.apple.quicktime-movie",
            "LIVE": lambda m, a: "resOriginalVidComplRes" in m["fields"],
            "PANORAMA": lambda m, a: a["fields"]["assetSubtype"]["value"] == 1,
            "SLOMO": lambda m, a: a["fields"]["assetSubtype"]["value"] == 100,
            "TIMELAPSE": lambda m, a: a["fields"]["assetSubtype"]["value"] == 101,
            "SCREENSHOT": lambda m, a: a["fields"]["assetSubtypeV2"]["value"] == 3,
            "DEPTH": lambda m, a: a["fields"]["adjustmentRenderType"]["value"] & 2,
            "EXPOSURE": lambda m, a: a["fields"]["adjustmentRenderType"]["value"] & 4,
            "ANIMATED": lambda m, a: m["fields"]["itemType"]["value"] == "com.compuserve.gif",
        }
        allp, _ = list_all(self.svc)
        for tag, ok in checks.items():
            got, _ = list_all(self.svc, "CPLAssetAndMasterInSmartAlbumByAssetDate", smart(tag))
            for m, a in got:
                self.assertTrue(ok(m, a), tag)
            # and nothing from the main listing that qualifies is missing
            want = {a["recordName"] for m, a in allp if ok(m, a)}
            self.assertEqual({a["recordName"] for _, a in got}, want, tag)
        hid, _ = list_all(self.svc, "CPLAssetAndMasterHiddenByAssetDate")
        self.assertTrue(all(a["fields"]["isHidden"]["value"] == 1 for _, a in hid))
        dele, _ = list_all(self.svc, "CPLAssetAndMasterDeletedByExpungedDate")
        self.assertTrue(all(a["fields"]["isDeleted"]["value"] == 1 and a["fields"]["isExpunged"]["value"] == 0
                            for _, a in dele))
        exp = [a["fields"]["dateExpunged"]["value"] for _, a in dele]
        self.assertEqual(exp, sorted(exp, reverse=True))
        bursts, _ = list_all(self.svc, "CPLBurstStackAssetAndMasterByAssetDate")
        self.assertTrue(all("burstId" in a["fields"] for _, a in bursts))
        st, b, _ = post(self.svc, "private", "records/query", {"query": {"recordType": "CPLAssetAndMasterInSmartAlbumByAssetDate",
                        "filterBy": smart("SELFIE")}, "zoneID": {"zoneName": "PrimarySync"}})
        self.assertEqual(b["serverErrorCode"], "BAD_REQUEST")

    def test_albums(self):
        st, b, _ = post(self.svc, "private", "records/query", {"query": {"recordType": "CPLAlbumByPositionLive"},
                                                                "zoneID": {"zoneName": "PrimarySync"}})
        recs = b["records"]
        self.assertEqual(recs[0]["recordName"], "----Root-Folder----")
        self.assertEqual(recs[0]["fields"]["albumType"]["value"], 3)
        byname = {base64.b64decode(r["fields"]["albumNameEnc"]["value"]).decode(): r for r in recs[1:]}
        self.assertIn("Family \U0001F46A", byname)
        trips, paris = byname["Trips"], byname["Paris 2019"]
        self.assertEqual(trips["fields"]["albumType"]["value"], 3)
        self.assertEqual(paris["fields"]["parentId"]["value"], trips["recordName"])
        self.assertEqual(byname["Old stuff"]["fields"]["isDeleted"]["value"], 1)
        st, b, _ = post(self.svc, "private", "records/query", {"query": {"recordType": "CPLAlbumByPositionLive",
                        "filterBy": [{"fieldName": "parentId", "comparator": "EQUALS",
                                      "fieldValue": {"type": "STRING", "value": trips["recordName"]}}]},
                        "zoneID": {"zoneName": "PrimarySync"}})
        self.assertEqual([r["recordName"] for r in b["records"]], [paris["recordName"]])
        # membership of the nested album equals the library's
        al = self.lib.album_by_id[paris["recordName"]]
        got, _ = list_all(self.svc, "CPLContainerRelationLiveByAssetDate", [
            {"fieldName": "parentId", "comparator": "EQUALS", "fieldValue": {"type": "STRING", "value": al.id}}])
        want = {x.uuid for x in self.lib.assets if al.idx in x.albums and not x.hidden and not x.deleted}
        self.assertGreater(len(want), 0)
        self.assertEqual({a["recordName"] for _, a in got}, want)
        shared = self.lib.zones[1].name
        st, b, _ = post(self.svc, "private", "records/query", {"query": {"recordType": "CPLAlbumByPositionLive"},
                                                                "zoneID": {"zoneName": shared}})
        self.assertEqual(b["serverErrorCode"], "BAD_REQUEST")

    def test_shared_zone_listing(self):
        shared = self.lib.zones[1].name
        got, _ = list_all(self.svc, zone=shared)
        self.assertEqual(len(got), sum(1 for x in self.lib.assets if x.zone == 1 and not x.hidden and not x.deleted))
        self.assertGreater(len(got), 0)
        for m, a in got:
            self.assertEqual(m["zoneID"]["zoneName"], shared)
            self.assertIn("ckz=" + urllib.parse.quote(shared), m["fields"]["resOriginalRes"]["value"]["downloadURL"])

    def test_split_pairs_mode(self):
        self.svc.faults.merge({"split_pairs": True})
        try:
            b = page(self.svc, 0)
            masters = [r["recordName"] for r in b["records"] if r["recordType"] == "CPLMaster"]
            refs = [r["fields"]["masterRef"]["value"]["recordName"] for r in b["records"] if r["recordType"] == "CPLAsset"]
            self.assertEqual(len(masters), 100)
            self.assertEqual(refs, masters[:99])
            b2 = page(self.svc, 100)
            refs2 = [r["fields"]["masterRef"]["value"]["recordName"] for r in b2["records"] if r["recordType"] == "CPLAsset"]
            self.assertEqual(refs2[0], masters[99])
            # every asset still arrives exactly once over the whole listing
            seen, rank = [], 0
            while True:
                b = page(self.svc, rank)
                n = sum(1 for r in b["records"] if r["recordType"] == "CPLMaster")
                seen += [r["recordName"] for r in b["records"] if r["recordType"] == "CPLAsset"]
                if not n:
                    break
                rank += n
            want = [x.uuid for x in self.lib.index((0, "all"))]
            self.assertEqual(seen, want)
        finally:
            self.svc.faults.clear()

    def test_desired_keys(self):
        b = page(self.svc, 0, desired=["filenameEnc", "assetDate", "masterRef", "resOriginalRes"])
        for r in b["records"]:
            self.assertLessEqual(set(r["fields"]), {"filenameEnc", "assetDate", "masterRef", "resOriginalRes"})
        self.assertIn("resOriginalRes", b["records"][0]["fields"])

    def test_unknown_index(self):
        st, b, _ = post(self.svc, "private", "records/query", {"query": {"recordType": "NoSuchIndex"},
                                                                "zoneID": {"zoneName": "PrimarySync"}})
        self.assertEqual(b["serverErrorCode"], "BAD_REQUEST")


class RecordFields(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lib, cls.svc = make(80, 1, hostile="all")
        allp, _ = list_all(cls.svc)
        hid, _ = list_all(cls.svc, "CPLAssetAndMasterHiddenByAssetDate")
        dele, _ = list_all(cls.svc, "CPLAssetAndMasterDeletedByExpungedDate")
        cls.pairs = allp + hid + dele

    def test_hostile_names_in_filenameEnc(self):
        names = [fname(m) for m, _ in self.pairs]
        for want in ("../x.jpg", "a/b/c.jpg", 'i/n v:a\0l*i?d\\p<a>t"h|.JPG', "ctl\x01\x1f\x7fname.JPG",
                     "IMG_\u4e2d\u6587_7409.JPG", "\U0001F389 Party.HEIC", "NOEXT", "IMG_5007.JPG"):
            self.assertIn(want, names)
        self.assertIn(None, names)                      # a record without filenameEnc
        self.assertTrue(any(isinstance(n, str) and len(n.encode()) >= 299 for n in names))
        self.assertTrue(any(isinstance(n, str) and len(n) >= 299 and n.isascii() for n in names))
        bad = [n for n in names if isinstance(n, tuple)]
        self.assertEqual(sorted(v for _, v in bad), ["SU1HXzUwMDkuSlB", "abcdefgh"])
        types = {m["fields"]["filenameEnc"]["type"] for m, _ in self.pairs if "filenameEnc" in m["fields"]}
        self.assertEqual(types, {"STRING", "ENCRYPTED_BYTES"})
        lenient = [m for m, _ in self.pairs if m["fields"].get("filenameEnc", {}).get("value") == "SU1HX!zUwMDguSlBH"]
        self.assertEqual(len(lenient), 1)

    def test_resources_by_kind(self):
        seen = set()
        for m, a in self.pairs:
            mf, af = m["fields"], a["fields"]
            it = mf["itemType"]["value"]
            for k in list(mf) + list(af):
                if k.endswith("Res"):
                    v = (mf.get(k) or af.get(k))["value"]
                    self.assertEqual(set(v), {"fileChecksum", "size", "wrappingKey", "referenceChecksum", "downloadURL"})
                    u = urllib.parse.urlsplit(v["downloadURL"])
                    self.assertEqual(u.path, "/B/%s%s/${f}" % (v["fileChecksum"].replace("+", "-").replace("/", "_"),
                                                                v["referenceChecksum"].replace("+", "-").replace("/", "_")))
                    q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
                    self.assertEqual(int(q["e"][0]), NOW // 1000 + 3600)
                    self.assertEqual(q["ckc"][0], "com.apple.photos.cloud")
                    self.assertIn(k[:-3] + "FileType", mf if k in mf else af)
            if "resOriginalVidComplRes" in mf:
                seen.add("live")
                self.assertEqual(mf["resOriginalVidComplFileType"]["value"], "com.apple.quicktime-movie")
                self.assertEqual(af["assetSubtypeV2"]["value"], 2)
                self.assertIn("resVidMedRes", mf)
            if "resOriginalAltRes" in mf:
                seen.add("raw")
                self.assertIn(it, ("com.adobe.raw-image", "com.canon.cr2-raw-image"))
                self.assertEqual(mf["resOriginalAltFileType"]["value"], "public.jpeg")
            if "resJPEGFullRes" in af:
                seen.add("edited")
                self.assertEqual(af["adjustmentType"]["value"], "com.apple.photo")
                self.assertNotIn("resJPEGFullRes", mf)
            if "resVidFullRes" in af:
                seen.add("edited video")
            if it == "com.apple.quicktime-movie":
                seen.add("video")
                self.assertEqual(mf["dataClassType"]["value"], 2)
                self.assertIn("resVidSmallRes", mf)
            for k in ("assetDate", "addedDate", "timeZoneOffset", "isFavorite", "isHidden", "masterRef"):
                self.assertIn(k, af)
            self.assertEqual(af["assetDate"]["type"], "TIMESTAMP")
        self.assertEqual(seen, {"live", "raw", "edited", "edited video", "video"})

    def test_metadata_fields(self):
        kinds = set()
        tzs = set()
        for m, a in self.pairs:
            af = a["fields"]
            tzs.add(af["timeZoneOffset"]["value"])
            if "keywordsEnc" in af:
                kw = plistlib.loads(base64.b64decode(af["keywordsEnc"]["value"]))
                self.assertIsInstance(kw, list)
                self.assertTrue(all(isinstance(k, str) for k in kw))
                kinds.add("keywords")
            if "locationEnc" in af:
                loc = plistlib.loads(base64.b64decode(af["locationEnc"]["value"]))
                self.assertIn("lat", loc)
                kinds.add("lon" if "lon" in loc else "lng")
            if "captionEnc" in af:
                base64.b64decode(af["captionEnc"]["value"]).decode("utf-8")
                kinds.add("caption")
        self.assertGreaterEqual(len(tzs), 3)
        self.assertTrue({"keywords", "lon", "caption"} <= kinds, kinds)


class Changes(unittest.TestCase):
    def setUp(self):
        self.lib, self.svc = make(60, 5)
        self.zid = {"zoneName": "PrimarySync"}

    def zone_changes(self, token, limit=200):
        z = {"zoneID": self.zid, "resultsLimit": limit}
        if token is not None:
            z["syncToken"] = token
        st, b, _ = post(self.svc, "private", "changes/zone", {"zones": [z]})
        self.assertEqual(st, 200)
        return b["zones"][0]

    def drain(self, token, limit=200):
        recs, pages = [], 0
        while True:
            z = self.zone_changes(token, limit)
            self.assertNotIn("serverErrorCode", z, z)
            recs.extend(z["records"])
            token = z["syncToken"]
            pages += 1
            if not z["moreComing"]:
                return recs, token, pages

    def current_token(self):
        b = page(self.svc, 0)
        return b["syncToken"]

    def test_full_history_paged(self):
        recs, tok, pages = self.drain(None, limit=25)
        self.assertGreater(pages, 2)
        masters = {r["recordName"] for r in recs if r["recordType"] == "CPLMaster"}
        assets = {r["recordName"] for r in recs if r["recordType"] == "CPLAsset"}
        prim = [x for x in self.lib.assets if x.zone == 0]
        self.assertEqual(assets, {x.uuid for x in prim})
        self.assertEqual(masters, {self.lib.master_name(x) for x in prim})
        self.assertTrue(any(r["recordType"] == "CPLAlbum" for r in recs))
        self.assertTrue(any(r["recordType"] == "CPLContainerRelation" for r in recs))
        # with an odd page size a master and its asset land on different pages
        z1 = self.zone_changes(None, limit=7)
        last = z1["records"][-1]
        self.assertEqual(last["recordType"], "CPLMaster")
        z2 = self.zone_changes(z1["syncToken"], limit=7)
        self.assertEqual(z2["records"][0]["fields"]["masterRef"]["value"]["recordName"], last["recordName"])
        # caught up: nothing more; empty-string token = caught up
        self.assertEqual(self.drain(tok)[0], [])
        self.assertEqual(self.zone_changes("")["records"], [])

    def test_each_mutation(self):
        tok = self.current_token()
        st, b, _ = post(self.svc, "private", "changes/database", {})
        dbtok = b["syncToken"]
        st, b, _ = post(self.svc, "private", "changes/database", {"syncToken": dbtok})
        self.assertEqual(b["zones"], [])
        x = next(a for a in self.lib.assets if a.zone == 0 and not a.deleted and not a.hidden and not a.favorite
                 and "live" not in a.res and not a.is_video())
        cases = [
            ({"op": "favourite", "asset": x.uuid}, lambda a: a["fields"]["isFavorite"]["value"] == 1, ["CPLAsset"]),
            ({"op": "unfavourite", "asset": x.uuid}, lambda a: a["fields"]["isFavorite"]["value"] == 0, ["CPLAsset"]),
            ({"op": "hide", "asset": x.uuid}, lambda a: a["fields"]["isHidden"]["value"] == 1, ["CPLAsset"]),
            ({"op": "unhide", "asset": x.uuid}, lambda a: a["fields"]["isHidden"]["value"] == 0, ["CPLAsset"]),
            ({"op": "edit", "asset": x.uuid}, lambda a: "resJPEGFullRes" in a["fields"] and "adjustmentType" in a["fields"], ["CPLAsset"]),
            ({"op": "delete", "asset": x.uuid}, lambda a: a["fields"]["isDeleted"]["value"] == 1, ["CPLMaster", "CPLAsset"]),
            ({"op": "restore", "asset": x.uuid}, lambda a: "isDeleted" not in a["fields"], ["CPLMaster", "CPLAsset"]),
        ]
        for op, check, types in cases:
            self.svc.mutate(op)
            recs, newtok, _ = self.drain(tok)
            self.assertEqual(sorted(r["recordType"] for r in recs), sorted(types), op)
            a = [r for r in recs if r["recordType"] == "CPLAsset"][0]
            self.assertEqual(a["recordName"], x.uuid)
            self.assertTrue(check(a), op)
            self.assertFalse(any(r.get("deleted") for r in recs))
            st, b, _ = post(self.svc, "private", "changes/database", {"syncToken": dbtok})
            self.assertEqual([z["zoneID"]["zoneName"] for z in b["zones"]], ["PrimarySync"])
            dbtok = b["syncToken"]
            self.assertNotEqual(newtok, tok)
            tok = newtok
        # main listing reflects the edit (asset-level resJPEGFull)
        got, _ = list_all(self.svc)
        self.assertIn("resJPEGFullRes", {a["recordName"]: a for _, a in got}[x.uuid]["fields"])
        # add
        new = self.svc.mutate({"op": "add"})
        recs, tok, _ = self.drain(tok)
        self.assertEqual({r["recordType"] for r in recs}, {"CPLMaster", "CPLAsset"})
        self.assertIn(new, {r["recordName"] for r in recs})
        got, _ = list_all(self.svc)
        self.assertIn(new, {a["recordName"] for _, a in got})
        # purge: records come back deleted without fields, and vanish from listings
        mname = self.lib.master_name(x)
        self.svc.mutate({"op": "purge", "asset": x.uuid})
        recs, tok, _ = self.drain(tok)
        self.assertEqual({r["recordName"] for r in recs} & {mname, x.uuid}, {mname, x.uuid})
        for r in recs:
            if r["recordName"] in (mname, x.uuid):
                self.assertTrue(r["deleted"])
                self.assertIsNone(r["recordType"])
                self.assertNotIn("fields", r)
        got, _ = list_all(self.svc)
        self.assertNotIn(x.uuid, {a["recordName"] for _, a in got})
        # an old token still works (tokens are reusable): replays to the same end
        recs2, tok2, _ = self.drain(self.current_token())
        self.assertEqual(recs2, [])

    def test_empty_pages_with_more_coming(self):
        # examine one log entry per call: entries of the other zone give
        # empty pages that still say moreComing
        self.svc.faults.merge({"changes_scan_limit": 1})
        tok, empties, seen = None, 0, set()
        for _ in range(2000):
            z = self.zone_changes(tok)
            if not z["records"] and z["moreComing"]:
                empties += 1
            seen.update(r["recordName"] for r in z["records"])
            tok = z["syncToken"]
            if not z["moreComing"]:
                break
        self.assertFalse(z["moreComing"])
        self.assertGreater(empties, 0)
        self.assertTrue({x.uuid for x in self.lib.assets if x.zone == 0} <= seen)

    def test_garbage_tokens(self):
        for bad in ("garbage!!", "AQAAAAAAAwmVf//////////Kd+LphRdKGbpJMSeRX5Td", base64.b64encode(b"\x01" * 33).decode()):
            z = self.zone_changes(bad)
            self.assertEqual(z["serverErrorCode"], "BAD_REQUEST", bad)
            st, b, _ = post(self.svc, "private", "changes/database", {"syncToken": bad})
            self.assertEqual(st, 200)
            self.assertEqual(b["serverErrorCode"], "BAD_REQUEST")
        # a zone token is not valid for another zone
        tok = self.current_token()
        st, b, _ = post(self.svc, "private", "changes/zone", {"zones": [{"zoneID": {"zoneName": self.lib.zones[1].name},
                                                                          "syncToken": tok}]})
        self.assertEqual(b["zones"][0]["serverErrorCode"], "BAD_REQUEST")

    def test_records_modify(self):
        b = page(self.svc, 0)
        a = b["records"][len(b["records"]) // 2]
        body = {"atomic": True, "desiredKeys": ["isDeleted"], "operations": [{"operationType": "update", "record": {
            "fields": {"isDeleted": {"value": 1}}, "recordChangeTag": a["recordChangeTag"],
            "recordName": a["recordName"], "recordType": "CPLAsset"}}], "zoneID": self.zid}
        st, r, _ = post(self.svc, "private", "records/modify", body)
        self.assertEqual(st, 200)
        rec = r["records"][0]
        self.assertEqual(rec["fields"], {"isDeleted": {"value": 1, "type": "INT64"}})
        self.assertNotEqual(rec["recordChangeTag"], a["recordChangeTag"])
        self.assertIn("expirationTime", rec)
        got, _ = list_all(self.svc)
        self.assertNotIn(a["recordName"], {x["recordName"] for _, x in got})
        dele, _ = list_all(self.svc, "CPLAssetAndMasterDeletedByExpungedDate")
        self.assertIn(a["recordName"], {x["recordName"] for _, x in dele})
        # the same (now stale) change tag again -> conflict
        st, r, _ = post(self.svc, "private", "records/modify", body)
        self.assertEqual(r["records"][0]["serverErrorCode"], "CONFLICT")

    def _trash_ops(self, recs):
        return [{"operationType": "update", "record": {
            "fields": {"isDeleted": {"value": 1}}, "recordChangeTag": a["recordChangeTag"],
            "recordName": a["recordName"], "recordType": "CPLAsset"}} for a in recs]

    def _deleted_names(self):
        dele, _ = list_all(self.svc, "CPLAssetAndMasterDeletedByExpungedDate")
        return {x["recordName"] for _, x in dele}

    def test_records_modify_not_atomic_keeps_the_good_ones(self):
        b = page(self.svc, 0)
        assets = [r for r in b["records"] if r["recordType"] == "CPLAsset"][:3]
        ops = self._trash_ops(assets)
        ops[1]["record"]["recordChangeTag"] = "stale"
        ops.append({"operationType": "update", "record": {"fields": {"isDeleted": {"value": 1}},
                    "recordName": "NO-SUCH-RECORD", "recordType": "CPLAsset"}})
        st, r, _ = post(self.svc, "private", "records/modify",
                        {"atomic": False, "operations": ops, "zoneID": self.zid})
        self.assertEqual(st, 200)   # per-record errors ride in a 200 body
        codes = [x.get("serverErrorCode") for x in r["records"]]
        self.assertEqual(codes, [None, "CONFLICT", None, "NOT_FOUND"])
        self.assertEqual([x["recordName"] for x in r["records"]][:3], [a["recordName"] for a in assets])
        self.assertEqual(self._deleted_names() & {a["recordName"] for a in assets},
                         {assets[0]["recordName"], assets[2]["recordName"]})

    def test_records_modify_atomic_is_all_or_nothing(self):
        b = page(self.svc, 0)
        assets = [r for r in b["records"] if r["recordType"] == "CPLAsset"][:2]
        ops = self._trash_ops(assets)
        ops[0]["record"]["recordChangeTag"] = "stale"
        before = self._deleted_names()
        for atomic in ({"atomic": True}, {}):   # true is the default
            st, r, _ = post(self.svc, "private", "records/modify",
                            dict(atomic, operations=ops, zoneID=self.zid))
            self.assertEqual(st, 200)
            self.assertEqual([x["serverErrorCode"] for x in r["records"]], ["CONFLICT", "ATOMIC_ERROR"])
            self.assertEqual(self._deleted_names(), before)

    def test_records_modify_race_and_lost_answer(self):
        b = page(self.svc, 0)
        a, c = [r for r in b["records"] if r["recordType"] == "CPLAsset"][:2]
        # someone favourites the asset between our listing and our modify
        self.svc.faults.add({"target": "cloudkit", "op": "records/modify", "action": "mutate",
                             "mutation": {"op": "favourite", "asset": a["recordName"]}})
        st, r, _ = post(self.svc, "private", "records/modify",
                        {"atomic": False, "operations": self._trash_ops([a]), "zoneID": self.zid})
        self.assertEqual((st, r["records"][0]["serverErrorCode"]), (200, "CONFLICT"))
        self.assertNotIn(a["recordName"], self._deleted_names())
        # the change happens but the answer is lost; the retry sees a conflict
        self.svc.faults.add({"target": "cloudkit", "op": "records/modify", "action": "lost_answer"})
        body = {"atomic": False, "operations": self._trash_ops([c]), "zoneID": self.zid}
        st, r, _ = post(self.svc, "private", "records/modify", body)
        self.assertEqual((st, r["serverErrorCode"]), (503, "TRY_AGAIN_LATER"))
        self.assertIn(c["recordName"], self._deleted_names())
        st, r, _ = post(self.svc, "private", "records/modify", body)
        self.assertEqual(r["records"][0]["serverErrorCode"], "CONFLICT")

    def test_records_modify_limit_and_restore(self):
        b = page(self.svc, 0)
        a = [r for r in b["records"] if r["recordType"] == "CPLAsset"][0]
        st, r, _ = post(self.svc, "private", "records/modify",
                        {"atomic": False, "operations": self._trash_ops([a]) * 201, "zoneID": self.zid})
        self.assertEqual((st, r["serverErrorCode"]), (400, "BAD_REQUEST"))
        self.assertNotIn(a["recordName"], self._deleted_names())
        st, r, _ = post(self.svc, "private", "records/modify",
                        {"atomic": False, "operations": self._trash_ops([a]), "zoneID": self.zid})
        self.assertIn(a["recordName"], self._deleted_names())
        # restore with the new tag: back in the main listing
        op = self._trash_ops([r["records"][0]])
        op[0]["record"]["fields"]["isDeleted"]["value"] = 0
        st, r, _ = post(self.svc, "private", "records/modify", {"operations": op, "zoneID": self.zid})
        self.assertNotIn("serverErrorCode", r["records"][0])
        self.assertNotIn(a["recordName"], self._deleted_names())
        got, _ = list_all(self.svc)
        self.assertIn(a["recordName"], {x["recordName"] for _, x in got})


class Lookup(unittest.TestCase):
    def test_lookup_refreshes_urls(self):
        lib, svc = make(45, 12)
        x = lib.index((0, "all"))[0]
        lib.now_ms = NOW + 7200 * 1000
        st, b, _ = post(svc, "private", "records/lookup", {"records": [{"recordName": x.uuid},
                        {"recordName": lib.master_name(x)}, {"recordName": "nope"}], "zoneID": {"zoneName": "PrimarySync"}})
        self.assertEqual([r.get("recordType") for r in b["records"]], ["CPLAsset", "CPLMaster", None])
        self.assertEqual(b["records"][2]["serverErrorCode"], "NOT_FOUND")
        url = b["records"][1]["fields"]["resOriginalRes"]["value"]["downloadURL"]
        self.assertIn("&e=%d&" % (NOW // 1000 + 7200 + 3600), url)
        r, data = get(svc, url)
        self.assertEqual((r.status, len(data)), (200, x.res["original"].size))

    def test_expire_urls_after(self):
        """expire_urls_after N: download request N+1 finds every URL handed
        out so far expired (410); URLs from records/lookup or a listing made
        afterwards download again."""
        lib, svc = make(45, 12)
        svc.faults.add({"expire_urls_after": 2})   # a plan setting, as POST /faults sends it
        got = page(svc, 0)["records"]
        urls = [r["fields"]["resOriginalRes"]["value"]["downloadURL"] for r in got
                if r["recordType"] == "CPLMaster"][:3]
        self.assertEqual([get(svc, u)[0].status for u in urls], [200, 200, 410])
        self.assertEqual(get(svc, urls[0])[0].status, 410)       # for good, not once
        self.assertEqual([(t, p) for t, p, a in svc.faults.fired if a == "expire_urls"],
                         [("download", urllib.parse.urlsplit(urls[2]).path)])
        master = next(r for r in got if r["recordType"] == "CPLMaster")
        st, b, _ = post(svc, "private", "records/lookup", {"records": [{"recordName": master["recordName"]}],
                                                           "zoneID": {"zoneName": "PrimarySync"}})
        fresh = b["records"][0]["fields"]["resOriginalRes"]["value"]
        self.assertNotEqual(fresh["downloadURL"], urls[0])
        r, data = get(svc, fresh["downloadURL"])
        self.assertEqual((r.status, len(data)), (200, fresh["size"]))
        relisted = page(svc, 0)["records"][0]["fields"]["resOriginalRes"]["value"]["downloadURL"]
        self.assertEqual(get(svc, relisted)[0].status, 200)
        # once only; clear() forgets it
        self.assertEqual([get(svc, fresh["downloadURL"])[0].status for _ in range(3)], [200] * 3)
        svc.faults.clear()
        self.assertEqual(svc.faults.expire_urls_after, 0)


class Downloads(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lib, cls.svc = make(80, 2)
        got, _ = list_all(cls.svc)
        cls.pairs = got
        cls.jpeg = next(m for m, _ in got if m["fields"]["resOriginalFileType"]["value"] == "public.jpeg")
        cls.url = cls.jpeg["fields"]["resOriginalRes"]["value"]["downloadURL"]
        cls.size = cls.jpeg["fields"]["resOriginalRes"]["value"]["size"]

    def setUp(self):
        self.svc.faults.clear()

    def test_full_and_range(self):
        r, data = get(self.svc, self.url)
        self.assertEqual(r.status, 200)
        self.assertEqual(len(data), self.size)
        self.assertEqual(hdr(r, "Content-Length"), str(self.size))
        self.assertEqual(hdr(r, "Accept-Ranges"), "bytes")
        self.assertTrue(data.startswith(b"\xff\xd8\xff") and data.endswith(b"\xff\xd9"))
        r2, tail = get(self.svc, self.url, "bytes=1234-")
        self.assertEqual(r2.status, 206)
        self.assertEqual(hdr(r2, "Content-Range"), "bytes 1234-%d/%d" % (self.size - 1, self.size))
        self.assertEqual(hdr(r2, "Content-Length"), str(self.size - 1234))
        self.assertEqual(tail, data[1234:])
        r3, all3 = get(self.svc, self.url, "bytes=0-")
        self.assertEqual((r3.status, all3), (206, data))
        r4, mid = get(self.svc, self.url, "bytes=10-19")
        self.assertEqual(mid, data[10:20])
        r5, _ = get(self.svc, self.url, "bytes=%d-" % self.size)
        self.assertEqual(r5.status, 416)
        self.assertEqual(hdr(r5, "Content-Range"), "bytes */%d" % self.size)
        # the literal ${f} form works too, and bytes are deterministic across instances
        _, again = get(self.svc, self.url, quote_braces=False)
        self.assertEqual(again, data)
        lib2, svc2 = make(80, 2)
        _, other = get(svc2, self.url)
        self.assertEqual(other, data)

    def test_every_resource_downloads_with_exact_size(self):
        n = 0
        for m, a in self.pairs[:40]:
            for rec in (m, a):
                for k, v in rec["fields"].items():
                    if k.endswith("Res"):
                        r, data = get(self.svc, v["value"]["downloadURL"])
                        self.assertEqual((r.status, len(data)), (200, v["value"]["size"]), k)
                        n += 1
        self.assertGreater(n, 100)

    def test_expired_and_tampered(self):
        self.lib.now_ms = NOW + 3601 * 1000
        try:
            r, _ = get(self.svc, self.url)
            self.assertEqual(r.status, 410)
        finally:
            self.lib.now_ms = NOW
        u = self.url.replace("&e=", "&e=9")
        r, _ = get(self.svc, u)
        self.assertEqual(r.status, 403)
        bad = self.url.replace("/B/A", "/B/B", 1)
        r, _ = get(self.svc, bad.replace(bad.split("/")[4][-6:], "AAAAAA"))
        self.assertEqual(r.status, 404)

    def test_fault_status_nth(self):
        for status in (429, 500, 503):
            self.svc.faults.clear()
            self.svc.faults.add({"target": "download", "nth": 2, "action": "status", "status": status, "retry_after": 7})
            r1, d1 = get(self.svc, self.url)
            r2, d2 = get(self.svc, self.url)
            r3, d3 = get(self.svc, self.url)
            self.assertEqual((r1.status, r2.status, r3.status), (200, status, 200))
            self.assertEqual(hdr(r2, "Retry-After"), "7")
            self.assertEqual(len(d3), self.size)

    def test_fault_cut_and_short(self):
        self.svc.faults.add({"target": "download", "action": "cut", "after_bytes": 1000})
        r, d = get(self.svc, self.url)
        self.assertEqual(hdr(r, "Content-Length"), str(self.size))
        self.assertEqual(len(d), 1000)
        self.assertTrue(r.close)
        self.svc.faults.add({"target": "download", "nth": 1, "action": "short", "missing": 10})
        r, d = get(self.svc, self.url)
        self.assertEqual(len(d), self.size - 10)
        self.assertTrue(r.close)
        r, d = get(self.svc, self.url)
        self.assertEqual(len(d), self.size)

    def test_fault_drip_and_bandwidth(self):
        self.svc.faults.add({"target": "download", "action": "drip", "rate": 40000})
        t = time.monotonic()
        r, d = get(self.svc, self.url, "bytes=%d-" % (self.size - 20000))
        el = time.monotonic() - t
        self.assertEqual(len(d), 20000)
        self.assertGreater(el, 0.4)
        self.svc.faults.clear()
        self.svc.faults.merge({"bandwidth": 100000})
        t = time.monotonic()
        r, d = get(self.svc, self.url, "bytes=%d-" % (self.size - 30000))
        el = time.monotonic() - t
        self.assertGreater(el, 0.25)
        self.assertLess(el, 2.0)

    def test_fault_cloudkit_malformed_and_status(self):
        self.svc.faults.add({"target": "cloudkit", "op": "records/query", "action": "malformed_json"})
        req = Request("POST", "h", cloudkit.PREFIX + "private/records/query", {}, Headers(),
                      json.dumps({"query": {"recordType": "CheckIndexingState"}}).encode(), "ckdatabasews", None)
        r = self.svc.handle(req)
        with self.assertRaises(ValueError):
            json.loads(r.body)
        r = self.svc.handle(req)
        self.assertEqual(json.loads(r.body)["records"][0]["fields"]["state"]["value"], "FINISHED")
        self.svc.faults.add({"target": "cloudkit", "op": "zones/list", "action": "status", "status": 503})
        st, b, r = post(self.svc, "private", "zones/list", {})
        self.assertEqual(st, 503)
        st, b, r = post(self.svc, "private", "zones/list", {})
        self.assertEqual(st, 200)

    def test_faults_from_env_and_spec(self):
        os.environ["FAKE_FAULTS"] = json.dumps({"rules": [{"target": "download", "action": "status", "status": 429,
                                                           "retry_after": 3}], "bandwidth": 0})
        try:
            spec = library.generate_spec(45, 9)
            spec["faults"] = {"rules": [{"target": "cloudkit", "op": "zones/list", "action": "status", "status": 500}]}
            lib = library.Library.from_spec(spec)
            svc = cloudkit.CloudKitService(lib, BASE)
        finally:
            del os.environ["FAKE_FAULTS"]
        st, _, _ = post(svc, "private", "zones/list", {})
        self.assertEqual(st, 500)
        got = page(svc, 0)
        url = got["records"][0]["fields"]["resOriginalRes"]["value"]["downloadURL"]
        r, _ = get(svc, url)
        self.assertEqual((r.status, hdr(r, "Retry-After")), (429, "3"))


ICPD_DESIRED = [k for x in ("resJPEGFull", "resJPEGMed", "resJPEGThumb", "resVidMed", "resVidSmall")
                for k in (x + "FileType", x + "Res")] + ["itemType", "filenameEnc", "originalOrientation"] + [
    k for x in ("resOriginal", "resOriginalAlt", "resOriginalVidCompl") for k in (x + "FileType", x + "Res")] + [
    "isDeleted", "dateExpunged", "recordName", "recordType", "recordChangeTag", "masterRef", "assetDate",
    "addedDate", "isFavorite", "isHidden", "orientation", "assetSubtypeV2", "captionEnc", "locationEnc",
    "locationV2Enc", "locationLatitude", "locationLongitude", "adjustmentType", "timeZoneOffset",
    "keywordsEnc", "extendedDescEnc", "adjustmentSimpleDataEnc"]   # src/cloudkit_query.c desired_keys[]


class RenderCache(unittest.TestCase):
    """render_cache (server --render-cache): every records/query answer is
    byte-identical to the uncached service's over the same library, and the
    cache really serves (hits counted)."""
    SHORT = ["resOriginalRes", "resOriginalFileType", "filenameEnc", "isFavorite", "masterRef", "nosuchKey"]

    @staticmethod
    def _pair(lib):
        off = cloudkit.CloudKitService(lib, BASE)
        on = cloudkit.CloudKitService(lib, BASE, render_cache=True)
        return off, on

    @staticmethod
    def _raw(svc, rank, **kw):
        filters = [{"fieldName": "startRank", "fieldValue": {"type": "INT64", "value": rank}, "comparator": "EQUALS"},
                   {"fieldName": "direction", "fieldValue": {"type": "STRING", "value": kw.pop("direction", "ASCENDING")},
                    "comparator": "EQUALS"}]
        filters.extend(kw.pop("extra", ()))
        body = {"query": {"filterBy": filters, "recordType": kw.pop("rtype", MAIN)},
                "resultsLimit": kw.pop("limit", 200), "zoneID": {"zoneName": kw.pop("zone", "PrimarySync")}}
        if "desired" in kw:
            body["desiredKeys"] = kw.pop("desired")
        assert not kw, kw
        r = post(svc, "private", "records/query", body)[2]
        return r.status, r.headers, r.body

    def _answers(self, svc, n):
        out = []
        for desired in (None, self.SHORT, ICPD_DESIRED):
            for rank in range(0, n + 50, 50):     # the last one is past the end (no continuationMarker)
                kw = {} if desired is None else {"desired": desired}
                out.append(self._raw(svc, rank, **kw))
            out.append(self._raw(svc, 0, desired=desired, direction="DESCENDING", limit=37))
            out.append(self._raw(svc, 0, desired=desired, rtype="CPLAssetAndMasterInSmartAlbumByAssetDate",
                                 extra=smart("FAVORITE")))
        return out

    def assertSame(self, off, on, n):
        ref = self._answers(off, n)
        hits = on.render_cache_stats["hits"]
        cold = self._answers(on, n)
        warm = self._answers(on, n)
        self.assertEqual(cold, ref)
        self.assertEqual(warm, ref)
        self.assertGreater(on.render_cache_stats["hits"] - hits, 2 * n)   # the warm pass came from the cache
        self.assertTrue(all(st == 200 for st, _, _ in ref))
        return ref

    def test_off_by_default(self):
        lib, svc = make(60, 3)
        self.assertFalse(svc.render_cache)
        page(svc, 0)
        self.assertEqual(svc.render_cache_stats, {"hits": 0, "misses": 0, "fallbacks": 0, "clears": 0})

    def test_identical_pages_seeds_and_clock(self):
        for seed in (1, 2):
            lib, _ = make(240, seed)
            off, on = self._pair(lib)
            first = self.assertSame(off, on, 240)
            self.assertEqual(on.render_cache_stats["fallbacks"], 0)
            # two hours later: same templates, new e= and s= in every URL
            lib.now_ms = NOW + 7_200_000
            later = self.assertSame(off, on, 240)
            self.assertNotEqual(later, first)
            e = int((NOW + 7_200_000) / 1000) + cloudkit.URL_TTL
            self.assertIn(b"&e=%d&" % e, later[0][2])
            self.assertNotIn(b"&e=%d&" % (e - 7200), later[0][2])
            self.assertEqual(on.render_cache_stats["clears"], 0)

    def test_url_skew_and_expire_urls_after(self):
        lib, _ = make(120, 12)
        off, on = self._pair(lib)
        on.faults.add({"expire_urls_after": 1})
        got = json.loads(self._raw(on, 0)[2])["records"]
        urls = [r["fields"]["resOriginalRes"]["value"]["downloadURL"] for r in got if r["recordType"] == "CPLMaster"]
        self.assertEqual([get(on, u)[0].status for u in urls[:2]], [200, 410])
        self.assertEqual(on.url_skew, cloudkit.URL_TTL + 1)
        off.url_skew = on.url_skew
        self.assertSame(off, on, 120)
        relisted = json.loads(self._raw(on, 0)[2])["records"][0]["fields"]["resOriginalRes"]["value"]["downloadURL"]
        self.assertNotEqual(relisted, urls[0])
        self.assertEqual(get(on, relisted)[0].status, 200)

    def test_mutations_invalidate(self):
        lib, _ = make(150, 4)
        off, on = self._pair(lib)
        before = self.assertSame(off, on, 150)
        x = lib.index((0, "all"))[3]
        # records/modify through the cached service, then a control-API style mutation
        st, b, _ = post(on, "private", "records/modify", {
            "operations": [{"operationType": "forceUpdate", "record": {
                "recordName": x.uuid, "recordType": "CPLAsset", "fields": {"isFavorite": {"value": 1}}}}],
            "zoneID": {"zoneName": "PrimarySync"}})
        self.assertEqual(st, 200)
        after = self.assertSame(off, on, 150)
        self.assertNotEqual(after[0], before[0])
        rec = [r for r in json.loads(after[0][2])["records"] if r["recordName"] == x.uuid][0]
        self.assertEqual(rec["fields"]["isFavorite"]["value"], 1)
        clears = on.render_cache_stats["clears"]
        self.assertGreater(clears, 0)
        lib.mutate({"op": "edit", "asset": x.uuid})
        edited = self.assertSame(off, on, 150)
        self.assertNotEqual(edited[0], after[0])
        rec = [r for r in json.loads(edited[0][2])["records"] if r["recordName"] == x.uuid][0]
        self.assertIn("resJPEGFullRes", rec["fields"])
        self.assertGreater(on.render_cache_stats["clears"], clears)
        lib.mutate({"op": "add"})
        self.assertSame(off, on, 151)

    def test_odd_desired_keys_stay_uncached(self):
        lib, _ = make(60, 5)
        off, on = self._pair(lib)
        def norm(a):   # error answers carry a random uuid
            return a[:2] + (re.sub(rb'"uuid":"[0-9a-f-]{36}"', b"", a[2]),)
        for desired in ("resOriginalRes", ["filenameEnc", {"x": 1}], 7, {"filenameEnc": 1}, []):
            self.assertEqual(norm(self._raw(on, 0, desired=desired)), norm(self._raw(off, 0, desired=desired)))
        # only [] went through the cache: one page of every master and asset
        self.assertEqual(on.render_cache_stats["misses"], 2 * len(lib.index((0, "all"))))
        self.assertEqual(on.render_cache_stats["hits"], 0)

    def test_hostile_libraries_and_fallback(self):
        for hostile in ("safe", "all"):
            lib = library.Library.generate(200, 6, hostile=hostile)
            lib.now_ms = NOW
            off, on = self._pair(lib)
            n = len(lib.index((0, "all")))
            self.assertSame(off, on, n)
            self.assertEqual(on.render_cache_stats["fallbacks"], 0)
        # a record whose own text holds the (secret, random) marker cannot be
        # split safely: it is rendered uncached, the answer stays the same
        x, y = lib.index((0, "all"))[:2]
        x.adjustment = "com.apple.photo@" + on._rc_nonce
        y.adjustment = "@%sE0@" % on._rc_nonce
        on.render_cache = False
        on.render_cache = True
        self.assertSame(off, on, n)
        # x and y: their CPLAsset (adjustmentType is in None and in icpd's keys), cold and warm
        self.assertEqual(on.render_cache_stats["fallbacks"], 2 * 2 * 2)


def run():
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    res = unittest.TextTestRunner(verbosity=1, stream=sys.stderr).run(suite)
    failed = len(res.failures) + len(res.errors)
    print("%d passed, %d failed" % (res.testsRun - failed, failed))
    return 1 if failed or res.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(run())
