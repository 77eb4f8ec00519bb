"""The phases' plans are pure: (design, snapshot) → changes, tested from tables with no outside
system (the phase tests against the emulator, vcsim and test hosts cover observe and apply)."""

from __future__ import annotations

import pytest

from nsxkube.phases.bootstrap.plan import BootstrapSnapshot, LocalKubeconfig, plan_bootstrap
from nsxkube.phases.network import NetworkTeardown, plan_network_teardown
from nsxkube.phases.network_bindings import BindingsSnapshot, plan_bindings
from nsxkube.providers.nodes.kube import LiveCsr, LiveKubeNode
from nsxkube.providers.nodes.probes import LiveNode
from nsxkube.providers.nsx.model import LiveObject, LivePort, LiveVif, LiveVm
from nsxkube.providers.nsx.node_bindings import NodeTarget
from tests.support.specs import example_design

DESIGN = example_design()
NODES = [n.name for n in DESIGN.ip_plan.nodes]
CP1, CP2, CP3, W1, W2 = NODES


def bootstrap_snapshot(*, initialized: set[str] = frozenset(), joined: set[str] = frozenset(),
                       pending: set[str] = frozenset(), kubeconfig: str | None = None, mode: int = 0o600,
                       desired: str | None = None, csrs: list[LiveCsr] | None = None,
                       kube_nodes: list[LiveKubeNode] | None = None) -> BootstrapSnapshot:
    nodes = {n: LiveNode(n, n in initialized, n in joined or n in initialized) for n in NODES}
    return BootstrapSnapshot(nodes, frozenset(pending), LocalKubeconfig("/w/kubeconfig", kubeconfig, mode),
                             csrs or [], kube_nodes or [], desired)


def lines(changes: list) -> list[tuple[str, str, str]]:
    return [(c.action, c.kind, c.name) for c in changes]


LABELS = {"nsxkube/cluster": "k8s-prod"}


@pytest.mark.parametrize(("snapshot", "expected"), [
    # a fresh site: every node to make, the kubeconfig to write
    (bootstrap_snapshot(),
     [("create", "control-plane", CP1), ("create", "control-plane", CP2), ("create", "control-plane", CP3),
      ("create", "worker", W1), ("create", "worker", W2), ("create", "kubeconfig", "/w/kubeconfig")]),
    # everything in place: nothing mutates
    (bootstrap_snapshot(initialized={CP1}, joined=set(NODES), kubeconfig="k", desired="k",
                        kube_nodes=[LiveKubeNode(n, {**LABELS, f"node-role.kubernetes.io/{r}": ""})
                                    for n, r in zip(NODES, ["control-plane"] * 3 + ["worker"] * 2, strict=True)]),
     [("unchanged", "control-plane", CP1), ("unchanged", "control-plane", CP2), ("unchanged", "control-plane", CP3),
      ("unchanged", "worker", W1), ("unchanged", "worker", W2), ("unchanged", "kubeconfig", "/w/kubeconfig")]),
    # one worker to join, a label lost, a kubeconfig readable by others
    (bootstrap_snapshot(initialized={CP1}, joined=set(NODES) - {W2}, kubeconfig="k", desired="k", mode=0o644,
                        kube_nodes=[LiveKubeNode(W1, {"node-role.kubernetes.io/worker": ""})]),
     [("unchanged", "control-plane", CP1), ("unchanged", "control-plane", CP2), ("unchanged", "control-plane", CP3),
      ("unchanged", "worker", W1), ("create", "worker", W2), ("update", "node", W1),
      ("update", "kubeconfig", "/w/kubeconfig")]),
])
def test_bootstrap_plan(snapshot: BootstrapSnapshot, expected: list[tuple[str, str, str]]) -> None:
    changes = plan_bootstrap(DESIGN, snapshot)
    assert lines(changes) == expected
    assert all(c.subject is not None for c in changes if c.kind in ("control-plane", "worker") and c.mutating)
    assert plan_bootstrap(DESIGN, snapshot) == changes  # pure: the same answer twice


def test_bootstrap_plan_says_what_waits_for_a_vm_and_the_provider() -> None:
    changes = {c.name: c for c in plan_bootstrap(DESIGN, bootstrap_snapshot(pending={W1}))}
    assert changes[W1].detail.startswith("once its VM is up: ")
    assert changes[CP1].detail.endswith("kubeadm init with kube-vip")
    keepalived = example_design({"network.api_vip_provider": "keepalived"})
    first = plan_bootstrap(keepalived, bootstrap_snapshot())[0]
    assert first.detail.endswith("kubeadm init with keepalived")


