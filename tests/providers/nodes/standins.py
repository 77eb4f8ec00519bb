"""Stand-ins for the programs a node VM runs during bootstrap, for real SSH test hosts.

kubeadm, kubectl, cloud-init, systemctl, timedatectl and swapon are replaced in each host's
private /usr/local/bin (first on root's PATH) by small Python programs. They behave just enough
like the real ones for the rendered scripts to run unchanged: kubeadm writes the files that
`kubeadm init` and `join` write, and registers the node and its kubelet-serving CSR in a shared
"cluster" directory that plays the API server; kubectl answers from there.

Every call is recorded as one JSON line in the host's private /var/log/nsxkube/calls.jsonl:
program, arguments, NSXKUBE_* environment, start and end time, and for joins every process's
arguments on the machine while kubeadm ran (to prove no secret is visible in ``ps``).
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

TOKEN = "q1w2e3.a1b2c3d4e5f6g7h8"
CERTIFICATE_KEY = "c0ffee" + "ab" * 29
ADMIN_KEY_DATA = "RkFLRS1BRE1JTi1LRVk="  # stands for admin.conf's client key
RECORDS = "/var/log/nsxkube/calls.jsonl"
BUNDLE_DIR = "/var/lib/nsxkube"  # private per host, like the other kubeadm directories


@contextlib.contextmanager
def private_bundle_dir() -> Iterator[None]:
    """Makes the remote bundle directory private to each test host (it is shared otherwise)."""
    from tests.support import hosts

    if BUNDLE_DIR in hosts.PRIVATE_DIRS:
        yield
        return
    with mock.patch.object(hosts, "PRIVATE_DIRS", (*hosts.PRIVATE_DIRS, BUNDLE_DIR)):
        yield


COMMON = r'''#!@PYTHON@
import fcntl, json, os, socket, subprocess, sys, time
STATE = "@STATE@"
START = time.time()
HOST = socket.gethostname()

def config():
    with open(os.path.join(STATE, "config.json")) as f:
        return json.load(f)

def record(**extra):
    entry = {"prog": os.path.basename(sys.argv[0]), "argv": sys.argv[1:], "host": HOST, "start": START,
             "end": time.time(), "env": {k: v for k, v in os.environ.items() if k.startswith("NSXKUBE_")}}
    entry.update(extra)
    os.makedirs("/var/log/nsxkube", exist_ok=True)
    with open("@RECORDS@", "a") as f:
        f.write(json.dumps(entry) + "\n")

class Cluster:
    """The shared state that plays the API server, under an exclusive lock."""
    def __enter__(self):
        self.lock = open(os.path.join(STATE, "lock"), "w")
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        with open(os.path.join(STATE, "cluster.json")) as f:
            self.data = json.load(f)
        return self.data
    def __exit__(self, *exc):
        if exc[0] is None:
            with open(os.path.join(STATE, "cluster.json"), "w") as f:
                json.dump(self.data, f)
        self.lock.close()

def register(name, control_plane):
    with Cluster() as data:
        labels = {"kubernetes.io/hostname": name}
        if control_plane:
            labels["node-role.kubernetes.io/control-plane"] = ""
        data["nodes"].setdefault(name, {"labels": labels})
        pem = os.path.join(STATE, "csr", name + ".pem")
        if os.path.exists(pem):
            import base64
            request = base64.b64encode(open(pem, "rb").read()).decode()
            data["csrs"]["csr-serving-" + name] = {
                "signerName": "kubernetes.io/kubelet-serving", "username": "system:node:" + name,
                "groups": ["system:nodes", "system:authenticated"],
                "usages": ["digital signature", "key encipherment", "server auth"], "request": request,
                "approved": False}
        data["csrs"]["csr-client-" + name] = {
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet", "username": "system:bootstrap:q1w2e3",
            "groups": ["system:bootstrappers"], "usages": ["client auth"], "request": "", "approved": True}
'''

KUBEADM = COMMON + r'''
K = "/etc/kubernetes"
args = sys.argv[1:]
cfg = config()
if args[:2] == ["init", "--config"]:
    import shutil
    shutil.copy(K + "/manifests/kube-vip.yaml", K + "/kube-vip-during-init.yaml")
    os.makedirs(K + "/pki", exist_ok=True)
    shutil.copy(os.path.join(STATE, "ca.crt"), K + "/pki/ca.crt")
    time.sleep(cfg.get("init_seconds", 0))
    address = cfg["addresses"][HOST]
    for name in ("admin.conf", "super-admin.conf"):
        with open(os.path.join(K, name), "w") as f:
            f.write("apiVersion: v1\nkind: Config\nclusters:\n- name: " + cfg["cluster"] + "\n  cluster:\n"
                    "    certificate-authority-data: Q0EtREFUQQ==\n    server: https://" + address + ":6443\n"
                    "contexts:\n- name: admin\n  context: {cluster: " + cfg["cluster"] + ", user: admin}\n"
                    "current-context: admin\nusers:\n- name: admin\n  user:\n    client-key-data: "
                    + cfg["admin_key"] + "\n")
    open(K + "/kubelet.conf", "w").write("kubelet\n")
    register(HOST, True)
    print("[init] Using Kubernetes version", file=sys.stderr)
elif args[:2] == ["token", "create"]:
    print(cfg["token"])
elif args[:3] == ["init", "phase", "upload-certs"]:
    print("[upload-certs] Using certificate key:")
    print(cfg["certificate_key"])
elif args[:1] == ["join"]:
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    text = open(args[args.index("--config") + 1]).read()
    marker = os.path.join(STATE, "fail-join-" + HOST)
    if os.path.exists(marker):
        os.unlink(marker)
        record(ps=processes, failed=True)
        print("error execution phase preflight: unable to fetch the kubeadm-config ConfigMap", file=sys.stderr)
        sys.exit(1)
    time.sleep(cfg.get("join_seconds", 0))
    open(K + "/kubelet.conf", "w").write("kubelet\n")
    register(HOST, "controlPlane:" in text)
    record(ps=processes, config=text)
    sys.exit(0)
record()
'''

KUBECTL = COMMON + r'''
args = [a for a in sys.argv[1:] if not a.startswith("--request-timeout")]
kubeconfig = "/etc/kubernetes/admin.conf"
if "--kubeconfig" in args:
    i = args.index("--kubeconfig")
    kubeconfig = args[i + 1]
    del args[i:i + 2]
if args[:2] == ["get", "node"] and kubeconfig.endswith("kubelet.conf") and os.path.exists(kubeconfig):
    # a kubelet reads its own Node (the node authorizer allows no more): its pod CIDR
    record()
    with Cluster() as data:
        names = sorted(data["nodes"])
        if args[2] not in names or "jsonpath={.spec.podCIDR}" not in args:
            print("stand-in kubectl: unexpected " + " ".join(args), file=sys.stderr); sys.exit(2)
        data["nodes"][args[2]]["cni"] = True  # its CNI configuration follows: the node turns Ready
        print("10.244.%d.0/24" % names.index(args[2]), end="")
    sys.exit(0)
if not os.path.exists("/etc/kubernetes/admin.conf"):
    record(); print("The connection to the server was refused", file=sys.stderr); sys.exit(1)
record()
if args[:1] == ["get"] and args[1].startswith("--raw"):
    print("ok")
elif "configmap" in args:
    print("kubeadm-config")
elif args[:2] == ["get", "csr"]:
    with Cluster() as data:
        items = []
        for name, c in sorted(data["csrs"].items()):
            status = {"conditions": [{"type": "Approved", "status": "True"}]} if c["approved"] else {}
            spec = {k: c[k] for k in ("signerName", "username", "groups", "usages", "request")}
            items.append({"metadata": {"name": name}, "spec": spec, "status": status})
    print(json.dumps({"kind": "List", "items": items}))
elif args[:2] == ["certificate", "approve"]:
    with Cluster() as data:
        for name in args[2:]:
            data["csrs"][name]["approved"] = True
            print("certificatesigningrequest.certificates.k8s.io/" + name + " approved")
elif "tier=control-plane" in args:
    with Cluster() as data:
        items = [{"metadata": {"name": c + "-" + n, "labels": {"component": c, "tier": "control-plane"}},
                  "spec": {"nodeName": n}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
                 for n, v in sorted(data["nodes"].items()) if "node-role.kubernetes.io/control-plane" in v["labels"]
                 for c in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")]
    print(json.dumps({"kind": "List", "items": items}))
elif args[:2] == ["get", "nodes"]:
    with Cluster() as data:
        items = [{"metadata": {"name": n, "labels": v["labels"]},
                  "status": {"conditions": [{"type": "Ready", "status": "True" if v.get("cni") else "False"}]}}
                 for n, v in sorted(data["nodes"].items())]
    print(json.dumps({"kind": "List", "items": items}))
elif args[:2] == ["label", "node"]:
    names = [a for a in args[2:] if "=" not in a and not a.startswith("--")]
    with Cluster() as data:
        for name in names:
            for pair in (a for a in args[2:] if "=" in a):
                key, value = pair.split("=", 1)
                data["nodes"][name]["labels"][key] = value
            print("node/" + name + " labeled")
else:
    print("stand-in kubectl: unexpected " + " ".join(args), file=sys.stderr); sys.exit(2)
'''

CLOUD_INIT = COMMON + r'''
record()
failing = HOST in config().get("cloud_init_failures", [])
print("..")
print("status: error" if failing else "status: done")
sys.exit(1 if failing else 0)
'''

CTR = COMMON + r'''
import tarfile
# ctr [--address A] -n k8s.io images import FILE | images ls -q: a docker save archive's tags become
# the images containerd lists (kept per host, beside the bundle)
STORE = "/var/lib/nsxkube/ctr-images.txt"
rest = sys.argv[sys.argv.index("images") + 1:]
record()
held = open(STORE).read().split() if os.path.exists(STORE) else []
if rest[0] == "import":
    with tarfile.open(rest[1]) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
    held = sorted(set(held) | {tag for entry in manifest for tag in entry.get("RepoTags") or []})
    os.makedirs(os.path.dirname(STORE), exist_ok=True)
    with open(STORE, "w") as f:
        f.write("\n".join(held) + "\n")
elif rest[0] == "ls":
    print("\n".join(held))
'''

TAIL = r'''#!/bin/bash
# Stand-in for tail: the cloud-init log of a failed node, anything else from the real tail.
if [[ ${*: -1} == /var/log/cloud-init-output.log ]]; then
  printf '%s\n' "Cloud-init v. 24.4 running 'modules:final'" "+ apt-get install -y kubeadm=1.35.8-*" \
    "E: Unable to locate package kubeadm" "Cloud-init v. 24.4 finished: status error"
  exit 0
fi
exec /usr/bin/tail "$@"
'''

SIMPLE = {
    "systemctl": 'echo active',
    "timedatectl": 'echo yes',
    "swapon": 'true',
}


@dataclass
class Cluster:
    """The shared directory that plays the API server, and the stand-ins' settings."""

    root: Path

    def settings(self) -> dict:
        return json.loads((self.root / "config.json").read_text())

    def configure(self, **values: object) -> None:
        (self.root / "config.json").write_text(json.dumps({**self.settings(), **values}))

    def state(self) -> dict:
        return json.loads((self.root / "cluster.json").read_text())

    def fail_join_once(self, host: str) -> None:
        (self.root / f"fail-join-{host}").touch()

    def add_csr(self, name: str, username: str, request_pem: bytes) -> None:
        data = self.state()
        data["csrs"][name] = {"signerName": "kubernetes.io/kubelet-serving", "username": username,
                              "groups": ["system:nodes", "system:authenticated"],
                              "usages": ["digital signature", "key encipherment", "server auth"],
                              "request": base64.b64encode(request_pem).decode(), "approved": False}
        (self.root / "cluster.json").write_text(json.dumps(data))


