#!/usr/bin/python3
"""Memory/time check: a 100k-asset generated library, every listing page
fetched through CloudKitService.handle (no downloads).  Prints peak RSS.

    /usr/bin/python3 tests/fake_icloud/measure_100k.py [--assets N] [--limit-mb 1024]
Exit status 1 if the peak RSS exceeds the limit or the listing is incomplete.
"""
import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cloudkit  # noqa: E402
import library  # noqa: E402
from http_types import Headers, Request  # noqa: E402


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", type=int, default=100000)
    ap.add_argument("--seed", default="100k")
    ap.add_argument("--limit-mb", type=float, default=1024.0)
    a = ap.parse_args()
    t0 = time.monotonic()
    base = rss_mb()
    lib = library.Library.generate(a.assets, a.seed)
    t_gen = time.monotonic() - t0
    rss_gen = rss_mb()
    svc = cloudkit.CloudKitService(lib, {"ckdatabasews": "https://p42-ckdatabasews.localhost:8443",
                                         "content": "https://cvws.localhost:8443"})
    rank, n, pages, nbytes = 0, 0, 0, 0
    t1 = time.monotonic()
    while True:
        body = {"query": {"filterBy": [
            {"fieldName": "startRank", "fieldValue": {"type": "INT64", "value": rank}, "comparator": "EQUALS"},
            {"fieldName": "direction", "fieldValue": {"type": "STRING", "value": "ASCENDING"}, "comparator": "EQUALS"}],
            "recordType": "CPLAssetAndMasterByAssetDateWithoutHiddenOrDeleted"},
            "resultsLimit": 200, "zoneID": {"zoneName": "PrimarySync"}}
        req = Request("POST", "p42-ckdatabasews.localhost",
                      cloudkit.PREFIX + "private/records/query", {}, Headers(),
                      json.dumps(body).encode(), "ckdatabasews", None)
        r = svc.handle(req)
        nbytes += len(r.body)
        page = json.loads(r.body)
        pages += 1
        masters = [x for x in page["records"] if x["recordType"] == "CPLMaster"]
        if not masters:
            break
        n += len(masters)
        rank += len(masters)
    t_list = time.monotonic() - t1
    want = len(lib.index((0, "all")))
    peak = rss_mb()
    print("assets generated: %d in %.1f s (RSS %.0f MB -> %.0f MB)" % (len(lib.assets), t_gen, base, rss_gen))
    print("listed: %d of %d in %d pages, %.1f s, %.0f MB of JSON" % (n, want, pages, t_list, nbytes / 1e6))
    print("peak RSS: %.0f MB (limit %.0f MB)" % (peak, a.limit_mb))
    ok = n == want and peak <= a.limit_mb
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
