"""bootstrap, the pure half: from what the nodes and the cluster report, what is still to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nsxkube.design import Design, Node
from nsxkube.pipeline.change import Change
from nsxkube.providers.nodes.kube import (
    CONTROL_PLANE_COMPONENTS,
    SERVING_SIGNER,
    LiveCsr,
    LiveKubeNode,
    serving_csr_refusal,
)
from nsxkube.providers.nodes.probes import LiveNode

CLUSTER_LABEL = "nsxkube/cluster"
NODE_KINDS = ("control-plane", "worker")
BRIDGE_CNI = "bridge CNI"
CONTROL_PLANE_PODS = "control-plane Pods"


@dataclass(frozen=True)
class LocalKubeconfig:
    """The admin kubeconfig in the work directory as found: its text and permission bits."""

    path: str
    text: str | None = field(default=None, repr=False)
    mode: int = 0


@dataclass
class BootstrapSnapshot:
    nodes: dict[str, LiveNode]
    pending: frozenset[str]  # nodes whose VM the machines phase has yet to create: nothing was asked
    kubeconfig: LocalKubeconfig
    csrs: list[LiveCsr] = field(default_factory=list)  # read only when the cluster exists
    kube_nodes: list[LiveKubeNode] = field(default_factory=list)
    desired_kubeconfig: str | None = field(default=None, repr=False)  # admin.conf pointed at the API endpoint
    image_bundle_sha256: str | None = None  # of kubernetes.image_bundle, verified when nodes are to be made
    control_plane_ready: dict[str, set[str]] | None = None  # node → its Ready static Pods (cluster exists)


def wanted_labels(design: Design, node: Node) -> dict[str, str]:
    return {CLUSTER_LABEL: design.name, f"node-role.kubernetes.io/{node.role}": ""}


def missing_labels(design: Design, node: Node, labels: Any) -> dict[str, str]:
    return {k: v for k, v in wanted_labels(design, node).items() if labels.get(k) != v}


def approvable(csrs: list[LiveCsr], design: Design) -> list[LiveCsr]:
    """Pending kubelet-serving requests of our nodes, from the addresses the design gave them."""
    ours = {n.name: str(n.address) for n in design.ip_plan.nodes}
    return [c for c in csrs if c.signer == SERVING_SIGNER and c.pending and serving_csr_refusal(c, ours) is None]


def node_change(node: Node, live: LiveNode, first: bool, *, pending: bool, preload: bool,
                vip: str = "kube-vip") -> Change:
    steps = (("once its VM is up: " if pending else "") + "wait for cloud-init, preflight and MTU probe, "
             + ("preload the image bundle, " if preload else "")
             + ("kubeadm reset -f (an earlier init or join stopped half-way), " if live.needs_reset else ""))
    if first:
        if live.initialized:
            return Change("unchanged", "control-plane", node.name, "initialized")
        return Change("create", "control-plane", node.name, steps + f"kubeadm init with {vip}", subject=node)
    if live.joined:
        return Change("unchanged", node.role, node.name, "already in the cluster")
    return Change("create", node.role, node.name, steps + "kubeadm join" + (
        " (one at a time)" if node.is_control_plane else " (in parallel)"), subject=node)


def kubeconfig_change(design: Design, found: LocalKubeconfig, desired: str | None) -> Change:
    detail = f"admin kubeconfig, server https://{design.api_endpoint}"
    if found.text is None:
        return Change("create", "kubeconfig", found.path, detail)
    if desired is None or found.text != desired or found.mode != 0o600:
        return Change("update", "kubeconfig", found.path, detail)
    return Change("unchanged", "kubeconfig", found.path)


def plan_bootstrap(design: Design, snapshot: BootstrapSnapshot) -> list[Change]:
    """Pure: a change per node still to init or join (subject: the Node), with `sandbox.cni: bridge`
    one per node that lacks its CNI configuration, the CSRs to approve and labels to set when the
    cluster exists, and the admin kubeconfig in the work directory."""
    first = design.ip_plan.control_planes[0]
    preload = design.spec.kubernetes.image_bundle is not None
    changes = [node_change(n, snapshot.nodes[n.name], n is first, pending=n.name in snapshot.pending,
                           preload=preload, vip=design.api_vip_provider) for n in design.ip_plan.nodes]
    if design.spec.sandbox is not None and design.spec.sandbox.cni == "bridge":
        changes += [Change("create", BRIDGE_CNI, n.name, "sandbox.cni: the bridge plugin on the node's pod CIDR",
                           subject=n) for n in design.ip_plan.nodes if not snapshot.nodes[n.name].cni]
    for csr in approvable(snapshot.csrs, design):
        changes.append(Change("update", "csr", csr.name, "approve the serving certificate of "
                              + csr.username.removeprefix("system:node:")))
    by_name = {n.name: n for n in design.ip_plan.nodes}
    for kube_node in snapshot.kube_nodes:
        node = by_name.get(kube_node.name)
        if node is not None and (missing := missing_labels(design, node, kube_node.labels)):
            changes.append(Change("update", "node", node.name, "label it by role", tuple(sorted(missing))))
    if snapshot.control_plane_ready is not None:
        joined = [n.name for n in design.ip_plan.control_planes
                  if snapshot.nodes[n.name].joined or snapshot.nodes[n.name].initialized]
        late = [f"{c} on {name}" for name in joined for c in CONTROL_PLANE_COMPONENTS
                if c not in snapshot.control_plane_ready.get(name, set())]
        if late:  # e.g. a member a killed run joined, still catching up
            changes.append(Change("update", CONTROL_PLANE_PODS, ", ".join(joined), "wait until Ready: " + ", ".join(late)))
    changes.append(kubeconfig_change(design, snapshot.kubeconfig, snapshot.desired_kubeconfig))
    return changes
