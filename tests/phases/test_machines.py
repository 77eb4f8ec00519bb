"""The machines phase against vcsim, a real vCenter API server (no mocks of vCenter).

vcsim runs no guest OS: ``nsxkube.lab.guest`` plays each node's guest (reads the
delivered guestinfo like cloud-init, reports VMware Tools and the address like open-vm-tools)
through the vCenter API. Where vcsim falls short of vCenter, the test says so.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from nsxkube.errors import ConflictError, ProviderError
from nsxkube.lab.guest import decode_guestinfo
from nsxkube.phases.clients import vsphere_session
from nsxkube.phases.machines import PHASE, desired_machines
from nsxkube.pipeline import runner
from nsxkube.pipeline.change import Change
from nsxkube.pipeline.context import Context
from nsxkube.providers.vsphere.inventory import read_inventory
from nsxkube.providers.vsphere.model import OWNER_EXTRA_CONFIG, NodeVm
from nsxkube.render.cloud_init import render_node_cloud_init
from tests.providers.vsphere.lab import TEMPLATE, VsphereLab, skip_on_old_simulator

pytestmark = pytest.mark.slow

NODES = ["k8s-prod-cp-1", "k8s-prod-cp-2", "k8s-prod-cp-3", "k8s-prod-worker-1", "k8s-prod-worker-2"]


def plan_of(ctx: Context) -> list[Change]:
    return runner.observe_and_plan(ctx, PHASE)[1]


def apply(lab: VsphereLab, ctx: Any) -> runner.RunResult:
    with lab.guest(ctx.design) as guest:
        result = runner.apply(ctx, [PHASE], "cluster.yaml")
    assert not guest.errors, guest.errors
    return result


def changes(result: runner.RunResult) -> list[str]:
    return [c.one_line() for p in result.phases for c in p.changes]


def test_apply_clones_the_seed_nodes_with_guestinfo_options_size_and_marker(vsphere_lab: VsphereLab) -> None:
    ctx = vsphere_lab.context()
    result = apply(vsphere_lab, ctx)
    assert result.ok, result.phases[0].error
    assert sorted(c.name for c in result.phases[0].changes if c.kind == "vm") == NODES

    design = ctx.design
    for node in design.ip_plan.nodes:
        vm = vsphere_lab.vm(node.name)
        extra = {o.key: o.value for o in vsphere_lab.props(vm, "config.extraConfig")["config.extraConfig"]}
        expected = render_node_cloud_init(design, node)
        # every guestinfo key byte for byte, and decoded equal to what `nsxkube render` writes
        for key, value in expected.guestinfo.items():
            assert extra[key] == value, key
        assert decode_guestinfo(extra["guestinfo.metadata"], extra["guestinfo.metadata.encoding"]) == expected.meta_data
        assert decode_guestinfo(extra["guestinfo.userdata"], extra["guestinfo.userdata.encoding"]) == expected.user_data
        assert extra["disk.EnableUUID"] == "TRUE"
        assert extra[OWNER_EXTRA_CONFIG] == "k8s-prod"
        assert vm.owner == "k8s-prod"  # the custom attribute nsxkube/cluster
        assert (vm.cpus, vm.memory_mib, vm.disk_gib) == (node.cpus, node.memory_gib * 1024, node.disk_gib)
        assert vm.powered_on and vm.tools_running and str(node.address) in vm.ip_addresses
        # vcsim 0.24 gives every clone its own ESX version (vmx-13); vCenter keeps the template's
        assert vm.hardware_version >= 15 or vsphere_lab.old_simulator
        assert [n.adapter for n in vm.nics] == ["vmxnet3"]
        props = vsphere_lab.props(vm, "parent", "resourcePool", "network", "datastore")
        assert vsphere_lab.session.read_objects([props["parent"]], ["name"])[props["parent"]._moId]["name"] == "k8s-prod"
        assert props["resourcePool"]._moId == vsphere_lab.entity("ResourcePool", "Resources").moref
        assert [n._moId for n in props["network"]] == [vsphere_lab.entity("DistributedVirtualPortgroup", "DC0_DVPG0").moref]
        assert vm.nics[0].network == vsphere_lab.entity("DistributedVirtualPortgroup", "DC0_DVPG0").props["key"]
        assert [d._moId for d in props["datastore"]] == [vsphere_lab.entity("Datastore", "LocalDS_0").moref]
        assert ctx.handoff.node_vms[node.name] == NodeVm(vm.name, vm.moref, vm.instance_uuid, vm.bios_uuid,
                                                           vm.nics[0].mac, str(node.address))

    session = vsphere_session(ctx, "machines")
    # The CloneSpec carries CPUs and memory; the disk grows in one reconfigure after the clone (a disk
    # edit in a CloneSpec makes vcsim share the template's file: see providers/vsphere/machines.clone_spec).
    # The Debian 0.24 simulator ignores CPU/memory in a clone: that same reconfigure corrects them.
    assert session.by_method["ReconfigVM_Task"] == 5
    assert session.by_method["CloneVM_Task"] == 5 and session.by_method["SetField"] == 5
    progress = ctx.reporter.texts("progress")
    for name in NODES:
        assert f"{name} 5/5 address {ctx.design.ip_plan.nodes[NODES.index(name)].address} up" in progress


def test_anti_affinity_rules_keep_control_planes_and_workers_apart(vsphere_lab: VsphereLab) -> None:
    ctx = vsphere_lab.context()
    assert apply(vsphere_lab, ctx).ok
    rules = vsphere_lab.session.read_objects([vsphere_lab.entity("ClusterComputeResource", "DC0_C0").ref],
                                             ["configurationEx.rule"])
    found = {r.name: r for r in next(iter(rules.values()))["configurationEx.rule"]}
    assert set(found) == {"nsxkube-k8s-prod-control-planes", "nsxkube-k8s-prod-workers-1"}
    names = {vm.moref: vm.name for vm in (vsphere_lab.vm(n) for n in NODES)}
    cp = found["nsxkube-k8s-prod-control-planes"]
    assert type(cp).__name__.endswith("AntiAffinityRuleSpec") and cp.enabled
    assert sorted(names[v._moId] for v in cp.vm) == NODES[:3]
    assert sorted(names[v._moId] for v in found["nsxkube-k8s-prod-workers-1"].vm) == NODES[3:]


def test_second_apply_creates_nothing_and_reads_in_a_handful_of_requests(vsphere_lab: VsphereLab) -> None:
    assert apply(vsphere_lab, vsphere_lab.context()).ok
    ctx = vsphere_lab.context()
    result = runner.apply(ctx, [PHASE], "cluster.yaml")
    assert result.ok and not result.changed
    assert {c.action for c in result.phases[0].changes} == {"unchanged"}
    session = vsphere_session(ctx, "machines")
    # login (2), inventory view (3), VM and cluster details (1): the same for 5 or 500 VMs
    assert session.requests == 6, dict(session.by_method)
    assert set(ctx.handoff.node_vms) == set(NODES)


def test_a_foreign_vm_with_a_node_name_is_a_conflict_and_left_untouched(vsphere_lab: VsphereLab) -> None:
    foreign = vsphere_lab.foreign_vm("k8s-prod-cp-2")
    before = vsphere_lab.props(foreign, "config.changeVersion", "config.extraConfig", "customValue",
                               "runtime.powerState")
    ctx = vsphere_lab.context()
    result = runner.apply(ctx, [PHASE], "cluster.yaml")

    assert not result.ok
    error = result.phases[0].error or ""
    assert "\n" not in error and "k8s-prod-cp-2" in error and "not cluster k8s-prod's" in error
    conflicts = [e for e in ctx.reporter.texts("change") if e.startswith("conflict")]
    assert conflicts == [next(e for e in conflicts if "k8s-prod-cp-2" in e)]
    # nothing was created, the foreign VM is exactly as it was
    assert all(not vsphere_lab.vms(n) for n in NODES if n != "k8s-prod-cp-2")
    after = vsphere_lab.props(foreign, "config.changeVersion", "config.extraConfig", "customValue",
                              "runtime.powerState")
    assert after.get("config.changeVersion") == before.get("config.changeVersion")  # vcsim 0.24 has none
    assert [(o.key, o.value) for o in after["config.extraConfig"]] == [
        (o.key, o.value) for o in before["config.extraConfig"]]
    assert list(after["customValue"]) == [] and after["runtime.powerState"] == before["runtime.powerState"]

    # the phase itself refuses too, with one line
    with pytest.raises(ConflictError, match=r"^machines: nothing was written, 1 object\(s\) not ours: conflict: vm "
                       r"k8s-prod-cp-2") as caught:
        runner.apply_phase(ctx, PHASE)
    assert "\n" not in caught.value.one_line()


def test_destroy_removes_only_this_clusters_vms_and_rules(vsphere_lab: VsphereLab) -> None:
    from pyVmomi import vim

    assert apply(vsphere_lab, vsphere_lab.context()).ok
    stranger = vsphere_lab.foreign_vm("k8s-prod-worker-3")  # our naming, not ours
    other = vsphere_lab.foreign_vm("other-cp-1")  # another nsxkube cluster's VM
    key = vsphere_lab.session.content.customFieldsManager.field[0].key
    vsphere_lab.session.content.customFieldsManager.SetField(entity=other.ref, key=key, value="other")
    cluster = vsphere_lab.entity("ClusterComputeResource", "DC0_C0").ref
    theirs = vim.cluster.AntiAffinityRuleSpec(name="someone-elses-rule", enabled=True, vm=[stranger.ref, other.ref])
    vsphere_lab.wait(cluster.ReconfigureComputeResource_Task(
        spec=vim.cluster.ConfigSpecEx(rulesSpec=[vim.cluster.RuleSpec(operation="add", info=theirs)]), modify=True))

    ctx = vsphere_lab.context(assume_yes=True)
    asked: list[list[Change]] = []
    result = runner.destroy(ctx, [PHASE], confirm=lambda planned: asked.append(planned) or True)
    assert result.ok, result.phases[0].error
    deleted = sorted(c.name for c in asked[0] if c.action == "delete")
    assert deleted == sorted([*NODES, "nsxkube-k8s-prod-control-planes", "nsxkube-k8s-prod-workers-1"])

    assert all(not vsphere_lab.vms(n) for n in NODES)
    assert vsphere_lab.vm("k8s-prod-worker-3").powered_on and vsphere_lab.vm("other-cp-1").owner == "other"
    assert vsphere_lab.vm(TEMPLATE).is_template
    rules = vsphere_lab.session.read_objects([cluster], ["configurationEx.rule"])[cluster._moId]
    assert [r.name for r in rules["configurationEx.rule"]] == ["someone-elses-rule"]
    # and once more: nothing left to delete
    again = runner.destroy(vsphere_lab.context(), [PHASE], confirm=lambda planned: pytest.fail("nothing to ask"))
    assert again.ok and not again.changed


def test_one_failed_clone_is_reported_with_vcenters_error_while_the_others_finish(vsphere_lab: VsphereLab) -> None:
    skip_on_old_simulator(vsphere_lab.sim, "it accepts two VMs with one name in a folder, which vCenter refuses "
                          "(DuplicateName): the failure this test needs never happens there")
    vsphere_lab.folder("k8s-prod")
    ctx = vsphere_lab.context()
    snapshot, planned = runner.observe_and_plan(ctx, PHASE)
    assert [c.name for c in planned if c.action == "create" and c.kind == "vm"] == NODES
    # between plan and apply someone creates a VM with a node's name in the same folder: vCenter
    # refuses that clone (names are unique per folder) — a real task error, not a simulated one
    intruder = vsphere_lab.foreign_vm("k8s-prod-worker-2", folder="k8s-prod", power_on=False)
    with vsphere_lab.guest(ctx.design), pytest.raises(ProviderError) as caught:
        PHASE.apply(ctx, snapshot, planned)
    line = caught.value.one_line()
    assert line.startswith("1 of 5 VM(s) failed: k8s-prod-worker-2: clone: DuplicateName: 'k8s-prod-worker-2' "
                           "already exists"), line
    assert "\n" not in line
    for name in NODES[:4]:
        vm = vsphere_lab.vm(name)
        assert vm.owner == "k8s-prod" and vm.powered_on and vm.tools_running
    assert vsphere_lab.vm("k8s-prod-worker-2").moref == intruder.moref and vsphere_lab.vm("k8s-prod-worker-2").owner is None
    assert any("k8s-prod-worker-2: clone: DuplicateName" in w for w in ctx.reporter.texts("warning"))


def test_a_vm_whose_guest_never_reports_its_address_fails_after_the_timeout(vsphere_lab: VsphereLab) -> None:
    design = vsphere_lab.design({"nodes.control_planes.count": 1, "nodes.workers.count": 1})
    ctx = vsphere_lab.context(design, timeout_seconds=1.5)
    start = time.monotonic()
    result = runner.apply(ctx, [PHASE], "cluster.yaml")  # no guest: VMware Tools never run
    assert time.monotonic() - start < 15
    error = result.phases[0].error or ""
    assert error.startswith("2 of 2 VM(s) failed: k8s-prod-cp-1: no address 172.16.50.11 after 1.5 s (VMware Tools: "
                            "guestToolsNotRunning"), error
    assert "k8s-prod-worker-1: no address 172.16.50.12" in error and "\n" not in error
    assert "run `nsxkube apply cluster.yaml --phase machines` again" in (result.next_step or "")
    # the VMs exist and are ours: the next apply keeps them
    assert {c.action for c in plan_of(vsphere_lab.context(design)) if c.kind == "vm"} == {"unchanged"}


def test_size_drift_is_corrected_on_a_stopped_vm_and_left_to_the_operator_on_a_running_one(
        vsphere_lab: VsphereLab) -> None:
    from pyVmomi import vim

    assert apply(vsphere_lab, vsphere_lab.context()).ok
    worker = vsphere_lab.vm("k8s-prod-worker-1")
    vsphere_lab.wait(worker.ref.ReconfigVM_Task(spec=vim.vm.ConfigSpec(numCPUs=2, memoryMB=8192)))

    # running, no CPU hot-add: nsxkube does not power-cycle a node by itself
    running = {c.name: c for c in plan_of(vsphere_lab.context())}["k8s-prod-worker-1"]
    assert (running.action, running.fields) == ("manual", ("cpus 2→4", "memory 8→16 GiB"))
    assert "needs the VM powered off" in running.detail

    vsphere_lab.wait(worker.ref.PowerOffVM_Task())
    ctx = vsphere_lab.context()
    planned = {c.name: c for c in plan_of(ctx)}["k8s-prod-worker-1"]
    assert (planned.action, planned.fields) == ("update", ("cpus 2→4", "memory 8→16 GiB", "power on"))
    assert apply(vsphere_lab, ctx).ok
    fixed = vsphere_lab.vm("k8s-prod-worker-1")
    assert (fixed.cpus, fixed.memory_mib, fixed.powered_on, fixed.moref) == (4, 16384, True, worker.moref)


def test_fewer_workers_in_cluster_yaml_keep_the_vm_and_say_what_to_do(vsphere_lab: VsphereLab) -> None:
    assert apply(vsphere_lab, vsphere_lab.context()).ok
    design = vsphere_lab.design({"nodes.workers.count": 1})
    ctx = vsphere_lab.context(design)
    result = apply(vsphere_lab, ctx)
    assert result.ok, result.phases[0].error
    assert [(c.action, c.name) for c in result.phases[0].changes] == [("delete", "nsxkube-k8s-prod-workers-1")]
    assert any(t.startswith("manual step: vm k8s-prod-worker-2: this cluster's VM is no longer in cluster.yaml")
               for t in ctx.reporter.texts("change"))  # shown with the plan; one worker: nothing to spread
    assert vsphere_lab.vm("k8s-prod-worker-2").powered_on
    cluster = vsphere_lab.entity("ClusterComputeResource", "DC0_C0").ref
    rules = vsphere_lab.session.read_objects([cluster], ["configurationEx.rule"])[cluster._moId]
    assert [r.name for r in rules["configurationEx.rule"]] == ["nsxkube-k8s-prod-control-planes"]


def test_an_interrupted_apply_leaves_a_vm_the_next_apply_recognises_and_completes(vsphere_lab: VsphereLab) -> None:
    """The clone carries the extraConfig marker; an apply stopped before the custom attribute is
    set leaves a VM that is still ours (not a conflict), and the next apply marks and starts it."""
    from nsxkube.providers.vsphere.machines import create_vm
    from nsxkube.providers.vsphere.observe import observe, resolve_placement
    from nsxkube.providers.vsphere.tasks import TaskWaiter

    design = vsphere_lab.design({"nodes.control_planes.count": 1, "nodes.workers.count": 1})
    vsphere = design.spec.vsphere
    vsphere_lab.folder("k8s-prod")
    state = observe(vsphere_lab.session, vsphere, "k8s-prod", [])
    placement = resolve_placement(state, vsphere, with_template=True)
    machine = desired_machines(design)[0]
    create_vm(vsphere_lab.session, TaskWaiter(vsphere_lab.session), placement, placement.folder.existing.ref,
              machine, "k8s-prod", 30)  # … and the run dies here

    ctx = vsphere_lab.context(design)
    planned = {c.name: c for c in plan_of(ctx)}
    # the run died before the disk grew (after the clone); vcsim 0.24 also ignores CPUs and memory in a CloneSpec
    size = (*(("cpus 1→4", "memory 0.03125→8 GiB") if vsphere_lab.old_simulator else ()), "disk 10→60 GiB")
    assert (planned["k8s-prod-cp-1"].action, planned["k8s-prod-cp-1"].fields) == (
        "update", (*size, "ownership marker", "power on"))
    assert planned["k8s-prod-worker-1"].action == "create"
    assert apply(vsphere_lab, ctx).ok
    assert vsphere_lab.vm("k8s-prod-cp-1").owner == "k8s-prod" and vsphere_lab.vm("k8s-prod-cp-1").powered_on


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("vsphere.datastore", "vsanDatastore",
     "datastore 'vsanDatastore' not found in datacenter DC0 (set vsphere.datastore to one of: LocalDS_0)"),
    ("vsphere.template", "ubuntu-2204", f"template 'ubuntu-2204' not found in datacenter DC0 (build one (see "
     f"`nsxkube template prepare`) or set vsphere.template; templates there: {TEMPLATE})"),
    ("vsphere.resource_pool", "k8s", "resource pool 'k8s' not found in cluster DC0_C0 (set vsphere.resource_pool to "
     "one of: Resources)"),
    ("vsphere.cluster", "Cluster", "cluster 'Cluster' not found in datacenter DC0 (set vsphere.cluster to one of: "
     "DC0_C0)"),
])  # fmt: skip
def test_a_missing_inventory_object_is_one_line_listing_what_exists(vsphere_lab: VsphereLab, key: str, value: str,
                                                                     expected: str) -> None:
    ctx = vsphere_lab.context(vsphere_lab.design({key: value}))
    result = runner.plan(ctx, [PHASE])
    assert result.phases[0].error == expected


# ---- the node port group: NSX publishes the segment to vCenter seconds after the network phase ---------

SEGMENT = "k8s-lab-segment"  # a name vcsim does not have


def segment_design(lab: VsphereLab, **segment: Any) -> Any:
    """The small cluster on the port group of the segment the network phase creates."""
    changes = {"nodes.control_planes.count": 1, "nodes.workers.count": 1, "nsx.segment.name": SEGMENT}
    return lab.design(changes | {f"nsx.segment.{k}": v for k, v in segment.items()}, network=SEGMENT)


def publish_portgroup_later(lab: VsphereLab, name: str, delay: float) -> threading.Thread:
    """What NSX does once it has realized a segment on a VDS: a distributed port group appears in vCenter."""
    from pyVmomi import vim

    # the switch of the lab's port group (vcsim names and types it differently across versions)
    switch = lab.entity("DistributedVirtualPortgroup", "DC0_DVPG0").props["config.distributedVirtualSwitch"]
    spec = vim.dvs.DistributedVirtualPortgroup.ConfigSpec(name=name, type="earlyBinding", numPorts=8)

    def publish() -> None:
        time.sleep(delay)
        lab.wait(switch.AddDVPortgroup_Task([spec]))

    thread = threading.Thread(target=publish, name="nsx-publishes", daemon=True)
    thread.start()
    return thread


def writes(ctx: Any) -> list[str]:
    """The vCenter methods called that change something (reads are retrievals, views and logins)."""
    reads = ("Retrieve", "CreateContainerView", "DestroyView", "Login", "RetrieveServiceContent",
             "CreateFilter", "WaitForUpdates", "DestroyPropertyFilter")
    return [m for m, n in vsphere_session(ctx, "machines").by_method.items() if n and not m.startswith(reads)]


def test_plan_before_the_segment_is_published_shows_the_clones_and_warns_once(vsphere_lab: VsphereLab) -> None:
    ctx = vsphere_lab.context(segment_design(vsphere_lab))
    result = runner.plan(ctx, [PHASE])
    assert result.ok, result.phases[0].error
    # the same changes as on a port group that is there
    published = vsphere_lab.design({"nodes.control_planes.count": 1, "nodes.workers.count": 1})
    assert changes(result) == [c.one_line() for c in plan_of(vsphere_lab.context(published))]
    assert sorted(c.name for c in result.phases[0].changes if c.action == "create" and c.kind == "vm") == [
        "k8s-prod-cp-1", "k8s-prod-worker-1"]
    assert [w for w in ctx.reporter.texts("warning") if "port group" in w] == [
        f"port group {SEGMENT} is not in vCenter yet: NSX publishes it once the network phase has created segment "
        f"{SEGMENT}; apply waits for it"]
    assert writes(ctx) == []  # plan stays read-only


def test_apply_waits_for_nsx_to_publish_the_port_group_and_puts_the_nics_on_it(vsphere_lab: VsphereLab) -> None:
    design = segment_design(vsphere_lab)
    ctx = vsphere_lab.context(design, realization_timeout_seconds=30)
    publisher = publish_portgroup_later(vsphere_lab, SEGMENT, delay=1.0)
    result = apply(vsphere_lab, ctx)
    publisher.join(timeout=30)
    assert result.ok, result.phases[0].error
    progress = ctx.reporter.texts("progress")
    waited = progress.index(f"port group {SEGMENT} 0/1 waiting for NSX to publish it")
    assert progress.index(f"port group {SEGMENT} 1/1 in vCenter") > waited
    assert progress.index("k8s-prod-cp-1 0/5 cloning") > waited  # nothing was cloned before it was there
    portgroup = vsphere_lab.entity("DistributedVirtualPortgroup", SEGMENT)
    for name in ("k8s-prod-cp-1", "k8s-prod-worker-1"):
        vm = vsphere_lab.vm(name)
        assert vm.nics[0].network == portgroup.props["key"], name
        assert [n._moId for n in vsphere_lab.props(vm, "network")["network"]] == [portgroup.moref]


def test_apply_gives_up_on_a_port_group_that_never_appears_before_any_clone(vsphere_lab: VsphereLab) -> None:
    ctx = vsphere_lab.context(segment_design(vsphere_lab), realization_timeout_seconds=1)
    start = time.monotonic()
    result = runner.apply(ctx, [PHASE], "cluster.yaml")
    assert time.monotonic() - start < 10
    assert result.phases[0].error == (
        f"port group {SEGMENT} did not appear in vCenter within 1 s; no VM was created (check that the network phase "
        f"ran and created segment {SEGMENT}, and that its transport zone {ctx.design.spec.nsx.transport_zone} is "
        "attached to the VDS of cluster DC0_C0)")
    assert f"port group {SEGMENT} 0/1 waiting for NSX to publish it" in ctx.reporter.texts("progress")
    assert all(not vsphere_lab.vms(n) for n in ("k8s-prod-cp-1", "k8s-prod-worker-1"))
    assert writes(ctx) == []  # not even the folder or the ownership marker field


@pytest.mark.parametrize(("network", "segment"), [
    ("k8s-nodes-segment", {"use_existing": True}),  # someone else's segment: it should be there already
    ("k8s-nodes-pg", {}),  # not the segment nsxkube creates
])  # fmt: skip
def test_a_missing_port_group_that_is_not_the_segment_to_come_is_one_line_listing_the_networks(
        vsphere_lab: VsphereLab, network: str, segment: dict[str, Any]) -> None:
    changes = {"nsx.segment.name": "k8s-nodes-segment"} | {f"nsx.segment.{k}": v for k, v in segment.items()}
    ctx = vsphere_lab.context(vsphere_lab.design(changes, network=network))
    result = runner.plan(ctx, [PHASE])
    # vcsim lists the DVS uplink port group as a network: it does not serve config.uplink, which
    # vCenter sets on uplink port groups (the code leaves those out on vCenter)
    networks = sorted((e.name for e in read_inventory(vsphere_lab.session).by_kind(
        "Network", "DistributedVirtualPortgroup", "OpaqueNetwork")), key=str.lower)
    assert result.phases[0].error == (
        f"port group '{network}' not found in datacenter DC0 (set vsphere.network to the port group of the NSX node "
        "segment (NSX shows the segment to vCenter once the network phase has created it); networks there: "
        f"{', '.join(networks)})")
    assert not [w for w in ctx.reporter.texts("warning") if "not in vCenter yet" in w]
    if not vsphere_lab.old_simulator:
        assert networks == ["DC0_DVPG0", "DVS0-DVUplinks-8", "VM Network"]


def test_a_template_that_is_not_ready_is_refused_before_any_clone(vsphere_lab: VsphereLab) -> None:
    from pyVmomi import vim

    raw = vsphere_lab.foreign_vm("raw-vm", power_on=False)  # a VM, not a template
    vsphere_lab.wait(raw.ref.ReconfigVM_Task(spec=vim.vm.ConfigSpec(extraConfig=[
        vim.option.OptionValue(key="disk.EnableUUID", value="FALSE")])))
    ctx = vsphere_lab.context(vsphere_lab.design(**{"template": "raw-vm"}))
    result = runner.apply(ctx, [PHASE], "cluster.yaml")
    more = 2 if vsphere_lab.old_simulator else 1  # vcsim 0.24's clone is also vmx-13
    assert result.phases[0].error == ("template raw-vm is not ready: template: is a VM, not a template — run "
                                      "`nsxkube template prepare <cluster.yaml> --vm raw-vm`: it powers the VM off "
                                      f"and marks it as a template (and {more} more) (`nsxkube template check` lists "
                                      "every finding with its fix)")
    assert all(not vsphere_lab.vms(n) for n in NODES)


@pytest.mark.parametrize(("network", "backing"), [("DC0_NSXPG0", "distributed"), ("DC0_NSX0", "opaque")])
def test_nics_attach_to_an_nsx_segment_on_a_vds_or_an_opaque_network(
        vcsim_factory: Any, tmp_path: Any, network: str, backing: str) -> None:
    from tests.providers.vsphere.lab import make_lab

    lab = make_lab(vcsim_factory(vms=1, extra_args=("-nsx", "1")), tmp_path)
    if lab.old_simulator and backing == "distributed":
        pytest.skip(f"{lab.sim.origin}: no NSX-backed port groups, only the opaque network of an N-VDS")
    design = lab.design({"nodes.control_planes.count": 1, "nodes.workers.count": 1}, network=network)
    ctx = lab.context(design)
    assert apply(lab, ctx).ok, ctx.reporter.events
    nic = lab.vm("k8s-prod-cp-1").nics[0]
    if lab.old_simulator:  # like vCenter with NSX on an N-VDS: the NIC keeps the opaque backing
        assert type(nic.device.backing).__name__.endswith("OpaqueNetworkBackingInfo")
        assert nic.network == lab.entity("OpaqueNetwork", network).props["summary.opaqueNetworkId"]
        return
    portgroup = lab.entity("DistributedVirtualPortgroup", "DC0_NSXPG0")
    if backing == "opaque":
        # vcsim behaves like vCenter 7+ with NSX on a VDS: a NIC given the segment's opaque network
        # backing lands on the port group of the same logical switch
        opaque = lab.entity("OpaqueNetwork", network)
        switch = lab.session.read_objects([portgroup.ref], ["config.logicalSwitchUuid"])[portgroup.moref]
        assert switch["config.logicalSwitchUuid"] == opaque.props["summary.opaqueNetworkId"]
    assert nic.network == portgroup.props["key"]
    lab.session.close()


def test_clones_run_concurrently_within_the_bound(vsphere_lab: VsphereLab) -> None:
    """With 40 ms of network latency per request (as to a remote vCenter), each clone takes
    several round trips: if clones are concurrent, as many are in flight as the bound allows."""
    def in_flight_peak(concurrency: int) -> int:
        ctx = vsphere_lab.context(concurrency=concurrency)
        session = vsphere_session(ctx, "machines")
        invoke = session.stub.InvokeMethod
        session.stub.InvokeMethod = lambda *args: (time.sleep(0.04), invoke(*args))[1]
        assert apply(vsphere_lab, ctx).ok
        peak = current = 0
        for event in ctx.reporter.texts("progress"):
            current += event.endswith("0/5 cloning") - event.endswith("2/5 configured")
            peak = max(peak, current)
        runner.destroy(vsphere_lab.context(), [PHASE], confirm=lambda planned: True)
        return peak

    assert in_flight_peak(5) == 5
    assert in_flight_peak(2) == 2


def test_waiting_for_slow_guests_costs_reads_per_poll_not_per_vm(vsphere_lab: VsphereLab) -> None:
    """Guests that take a second to come up: all five VMs are polled in one read each time.
    (Polling each VM and each task on its own would cost well over 10 requests per VM.)"""
    ctx = vsphere_lab.context()
    with vsphere_lab.guest(ctx.design) as guest:
        guest.interval = 1.0
        result = runner.apply(ctx, [PHASE], "cluster.yaml")
    assert result.ok, result.phases[0].error
    session = vsphere_session(ctx, "machines")
    assert session.requests / 5 <= 10, dict(session.by_method)


def test_the_lab_guest_tells_a_powered_off_vm_from_a_deleted_one_and_boots_it_again(vsphere_lab: VsphereLab) -> None:
    """What the lab's nodes hang on: a VM powered off is halted (its node stops); deleted later, it is
    gone (its node and its NSX port go) even though it was no longer running; powered on, it boots."""
    from nsxkube.lab.guest import GuestSimulator

    ctx = vsphere_lab.context()
    assert apply(vsphere_lab, ctx).ok
    events: list[tuple[str, str]] = []
    started: list[str] = []
    guest = GuestSimulator(vsphere_lab.session, set(NODES), on_boot=lambda vm: events.append(("boot", vm.name)),
                           on_halt=lambda vm: events.append(("halt", vm.name)),
                           on_gone=lambda vm: events.append(("gone", vm.name)),
                           start_guest=lambda vm, ready: (started.append(vm.bios_uuid), ready()))
    guest.poll()
    assert sorted(name for kind, name in events if kind == "boot") == NODES and not guest.errors
    assert all(len(uuid) == 36 for uuid in started) and len(set(started)) == len(NODES)  # each VM's BIOS UUID
    events.clear()
    cp2, worker = vsphere_lab.vm("k8s-prod-cp-2"), vsphere_lab.vm("k8s-prod-worker-2")
    vsphere_lab.wait(cp2.ref.PowerOffVM_Task())
    vsphere_lab.wait(worker.ref.PowerOffVM_Task())
    guest.poll()
    assert sorted(events) == [("halt", "k8s-prod-cp-2"), ("halt", "k8s-prod-worker-2")]
    events.clear()
    vsphere_lab.wait(worker.ref.Destroy_Task())  # deleted while off: gone all the same
    vsphere_lab.wait(cp2.ref.PowerOnVM_Task())  # powered on again: boots again
    guest.poll()
    assert sorted(events) == [("boot", "k8s-prod-cp-2"), ("gone", "k8s-prod-worker-2")]
    events.clear()
    guest.poll()
    assert events == []  # each said once
