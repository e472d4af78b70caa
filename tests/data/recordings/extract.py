#!/usr/bin/python3
"""Extract CloudKit response bodies from icloudpd's recorded exchanges
(vcrpy YAML cassettes, MIT licence: see LICENSE.md beside this script) into
compact JSON files for the decoder unit tests (tests/unit/test_cloudkit_record.c).

  tests/data/recordings/extract.py [RECORDINGS_DIR [OUT_DIR]]

RECORDINGS_DIR defaults to ../shared/fixtures/icloudpd-recordings next to the
source tree, OUT_DIR to this script's directory.  Needs python3-yaml.

A listing page is cut to its first N CPLMaster records (in page order) and
the CPLAsset records that point at them (in page order), so the committed
files stay small.  The records themselves are kept whole: the same keys and
values as the recording, re-serialised as compact JSON (one record a line).
"""
import json
import os
import sys

import yaml

# (cassette, database, record type asked for, output name, masters kept;
#  None keeps the whole body)
WANTED = [
    ("listing_photos_raw_alt_adj", "private", "CPLAssetAndMasterByAddedDate",
     "listing_photos_raw_alt_adj.json", 24),
    ("listing_videos", "private", "CPLAssetAndMasterByAddedDate",
     "listing_videos.json", 12),
    ("listing_videos", "shared", "CPLAssetAndMasterByAddedDate",
     "listing_videos_shared.json", None),
    ("listing_albums", "private", "CPLAlbumByPositionLive",
     "listing_albums.json", None),
]


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads vcrpy's !!python/unicode tags as plain text."""


_Loader.add_constructor("tag:yaml.org,2002:python/unicode",
                        lambda loader, node: loader.construct_scalar(node))


def find_body(path, database, record_type):
    """The response body of the one records/query of record_type on database."""
    with open(path, encoding="utf-8") as f:
        doc = yaml.load(f, Loader=_Loader)
    found = []
    for it in doc["interactions"]:
        uri = it["request"]["uri"].split("?")[0]
        if not uri.endswith("/production/%s/records/query" % database):
            continue
        req = json.loads(it["request"].get("body") or "{}")
        if req.get("query", {}).get("recordType") != record_type:
            continue
        body = it["response"]["body"]["string"]
        if isinstance(body, bytes):
            body = body.decode("utf-8")
        found.append(json.loads(body))
    if len(found) != 1:
        sys.exit("%s: %d %s queries on %s, expected 1" % (path, len(found), record_type, database))
    return found[0]


def cut_page(page, n):
    recs = page["records"]
    masters = [r for r in recs if r.get("recordType") == "CPLMaster"][:n]
    names = {m["recordName"] for m in masters}
    keep = [r for r in recs if r in masters or (
        r.get("recordType") == "CPLAsset"
        and r["fields"]["masterRef"]["value"]["recordName"] in names)]
    out = dict(page)
    out["records"] = keep
    return out


def dump(page, path):
    """Compact JSON, one record per line (diffable, and greppable by name)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("{")
        for k, v in page.items():
            if k != "records":
                f.write("%s:%s,\n" % (json.dumps(k), json.dumps(v, ensure_ascii=False)))
        f.write('"records":[\n')
        f.write(",\n".join(json.dumps(r, ensure_ascii=False, separators=(",", ":"))
                           for r in page["records"]))
        f.write("\n]}\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        here, "..", "..", "..", "..", "shared", "fixtures", "icloudpd-recordings")
    out = sys.argv[2] if len(sys.argv) > 2 else here
    for cassette, db, rtype, name, n in WANTED:
        page = find_body(os.path.join(src, cassette + ".yml"), db, rtype)
        if n is not None:
            page = cut_page(page, n)
        dump(page, os.path.join(out, name))
        print("%s: %d records" % (name, len(page["records"])))


if __name__ == "__main__":
    main()
