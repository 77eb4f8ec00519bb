"""The network-bindings phase (after machines) against the emulator: VM tags and, in allowlist mode,
the manual address bindings on each node's segment port — found through NSX's VM inventory and
VIFs. The VMs and their ports come from the lab glue that stands in for vCenter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nsxkube.design import Design
from nsxkube.lab.nsx import NsxEmulator
from nsxkube.lab.nsx.vms import LabVm
from nsxkube.phases.network import PHASE as NETWORK
from nsxkube.phases.network_bindings import PHASE
from nsxkube.pipeline import runner
from nsxkube.pipeline.context import Context
from nsxkube.providers.vsphere.model import NodeVm
from nsxkube.render.nsx import port_address_bindings
from tests.providers.nsx.helpers import api_calls, emulator_design, make_context, writes

SEGMENT = "k8s-nodes-segment"
OWN_TAG = {"scope": "nsxkube/cluster", "tag": "k8s-prod"}


def with_network(nsx: NsxEmulator, tmp_path: Path, changes: dict[str, Any] | None = None) -> Design:
    design = emulator_design(nsx, changes)
    ctx = make_context(design, nsx, tmp_path)
    assert runner.apply(ctx, [NETWORK], "cluster.yaml").ok
    ctx.close()
    return design


def attach_nodes(nsx: NsxEmulator, design: Design) -> dict[str, LabVm]:
    return {n.name: nsx.attach_vm(n.name, SEGMENT, tags=[{"scope": "team", "tag": "k8s"}])
            for n in design.ip_plan.nodes}


def apply(ctx: Context) -> runner.RunResult:
    try:
        return runner.apply(ctx, [PHASE], "cluster.yaml")
    finally:
        ctx.close()


def test_bindings_and_tags_are_added_once_the_vms_exist_and_reapply_is_a_no_op(nsx: NsxEmulator,
                                                                                 tmp_path: Path) -> None:
    design = with_network(nsx, tmp_path)
    vms = attach_nodes(nsx, design)
    nsx.log.clear()
    result = apply(make_context(design, nsx, tmp_path))
    assert result.ok, result.phases[0].error
    wanted = port_address_bindings(design)
    assert vms and set(vms) == set(wanted)
    for name, vm in vms.items():
        port = nsx.get(vm.port_path)
        assert [(b["ip_address"], b["mac_address"]) for b in port["address_bindings"]] == [
            (address, vm.mac) for address in wanted[name]]
        assert nsx.vm(vm.external_id)["tags"] == [{"scope": "team", "tag": "k8s"}, OWN_TAG]  # theirs kept
    cp, worker = wanted["k8s-prod-cp-1"], wanted["k8s-prod-worker-1"]
    assert str(design.ip_plan.api_vip) in cp and str(design.ip_plan.api_vip) not in worker
    ours = {vm.port_path for vm in vms.values()}
    assert writes(nsx), "apply sent nothing"
    for write in writes(nsx):
        assert write["method"] in ("PUT", "POST") and not write["allow_overwrite"]
        assert write["path"].removeprefix("/policy/api/v1") in ours or write["query"] == {"action": "update_tags"}
    nsx.log.clear()
    again = apply(make_context(design, nsx, tmp_path))
    assert again.ok and {c.action for c in again.phases[0].changes} == {"unchanged"}
    assert writes(nsx) == [] and len(api_calls(nsx)) <= 10


def test_the_node_vms_of_the_machines_phase_pick_the_vm_by_instance_uuid(nsx: NsxEmulator, tmp_path: Path) -> None:
    design = with_network(nsx, tmp_path)
    vms = attach_nodes(nsx, design)
    nsx.api.inventory.add_vm("stale-copy-uuid", "k8s-prod-cp-1")  # a second VM with the same name, elsewhere
    nsx.log.clear()
    ambiguous = apply(make_context(design, nsx, tmp_path))
    assert not ambiguous.ok and "2 VMs in NSX are named k8s-prod-cp-1" in ambiguous.phases[0].error
    assert writes(nsx) == []
    ctx = make_context(design, nsx, tmp_path)
    ctx.handoff.node_vms = {name: NodeVm(name, "vm-1", vm.external_id, None, vm.mac.upper(), "")
                            for name, vm in vms.items()}
    assert apply(ctx).ok
    assert nsx.get(vms["k8s-prod-cp-1"].port_path)["address_bindings"]
    assert nsx.vm("stale-copy-uuid")["tags"] == []


def test_segment_profiles_mode_only_tags_the_vms(nsx: NsxEmulator, tmp_path: Path) -> None:
    design = with_network(nsx, tmp_path, {"nsx.vip_mode": "segment-profiles"})
    vms = attach_nodes(nsx, design)
    assert apply(make_context(design, nsx, tmp_path)).ok
    assert len(vms) == len(design.ip_plan.nodes)
    assert all("address_bindings" not in nsx.get(vm.port_path) for vm in vms.values())
    assert all(OWN_TAG in nsx.vm(vm.external_id)["tags"] for vm in vms.values())


def test_a_vm_tagged_for_another_cluster_is_a_conflict(nsx: NsxEmulator, tmp_path: Path) -> None:
    design = with_network(nsx, tmp_path)
    for node in design.ip_plan.nodes:
        nsx.attach_vm(node.name, SEGMENT, tags=[{"scope": "nsxkube/cluster", "tag": "other"}])
    nsx.log.clear()
    result = apply(make_context(design, nsx, tmp_path))
    assert not result.ok and "tagged for nsxkube cluster 'other'" in result.phases[0].error
    assert writes(nsx) == []


def test_a_stale_port_revision_is_read_again(nsx: NsxEmulator, tmp_path: Path) -> None:
    design = with_network(nsx, tmp_path)
    attach_nodes(nsx, design)
    nsx.stale_next_put(2)
    assert apply(make_context(design, nsx, tmp_path)).ok
    puts = [r["status"] for r in nsx.requests if r["method"] == "PUT"]
    assert puts.count(412) == 2 and puts.count(200) == len(design.ip_plan.nodes)


def test_plan_before_the_vms_exist_and_apply_that_waits_in_vain(nsx: NsxEmulator, tmp_path: Path) -> None:
    design = with_network(nsx, tmp_path)
    changes = runner.observe_and_plan(make_context(design, nsx, tmp_path), PHASE)[1]
    assert {(c.action, c.kind) for c in changes} == {("create", "node VM tags"), ("create", "node port bindings")}
    result = apply(make_context(design, nsx, tmp_path, realization_timeout=0.3))
    assert not result.ok and "5 node(s) not ready in NSX after 0 s" in result.phases[0].error
    assert "VM k8s-prod-cp-1 is not in NSX's inventory yet" in result.phases[0].error
