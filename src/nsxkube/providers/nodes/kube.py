"""kubectl on the first control plane (admin.conf): kubelet-serving CSRs and node labels.

The bootstrap phase needs these before the operator has a kubeconfig, and before the API VIP is
necessarily reachable from the operator's machine, so they run over SSH where the API is local.
Commands are built and answers parsed here without I/O; ``client.run`` carries them.
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from nsxkube.errors import ProviderError

KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout=30s"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
SERVING_USAGES = frozenset({"digital signature", "key encipherment", "server auth"})


@dataclass(frozen=True)
class LiveCsr:
    name: str
    signer: str
    username: str
    groups: tuple[str, ...]
    usages: tuple[str, ...]
    condition: str  # "Approved", "Denied", "Failed" or "Pending"
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    other_names: tuple[str, ...] = ()  # e-mail addresses, URIs: never in a kubelet's serving certificate

    @property
    def pending(self) -> bool:
        return self.condition == "Pending"


@dataclass(frozen=True)
class LiveKubeNode:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ready: bool = False  # the Ready condition is True


# ---- commands -------------------------------------------------------------------------------

def list_csrs_script() -> str:
    return f"{KUBECTL} get csr -o json"


def approve_csrs_script(names: Iterable[str]) -> str:
    return f"{KUBECTL} certificate approve " + " ".join(shlex.quote(n) for n in names)


CONTROL_PLANE_COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


def list_control_plane_pods_script() -> str:
    """kubeadm's static Pods (label tier=control-plane) of every control plane."""
    return f"{KUBECTL} -n kube-system get pods -l tier=control-plane -o json"


def ready_components(output: str) -> dict[str, set[str]]:
    """node → the control-plane components whose static Pod on it is Ready."""
    ready: dict[str, set[str]] = {}
    for item in _items(output, "control-plane Pods"):
        spec, meta = item.get("spec") or {}, item.get("metadata") or {}
        component = (meta.get("labels") or {}).get("component", "")
        if _ready(item) and spec.get("nodeName"):
            ready.setdefault(spec["nodeName"], set()).add(component)
    return ready


def list_nodes_script() -> str:
    return f"{KUBECTL} get nodes -o json"


def label_nodes_script(names: Iterable[str], labels: Mapping[str, str]) -> str:
    """One call for every node that misses the same labels."""
    pairs = " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(labels.items()))
    nodes = " ".join(shlex.quote(n) for n in names)
    return f"{KUBECTL} label node {nodes} --overwrite {pairs}"


# ---- answers --------------------------------------------------------------------------------

def parse_csrs(output: str) -> list[LiveCsr]:
    return [_csr(item) for item in _items(output, "certificate signing requests")]


def parse_nodes(output: str) -> list[LiveKubeNode]:
    return [LiveKubeNode(item["metadata"]["name"], dict(item["metadata"].get("labels") or {}), _ready(item))
            for item in _items(output, "nodes")]


def _ready(item: dict) -> bool:
    conditions = (item.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _items(output: str, what: str) -> list[dict]:
    try:
        return list(json.loads(output)["items"])
    except (ValueError, KeyError, TypeError) as err:
        raise ProviderError(f"kubectl did not list the {what}: {err}") from None


def _csr(item: dict) -> LiveCsr:
    spec, status = item.get("spec", {}), item.get("status") or {}
    conditions = {c.get("type") for c in status.get("conditions") or []}
    condition = next((c for c in ("Denied", "Failed", "Approved") if c in conditions), "Pending")
    dns, ips, others = _subject_alternative_names(spec.get("request", ""))
    return LiveCsr(item["metadata"]["name"], spec.get("signerName", ""), spec.get("username", ""),
                   tuple(spec.get("groups") or ()), tuple(spec.get("usages") or ()), condition, dns, ips, others)


def _subject_alternative_names(request: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    from cryptography import x509

    try:
        csr = x509.load_pem_x509_csr(base64.b64decode(request))
    except ValueError:
        return (), (), ("<unreadable request>",)
    try:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return (), (), ()
    dns = tuple(sans.get_values_for_type(x509.DNSName))
    ips = tuple(str(a) for a in sans.get_values_for_type(x509.IPAddress))
    others = tuple(str(v) for kind in (x509.RFC822Name, x509.UniformResourceIdentifier)
                   for v in sans.get_values_for_type(kind))
    return dns, ips, others


def serving_csr_refusal(csr: LiveCsr, nodes: Mapping[str, str]) -> str | None:
    """None when ``csr`` is a kubelet-serving request of one of ``nodes`` (name → address) for
    exactly that node's own name and address; otherwise why it must not be approved."""
    node = csr.username.removeprefix("system:node:")
    if not csr.username.startswith("system:node:") or node not in nodes:
        return f"requested by {csr.username or 'nobody'}, not by a node of this cluster"
    if "system:nodes" not in csr.groups:
        return f"{csr.username} is not in the group system:nodes"
    if not set(csr.usages) <= SERVING_USAGES:
        return f"asks for usages {', '.join(sorted(set(csr.usages) - SERVING_USAGES))}"
    if csr.other_names:
        return f"names {', '.join(csr.other_names)}"
    foreign = [n for n in csr.dns_names if n != node] + [a for a in csr.ip_addresses if a != nodes[node]]
    if foreign:
        return f"names {', '.join(foreign)}, which are not {node}'s own name or address {nodes[node]}"
    return None
