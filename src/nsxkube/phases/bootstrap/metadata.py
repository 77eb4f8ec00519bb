"""bootstrap, after the joins: our nodes' kubelet-serving CSRs approved, nodes labelled by role,
and the admin kubeconfig in the work directory, pointed at the API endpoint."""

from __future__ import annotations

import time
from collections.abc import Sequence

from nsxkube.design import Node
from nsxkube.errors import ProviderError
from nsxkube.phases.bootstrap.plan import approvable, missing_labels
from nsxkube.phases.bootstrap.remote import PHASE_NAME, Nodes
from nsxkube.providers.nodes.kube import SERVING_SIGNER, LiveCsr, serving_csr_refusal

CSR_POLL_SECONDS = 2.0


def refused_csrs(csrs: Sequence[LiveCsr], ours: dict[str, str]) -> list[tuple[str, str]]:
    """(CSR name, why nsxkube leaves it pending) for every pending serving CSR that is not our nodes'."""
    pending = [c for c in csrs if c.signer == SERVING_SIGNER and c.pending]
    return [(c.name, why) for c in pending if (why := serving_csr_refusal(c, ours)) is not None]


def approve_and_label(nodes: Nodes, first: Node, fresh: Sequence[Node]) -> None:
    """Approves our nodes' kubelet-serving CSRs and labels them, waiting for the new nodes' requests."""
    from nsxkube.providers.nodes import kube

    design, report = nodes.design, nodes.ctx.reporter
    ours = {n.name: str(n.address) for n in design.ip_plan.nodes}
    by_name = {n.name: n for n in design.ip_plan.nodes}
    waiting = {n.name for n in fresh}
    warned: set[str] = set()
    deadline = time.monotonic() + nodes.timeouts.csr
    while True:
        csrs = kube.parse_csrs(nodes.kubectl(first, "listing CSRs", kube.list_csrs_script()))
        for name, refusal in refused_csrs(csrs, ours):
            if name not in warned:
                warned.add(name)
                report.warning(PHASE_NAME, f"CSR {name} is left pending: {refusal}")
        approve = approvable(csrs, design)
        if approve:
            nodes.kubectl(first, "approving serving CSRs", kube.approve_csrs_script(c.name for c in approve))
            report.step(PHASE_NAME, "approved the kubelet-serving certificates of "
                        + ", ".join(sorted({c.username.removeprefix('system:node:') for c in approve})))
        present = kube.parse_nodes(nodes.kubectl(first, "listing nodes", kube.list_nodes_script()))
        unlabelled: dict[tuple[tuple[str, str], ...], list[str]] = {}
        for kube_node in (k for k in present if k.name in by_name):
            missing = missing_labels(design, by_name[kube_node.name], kube_node.labels)
            if missing:
                unlabelled.setdefault(tuple(sorted(missing.items())), []).append(kube_node.name)
        for labels, names in unlabelled.items():
            nodes.kubectl(first, f"labelling {', '.join(names)}", kube.label_nodes_script(names, dict(labels)))
        serving = [c for c in csrs if c.signer == kube.SERVING_SIGNER]
        asked = {c.username.removeprefix("system:node:") for c in serving if c.condition in ("Approved", "Pending")}
        waiting -= asked & {k.name for k in present}
        if not waiting:
            return
        if time.monotonic() > deadline:
            report.warning(PHASE_NAME, f"no kubelet-serving CSR from {', '.join(sorted(waiting))} within "
                                  f"{nodes.timeouts.csr:.0f} s: approve it later (kubectl certificate approve)")
            return
        time.sleep(CSR_POLL_SECONDS)


def read_desired_kubeconfig(nodes: Nodes, first: Node) -> str:
    """admin.conf of the first control plane, pointed at the API endpoint (VIP or DNS name)."""
    from nsxkube.providers.nodes import kubeconfig

    result = nodes.run(first, "reading admin.conf", kubeconfig.READ_ADMIN_CONF, check=False, log_stdout=False)
    if not result.ok:
        raise ProviderError(f"cannot read {kubeconfig.ADMIN_CONF} on {first.name} ({first.address}): "
                            f"{result.last_line()}")
    return kubeconfig.render_kubeconfig(result.stdout, nodes.design.api_endpoint)


def wait_until_ready(nodes: Nodes, first: Node, names: Sequence[str], seconds: float) -> None:
    """After the bootstrap phase installed the CNI (sandbox.cni bridge): every node Ready, or one
    clear error naming those that are not. With Cilium the nodes turn Ready in the addons phase."""
    from nsxkube.providers.nodes import kube

    report, wanted = nodes.ctx.reporter, set(names)
    deadline, shown = time.monotonic() + seconds, -1
    while True:
        present = kube.parse_nodes(nodes.kubectl(first, "listing nodes", kube.list_nodes_script()))
        ready = {n.name for n in present if n.ready} & wanted
        if len(ready) != shown:
            shown = len(ready)
            report.progress(PHASE_NAME, "nodes Ready", shown, len(wanted))
        if ready == wanted:
            return
        if time.monotonic() > deadline:
            late = sorted(wanted - ready)
            raise ProviderError(f"{len(late)} node(s) not Ready {seconds:.0f} s after their CNI was installed: "
                                f"{', '.join(late)}", hint=f"kubectl describe node {late[0]} shows why (kubelet, CNI)")
        time.sleep(2)


def wait_for_control_plane(nodes: Nodes, first: Node, names: Sequence[str], seconds: float) -> None:
    """After control planes joined: etcd, the API server, the controller manager and the scheduler
    Ready on each (a new etcd member takes seconds to catch up; until then quorum is thinner than
    it looks), or one clear error naming what is not."""
    from nsxkube.providers.nodes import kube

    report, wanted = nodes.ctx.reporter, set(names)
    deadline, shown = time.monotonic() + seconds, -1
    while True:
        ready = kube.ready_components(nodes.kubectl(first, "listing control-plane Pods",
                                                    kube.list_control_plane_pods_script()))
        missing = sorted(f"{component} on {name}" for name in wanted for component in kube.CONTROL_PLANE_COMPONENTS
                         if component not in ready.get(name, set()))
        done = len(wanted) * len(kube.CONTROL_PLANE_COMPONENTS) - len(missing)
        if done != shown:
            shown = done
            report.progress(PHASE_NAME, "control-plane Pods Ready", done, len(wanted) * len(kube.CONTROL_PLANE_COMPONENTS))
        if not missing:
            return
        if time.monotonic() > deadline:
            raise ProviderError(f"{len(missing)} control-plane Pod(s) not Ready {seconds:.0f} s after the joins: "
                                f"{', '.join(missing[:4])}", hint="kubectl -n kube-system describe pod shows why; "
                                "etcd needs a majority of its members")
        time.sleep(2)


def ensure_kubeconfig(nodes: Nodes, first: Node) -> None:
    from nsxkube.providers.nodes import kubeconfig

    desired = read_desired_kubeconfig(nodes, first)
    path = nodes.ctx.options.workdir / "kubeconfig"
    if kubeconfig.get_kubeconfig(path) != desired or (path.stat().st_mode & 0o777) != 0o600:
        kubeconfig.create_kubeconfig(path, desired)
        nodes.ctx.reporter.step(PHASE_NAME, f"kubeconfig written to {path} (server https://{nodes.design.api_endpoint})")
