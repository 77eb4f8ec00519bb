"""The lab's cluster.yaml: the example file (`nsxkube init`) pointed at the two simulators.

Only what the lab forces changes: the vCenter simulator's inventory names, both endpoints with
their certificate thumbprints, the emulator's transport zone and tier-1, a throwaway SSH key — and
the node network moved from 172.16.50.0/24 to 172.16.51.0/24, because the `tanzu` preset holds a
Tanzu segment on 172.16.50.128/25 (`nsx discover` reports that overlap, and suggests this range),
and the pods moved from 10.244.0.0/16 to 10.245.0.0/16, because the preset's Supervisor holds
10.244.0.0/20 and a routed 10.244.16.0/20 for its namespaces (what `init --from-nsx` proposes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

LAB_MARKER = "# Written by `nsxkube lab up`"
CLUSTER_NAME = "k8s-lab"
SEED_PREFIX = "172.16.50."
LAB_PREFIX = "172.16.51."
LAB_POD_CIDR = "10.245.0.0/16"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    thumbprint: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _replace(text: str, pattern: str, replacement: str, *, count: int = 1) -> str:
    """Substitutes exactly ``count`` matches (0: at least one) — the example changing shape must
    fail loudly here, not write a lab file that silently keeps the example's values."""
    new, found = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    if found == 0 or (count and found != count):
        raise RuntimeError(f"lab cluster.yaml: {pattern!r} matched {found} times in the example, expected {count or '1+'}")
    return new


def lab_cluster_yaml(example: str, *, vcenter: Endpoint, nsx: Endpoint, public_key: str, private_key_file: Path) -> str:
    """The example text with the lab's values; comments and layout are kept."""
    text = example
    for pattern, value in (
        (r"^  server: vcenter\.example\.com", f"  server: {vcenter.address}"),
        (r"^  datacenter: Datacenter\b", "  datacenter: DC0"),
        (r"^  cluster: Cluster\b", "  cluster: DC0_C0"),
        (r"^  datastore: vsanDatastore\b", "  datastore: LocalDS_0"),
        (r'^    # thumbprint: "AA:BB:…" .*$', f'    thumbprint: "{vcenter.thumbprint}"   # the lab simulator’s certificate'),
        (r"^  manager: nsx\.example\.com", f"  manager: {nsx.address}"),
        (r"^(  tls:\n)(    insecure: false\n  auth:)", r'\g<1>    thumbprint: "' + nsx.thumbprint + r'"   # the lab emulator’s certificate\n\g<2>'),
        (r"^  transport_zone: nsx-overlay-transportzone", "  transport_zone: overlay-tz"),
        (r"^  tier1: t1-k8s ", "  tier1: t1-gw  "),
        (r"^    - ssh-ed25519 .*$", f"    - {public_key}"),
        (r"^  private_key_file: ~/\.ssh/id_ed25519", f"  private_key_file: {private_key_file}"),
        (r"^  pod_cidr: 10\.244\.0\.0/16", f"  pod_cidr: {LAB_POD_CIDR}   # clear of the preset's Tanzu namespace networks"),
    ):
        text = _replace(text, pattern, value)
    text = _replace(text, re.escape(SEED_PREFIX), LAB_PREFIX, count=0)
    header = (f"{LAB_MARKER} for the simulators in this directory; `lab up` rewrites it.\n"
              f"# The node network is {LAB_PREFIX}0/24, not the seed plan's {SEED_PREFIX}0/24: the lab's NSX\n"
              "# (preset tanzu) has a Tanzu segment on 172.16.50.128/25 — `nsxkube nsx discover` shows it.\n")
    return header + text


# What the lab's nodes force: every setting is in the file for `check` to show, none is hidden in code.
SANDBOX_SECTION = """
# The lab's nodes are network namespaces on one machine (nsxkube lab up --nodes): what that forces,
# declared here so that `nsxkube check` shows it and the product renders it. Never in production.
sandbox:
  reason: lab nodes are network namespaces on one machine, whose PID 1 is not systemd, on cgroup v1
  kubelet_cgroup_driver: cgroupfs       # no systemd cgroup manager for the kubelet or runc
  allow_cgroup_v1: true                 # kubelet 1.35 refuses cgroup v1 unless told so
  ignore_preflight_errors: [SystemVerification]   # kubeadm's cgroups validator fails on cgroup v1
  cni: bridge                           # Cilium's agent cannot run here: the CNI bridge plugin instead
  kube_proxy_conntrack_max_per_core: 0  # a network namespace cannot set nf_conntrack_max
"""
UNSYNCHRONIZED_CLOCK = "  skip_node_checks: [clock]             # the nodes share this machine's clock, which no NTP disciplines\n"


def with_nodes(text: str, *, kubernetes_version: str, image_bundle: Path, known_hosts: Path,
               clock_synchronized: bool, api_vip_provider: str = "keepalived") -> str:
    """The lab file for real nodes: the built Kubernetes patch, the image bundle (no registry), the
    nodes' host keys, keepalived for the VIP, and what the sandbox forces (kube-proxy instead of
    Cilium's replacement, no Cilium ingress or Gateway API, the sandbox: section)."""
    version = kubernetes_version.lstrip("v")
    for pattern, value in (
        (r'^  version: "1\.\d+" .*$', f'  version: "{version}"                 # the patch the lab\'s nodes run (programs/build.sh)'),
        (r"^  # image_bundle: .*$", f"  image_bundle: {image_bundle}   # no registry: the lab's images"),
        (r"^(  api_vip: \S+)( +#.*)?$",
         rf"\g<1>\n  api_vip_provider: {api_vip_provider}       # lab up --nodes --api-vip-provider"),
        (r"^(  trust_on_first_use: false.*)$",
         f"\\g<1>\n  known_hosts_file: {known_hosts}   # the lab writes each node's host key as it boots"),
        (r"^  admin_networks: \[10\.10\.0\.0/24\] .*$",
         f"  admin_networks: [10.10.0.0/24, {LAB_PREFIX}1/32]   # API and SSH: the admins, and this machine (the bridge)"),
        (r"^    kube_proxy_replacement: true", "    kube_proxy_replacement: false    # sandbox.cni bridge: kube-proxy"),
        (r"^    controller: cilium .*$", "    controller: none                # no Cilium in the lab"),
        (r"^(  gateway_api:\n    enabled:) true", r"\g<1> false"),
    ):
        text = _replace(text, pattern, value)
    return text.rstrip("\n") + "\n" + SANDBOX_SECTION + ("" if clock_synchronized else UNSYNCHRONIZED_CLOCK)


def is_lab_file(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as handle:
            return handle.readline().startswith(LAB_MARKER)
    except OSError:
        return False


def ssh_keypair(comment: str) -> tuple[bytes, str]:
    """(private key in OpenSSH PEM, public key line): a throwaway ed25519 key for the lab's nodes."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, f"{public.decode()} {comment}"
