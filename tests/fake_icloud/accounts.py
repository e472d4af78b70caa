"""Accounts of the fake iCloud (accounts.json, documented in README.md)."""
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field

import srp_server

DAY = 86400


@dataclass
class Phone:
    id: int
    number: str            # e.g. "+1 (555) 555-0181"
    last_two: str

    def entry(self):
        bullet = "\u2022"
        obf = "(%s) %s-%s%s" % (bullet * 3, bullet * 3, bullet * 2, self.last_two)
        dial = self.number.split(" ")[0] if self.number.startswith("+") else "+1"
        return {
            "numberWithDialCode": "%s %s" % (dial, obf),
            "pushMode": "sms",
            "obfuscatedNumber": obf,
            "lastTwoDigits": self.last_two,
            "id": self.id,
        }


@dataclass
class Account:
    apple_id: str
    password: str
    protocol: str = "s2k"
    salt: bytes = b""
    iterations: int = 20000
    hsa_version: int = 2
    has_qualifying_device: bool = True
    code: str = "123456"
    rotate_code_on_push: bool = False
    phones: list = field(default_factory=list)
    phone_list_location: str = "old"       # old | bridge
    domain: str = "com"                     # com | cn
    session_ttl: float = 30 * DAY
    trust_ttl: float = 30 * DAY
    adp: bool = False
    fido_only: bool = False
    locked: bool = False
    too_many_codes: bool = False
    web_access_off: bool = False
    wrong_region: bool = False
    escrow_on_trust: bool = False     # [unconfirmed, ips notes 2026] 409 + X-Apple-EDP/PDP instead of 200
    code_409_success: bool = False    # [unconfirmed, ips notes 2026] right code answered 409 valid:true
    library: str = None
    dsid: str = ""
    partition: int = 42
    first_name: str = "John"
    last_name: str = "Doe"
    verifier: int = 0
    # runtime state (guarded by AccountStore.lock)
    current_code: str = ""
    pushes: int = 0
    sms_sends: list = field(default_factory=list)

    @property
    def country(self):
        return "CHN" if self.domain == "cn" else "USA"

    def public(self):
        """Description without secrets (for GET /state)."""
        return {
            "apple_id": self.apple_id, "dsid": self.dsid, "protocol": self.protocol,
            "iterations": self.iterations, "hsa_version": self.hsa_version,
            "has_qualifying_device": self.has_qualifying_device,
            "domain": self.domain, "session_ttl": self.session_ttl,
            "trust_ttl": self.trust_ttl, "adp": self.adp, "fido_only": self.fido_only,
            "locked": self.locked, "too_many_codes": self.too_many_codes,
            "web_access_off": self.web_access_off, "wrong_region": self.wrong_region,
            "phone_list_location": self.phone_list_location,
            "rotate_code_on_push": self.rotate_code_on_push,
            "escrow_on_trust": self.escrow_on_trust, "code_409_success": self.code_409_success,
            "library": self.library, "partition": self.partition,
        }


BOOL_FLAGS = ("has_qualifying_device", "rotate_code_on_push", "adp", "fido_only",
              "locked", "too_many_codes", "web_access_off", "wrong_region",
              "escrow_on_trust", "code_409_success")


def account_from_dict(d: dict, base_dir: str = ".") -> Account:
    if "apple_id" not in d or "password" not in d:
        raise ValueError("account needs apple_id and password")
    apple_id = str(d["apple_id"])
    protocol = d.get("protocol", "s2k")
    if protocol not in ("s2k", "s2k_fo"):
        raise ValueError("%s: protocol must be s2k or s2k_fo" % apple_id)
    if d.get("salt_hex"):
        salt = bytes.fromhex(d["salt_hex"])
    else:
        # deterministic per account, 16 bytes like Apple's; never starts with 0x00
        salt = hashlib.sha256(b"fake-icloud salt " + apple_id.lower().encode()).digest()[:16]
        if salt[0] == 0:
            salt = b"\x01" + salt[1:]
    dsid = str(d.get("dsid") or (10000000000 + int(hashlib.sha256(apple_id.lower().encode()).hexdigest()[:8], 16)))
    phones = []
    for i, p in enumerate(d.get("phones") or [{"id": 1, "number": "+1 (555) 555-0181", "last_two": "81"}]):
        num = str(p.get("number", "+1 (555) 555-01%02d" % (i + 1)))
        phones.append(Phone(id=int(p.get("id", i + 1)), number=num,
                            last_two=str(p.get("last_two", num[-2:]))))
    lib = d.get("library")
    if lib and not os.path.isabs(lib):
        lib = os.path.join(base_dir, lib)
    a = Account(
        apple_id=apple_id, password=str(d["password"]), protocol=protocol, salt=salt,
        iterations=int(d.get("iterations", 20000)), hsa_version=int(d.get("hsa_version", 2)),
        code=str(d.get("code", "123456")), phones=phones,
        phone_list_location=d.get("phone_list_location", "old"),
        domain=d.get("domain", "com"),
        session_ttl=float(d.get("session_ttl", 30 * DAY)),
        trust_ttl=float(d.get("trust_ttl", 30 * DAY)),
        library=lib, dsid=dsid, partition=int(d.get("partition", 42)),
        first_name=d.get("first_name", "John"), last_name=d.get("last_name", "Doe"),
    )
    for flag in BOOL_FLAGS:
        if flag in d:
            setattr(a, flag, bool(d[flag]))
    if a.phone_list_location not in ("old", "bridge"):
        raise ValueError("%s: phone_list_location must be old or bridge" % apple_id)
    if a.domain not in ("com", "cn"):
        raise ValueError("%s: domain must be com or cn" % apple_id)
    a.verifier = srp_server.verifier(a.password, a.salt, a.iterations, a.protocol)
    a.current_code = a.code
    return a


class AccountStore:
    def __init__(self, accounts):
        self.lock = threading.RLock()
        self.accounts = list(accounts)

    @classmethod
    def load(cls, path: str):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, dict):
            data = data.get("accounts", [])
        base = os.path.dirname(os.path.abspath(path))
        return cls(account_from_dict(d, base) for d in data)

    def find(self, name: str):
        if not isinstance(name, str):
            return None
        low = name.strip().lower()
        for a in self.accounts:
            if a.apple_id.lower() == low:
                return a
        return None

    def by_dsid(self, dsid: str):
        for a in self.accounts:
            if a.dsid == dsid:
                return a
        return None

    def update(self, apple_id: str, changes: dict):
        """Change flags/ttls/code of a live account (control API)."""
        a = self.find(apple_id)
        if a is None:
            raise KeyError(apple_id)
        with self.lock:
            for k, v in changes.items():
                if k in BOOL_FLAGS:
                    setattr(a, k, bool(v))
                elif k in ("session_ttl", "trust_ttl"):
                    setattr(a, k, float(v))
                elif k == "hsa_version":
                    a.hsa_version = int(v)
                elif k == "code":
                    a.code = str(v)
                    a.current_code = str(v)
                elif k == "phone_list_location":
                    a.phone_list_location = str(v)
                else:
                    raise KeyError("cannot change %r" % k)
        return a
