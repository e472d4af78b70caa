"""Test CA + server certificate for the fake iCloud (openssl CLI)."""
import os
import subprocess

BASE_NAMES = [
    "idmsa.apple.com", "setup.icloud.com", "www.icloud.com", "*.icloud.com",
    "*.icloud-content.com",
    "idmsa.apple.com.cn", "setup.icloud.com.cn", "www.icloud.com.cn", "*.icloud.com.cn",
    "*.icloud-content.com.cn",
    # --hosts localhost: Apple's names with .com -> .localhost (libcurl resolves
    # *.localhost to 127.0.0.1 by itself; cookies go to Domain=.icloud.localhost)
    "idmsa.apple.localhost", "setup.icloud.localhost", "www.icloud.localhost",
    "*.icloud.localhost", "*.icloud-content.localhost",
    # short names (routable too; OpenSSL refuses the wildcard "*.localhost", so listed one by one)
    "localhost", "idmsa.localhost", "setup.localhost", "www.localhost",
    "cvws.localhost", "p42-ckdatabasews.localhost",
]


def _run(args, cwd):
    r = subprocess.run(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise RuntimeError("openssl failed: %s: %s" % (" ".join(args[:3]), r.stderr.decode(errors="replace")))


def make_certs(state_dir, extra_names=()):
    """Create ca.pem/ca.key/server.pem/server.key in state_dir; return paths."""
    os.makedirs(state_dir, exist_ok=True)
    names = list(dict.fromkeys(BASE_NAMES + list(extra_names)))
    ca_pem = os.path.join(state_dir, "ca.pem")
    ca_key = os.path.join(state_dir, "ca.key")
    srv_pem = os.path.join(state_dir, "server.pem")
    srv_key = os.path.join(state_dir, "server.key")
    stamp = os.path.join(state_dir, "cert-names.txt")
    want = "\n".join(names)
    if all(os.path.exists(p) for p in (ca_pem, ca_key, srv_pem, srv_key, stamp)):
        with open(stamp) as f:
            if f.read() == want:
                return ca_pem, srv_pem, srv_key
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _run(["openssl", "req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
          "-subj", "/CN=icpd fake iCloud test CA",
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"], state_dir)
    _run(["openssl", "req", "-new"] + ec + ["-keyout", "server.key", "-out", "server.csr",
          "-subj", "/CN=idmsa.apple.com"], state_dir)
    san = ",".join(["DNS:" + n for n in names] + ["IP:127.0.0.1"])
    with open(os.path.join(state_dir, "san.ext"), "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid,issuer\n" % san)
    _run(["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
          "-CAcreateserial", "-out", "server.pem", "-days", "30", "-extfile", "san.ext"], state_dir)
    os.chmod(ca_key, 0o600)
    os.chmod(srv_key, 0o600)
    with open(stamp, "w") as f:
        f.write(want)
    return ca_pem, srv_pem, srv_key
