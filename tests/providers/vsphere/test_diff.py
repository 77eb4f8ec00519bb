"""The pure plans of the vSphere provider, from tables: (design, live) → what to do."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nsxkube.providers.vsphere.diff import (
    Diff,
    desired_rules,
    diff_leftovers,
    diff_machine,
    diff_rules,
    diff_teardown,
    is_our_rule,
    placement_warnings,
)
from nsxkube.providers.vsphere.model import (
    AntiAffinityRule,
    LiveCluster,
    LiveDisk,
    LiveNetwork,
    LiveNic,
    LiveRule,
    LiveVm,
    Machine,
)

GIB_KIB = 1024 * 1024
WORKER = Machine("k8s-prod-worker-1", "worker", "172.16.50.14", cpus=4, memory_mib=16384, disk_gib=100)
LIVE = LiveVm("k8s-prod-worker-1", "vm-42", power_state="poweredOn", cpus=4, memory_mib=16384, hardware_version=15,
              disks=(LiveDisk(2000, "Hard disk 1", 100 * GIB_KIB, "pvscsi"),), owner="k8s-prod",
              owner_in_extra_config="k8s-prod")


def live(**changes: object) -> LiveVm:
    return replace(LIVE, **changes)


def disk(gib: int) -> tuple[LiveDisk, ...]:
    return (LiveDisk(2000, "Hard disk 1", gib * GIB_KIB, "pvscsi"),)


@pytest.mark.parametrize(("observed", "action", "fields", "detail"), [
    (None, "create", (), "worker, 4 CPUs, 16 GiB memory, 100 GiB disk, address 172.16.50.14"),
    (LIVE, "unchanged", (), ""),
    (live(power_state="poweredOff"), "update", ("power on",), ""),
    (live(owner=None), "update", ("ownership marker",), ""),  # interrupted apply: clone marker only
    (live(cpus=2, power_state="poweredOff"), "update", ("cpus 2→4", "power on"), "size drifted from cluster.yaml"),
    (live(cpus=2, cpu_hot_add=True), "update", ("cpus 2→4",), "size drifted from cluster.yaml"),
    (live(cpus=8, cpu_hot_add=True), "manual", ("cpus 8→4",), "changing CPUs needs the VM powered off"),
    (live(memory_mib=8192), "manual", ("memory 8→16 GiB",), "changing memory needs the VM powered off"),
    (live(memory_mib=8192, memory_hot_add=True), "update", ("memory 8→16 GiB",), "size drifted"),
    (live(cpus=2, memory_mib=8192), "manual", ("cpus 2→4", "memory 8→16 GiB"), "changing CPUs and memory needs"),
    (live(disks=disk(60)), "update", ("disk 60→100 GiB",), "size drifted"),  # grows online
    (live(disks=disk(120)), "manual", ("disk 120→100 GiB",), "disks never shrink"),
    (live(owner=None, owner_in_extra_config=None), "conflict", (), "a VM with this name exists (no nsxkube/cluster "
     "marker, vm-42) and is not cluster k8s-prod's"),
    (live(owner="other", owner_in_extra_config=None), "conflict", (), "(nsxkube/cluster=other, vm-42)"),
    (live(is_template=True), "conflict", (), "a template with this name exists"),
])  # fmt: skip
def test_diff_machine(observed: LiveVm | None, action: str, fields: tuple[str, ...], detail: str) -> None:
    assert_diff(diff_machine(WORKER, observed, "k8s-prod"), action, fields, detail)


GUESTINFO = {"guestinfo.metadata": "H4sImeta", "guestinfo.metadata.encoding": "gzip+base64",
             "guestinfo.userdata": "H4sIuser", "guestinfo.userdata.encoding": "gzip+base64"}
RENDERED = replace(WORKER, guestinfo=GUESTINFO)
SEGMENT = LiveNetwork("k8s-nodes-segment", "dvportgroup-12", "distributed", switch_uuid="50 2a",
                      portgroup_key="dvportgroup-12")
OPAQUE = LiveNetwork("k8s-nodes-segment", "network-5", "opaque", opaque_id="ls-7", opaque_type="nsx.LogicalSwitch")
STANDARD = LiveNetwork("k8s-nodes-segment", "network-9", "standard")
NIC = LiveNic(4000, "Network adapter 1", "vmxnet3", "00:50:56:aa:bb:cc", "dvportgroup-12")
CONVERGED = live(nics=(NIC,), extra_config={**GUESTINFO, "nsxkube.cluster": "k8s-prod"})


def converged(**changes: object) -> LiveVm:
    return replace(CONVERGED, **changes)


@pytest.mark.parametrize(("observed", "network", "action", "fields", "detail"), [
    (CONVERGED, SEGMENT, "unchanged", (), ""),
    (CONVERGED, None, "unchanged", (), ""),  # the port group is not published yet: the NIC is not judged
    (converged(nics=(replace(NIC, network="dvportgroup-99"),)), SEGMENT, "update",
     ("network dvportgroup-99→k8s-nodes-segment",), ""),
    (converged(nics=(replace(NIC, network="network-7"),)), SEGMENT, "update",
     ("network network-7→k8s-nodes-segment",), ""),
    (converged(nics=(replace(NIC, network=None),)), SEGMENT, "update", ("network none→k8s-nodes-segment",), ""),
    (converged(nics=()), SEGMENT, "update", ("network adapter on k8s-nodes-segment",), ""),
    (converged(nics=(replace(NIC, network="ls-7"),)), OPAQUE, "unchanged", (), ""),
    (converged(nics=(replace(NIC, network="network-9"),)), STANDARD, "unchanged", (), ""),
    (converged(nics=(replace(NIC, network="k8s-nodes-segment"),)), STANDARD, "unchanged", (), ""),  # deviceName
    (converged(disks=()), SEGMENT, "manual", ("disk missing",), "it has no disk"),
    (converged(disks=disk(60)), SEGMENT, "update", ("disk 60→100 GiB",), "size drifted"),
    (converged(extra_config={}, power_state="poweredOff"), SEGMENT, "update",
     ("guestinfo metadata, metadata.encoding, userdata, userdata.encoding", "power on"), ""),
    (converged(extra_config={**GUESTINFO, "guestinfo.userdata": "H4sIold"}, power_state="poweredOff"), SEGMENT,
     "update", ("guestinfo userdata", "power on"), ""),
    (converged(extra_config={**GUESTINFO, "guestinfo.userdata": "H4sIold"}), SEGMENT, "manual",
     ("guestinfo userdata",), "does not read again: rebuild the node"),
    (converged(extra_config={**GUESTINFO, "guestinfo.userdata": "H4sIold"}, nics=()), SEGMENT, "manual",
     ("network adapter on k8s-nodes-segment", "guestinfo userdata"), "rebuild the node"),
    (converged(nics=(replace(NIC, network="dvportgroup-99"),), cpus=2, cpu_hot_add=True), SEGMENT, "update",
     ("cpus 2→4", "network dvportgroup-99→k8s-nodes-segment"), "size drifted"),
])  # fmt: skip
def test_diff_machine_against_what_vcenter_answers(observed: LiveVm, network: LiveNetwork | None, action: str,
                                                   fields: tuple[str, ...], detail: str) -> None:
    """NIC backing, disks, CPU, memory and guestinfo: a VM on the wrong network is not 'unchanged'."""
    assert_diff(diff_machine(RENDERED, observed, "k8s-prod", network), action, fields, detail)


def assert_diff(diff: Diff, action: str, fields: tuple[str, ...], detail: str) -> None:
    assert (diff.action, diff.kind, diff.name, diff.fields) == (action, "vm", WORKER.name, fields)
    assert detail in diff.detail and (detail or not diff.detail or action == "create")
    assert "\n" not in diff.detail


def machines(control_planes: int, workers: int) -> list[Machine]:
    return ([Machine(f"c-cp-{i}", "control-plane", "", 4, 8192, 60) for i in range(1, control_planes + 1)]
            + [Machine(f"c-worker-{i}", "worker", "", 4, 8192, 60) for i in range(1, workers + 1)])


@pytest.mark.parametrize(("control_planes", "workers", "hosts", "enabled", "expected"), [
    (3, 2, 3, True, {"nsxkube-c-control-planes": ("c-cp-1", "c-cp-2", "c-cp-3"),
                     "nsxkube-c-workers-1": ("c-worker-1", "c-worker-2")}),
    (3, 5, 3, True, {"nsxkube-c-control-planes": ("c-cp-1", "c-cp-2", "c-cp-3"),
                     "nsxkube-c-workers-1": ("c-worker-1", "c-worker-2", "c-worker-3"),
                     "nsxkube-c-workers-2": ("c-worker-4", "c-worker-5")}),
    (3, 4, 3, True, {"nsxkube-c-control-planes": ("c-cp-1", "c-cp-2", "c-cp-3"),
                     "nsxkube-c-workers-1": ("c-worker-1", "c-worker-2", "c-worker-3")}),  # a lone 4th: no rule
    (1, 1, 3, True, {}),
    (3, 2, 2, True, {"nsxkube-c-control-planes": ("c-cp-1", "c-cp-2", "c-cp-3"),
                     "nsxkube-c-workers-1": ("c-worker-1", "c-worker-2")}),  # warned, see below
    (3, 2, 1, True, {}),
    (3, 2, 3, False, {}),
])  # fmt: skip
def test_desired_rules(control_planes: int, workers: int, hosts: int, enabled: bool,
                       expected: dict[str, tuple[str, ...]]) -> None:
    rules = desired_rules("c", machines(control_planes, workers), hosts, enabled)
    assert {r.name: r.members for r in rules} == expected


@pytest.mark.parametrize(("hosts", "drs", "enabled", "expected"), [
    (3, True, True, []),
    (2, True, True, ["cluster C has 2 usable host(s) for 3 control planes: some will share a host, and losing that "
                     "host can cost etcd its quorum"]),
    (3, False, True, ["DRS is off on cluster C: anti-affinity rules are kept but nothing enforces them (turn DRS on "
                      "for control planes on different hosts)"]),
    (1, False, False, []),
])  # fmt: skip
def test_placement_warnings(hosts: int, drs: bool, enabled: bool, expected: list[str]) -> None:
    assert placement_warnings(LiveCluster("C", "domain-c1", hosts, drs), 3, enabled) == expected


CP_RULE = AntiAffinityRule("nsxkube-c-control-planes", ("c-cp-1", "c-cp-2", "c-cp-3"))
OURS = {"c-cp-1", "c-cp-2", "c-cp-3", "c-worker-1", "c-worker-2"}


def rule(name: str, members: tuple[str, ...], kind: str = "anti-affinity", enabled: bool = True) -> LiveRule:
    return LiveRule(7, name, kind, enabled, members)


@pytest.mark.parametrize(("live_rules", "expected"), [
    ([], [Diff("create", "drs-rule", CP_RULE.name, "keep c-cp-1, c-cp-2, c-cp-3 on different hosts")]),
    ([rule(CP_RULE.name, ("c-cp-3", "c-cp-1", "c-cp-2"))], [Diff("unchanged", "drs-rule", CP_RULE.name)]),
    ([rule(CP_RULE.name, ("c-cp-1", "c-cp-2"))],
     [Diff("update", "drs-rule", CP_RULE.name, "", ("members +c-cp-3",))]),
    ([rule(CP_RULE.name, ("c-cp-1", "c-cp-2", "c-cp-3", "c-worker-1"), enabled=False)],
     [Diff("update", "drs-rule", CP_RULE.name, "", ("members -c-worker-1", "enabled"))]),
    ([rule(CP_RULE.name, ("c-cp-1", "db-1"))],
     [Diff("conflict", "drs-rule", CP_RULE.name, "it holds VMs that are not ours (db-1): nsxkube leaves it alone; "
           "rename or remove it")]),
    ([rule(CP_RULE.name, ("c-cp-1", "c-cp-2"), kind="affinity")],
     [Diff("conflict", "drs-rule", CP_RULE.name, "it is an affinity rule: nsxkube leaves it alone; rename or remove it")]),
    ([rule(CP_RULE.name, CP_RULE.members), rule("nsxkube-c-workers-2", ("c-worker-1", "c-worker-2")),
      rule("nsxkube-c-workers-3", ("c-worker-1", "db-1")), rule("nsxkube-other-workers-1", ("x", "y")),
      rule("keep-dbs-apart", ("db-1", "db-2"))],
     [Diff("unchanged", "drs-rule", CP_RULE.name),
      Diff("delete", "drs-rule", "nsxkube-c-workers-2", "no longer wanted by cluster.yaml"),
      Diff("manual", "drs-rule", "nsxkube-c-workers-3", "it now holds VMs that are not ours (db-1): nsxkube leaves it "
           "alone; remove it by hand")]),
])  # fmt: skip
def test_diff_rules(live_rules: list[LiveRule], expected: list[Diff]) -> None:
    assert diff_rules([CP_RULE], live_rules, "c", OURS) == expected


@pytest.mark.parametrize(("name", "cluster", "ours"), [
    ("nsxkube-a-control-planes", "a", True),
    ("nsxkube-a-workers-12", "a", True),
    ("nsxkube-a-workers", "a", False),
    ("nsxkube-a-control-control-planes", "a", False),  # cluster a-control's rule
    ("nsxkube-a-control-control-planes", "a-control", True),
    ("nsxkube-a-workers-workers-1", "a", False),
    ("nsxkube-a.b-workers-1", "a-b", False),
    ("my-nsxkube-a-workers-1", "a", False),
])  # fmt: skip
def test_rule_names_are_the_rules_ownership_marker(name: str, cluster: str, ours: bool) -> None:
    assert is_our_rule(name, cluster) is ours


def test_teardown_deletes_only_what_carries_the_marker_rules_first() -> None:
    vms = [live(name="c-cp-1", moref="vm-1", owner="c", owner_in_extra_config=None),
           live(name="c-cp-2", moref="vm-2", owner=None, owner_in_extra_config="c", power_state="poweredOff"),
           live(name="c-worker-1", moref="vm-3", owner=None, owner_in_extra_config=None),
           live(name="c-worker-2", moref="vm-4", owner="other", owner_in_extra_config=None),
           live(name="c-tmpl", moref="vm-5", owner="c", is_template=True)]
    rules = [rule("nsxkube-c-control-planes", ("c-cp-1", "c-cp-2")), rule("keep-apart", ("c-cp-1", "db"))]
    assert diff_teardown(vms, rules, "c") == [
        Diff("delete", "drs-rule", "nsxkube-c-control-planes", "destroy"),
        Diff("delete", "vm", "c-cp-1", "power off and delete (vm-1, nsxkube/cluster=c)"),
        Diff("delete", "vm", "c-cp-2", "delete (vm-2, nsxkube/cluster=c)"),
    ]


def test_vms_no_longer_in_cluster_yaml_are_left_to_the_operator() -> None:
    owned = [live(name="c-worker-3", moref="vm-3"), live(name="c-worker-1", moref="vm-1"),
             live(name="c-tmpl", moref="vm-9", is_template=True)]
    diffs = diff_leftovers(machines(1, 2), owned)
    assert [(d.action, d.name) for d in diffs] == [("manual", "c-worker-3")]
    assert diffs[0].detail.startswith("this cluster's VM is no longer in cluster.yaml: apply never deletes a node")
