"""Fake CloudKit Photos database + content (download) host.

Implements the operations of cloudkit-photos.md §1-§5, §7.2, §9 against a
library.Library.  Records are rendered per request from compact asset
objects, so memory stays flat with library size.

Entry points used by the server core:
    svc = CloudKitService(library, public_base)
    svc.handle(req)           POST <ckdatabasews>/database/1/com.apple.photos.cloud/production/{private|shared}/<op>
    svc.handle_download(req)  GET  <content>/B/<fileChecksum><referenceChecksum>/${f}?...&e=<expiry>&...&s=<sig>
"""
import base64
import hashlib
import hmac
import json
import os
import re
import threading
import time
import urllib.parse
import uuid

import library as L
import media
from http_types import Response, json_response, json_bytes_response

PREFIX = "/database/1/com.apple.photos.cloud/production/"
URL_TTL = 3600   # downloadURL lifetime, seconds (§5.1)
MODIFY_MAX_OPS = 200  # records/modify operations per request (CloudKit Web Services "Data Size Limits")

DESIRED_DEFAULT = None   # None = all fields


# ====================================================================
# Fault plan (per run): library spec "faults" merged with env FAKE_FAULTS
# ====================================================================
class FaultPlan:
    """Rules:
      {"target": "download"|"cloudkit", "op": "<substring of op/path>",
       "nth": N (1-based request count per distinct path; default 1),
       "times": K (consecutive requests affected; default 1; 0 = forever),
       "action": "status"|"cut"|"short"|"drip"|"malformed_json",
       "status": 429|500|503|..., "retry_after": seconds,
       "after_bytes": N (cut: close after N body bytes),
       "missing": N (short: send Content-Length minus N bytes then close),
       "rate": bytes/s (drip),
       cloudkit only: "action": "mutate" with "mutation": {library op} applies the op just
       before the request is handled (someone edits the asset in Photos meanwhile);
       "action": "lost_answer" handles the request, then answers 503 instead (the change
       happened, the client never heard: its retry must cope)}
    plus "bandwidth": bytes/s per download connection (0/absent = unlimited),
    and "expire_urls_after": N (the content host's clock jumps past every URL
    handed out so far when download request N+1 arrives; once).
    """

    def __init__(self, spec=None):
        self.lock = threading.Lock()
        self.rules = []
        self.bandwidth = 0
        self.split_pairs = False       # listing pages: last asset moves to the next page
        self.changes_scan_limit = 0    # changes/zone: log entries examined per call (0 = default)
        self.expire_urls_after = 0     # download requests before every listed URL expires (0 = never)
        self.downloads_seen = 0
        self.counts = {}
        self.fired = []
        self.merge(spec or {})
        env = os.environ.get("FAKE_FAULTS")
        if env:
            self.merge(json.loads(env))

    def merge(self, spec):
        if isinstance(spec, list):
            spec = {"rules": spec}
        with self.lock:
            for r in spec.get("rules", []):
                self.rules.append(dict(r))
            if spec.get("bandwidth") is not None:
                self.bandwidth = int(spec["bandwidth"])
            if spec.get("split_pairs") is not None:
                self.split_pairs = bool(spec["split_pairs"])
            if spec.get("changes_scan_limit") is not None:
                self.changes_scan_limit = int(spec["changes_scan_limit"])
            if spec.get("expire_urls_after") is not None:
                self.expire_urls_after = int(spec["expire_urls_after"])
                self.downloads_seen = 0

    PLAN_KEYS = ("bandwidth", "split_pairs", "changes_scan_limit", "expire_urls_after")

    def add(self, rule):
        if "action" not in rule and any(k in rule for k in self.PLAN_KEYS):
            # a plan setting ({"expire_urls_after": N}, {"bandwidth": B}...), not a rule
            self.merge(rule)
            return
        with self.lock:
            self.rules.append(dict(rule))

    def download_expires_urls(self, path):
        """Count a download request; True when it is the one at which every URL
        handed out so far expires (expire_urls_after)."""
        with self.lock:
            self.downloads_seen += 1
            if self.expire_urls_after and self.downloads_seen == self.expire_urls_after + 1:
                self.fired.append(("download", path, "expire_urls"))
                return True
            return False

    def clear(self):
        with self.lock:
            self.rules = []
            self.counts = {}
            self.bandwidth = 0
            self.split_pairs = False
            self.changes_scan_limit = 0
            self.expire_urls_after = 0
            self.downloads_seen = 0

    def take(self, target, path):
        """Count this request and return the rule that fires, or None."""
        with self.lock:
            hit = None
            for i, r in enumerate(self.rules):
                if r.get("target", "download") != target:
                    continue
                if r.get("op") and r["op"] not in path:
                    continue
                key = (i, path)
                n = self.counts.get(key, 0) + 1
                self.counts[key] = n
                nth = int(r.get("nth", 1))
                times = int(r.get("times", 1))
                if n >= nth and (times == 0 or n < nth + times) and hit is None:
                    hit = r
            if hit is not None:
                self.fired.append((target, path, hit.get("action")))
            return hit


# ====================================================================
# helpers
# ====================================================================
def _f(value, typ):
    return {"value": value, "type": typ}


def _err(code, reason, status=200):
    return json_response({"uuid": str(uuid.uuid4()), "serverErrorCode": code, "reason": reason}, status=status)