def test_bootstrap_plan_with_a_sandbox_bridge_cni_asks_for_it_where_it_is_missing() -> None:
    design = example_design({"sandbox": {"reason": "lab", "cni": "bridge"},
                             "addons.cilium.kube_proxy_replacement": False, "addons.ingress.controller": "none",
                             "addons.gateway_api.enabled": False})
    snapshot = bootstrap_snapshot(initialized={CP1}, joined=set(NODES))
    snapshot.nodes[W1] = LiveNode(W1, False, True, True)
    bridge = [c.name for c in plan_bootstrap(design, snapshot) if c.kind == "bridge CNI"]
    assert bridge == [CP1, CP2, CP3, W2]
    assert not [c for c in plan_bootstrap(DESIGN, snapshot) if c.kind == "bridge CNI"]


def port(name: str, bindings: tuple[tuple[str, str], ...] = ()) -> LivePort:
    return LivePort(f"/infra/segments/k8s-nodes-segment/ports/{name}", f"att-{name}", bindings)


def bindings_snapshot(known: dict[str, bool], bound: bool = False, tagged: bool = False) -> BindingsSnapshot:
    """Each node: whether NSX knows its VM; all or none of its addresses bound; tagged or not."""
    from nsxkube.render.nsx import port_address_bindings

    addresses = port_address_bindings(DESIGN)
    targets = [NodeTarget(n, tuple(addresses.get(n, ())), f"uuid-{n}", f"00:50:56:00:00:0{i}")
               for i, n in enumerate(NODES)]
    snapshot = BindingsSnapshot(targets)
    for target in targets:
        tags = (("nsxkube/cluster", "k8s-prod"),) if tagged else ()
        vm = LiveVm(f"uuid-{target.name}", target.name, tags) if known[target.name] else None
        snapshot.vms[target.name] = (vm, None)
        if vm is not None:
            snapshot.vifs[target.name] = [LiveVif(vm.external_id, str(target.mac), f"att-{target.name}")]
            snapshot.ports[f"att-{target.name}"] = port(target.name, tuple(
                (a, str(target.mac)) for a in target.addresses) if bound else ())
    return snapshot


def test_bindings_plan() -> None:
    fresh = plan_bindings(DESIGN, bindings_snapshot({n: True for n in NODES}))
    assert {(c.action, c.kind) for c in fresh} == {("update", "node VM tags"), ("update", "node port bindings")}
    assert {c.name for c in fresh} == set(NODES) and all(c.subject is not None for c in fresh)
    done = plan_bindings(DESIGN, bindings_snapshot({n: True for n in NODES}, bound=True, tagged=True))
    assert {c.action for c in done} == {"unchanged"} and len(done) == 2 * len(NODES)
    unknown = plan_bindings(DESIGN, bindings_snapshot({**{n: True for n in NODES}, W2: False}))
    assert [(c.action, c.kind) for c in unknown if c.name == W2] == [("create", "node VM tags"),
                                                                      ("create", "node port bindings")]


def test_network_teardown_plan_deletes_each_owned_object() -> None:
    owned = [LiveObject.from_body({"path": "/infra/segments/k8s-nodes-segment", "resource_type": "Segment",
                                   "id": "k8s-nodes-segment"})]
    [change] = plan_network_teardown(DESIGN, NetworkTeardown(owned))
    assert (change.action, change.kind, change.name, change.subject) == ("delete", "segment", "k8s-nodes-segment",
                                                                         owned[0])



def test_control_plane_pods_not_ready_are_waited_for_and_ready_ones_change_nothing() -> None:
    from nsxkube.phases.bootstrap.plan import CONTROL_PLANE_PODS, BootstrapSnapshot, LocalKubeconfig, plan_bootstrap
    from nsxkube.providers.nodes.kube import CONTROL_PLANE_COMPONENTS
    from nsxkube.providers.nodes.probes import LiveNode
    from tests.support.specs import example_design

    design = example_design()
    names = [n.name for n in design.ip_plan.nodes]
    cps = [n.name for n in design.ip_plan.control_planes]
    live = {n: LiveNode(n, n == cps[0], n != cps[0], True) for n in names}
    all_ready = {n: set(CONTROL_PLANE_COMPONENTS) for n in cps}
    snapshot = BootstrapSnapshot(live, frozenset(), LocalKubeconfig("k"), control_plane_ready=all_ready)
    assert not [c for c in plan_bootstrap(design, snapshot) if c.kind == CONTROL_PLANE_PODS]
    snapshot.control_plane_ready = {**all_ready, cps[2]: set(CONTROL_PLANE_COMPONENTS) - {"etcd"}}
    waits = [c for c in plan_bootstrap(design, snapshot) if c.kind == CONTROL_PLANE_PODS]
    assert len(waits) == 1 and waits[0].action == "update" and f"etcd on {cps[2]}" in waits[0].detail
