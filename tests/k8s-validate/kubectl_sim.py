#!/usr/bin/python3
"""A stand-in for `kubectl`, used by test_runbook.sh to walk through the runbook offline.

It is NOT a cluster: nothing is scheduled and no pod runs. It keeps the objects that were
"applied" in a JSON file and checks each call the way the API server or kubectl would at
the points a runbook can go wrong:

  kustomize DIR, version           -> the real kubectl (offline)
  apply -k DIR | -f FILE           -> rendered/read with the real kubectl, validated with
                                      validate-k8s.mjs, stored; changing a stored Pod's spec
                                      is refused (pods are immutable)
  create secret generic ...        -> the real kubectl with --dry-run=client -o yaml, validated,
                                      stored; AlreadyExists if present
  create job --from=cronjob/C J    -> C must exist and its pod must be runnable (below); J must not
  attach -it pod/P -c C            -> P runnable, container C has stdin and tty
  get/wait/logs/describe/delete    -> every named object must exist (delete removes it)

"Runnable" = every claim, ConfigMap and Secret the pod mounts exists in its namespace, the
image is not the icpd:latest placeholder, and the files named by password-file and
secret-key-file in the mounted config are keys of the mounted Secret.

Environment: KSIM_REAL (real kubectl), KSIM_STATE (JSON file), KSIM_VALIDATOR (validate-k8s.mjs),
KSIM_LOG (calls are appended here).
"""
import json
import os
import posixpath
import subprocess
import sys
import tempfile

import yaml

REAL = os.environ["KSIM_REAL"]
STATE = os.environ["KSIM_STATE"]
VALIDATOR = os.environ["KSIM_VALIDATOR"]

CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "ClusterRole", "ClusterRoleBinding",
                  "StorageClass", "CustomResourceDefinition"}
KIND_ALIASES = {
    "pod": "Pod", "pods": "Pod", "po": "Pod",
    "job": "Job", "jobs": "Job",
    "cronjob": "CronJob", "cronjobs": "CronJob", "cj": "CronJob",
    "secret": "Secret", "secrets": "Secret",
    "configmap": "ConfigMap", "configmaps": "ConfigMap", "cm": "ConfigMap",
    "pvc": "PersistentVolumeClaim", "persistentvolumeclaim": "PersistentVolumeClaim",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "serviceaccount": "ServiceAccount", "serviceaccounts": "ServiceAccount", "sa": "ServiceAccount",
    "namespace": "Namespace", "namespaces": "Namespace", "ns": "Namespace",
    "ingress": "Ingress", "ingresses": "Ingress", "deployment": "Deployment",
    "deployments": "Deployment",
}


def die(msg, code=1):
    print("ksim: error: %s" % msg, file=sys.stderr)
    sys.exit(code)


def load_state():
    if os.path.exists(STATE):
        with open(STATE) as f:
            return json.load(f)
    return {"objects": {}}


def save_state(st):
    tmp = STATE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(st, f, indent=1, sort_keys=True)
    os.replace(tmp, STATE)


def key(kind, ns, name):
    return "%s/%s/%s" % (kind, "" if kind in CLUSTER_SCOPED else ns, name)


def real(args, stdin=None):
    # close_fds=False: --from-file=k=<(...) names a /dev/fd/N inherited from the shell
    r = subprocess.run([REAL] + args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, close_fds=False)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        die("kubectl %s failed" % " ".join(args[:2]), r.returncode)
    return r.stdout