def serving_csr(name: str, dns: list[str], ips: list[str]) -> bytes:
    """A kubelet-serving certificate request as the kubelet writes it (EC key, SANs)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    request = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                                        x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{name}")]))
               .add_extension(x509.SubjectAlternativeName(names), critical=False)
               .sign(key, hashes.SHA256()))
    return request.public_bytes(serialization.Encoding.PEM)


def make_cluster(root: Path, name: str, addresses: dict[str, str], **settings: object) -> Cluster:
    """The shared state directory: settings, an empty cluster, a CA and each node's serving CSR."""
    root.mkdir(parents=True)
    (root / "csr").mkdir()
    config = {"cluster": name, "token": TOKEN, "certificate_key": CERTIFICATE_KEY, "admin_key": ADMIN_KEY_DATA,
              "addresses": addresses, **settings}
    (root / "config.json").write_text(json.dumps(config))
    (root / "cluster.json").write_text(json.dumps({"nodes": {}, "csrs": {}}))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(root / "ca.key"), "-out", str(root / "ca.crt"), "-subj",
                    "/CN=kubernetes", "-days", "1"], check=True, capture_output=True)
    for node, address in addresses.items():
        (root / "csr" / f"{node}.pem").write_bytes(serving_csr(node, [node], [address]))
    return Cluster(root)


def install(host: object, cluster: Cluster) -> None:
    """Puts every stand-in into the host's private /usr/local/bin."""
    fill = {"@PYTHON@": sys.executable, "@STATE@": str(cluster.root), "@RECORDS@": RECORDS}
    for name, text in {"kubeadm": KUBEADM, "kubectl": KUBECTL, "cloud-init": CLOUD_INIT, "ctr": CTR}.items():
        for key, value in fill.items():
            text = text.replace(key, value)
        host.install_program(name, text)  # type: ignore[attr-defined]
    host.install_program("tail", TAIL)  # type: ignore[attr-defined]
    for name, body in SIMPLE.items():
        host.install_program(name, f"#!/bin/sh\n{body}\n")  # type: ignore[attr-defined]
    # Each host is its own network namespace: forwarding is off until set, as on a fresh VM.
    host.netns_run("sysctl", "-qw", "net.ipv4.ip_forward=1")  # type: ignore[attr-defined]


def records(host: object) -> list[dict]:
    path = host.path(RECORDS)  # type: ignore[attr-defined]
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
