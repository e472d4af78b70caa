"""SRP-6a as Apple's iCloud web sign-in uses it (auth-protocol.md section 4).

Server side only needs: verifier(), new_challenge(), verify_proofs().
The helpers are plain functions of Python ints and bytes so the tests can
recompute every intermediate value of srp-vectors.json.
"""
import hashlib
import hmac
import secrets

N_HEX = (
    "ac6bdb41324a9a9bf166de5e1389582faf72b6651987ee07fc3192943db56050"
    "a37329cbb4a099ed8193e0757767a13dd52312ab4b03310dcd7f48a9da04fd50"
    "e8083969edb767b0cf6095179a163ab3661a05fbd5faaae82918a9962f0b93b8"
    "55f97993ec975eeaa80d740adbf4ff747359d041d5c33ea71d281e446b14773b"
    "ca97b43a23fb801676bd207a436c6481f1d2b9078717461a5b9d32e688f87748"
    "544523b524b0d57d5ea77a2775d2ecfa032cfbdbf52fb3786160279004e57ae6"
    "af874e7303ce53299ccc041c7bc308d82a5698f3a8d0c38271ae35f8e9dbfbb6"
    "94b5c803d89f7ae435de236d525f54759b65e372fcd68ef20fa7111f9e4aff73"
)
N = int(N_HEX, 16)
G = 2
NLEN = 256


def H(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def minb(n: int) -> bytes:
    """Big-endian without leading zero bytes (OpenSSL BN_bn2bin)."""
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


def pad(n: int) -> bytes:
    return n.to_bytes(NLEN, "big")


def to_int(b: bytes) -> int:
    return int.from_bytes(b, "big")


K_MULT = to_int(H(minb(N), pad(G)))


def password_key(password: str, salt: bytes, iterations: int, protocol: str) -> bytes:
    p0 = hashlib.sha256(password.encode("utf-8")).digest()
    if protocol == "s2k_fo":
        pin = p0.hex().encode("ascii")
    elif protocol == "s2k":
        pin = p0
    else:
        raise ValueError("unknown protocol %r" % protocol)
    return hashlib.pbkdf2_hmac("sha256", pin, salt, iterations, 32)


def x_of(pkey: bytes, salt: bytes) -> int:
    return to_int(H(salt, H(b":", pkey)))


def verifier(password: str, salt: bytes, iterations: int, protocol: str) -> int:
    return pow(G, x_of(password_key(password, salt, iterations, protocol), salt), N)


def server_B(v: int, b: int) -> int:
    return (K_MULT * v + pow(G, b, N)) % N


def new_secret() -> int:
    return to_int(secrets.token_bytes(32))


def u_of(A: int, B: int) -> int:
    return to_int(H(pad(A), pad(B)))


def server_S(A: int, v: int, u: int, b: int) -> int:
    return pow((A * pow(v, u, N)) % N, b, N)


def session_K(S: int) -> bytes:
    return H(minb(S))


def proof_M1(account_name: str, salt: bytes, A: int, B: int, K: bytes) -> bytes:
    hn = H(minb(N))
    hg = H(pad(G))
    hx = bytes(a ^ b for a, b in zip(hn, hg))
    return H(hx, H(account_name.encode("utf-8")), salt, minb(A), minb(B), K)


def proof_M2(A: int, M1: bytes, K: bytes) -> bytes:
    return H(minb(A), M1, K)


class ServerSession:
    """One signin/init ... signin/complete exchange."""

    def __init__(self, v: int, salt: bytes, b: int = None):
        self.v = v
        self.salt = salt
        self.b = b if b is not None else new_secret()
        self.B = server_B(v, self.b)

    def verify(self, account_name: str, A: int, m1: bytes, m2: bytes):
        """Return (ok, detail). detail names the failing check (no secrets)."""
        if A % N == 0:
            return False, "A mod N == 0"
        u = u_of(A, self.B)
        if u == 0:
            return False, "u == 0"
        S = server_S(A, self.v, u, self.b)
        K = session_K(S)
        M1 = proof_M1(account_name, self.salt, A, self.B, K)
        if not hmac.compare_digest(M1, m1):
            return False, "M1 mismatch"
        if not hmac.compare_digest(proof_M2(A, M1, K), m2):
            return False, "m2 mismatch"
        return True, "ok"