def validate(text, what):
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "objects.yaml")
        with open(p, "w") as f:
            f.write(text)
        r = subprocess.run(["node", VALIDATOR, p], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    if r.returncode != 0:
        sys.stderr.write("\n".join(l for l in r.stdout.splitlines() if not l.startswith("ok ")) + "\n")
        die("%s does not validate" % what)


def parse(argv):
    """Split kubectl arguments into (namespace, flags dict, positional list)."""
    logs = "logs" in [a for a in argv if not a.startswith("-")][:2]
    ns = None
    flags = {}
    pos = []
    i = 0
    takes_value = {"-n", "--namespace", "-k", "--kustomize", "-f", "--filename", "-c", "--container",
                   "-o", "--output", "-l", "--selector", "--for", "--timeout", "--from", "-p",
                   "--patch", "--from-literal", "--from-file", "--type"}
    while i < len(argv):
        a = argv[i]
        if a.startswith("--") and "=" in a:
            k, v = a.split("=", 1)
            flags.setdefault(k, []).append(v)
        elif a in takes_value and not (logs and a == "-f"):
            if i + 1 >= len(argv):
                die("flag %s needs a value" % a)
            flags.setdefault(a, []).append(argv[i + 1])
            i += 1
        elif a.startswith("-") and a != "-":
            flags.setdefault(a, []).append(True)
        else:
            pos.append(a)
        i += 1
    for k in ("-n", "--namespace"):
        if k in flags:
            ns = flags[k][-1]
    return ns or "default", flags, pos


def flag(flags, *names):
    for n in names:
        if n in flags:
            return flags[n][-1]
    return None


def refs(pos):
    """['pod/x'] or ['pod', 'x', 'y'] -> [(Kind, name)]."""
    out = []
    if not pos:
        return out
    if "/" in pos[0]:
        for p in pos:
            k, n = p.split("/", 1)
            out.append((KIND_ALIASES.get(k.lower(), k), n))
    else:
        kind = KIND_ALIASES.get(pos[0].lower())
        if kind is None:
            die("unknown resource type %s" % pos[0])
        for n in pos[1:]:
            out.append((kind, n))
        if len(pos) == 1:
            out.append((kind, None))
    return out


def need(st, kind, ns, name):
    k = key(kind, ns, name)
    if k not in st["objects"]:
        die('%s "%s" not found in namespace "%s"' % (kind, name, ns))
    return st["objects"][k]


def store(st, docs, ns_default):
    out = []
    for d in docs:
        if not d:
            continue
        kind = d["kind"]
        md = d.setdefault("metadata", {})
        ns = md.get("namespace") or ns_default
        if kind not in CLUSTER_SCOPED:
            if kind != "Namespace" and ns != "default" and key("Namespace", "", ns) not in st["objects"] \
                    and ns not in st.get("preexisting_namespaces", []):
                die('namespace "%s" not found (applying %s/%s)' % (ns, kind, md.get("name")))
            md["namespace"] = ns
        k = key(kind, ns, md["name"])
        old = st["objects"].get(k)
        if old is not None and kind == "Pod" and old.get("spec") != d.get("spec"):
            die('Pod "%s" is invalid: spec: Forbidden: pod updates may not change fields other '
                'than image and a few others (delete the pod first)' % md["name"])
        st["objects"][k] = d
        out.append("%s/%s %s" % (kind.lower(), md["name"], "configured" if old else "created"))
    return out


def pod_spec(obj):
    if obj["kind"] == "Pod":
        return obj["spec"]
    if obj["kind"] == "Job":
        return obj["spec"]["template"]["spec"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    die("no pod template in %s" % obj["kind"])


def check_runnable(st, obj, ns):
    spec = pod_spec(obj)
    name = obj["metadata"]["name"]
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    for v in vols.values():
        if "persistentVolumeClaim" in v:
            need(st, "PersistentVolumeClaim", ns, v["persistentVolumeClaim"]["claimName"])
        if "configMap" in v:
            need(st, "ConfigMap", ns, v["configMap"]["name"])
        if "secret" in v:
            need(st, "Secret", ns, v["secret"]["secretName"])
    if spec.get("serviceAccountName"):
        need(st, "ServiceAccount", ns, spec["serviceAccountName"])
    for c in spec["containers"]:
        if c.get("image", "").split("/")[-1] == "icpd:latest":
            die("%s/%s: image is still the placeholder icpd:latest (set images: in your kustomization)"
                % (obj["kind"], name))
        mounts = {m["mountPath"]: vols.get(m["name"]) for m in c.get("volumeMounts", [])}
        # the config file the container is told to read
        args = c.get("args", [])
        if "--config" in args:
            cfg = args[args.index("--config") + 1]
            vol = mounts.get(posixpath.dirname(cfg))
            if not vol or "configMap" not in vol:
                die("%s: --config %s is not on a mounted ConfigMap" % (name, cfg))
            cm = need(st, "ConfigMap", ns, vol["configMap"]["name"])
            text = cm.get("data", {}).get(posixpath.basename(cfg))
            if text is None:
                die("%s: ConfigMap %s has no key %s" % (name, cm["metadata"]["name"], posixpath.basename(cfg)))
            for line in text.splitlines():
                s = line.strip()
                if "=" not in s or s.startswith("#"):
                    continue
                k, v = (x.strip() for x in s.split("=", 1))
                if k in ("password-file", "secret-key-file"):
                    svol = mounts.get(posixpath.dirname(v))
                    if not svol or "secret" not in svol:
                        die("%s: %s %s is not on a mounted Secret" % (name, k, v))
                    sec = need(st, "Secret", ns, svol["secret"]["secretName"])
                    keys = set(sec.get("data", {})) | set(sec.get("stringData", {}))
                    if posixpath.basename(v) not in keys:
                        die("%s: Secret %s has no key %s (needed by %s)" % (
                            name, sec["metadata"]["name"], posixpath.basename(v), k))
    return spec


def main(argv):
    st = load_state()
    with open(os.environ.get("KSIM_LOG", os.devnull), "a") as log:
        log.write(json.dumps(argv) + "\n")
    if not argv:
        die("no command")
    ns, flags, pos = parse(argv)
    cmd, rest = pos[0], pos[1:]

    if cmd == "version":
        os.execv(REAL, [REAL] + argv)
    if cmd == "kustomize":
        out = real(["kustomize"] + rest)
        validate(out, "kubectl kustomize %s" % " ".join(rest))
        sys.stdout.write(out)
        return 0

    if cmd == "apply":
        if flag(flags, "-k", "--kustomize"):
            text = real(["kustomize", flag(flags, "-k", "--kustomize")])
            what = "apply -k %s" % flag(flags, "-k", "--kustomize")
        elif flag(flags, "-f", "--filename"):
            f = flag(flags, "-f", "--filename")
            text = sys.stdin.read() if f == "-" else open(f).read()
            what = "apply -f %s" % f
        else:
            die("apply needs -k or -f")
        validate(text, what)
        lines = store(st, list(yaml.safe_load_all(text)), ns)
        save_state(st)
        print("\n".join(lines))
        return 0

    if cmd == "create" and rest[:2] == ["secret", "generic"]:
        name = rest[2]
        if key("Secret", ns, name) in st["objects"]:
            die('secrets "%s" already exists' % name)
        doc = yaml.safe_load(real(argv + ["--dry-run=client", "-o", "yaml"]))
        # kubectl's dry-run prints "creationTimestamp: null" (= unset); the server drops it
        if doc.get("metadata", {}).get("creationTimestamp", 0) is None:
            del doc["metadata"]["creationTimestamp"]
        validate(yaml.safe_dump(doc), "create secret %s" % name)
        store(st, [doc], ns)
        save_state(st)
        print("secret/%s created" % name)
        return 0

    if cmd == "create" and rest[:1] == ["job"]:
        src = flag(flags, "--from")
        if not src or not src.startswith("cronjob/"):
            die("create job needs --from=cronjob/NAME")
        cj = need(st, "CronJob", ns, src.split("/", 1)[1])
        name = rest[1]
        if key("Job", ns, name) in st["objects"]:
            die('jobs.batch "%s" already exists' % name)
        check_runnable(st, cj, ns)
        job = {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": name, "namespace": ns},
               "spec": cj["spec"]["jobTemplate"]["spec"]}
        store(st, [job], ns)
        save_state(st)
        print("job.batch/%s created" % name)
        return 0

    if cmd == "attach":
        if "-i" not in flags and "-it" not in flags and "--stdin" not in flags:
            die("attach without -i cannot answer prompts")
        (kind, name), = refs(rest)
        if kind != "Pod":
            die("attach to a pod")
        pod = need(st, "Pod", ns, name)
        spec = check_runnable(st, pod, ns)
        cname = flag(flags, "-c", "--container") or spec["containers"][0]["name"]
        c = [x for x in spec["containers"] if x["name"] == cname]
        if not c:
            die('container %s not found in pod %s' % (cname, name))
        if not (c[0].get("stdin") and c[0].get("tty")):
            die("container %s has no stdin/tty: attach -it would not get a terminal" % cname)
        print("(simulated) attached to pod/%s container %s: %s" % (name, cname, " ".join(c[0].get("args", []))))
        return 0

    if cmd in ("get", "wait", "logs", "describe", "delete"):
        sel = flag(flags, "-l", "--selector")
        rs = refs(rest)
        if cmd == "logs" and rest and "/" not in rest[0]:
            rs = [("Pod", rest[0])]
        if sel:
            if not sel.startswith("job-name="):
                die("selector %s not understood by the simulator" % sel)
            need(st, "Job", ns, sel.split("=", 1)[1])
            rs = []
        if not rs and not sel:
            die("%s: nothing named" % cmd)
        for kind, name in rs:
            if name is None:
                continue
            need(st, kind, ns, name)
            if cmd == "delete":
                del st["objects"][key(kind, ns, name)]
                print('%s "%s" deleted' % (kind.lower(), name))
            else:
                print("(simulated) %s %s/%s in %s" % (cmd, kind.lower(), name, ns))
        if cmd == "delete":
            save_state(st)
        return 0

    die("command not simulated: kubectl %s" % " ".join(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