def _filter_value(filters, name):
    if isinstance(filters, dict):
        filters = [filters]
    for f in filters or []:
        if isinstance(f, dict) and f.get("fieldName") == name:
            fv = f.get("fieldValue") or {}
            return fv.get("value")
    return None


def _b64url(s):
    return s.replace("+", "-").replace("/", "_")


class CloudKitService:
    def __init__(self, library, public_base, render_cache=False):
        self.lib = library
        self.ck_base = public_base.get("ckdatabasews", "https://p42-ckdatabasews.icloud.com:443")
        self.content_base = public_base.get("content", "https://cvws.icloud-content.com").rstrip("/")
        self.faults = FaultPlan(library.faults)
        self.lock = library.lock
        self.requests = []          # (db, op, body-json) log for tests
        self.sign_key = hashlib.sha256(b"url-sign" + library.key).digest()
        self.url_skew = 0           # seconds the content host's clock is ahead (expire_urls_after)
        # opt-in render cache (server --render-cache): see _rc_* below
        self._rc_on = False
        self._rc = {}               # (kind "m"/"a", frozenset(desiredKeys) | None) -> {serial: template}
        self._rc_stamp = None       # what the cached templates were rendered from
        self._rc_nonce = os.urandom(8).hex()
        self._rc_marks = None       # list of URL paths while a template is being rendered
        self.render_cache_stats = {"hits": 0, "misses": 0, "fallbacks": 0, "clears": 0}
        self.render_cache = render_cache
        try:
            import faults as core_faults
            if hasattr(core_faults, "register_action"):
                core_faults.register_action("cloudkit_fault", lambda rule: self.faults.add(rule))
                core_faults.register_action("cloudkit_mutate", lambda op: self.mutate(op))
        except Exception:
            pass

    # ------------------------------------------------------------ public
    def mutate(self, op):
        with self.lock:
            return self.lib.mutate(op)

    def handle(self, req):
        path = req.path
        if not path.startswith(PREFIX):
            return _err("NOT_FOUND", "unknown path", 404)
        rest = path[len(PREFIX):]
        db, _, op = rest.partition("/")
        if db not in ("private", "shared"):
            return _err("BAD_REQUEST", "unknown database type %r" % db, 400)
        acct = getattr(req, "account", None)
        if acct is not None and (getattr(acct, "adp", False) or
                                 (isinstance(acct, dict) and acct.get("adp"))):
            return json_response({"uuid": str(uuid.uuid4()), "serverErrorCode": "ACCESS_DENIED",
                                  "reason": "private db access disabled for this account"}, status=403)
        rule = self.faults.take("cloudkit", op)
        if rule is not None:
            r = self._cloudkit_fault(rule)
            if r is not None:
                return r
        r = self._handle_op(req, db, op)
        if rule is not None and rule.get("action") == "lost_answer":
            return _err("TRY_AGAIN_LATER", "injected fault: the answer was lost", 503)
        return r

    def _handle_op(self, req, db, op):
        try:
            body = json.loads(req.body.decode("utf-8")) if req.body else {}
        except (ValueError, UnicodeDecodeError):
            return _err("BAD_REQUEST", "Invalid JSON body", 400)
        if body is None:
            body = {}
        if not isinstance(body, dict):
            return _err("BAD_REQUEST", "request body must be a JSON object", 400)
        with self.lock:
            self.requests.append((db, op, body))
            del self.requests[:-1000]
            handler = {
                "records/query": self._query,
                "internal/records/query/batch": self._batch,
                "zones/list": self._zones_list,
                "changes/database": self._changes_database,
                "changes/zone": self._changes_zone,
                "records/modify": self._modify,
                "records/lookup": self._lookup,
            }.get(op)
            if handler is None:
                return _err("NOT_FOUND", "unknown operation %s" % op, 404)
            try:
                return handler(db, body)
            except _CkError as e:
                return _err(e.code, e.reason, e.status)
            except (AttributeError, TypeError, ValueError, KeyError, IndexError) as e:
                # hostile shapes (a list where an object belongs, a string rank...)
                return _err("BAD_REQUEST", "malformed request: %s" % type(e).__name__, 400)

    def _cloudkit_fault(self, rule):
        act = rule.get("action", "status")
        if act == "status":
            st = int(rule.get("status", 503))
            hdrs = []
            if rule.get("retry_after") is not None:
                hdrs.append(("Retry-After", str(rule["retry_after"])))
            body = json.dumps({"uuid": str(uuid.uuid4()), "serverErrorCode": rule.get("code", "TRY_AGAIN_LATER"),
                               "reason": "injected fault"}).encode()
            return Response(st, [("Content-Type", "application/json; charset=UTF-8")] + hdrs, body)
        if act == "malformed_json":
            body = b'{"records" : [ {"recordName" : "truncated'
            return Response(200, [("Content-Type", "application/json; charset=UTF-8")], body)
        if act == "server_error_code":
            return _err(rule.get("code", "RETRY_LATER"), "injected fault")
        if act == "mutate":
            with self.lock:
                self.lib.mutate(dict(rule["mutation"]))
        return None

    # ------------------------------------------------------------ zones
    def _zone_for(self, db, zone_id, strict=True):
        name = (zone_id or {}).get("zoneName", L.PRIMARY)
        z = self.lib.zone(name)
        if z is None or z.db != db:
            if not strict:
                return None
            raise _CkError("ZONE_NOT_FOUND", "Zone '%s' does not exist" % name)
        return z

    def zone_id(self, z):
        return {"zoneName": z.name, "ownerRecordName": z.owner, "zoneType": "REGULAR_CUSTOM_ZONE"}

    def _zone_token(self, z, pos=None):
        return self.lib.make_token("zone:" + z.name, len(self.lib.log) if pos is None else pos)

    def _db_token(self, db, pos=None):
        return self.lib.make_token("db:" + db, len(self.lib.log) if pos is None else pos)

    def _zones_list(self, db, body):
        zones = [{"zoneID": self.zone_id(z)} for z in self.lib.zones if z.db == db]
        return json_response({"moreComing": False, "syncToken": self._db_token(db), "zones": zones})

    # ------------------------------------------------------------ query
    def _query(self, db, body):
        q = body.get("query") or {}
        rtype = q.get("recordType")
        z = self._zone_for(db, body.get("zoneID"))
        filters = q.get("filterBy") or []
        if rtype == "CheckIndexingState":
            rec = self._envelope("_" + str(uuid.UUID(bytes=hashlib.md5(z.name.encode() + self.lib.key).digest())),
                                 "CheckIndexingState",
                                 {"progress": _f(100, "INT64"), "state": _f("FINISHED", "STRING")}, "0", z, 0)
            return json_response({"records": [rec], "syncToken": self._zone_token(z)})
        if rtype == "CPLAlbumByPositionLive":
            return self._albums(z, filters)
        key = self._index_key(z, rtype, filters)
        rank = _filter_value(filters, "startRank")
        rank = int(rank) if rank is not None else 0
        direction = _filter_value(filters, "direction") or "ASCENDING"
        limit = int(body.get("resultsLimit") or 200)
        limit = max(1, min(limit, 200))
        npairs = max(1, limit // 2)
        items = self.lib.index(key)
        if direction == "DESCENDING":
            items = items[::-1]
        page = items[rank:rank + npairs] if rank >= 0 else []
        desired = body.get("desiredKeys")
        apage = page
        if self.faults.split_pairs and page:
            # each full page hands its last CPLAsset to the next page (kei
            # buffers such halves; icloudpd would fail with a KeyError, §3.2)
            apage = ([items[rank - 1]] if 0 < rank <= len(items) else []) + page
            if rank + npairs < len(items):
                apage = apage[:-1]
        marker = None
        if rank + npairs < len(items):
            marker = base64.b64encode(("rank:%d" % (rank + npairs)).encode()).decode()
        dkey = self._rc_key(desired)
        if dkey is not False:
            # cached: the same bytes json_response would give for the dict below
            recs = self._rc_records([("m", x) for x in page] + [("a", x) for x in apage], desired, dkey)
            tail = b"]"
            if marker is not None:
                tail += b',"continuationMarker":' + json.dumps(marker).encode()
            tail += b',"syncToken":' + json.dumps(self._zone_token(z)).encode() + b"}"
            return json_bytes_response(b'{"records":[' + recs + tail)
        records = [self.render_master(x, desired) for x in page] + [self.render_asset(x, desired) for x in apage]
        out = {"records": records}
        if marker is not None:
            out["continuationMarker"] = marker
        out["syncToken"] = self._zone_token(z)
        return json_response(out)

    def _index_key(self, z, rtype, filters):
        zi = z.idx
        if rtype in ("CPLAssetAndMasterByAssetDateWithoutHiddenOrDeleted", "CPLAssetAndMasterByAssetDate"):
            return (zi, "all")
        if rtype == "CPLAssetAndMasterByAddedDate":
            return (zi, "added")
        if rtype == "CPLAssetAndMasterInSmartAlbumByAssetDate":
            tag = _filter_value(filters, "smartAlbum")
            if tag not in L.SMART_TAGS:
                raise _CkError("BAD_REQUEST", "Unknown smart album %r" % (tag,))
            return (zi, "smart", tag)
        if rtype == "CPLBurstStackAssetAndMasterByAssetDate":
            return (zi, "bursts")
        if rtype == "CPLAssetAndMasterHiddenByAssetDate":
            return (zi, "hidden")
        if rtype == "CPLAssetAndMasterDeletedByExpungedDate":
            return (zi, "deleted")
        if rtype == "CPLContainerRelationLiveByAssetDate":
            parent = _filter_value(filters, "parentId")
            if not parent:
                raise _CkError("BAD_REQUEST", "parentId filter required")
            return (zi, "album", parent)
        raise _CkError("BAD_REQUEST", "Unknown index type %r" % (rtype,))

    def _albums(self, z, filters):
        if z.name.startswith("SharedSync"):
            # rclone: CPLAlbumByPositionLive on SharedSync answers BAD_REQUEST (§2)
            raise _CkError("BAD_REQUEST", "Index has invalid data")
        parent = _filter_value(filters, "parentId")
        recs = []
        if parent is None:
            recs.append(self._envelope(L.ROOT_FOLDER, "CPLAlbum", {
                "recordModificationDate": _f(1545202692118, "TIMESTAMP"), "sortAscending": _f(1, "INT64"),
                "sortType": _f(0, "INT64"), "albumType": _f(3, "INT64"), "position": _f(0, "INT64"),
                "sortTypeExt": _f(0, "INT64")}, "34sz", z, 1428692188711))
        for al in sorted(self.lib.albums, key=lambda a: a.position):
            p = al.parent or L.ROOT_FOLDER
            if parent is not None and p != parent:
                continue
            recs.append(self.render_album(al, z))
        return json_response({"records": recs, "syncToken": self._zone_token(z)})

    def render_album(self, al, z):
        fields = {
            "recordModificationDate": _f(1555410486949, "TIMESTAMP"), "sortAscending": _f(1, "INT64"),
            "sortType": _f(0, "INT64"), "albumType": _f(al.type, "INT64"),
            "albumNameEnc": _f(base64.b64encode(al.name.encode("utf-8")).decode(), "ENCRYPTED_BYTES"),
            "position": _f(al.position, "INT64"), "sortTypeExt": _f(0, "INT64"),
            "parentId": _f(al.parent or L.ROOT_FOLDER, "STRING"),
        }
        if al.deleted:
            fields["isDeleted"] = _f(1, "INT64")
        return self._envelope(al.id, "CPLAlbum", fields, "2o%02x" % al.idx, z, 1433857637042)

    # ------------------------------------------------------------ counts
    def _batch(self, db, body):
        out = []
        for item in body.get("batch") or []:
            q = item.get("query") or {}
            z = self._zone_for(db, item.get("zoneID"))
            if q.get("recordType") != "HyperionIndexCountLookup":
                raise _CkError("BAD_REQUEST", "unsupported batch query %r" % q.get("recordType"))
            names = _filter_value(q.get("filterBy"), "indexCountID") or []
            recs = []
            for name in names:
                n = self.count(z, name)
                recs.append(self._envelope(name, "IndexCountResult", {"itemCount": _f(n, "INT64")}, "0", z, 0))
            out.append({"records": recs, "syncToken": self._zone_token(z)})
        return json_response({"batch": out})

    def count(self, z, obj_type):
        zi = z.idx
        if obj_type in ("CPLAssetByAssetDateWithoutHiddenOrDeleted", "CPLAssetByAddedDate", "CPLAssetByAssetDate"):
            return len(self.lib.index((zi, "all")))
        if obj_type.startswith("CPLAssetInSmartAlbumByAssetDate:"):
            tag = L.COUNT_SUFFIX.get(obj_type.split(":", 1)[1])
            return len(self.lib.index((zi, "smart", tag))) if tag else 0
        if obj_type == "CPLAssetBurstStackAssetByAssetDate":
            return len(self.lib.index((zi, "bursts")))
        if obj_type == "CPLAssetHiddenByAssetDate":
            return len(self.lib.index((zi, "hidden")))
        if obj_type == "CPLAssetDeletedByExpungedDate":
            return len(self.lib.index((zi, "deleted")))
        if obj_type.startswith("CPLContainerRelationNotDeletedByAssetDate:"):
            return len(self.lib.index((zi, "album", obj_type.split(":", 1)[1])))
        return 0

    # ------------------------------------------------------------ changes
    def _changes_database(self, db, body):
        tok = body.get("syncToken")
        start = 0
        if tok:
            try:
                start = self.lib.parse_token("db:" + db, tok)
            except L.TokenError as e:
                raise _CkError("BAD_REQUEST", str(e))
        elif tok == "":
            start = len(self.lib.log)
        zones = []
        for z in self.lib.zones:
            if z.db != db:
                continue
            if start == 0 or self.lib.zone_changed_since(z.idx, start):
                zones.append({"zoneID": self.zone_id(z), "syncToken": self._zone_token(z)})
        return json_response({"syncToken": self._db_token(db), "moreComing": False, "zones": zones})

    def _changes_zone(self, db, body):
        out = []
        for zreq in body.get("zones") or []:
            z = self._zone_for(db, zreq.get("zoneID"), strict=False)
            if z is None:
                out.append({"zoneID": zreq.get("zoneID"), "serverErrorCode": "ZONE_NOT_FOUND",
                            "reason": "Zone does not exist"})
                continue
            tok = zreq.get("syncToken")
            if tok is None:
                start = 0
            elif tok == "":
                start = len(self.lib.log)
            else:
                try:
                    start = self.lib.parse_token("zone:" + z.name, tok)
                except L.TokenError as e:
                    out.append({"zoneID": self.zone_id(z), "serverErrorCode": "BAD_REQUEST", "reason": str(e)})
                    continue
            limit = max(1, min(int(zreq.get("resultsLimit") or 200), 200))
            scan = self.faults.changes_scan_limit or 20000
            entries, nxt, more = self.lib.changes(z.idx, start, limit, scan)
            desired = zreq.get("desiredKeys")
            recs = [self.render_change(e, z, desired) for e in entries]
            out.append({"zoneID": self.zone_id(z), "syncToken": self._zone_token(z, nxt),
                        "moreComing": more, "records": recs})
        return json_response({"zones": out})

    def render_change(self, e, z, desired):
        kind, a, b = e
        if kind == L.LOG_ALBUM:
            return self.render_album(self.lib.albums[a], z)
        x = self.lib.assets[a]
        if kind == L.LOG_REL:
            al = self.lib.albums[b]
            name = "%s-IN-%s" % (x.uuid, al.id)
            if x.purged or b not in x.albums:
                return {"recordName": name, "recordType": None, "deleted": True, "zoneID": self.zone_id(z)}
            return self._envelope(name, "CPLContainerRelation", {
                "itemId": _f(x.uuid, "STRING"), "containerId": _f(al.id, "STRING"),
                "isKeyAsset": _f(0, "INT64"), "position": _f(0, "INT64")}, "r%x" % x.aver, z, x.added_date)
        if kind == L.LOG_MASTER:
            if x.purged:
                return {"recordName": self.lib.master_name(x), "recordType": None, "deleted": True,
                        "zoneID": self.zone_id(z)}
            return self.render_master(x, desired)
        if x.purged:
            return {"recordName": x.uuid, "recordType": None, "deleted": True, "zoneID": self.zone_id(z)}
        return self.render_asset(x, desired)

    # ------------------------------------------------------------ modify / lookup
    def _modify(self, db, body):
        """records/modify (CloudKit Web Services Reference, "Modifying Records"):
        at most 200 operations; "atomic" (default true) means one refused
        operation fails them all, the others with ATOMIC_ERROR; errors are
        per record inside an HTTP 200 body (cloudkit-photos.md §1.5)."""
        z = self._zone_for(db, body.get("zoneID"))
        ops = body.get("operations") or []
        if len(ops) > MODIFY_MAX_OPS:
            raise _CkError("BAD_REQUEST", "too many operations (%d > %d)" % (len(ops), MODIFY_MAX_OPS), 400)
        now = self.lib.now()
        checked = []   # (name, asset or None, error record or None)
        for op in ops:
            r = op.get("record") or {}
            name = r.get("recordName")
            x = self.lib.by_uuid.get(name)
            err = None
            if op.get("operationType") not in ("update", "forceUpdate") or r.get("recordType", "CPLAsset") != "CPLAsset":
                err = {"recordName": name, "serverErrorCode": "BAD_REQUEST", "reason": "unsupported operation"}
            elif x is None or x.purged or self.lib.zones[x.zone] is not z:
                err = {"recordName": name, "serverErrorCode": "NOT_FOUND", "reason": "Record not found"}
            elif (op.get("operationType") == "update" and r.get("recordChangeTag") is not None
                  and r.get("recordChangeTag") != self.lib.change_tag(x, L.LOG_ASSET)):
                err = {"recordName": name, "serverErrorCode": "CONFLICT",
                       "reason": "record to insert already exists or oplock mismatch"}
            checked.append((name, x, err, r))
        if body.get("atomic", True) and any(e for _, _, e, _ in checked):
            recs = [e or {"recordName": n, "serverErrorCode": "ATOMIC_ERROR",
                          "reason": "atomic batch failed: another operation was refused"}
                    for n, _, e, _ in checked]
            return json_response({"records": recs, "syncToken": self._zone_token(z)})
        recs = []
        for name, x, err, r in checked:
            if err is not None:
                recs.append(err)
                continue
            fields = r.get("fields") or {}
            for fname, fv in fields.items():
                v = (fv or {}).get("value")
                if fname == "isDeleted":
                    self.lib.mutate({"op": "delete" if v else "restore", "asset": x.uuid})
                elif fname == "isHidden":
                    self.lib.mutate({"op": "hide" if v else "unhide", "asset": x.uuid})
                elif fname == "isFavorite":
                    self.lib.mutate({"op": "favourite" if v else "unfavourite", "asset": x.uuid})
                elif fname == "isExpunged" and v and x.deleted:
                    self.lib.mutate({"op": "purge", "asset": x.uuid})
            if x.purged:
                recs.append({"recordName": name, "deleted": True, "zoneID": self.zone_id(z)})
                continue
            rendered = self.render_asset(x, body.get("desiredKeys"))
            rendered["expirationTime"] = int(now / 1000) + 40 * 86400
            recs.append(rendered)
        return json_response({"records": recs, "syncToken": self._zone_token(z)})

    def _lookup(self, db, body):
        z = self._zone_for(db, body.get("zoneID"))
        recs = []
        for r in body.get("records") or []:
            name = r.get("recordName")
            x = self.lib.by_uuid.get(name)
            if x is not None and not x.purged:
                recs.append(self.render_asset(x, body.get("desiredKeys")))
                continue
            found = None
            for y in self.lib.assets:
                if not y.purged and self.lib.master_name(y) == name:
                    found = y
                    break
            if found is not None:
                recs.append(self.render_master(found, body.get("desiredKeys")))
            else:
                recs.append({"recordName": name, "serverErrorCode": "NOT_FOUND", "reason": "Record not found"})
        return json_response({"records": recs, "syncToken": self._zone_token(z)})

    # ------------------------------------------------------------ rendering
    def _envelope(self, name, rtype, fields, tag, z, ts, mod_ts=None):
        return {
            "recordName": name, "recordType": rtype, "fields": fields, "pluginFields": {},
            "recordChangeTag": tag,
            "created": {"timestamp": ts, "userRecordName": z.owner, "deviceID": "1"},
            "modified": {"timestamp": mod_ts or ts, "userRecordName": z.owner, "deviceID": "1"},
            "deleted": False,
            "zoneID": {"zoneName": z.name, "ownerRecordName": z.owner, "zoneType": "REGULAR_CUSTOM_ZONE"},
        }

    def download_url(self, x, slot, fc, ref):
        z = self.lib.zones[x.zone]
        path = "/B/%s%s/${f}" % (_b64url(fc), _b64url(ref))
        marks = self._rc_marks
        if marks is not None:
            # building a render-cache template: markers stand where e and s go
            i = len(marks)
            marks.append(path)
            e = "@%sE%d@" % (self._rc_nonce, i)
            sig = "@%sS%d@" % (self._rc_nonce, i)
        else:
            ei = int(self.lib.now() / 1000) + self.url_skew + URL_TTL
            e = "%d" % ei
            sig = self._sign(path, ei)
        return ("%s%s?o=%s&v=1&x=3&a=%s&e=%s&k=%s&fl=&r=%s-1&ckc=com.apple.photos.cloud&ckz=%s&y=1&p=42&s=%s"
                % (self.content_base, path, _b64url(ref[:22]), _b64url(fc[:22]), e,
                   _b64url(base64.b64encode(hashlib.md5(fc.encode()).digest()).decode().rstrip("=")),
                   str(uuid.UUID(bytes=hashlib.md5(ref.encode()).digest())), urllib.parse.quote(z.name), sig))

    @staticmethod
    def _sign_prefix(path):
        """The signed message up to the expiry: the path (braces as sent) and '|'."""
        return (path.replace("$%7Bf%7D", "${f}") + "|").encode()

    def _signature(self, msg):
        """s= of a URL: HMAC-SHA256 of msg, 20 bytes, base64url without padding."""
        return base64.urlsafe_b64encode(hmac.digest(self.sign_key, msg, "sha256")[:20]).rstrip(b"=")

    def _sign(self, path, e):
        return self._signature(self._sign_prefix(path) + b"%d" % e).decode()

    # ------------------------------------------------------------ render cache
    # Opt-in (server --render-cache, or render_cache=True): each record's
    # compact JSON is kept as static byte parts around the two
    # time-dependent values of every downloadURL (e=<expiry>, s=<signature>);
    # a request only computes e once and one HMAC per URL.  Templates are
    # dropped whenever the library's change log or version moves (every
    # mutation), or the library / content base / zones change, so a cached
    # record never differs from a fresh render.  A record whose template
    # cannot be split unambiguously is rendered without the cache.
    @property
    def render_cache(self):
        return self._rc_on

    @render_cache.setter
    def render_cache(self, on):
        with self.lock:
            self._rc_on = bool(on)
            self._rc_clear()

    def _rc_clear(self):
        if self._rc:
            self.render_cache_stats["clears"] += 1
        self._rc = {}
        self._rc_stamp = None

    def _rc_key(self, desired):
        """False: do not use the cache for this request; else the cache key
        of the desiredKeys value (None or a frozenset of strings)."""
        if not self._rc_on:
            return False
        if desired is None:
            return None
        if type(desired) is list and all(type(k) is str for k in desired):
            return frozenset(desired)
        return False   # odd shapes keep the uncached semantics (and errors)

    def _rc_valid(self):
        lib = self.lib
        stamp = (lib, len(lib.log), lib._version, self.content_base,
                 tuple((z.name, z.owner) for z in lib.zones))
        old = self._rc_stamp
        if old is None or old[0] is not lib or old[1:] != stamp[1:]:
            self._rc_clear()
            self._rc_stamp = stamp

    def _render(self, kind, x, desired):
        return self.render_master(x, desired) if kind == "m" else self.render_asset(x, desired)

    def _rc_build(self, kind, x, desired):
        """Template (parts, msgs) of one record, or None: parts are the
        static bytes, 2 per URL + 1; msgs the HMAC message prefix per URL."""
        self._rc_marks = marks = []
        try:
            rec = self._render(kind, x, desired)
        finally:
            self._rc_marks = None
        text = json.dumps(rec, separators=(",", ":"))
        tag = "@" + self._rc_nonce
        found = list(re.finditer(re.escape(tag) + r"([ES])(\d+)@", text))
        if text.count(tag) != len(found) or len(found) % 2:
            return None
        parts, msgs, seen, pos = [], [], set(), 0
        for j in range(0, len(found), 2):
            me, ms = found[j], found[j + 1]
            i = me.group(2)
            if me.group(1) != "E" or ms.group(1) != "S" or ms.group(2) != i or i in seen:
                return None
            seen.add(i)
            i = int(i)
            if i >= len(marks):
                return None
            parts.append(text[pos:me.start()].encode())
            parts.append(text[me.end():ms.start()].encode())
            pos = ms.end()
            msgs.append(self._sign_prefix(marks[i]))
        parts.append(text[pos:].encode())
        return parts, msgs

    def _rc_records(self, recs, desired, dkey):
        """Comma-joined compact JSON of the records [(kind, asset)], from
        the cache where possible."""
        self._rc_valid()
        stats = self.render_cache_stats
        eb = b"%d" % (int(self.lib.now() / 1000) + self.url_skew + URL_TTL)
        signature = self._signature
        out = []
        add = out.append
        first = True
        for kind, x in recs:
            if first:
                first = False
            else:
                add(b",")
            bucket = self._rc.get((kind, dkey))
            if bucket is None:
                bucket = self._rc[(kind, dkey)] = {}
            t = bucket.get(x.serial)
            if t is None:
                stats["misses"] += 1
                t = self._rc_build(kind, x, desired)
                bucket[x.serial] = t if t is not None else False
            else:
                stats["hits"] += 1
            if not t:
                stats["fallbacks"] += 1
                add(json.dumps(self._render(kind, x, desired), separators=(",", ":")).encode())
                continue
            parts, msgs = t
            add(parts[0])
            j = 1
            for m in msgs:
                add(eb)
                add(parts[j])
                add(signature(m + eb))
                add(parts[j + 1])
                j += 2
        return b"".join(out)

    def _res_fields(self, x, slot, prefix, fields):
        r = x.res[slot]
        fc = self.lib.checksum(x, slot)
        ref = self.lib.ref_checksum(x, slot)
        wrap = base64.b64encode(hashlib.md5(fc.encode() + b"wk").digest()).decode()
        fields[prefix + "Res"] = _f({"fileChecksum": fc, "size": r.size, "wrappingKey": wrap,
                                     "referenceChecksum": ref, "downloadURL": self.download_url(x, slot, fc, ref)},
                                    "ASSETID")
        fields[prefix + "FileType"] = _f(r.uti, "STRING")
        if r.w:
            fields[prefix + "Width"] = _f(r.w, "INT64")
            fields[prefix + "Height"] = _f(r.h, "INT64")
        fields[prefix + "Fingerprint"] = _f(fc, "STRING")

    def render_master(self, x, desired=None):
        z = self.lib.zones[x.zone]
        f = {}
        if x.item_type is not None:
            f["itemType"] = _f(x.item_type, "STRING")
        if x.fname_enc is not None:
            f["filenameEnc"] = dict(x.fname_enc)
        elif x.filename is not None:
            f["filenameEnc"] = _f(base64.b64encode(x.filename.encode("utf-8")).decode(), "ENCRYPTED_BYTES")
        f["originalOrientation"] = _f(x.orientation, "INT64")
        f["dataClassType"] = _f(2 if x.is_video() else 1, "INT64")
        for slot in L.MASTER_SLOTS:
            if slot in x.res:
                self._res_fields(x, slot, L.SLOTS[slot][1], f)
        if x.deleted:
            f["isDeleted"] = _f(1, "INT64")
        if desired is not None:
            f = {k: v for k, v in f.items() if k in desired}
        return self._envelope(self.lib.master_name(x), "CPLMaster", f, self.lib.change_tag(x, L.LOG_MASTER),
                              z, x.added_date)

    def render_asset(self, x, desired=None):
        z = self.lib.zones[x.zone]
        zid = {"zoneName": z.name, "ownerRecordName": z.owner, "zoneType": "REGULAR_CUSTOM_ZONE"}
        f = {
            "assetDate": _f(x.asset_date, "TIMESTAMP"),
            "addedDate": _f(x.added_date, "TIMESTAMP"),
            "timeZoneOffset": _f(x.tz, "INT64"),
            "masterRef": _f({"recordName": self.lib.master_name(x), "action": "DELETE_SELF", "zoneID": zid},
                            "REFERENCE"),
            "orientation": _f(x.orientation, "INT64"),
            "assetSubtype": _f(x.subtype, "INT64"),
            "assetSubtypeV2": _f(x.subtype_v2, "INT64"),
            "assetHDRType": _f(0, "INT64"),
            "adjustmentRenderType": _f(x.render_type, "INT64"),
            "customRenderedValue": _f(0, "INT64"),
            "isHidden": _f(1 if x.hidden else 0, "INT64"),
            "isFavorite": _f(1 if x.favorite else 0, "INT64"),
            "duration": _f(x.duration, "INT64"),
            "burstFlags": _f(0, "INT64"),
            "vidComplVisibilityState": _f(0, "INT64"),
        }
        # present on every recorded CPLAsset; zero unless there is a live video
        live = "live" in x.res
        f["vidComplDurValue"] = _f(2768333333 if live else 0, "INT64")
        f["vidComplDurScale"] = _f(1000000000 if live else 0, "INT64")
        f["vidComplDispValue"] = _f(1200880290 if live else 0, "INT64")
        f["vidComplDispScale"] = _f(1000000000 if live else 0, "INT64")
        if x.deleted:
            f["isDeleted"] = _f(1, "INT64")
            f["isExpunged"] = _f(0, "INT64")
            f["dateExpunged"] = _f(x.expunge, "TIMESTAMP")
        if x.burst:
            f["burstId"] = _f(x.burst, "STRING")
            f["burstFlags"] = _f(1, "INT64")
        if x.adjustment:
            f["adjustmentType"] = _f(x.adjustment, "STRING")
        if x.caption is not None:
            f["captionEnc"] = _f(base64.b64encode(x.caption.encode()).decode(), "ENCRYPTED_BYTES")
        if x.description is not None:
            f["extendedDescEnc"] = _f(base64.b64encode(x.description.encode()).decode(), "ENCRYPTED_BYTES")
        if x.keywords:
            f["keywordsEnc"] = _f(base64.b64encode(media.bplist(list(x.keywords))).decode(), "ENCRYPTED_BYTES")
        if x.location:
            loc = dict(x.location)
            if "timestamp" in loc:
                import datetime as dt
                loc["timestamp"] = dt.datetime.fromtimestamp(L.parse_date(loc["timestamp"]) / 1000,
                                                             dt.timezone.utc)
            f["locationEnc"] = _f(base64.b64encode(media.bplist(loc)).decode(), "ENCRYPTED_BYTES")
            if x.serial % 2 == 0:
                f["locationLatitude"] = _f(float(x.location.get("lat", 0.0)), "DOUBLE")
                f["locationLongitude"] = _f(float(x.location.get("lon", x.location.get("lng", 0.0))), "DOUBLE")
        for slot in L.ASSET_SLOTS:
            if slot in x.res:
                self._res_fields(x, slot, L.SLOTS[slot][1], f)
        if desired is not None:
            f = {k: v for k, v in f.items() if k in desired}
        return self._envelope(x.uuid, "CPLAsset", f, self.lib.change_tag(x, L.LOG_ASSET), z,
                              x.added_date, x.mod_ms)

    # ------------------------------------------------------------ downloads
    def resolve_download(self, path):
        """path '/B/<fc><ref>/<anything>' -> (asset, slot) or None."""
        path = urllib.parse.unquote(path)
        parts = path.split("/")
        if len(parts) < 3 or parts[1] != "B":
            return None
        ids = parts[2]
        if len(ids) < 56:
            return None
        return self.lib.resolve_ref(ids[-28:]) if len(ids) >= 28 else None

    def handle_download(self, req):
        if req.method not in ("GET", "HEAD"):
            return Response(405, [("Allow", "GET")], b"")
        got = self.resolve_download(req.path)
        if got is None:
            return Response(404, [("Content-Type", "text/plain")], b"not found\n")
        x, slot = got
        if x.purged:
            return Response(404, [("Content-Type", "text/plain")], b"not found\n")
        q = req.query or {}
        try:
            e = int((q.get("e") or ["0"])[0])
        except ValueError:
            e = 0
        sig = (q.get("s") or [""])[0]
        canon = urllib.parse.unquote(req.path)
        if self.faults.download_expires_urls(canon.split("?")[0]):
            # time passes: every URL handed out until now is past its hour;
            # the ones listed or looked up from now on are fresh
            with self.lock:
                self.url_skew += URL_TTL + 1
        if not hmac.compare_digest(sig, self._sign(canon, e)):
            return Response(403, [("Content-Type", "text/plain")], b"Forbidden: bad signature\n")
        if self.lib.now() / 1000 + self.url_skew > e:
            return Response(410, [("Content-Type", "text/plain")], b"Gone: URL expired\n")
        blob = self.lib.blob(x, slot)
        size = blob.size
        start = 0
        status = 200
        hdrs = [("Accept-Ranges", "bytes"), ("Content-Type", "application/octet-stream"),
                ("Content-Disposition", "attachment; filename=\"%24%7Bf%7D\"; filename*=UTF-8''%24%7Bf%7D"),
                ("Access-Control-Allow-Origin", "https://www.icloud.com")]
        end = size
        rng = req.headers.get("Range")
        parsed = _parse_range(rng, size) if rng else None
        if parsed == "unsatisfiable":
            return Response(416, [("Content-Range", "bytes */%d" % size)] + hdrs, b"")
        if parsed is not None:
            start, end = parsed
            status = 206
            hdrs.append(("Content-Range", "bytes %d-%d/%d" % (start, end - 1, size)))
        length = end - start
        rule = self.faults.take("download", canon.split("?")[0])
        close = False
        cut_at = None
        rate = self.faults.bandwidth or 0
        if rule is not None:
            act = rule.get("action", "status")
            if act == "status":
                st = int(rule.get("status", 503))
                fh = [("Content-Type", "text/plain")]
                if rule.get("retry_after") is not None:
                    fh.append(("Retry-After", str(rule["retry_after"])))
                return Response(st, fh, b"injected fault\n")
            if act == "cut":
                cut_at = min(int(rule.get("after_bytes", length // 2)), length)
                close = True
            elif act == "short":
                cut_at = max(length - int(rule.get("missing", 1)), 0)
                close = True
            elif act == "drip":
                rate = int(rule.get("rate", 1024))
        hdrs.append(("Content-Length", str(length)))
        send = length if cut_at is None else cut_at
        if req.method == "HEAD":
            return Response(status, hdrs, b"")

        def stream(wfile, blob=blob, start=start, send=send, rate=rate):
            t0 = time.monotonic()
            sent = 0
            for chunk in blob.read(start, start + send):
                for i in range(0, len(chunk), 16384 if not rate else max(min(16384, rate // 10), 1)):
                    piece = chunk[i:i + (16384 if not rate else max(min(16384, rate // 10), 1))]
                    wfile.write(piece)
                    sent += len(piece)
                    if rate:
                        ahead = sent / rate - (time.monotonic() - t0)
                        if ahead > 0:
                            try:
                                wfile.flush()
                            except Exception:
                                pass
                            time.sleep(ahead)
            try:
                wfile.flush()
            except Exception:
                pass

        return Response(status, hdrs, b"", stream=stream, close=close)


def _parse_range(value, size):
    """'bytes=N-', 'bytes=N-M', 'bytes=-K' -> (start, end) | 'unsatisfiable' |
    None (syntax not understood: serve the whole file, as HTTP allows)."""
    v = value.strip()
    if not v.startswith("bytes=") or "," in v:
        return None
    a, sep, b = v[6:].strip().partition("-")
    if not sep:
        return None
    try:
        if a == "":
            if not b:
                return None
            k = int(b)
            if k <= 0:
                return "unsatisfiable"
            return max(size - k, 0), size
        start = int(a)
        end = min(int(b) + 1, size) if b else size
    except ValueError:
        return None
    if start >= size or start >= end:
        return "unsatisfiable"
    return start, end


class _CkError(Exception):
    def __init__(self, code, reason, status=200):
        super().__init__(reason)
        self.code, self.reason, self.status = code, reason, status
