"""Validation of the Kubernetes cluster through its API: the API through the VIP (its certificate
checked against the VIP), every node Ready with its role, labels, ProviderID and pinned kubelet,
and etcd with one healthy member per control plane."""

from __future__ import annotations

from typing import Any

from nsxkube.phases.validate.model import Check, Outcome, Probe, fail, ok, warn
from nsxkube.wording import and_more

DOC_VIP = "docs/troubleshooting.md: kubeadm init times out waiting for the API on the VIP"
DOC_PROVIDER_ID = "docs/troubleshooting.md: Volumes fail: the CSI driver finds no ProviderID"
CLUSTER_LABEL = "nsxkube/cluster"


def api_through_vip(probe: Probe) -> Outcome:
    design = probe.ctx.design
    server = f"https://{design.ip_plan.api_vip}:6443"
    answer = probe.kube(server).get_text("/readyz").strip()
    if answer != "ok":
        return fail(f"{server}/readyz answered {answer[:80]!r}", "see the API server's log on the VIP holder")
    return ok(f"{server}/readyz answers ok; its certificate is valid for {design.ip_plan.api_vip} (verified with "
              "the cluster CA)")


def _nodes(probe: Probe) -> dict[str, dict[str, Any]]:
    items = probe.kube().get("/api/v1/nodes").get("items") or []
    return {str(n["metadata"]["name"]): n for n in items}


def _ready(node: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def nodes_ready(probe: Probe) -> Outcome:
    design = probe.ctx.design
    live = _nodes(probe)
    wanted = [n.name for n in design.ip_plan.nodes]
    missing = [n for n in wanted if n not in live]
    not_ready = [n for n in wanted if n in live and not _ready(live[n])]
    strangers = sorted(set(live) - set(wanted))
    if missing or not_ready:
        problems = [f"{n} is not in the cluster" for n in missing] + [f"{n} is NotReady" for n in not_ready]
        return fail(f"{len(wanted) - len(missing) - len(not_ready)} of {len(wanted)} nodes Ready: {and_more(problems)}",
                    "kubectl describe node NAME shows why (kubelet, CNI); nsxkube apply joins missing nodes")
    if strangers:
        return warn(f"all {len(wanted)} nodes Ready; not in cluster.yaml: {', '.join(strangers)}",
                    "remove nodes that cluster.yaml no longer lists (kubectl drain, kubectl delete node)")
    return ok(f"all {len(wanted)} nodes Ready")


def nodes_as_designed(probe: Probe) -> Outcome:
    """Roles and labels, the pinned kubelet, and the ProviderID the vSphere CPI sets."""
    design = probe.ctx.design
    live = _nodes(probe)
    kubelet = f"v{design.versions.kubernetes}"
    problems: list[str] = []
    no_provider = []
    for node in design.ip_plan.nodes:
        found = live.get(node.name)
        if found is None:
            continue  # nodes.ready reports it
        labels = found["metadata"].get("labels") or {}
        if f"node-role.kubernetes.io/{node.role}" not in labels or labels.get(CLUSTER_LABEL) != design.name:
            problems.append(f"{node.name} lacks its role or {CLUSTER_LABEL} label")
        version = ((found.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion")
        if version != kubelet:
            problems.append(f"{node.name} runs kubelet {version}, pinned {kubelet}")
        if not str((found.get("spec") or {}).get("providerID", "")).startswith("vsphere://"):
            no_provider.append(node.name)
    if problems:
        return fail(and_more(problems), "nsxkube apply --phase bootstrap labels nodes; nsxkube upgrade moves kubelets")
    if no_provider:
        return warn(f"roles, labels and kubelet {kubelet} as designed; no vSphere ProviderID on "
                    f"{and_more(no_provider)}", "the vSphere CPI sets it (addons); the CSI driver needs it")
    return ok(f"roles, labels, kubelet {kubelet} and vsphere:// ProviderIDs on all {len(design.ip_plan.nodes)} nodes")


def etcd_members(probe: Probe) -> Outcome:
    design = probe.ctx.design
    client = probe.kube()
    checks = client.get_text("/readyz/etcd").strip()
    pods = client.get("/api/v1/namespaces/kube-system/pods", labelSelector="component=etcd").get("items") or []
    ready = [p for p in pods if any(c.get("type") == "Ready" and c.get("status") == "True"
                                    for c in (p.get("status") or {}).get("conditions") or [])]
    wanted = len(design.ip_plan.control_planes)
    if checks != "ok":
        return fail(f"the API server's etcd check answered {checks[:80]!r}", "etcdctl endpoint health on a control plane")
    if len(ready) != wanted:
        return fail(f"{len(ready)} of {wanted} etcd members Ready ({len(pods)} etcd pods)",
                    f"quorum needs {wanted // 2 + 1}; see the etcd runbook in docs/runbooks/stage-2-operations.md")
    return ok(f"etcd answers the API server; {wanted} of {wanted} members Ready")


CHECKS = (
    Check("kubernetes.api-vip", "the API answers through the VIP", api_through_vip, DOC_VIP),
    Check("kubernetes.etcd", "etcd healthy with a member per control plane", etcd_members),
    Check("nodes.ready", "every node Ready", nodes_ready),
    Check("nodes.design", "node roles, labels, kubelet version and ProviderID", nodes_as_designed, DOC_PROVIDER_ID),
)
