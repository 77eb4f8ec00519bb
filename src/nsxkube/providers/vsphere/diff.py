"""Pure diffs of what the design wants against what vCenter has: tested from tables.

Each function returns ``Diff`` records (the phase turns them into pipeline changes). Rules of
the house kept here: a VM with a node's name that is not ours is a conflict and never touched;
disks never shrink; CPU and memory change on a running VM only where hot-add allows it, else
the operator powers it off (nsxkube never power-cycles a running node by itself); a NIC moves to
the node port group in place; guestinfo is rewritten only on a VM that is off (cloud-init reads it
once per instance); a VM without its disk can only be re-created.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from nsxkube.providers.vsphere.model import (
    MIB_PER_GIB,
    OWNER_FIELD,
    AntiAffinityRule,
    LiveCluster,
    LiveNetwork,
    LiveNic,
    LiveRule,
    LiveVm,
    Machine,
)


@dataclass(frozen=True)
class Diff:
    action: str  # create | update | delete | unchanged | conflict | manual
    kind: str  # vm | drs-rule | vm-folder | custom-attribute
    name: str
    detail: str = ""
    fields: tuple[str, ...] = ()


# ---- VMs ---------------------------------------------------------------------------------------


def gib(mib_or_kib: float, per_gib: int = MIB_PER_GIB) -> str:
    value = mib_or_kib / per_gib
    return f"{value:g}"


def diff_machine(machine: Machine, live: LiveVm | None, cluster: str, network: LiveNetwork | None = None) -> Diff:
    """create / update (with the drifted fields) / unchanged / conflict / manual for one node VM.

    Compared with what vCenter answers: CPUs, memory, the boot disk (at least the designed size),
    the first NIC's port group (``network``: the node port group; None while NSX has not published
    it, when the NIC cannot be judged yet) and the guestinfo keys of the rendered cloud-init.
    """
    name = machine.name
    if live is None:
        return Diff("create", "vm", name, f"{machine.role}, {machine.cpus} CPUs, {gib(machine.memory_mib)} GiB memory, "
                    f"{machine.disk_gib} GiB disk, address {machine.address}")
    if not live.owned_by(cluster) or live.is_template:
        what = "a template" if live.is_template else "a VM"
        return Diff("conflict", "vm", name, f"{what} with this name exists ({live.owner_text}, {live.moref}) and is not "
                    f"cluster {cluster}'s: nsxkube leaves it alone; remove or rename it by hand, or change the node "
                    "name prefix")
    disk = live.boot_disk
    if disk is None:  # the node's operating system lives on the disk cloned from the template
        return Diff("manual", "vm", name, "it has no disk: the operating system comes with the clone of the template "
                    "and cannot be given to an existing VM; delete the VM (nsxkube destroy --phase machines, or by "
                    "hand) and run apply again to re-create it", ("disk missing",))
    if disk.capacity_kib > machine.disk_kib:
        return Diff("manual", "vm", name, f"its disk is {gib(disk.capacity_kib, 1024 * 1024)} GiB, more than the "
                    f"{machine.disk_gib} GiB asked: disks never shrink; set disk_gib to at least that or rebuild the node",
                    (f"disk {gib(disk.capacity_kib, 1024 * 1024)}→{machine.disk_gib} GiB",))
    fields: list[str] = []
    needs_power_off: list[str] = []
    if live.cpus != machine.cpus:
        fields.append(f"cpus {live.cpus}→{machine.cpus}")
        if machine.cpus < live.cpus or not live.cpu_hot_add:
            needs_power_off.append("CPUs")
    if live.memory_mib != machine.memory_mib:
        fields.append(f"memory {gib(live.memory_mib)}→{gib(machine.memory_mib)} GiB")
        if machine.memory_mib < live.memory_mib or not live.memory_hot_add:
            needs_power_off.append("memory")
    if disk.capacity_kib < machine.disk_kib:  # grows online
        fields.append(f"disk {gib(disk.capacity_kib, 1024 * 1024)}→{machine.disk_gib} GiB")
    sized = bool(fields)
    if network is not None:  # a NIC's port group changes in place, on a running VM too
        nic = live.nics[0] if live.nics else None
        if nic is None:
            fields.append(f"network adapter on {network.name}")
        elif not attaches_to(nic, network):
            fields.append(f"network {nic.network or 'none'}→{network.name}")
    guestinfo = drifted_guestinfo(machine, live)
    if guestinfo and live.powered_on:
        # cloud-init reads guestinfo once per instance-id (the VM name): a running node keeps what it got
        return Diff("manual", "vm", name, "its cloud-init (guestinfo) differs from cluster.yaml and the node has "
                    "booted with the old one, which cloud-init does not read again: rebuild the node (drain it, "
                    "delete the VM, apply)", (*fields, f"guestinfo {', '.join(guestinfo)}"))
    if guestinfo:
        fields.append(f"guestinfo {', '.join(guestinfo)}")
    if needs_power_off and live.powered_on:
        return Diff("manual", "vm", name, f"changing {' and '.join(needs_power_off)} needs the VM powered off: drain "
                    "the node, power it off, then run apply again (nsxkube never power-cycles a running node)",
                    tuple(fields))
    if live.owner != cluster:
        fields.append("ownership marker")
    if not live.powered_on:
        fields.append("power on")
    if fields:
        return Diff("update", "vm", name, "size drifted from cluster.yaml" if sized else "", tuple(fields))
    return Diff("unchanged", "vm", name)


def attaches_to(nic: LiveNic, network: LiveNetwork) -> bool:
    """Whether the NIC's backing is the port group: its key (distributed), opaque id, or network (standard)."""
    return nic.network is not None and nic.network in {network.attachment, network.name}


def drifted_guestinfo(machine: Machine, live: LiveVm) -> list[str]:
    """The guestinfo keys whose value on the VM is not the rendered one (short names: userdata, metadata…)."""
    return [key.removeprefix("guestinfo.") for key, value in machine.guestinfo.items()
            if live.extra_config.get(key) != value]


def diff_machines(machines: Sequence[Machine], live: Mapping[str, LiveVm], cluster: str,
                  network: LiveNetwork | None = None) -> list[Diff]:
    return [diff_machine(m, live.get(m.name), cluster, network) for m in machines]


def diff_leftovers(machines: Sequence[Machine], owned: Iterable[LiveVm]) -> list[Diff]:
    """VMs of this cluster that cluster.yaml no longer has (fewer workers): apply never deletes a
    node, whose workloads must be drained first; the operator is told instead."""
    wanted = {m.name for m in machines}
    return [Diff("manual", "vm", vm.name, "this cluster's VM is no longer in cluster.yaml: apply never deletes a "
                 "node; drain it (kubectl drain, kubectl delete node), then delete the VM")
            for vm in sorted(owned, key=lambda vm: vm.name) if vm.name not in wanted and not vm.is_template]


# ---- DRS anti-affinity rules -------------------------------------------------------------------


def rule_prefix(cluster: str) -> str:
    return f"nsxkube-{cluster}-"


def is_our_rule(name: str, cluster: str) -> bool:
    """Rules cannot carry markers: their name is the marker, exact to the suffixes we create."""
    return re.fullmatch(re.escape(rule_prefix(cluster)) + r"(control-planes|workers-\d+)", name) is not None


def desired_rules(cluster: str, machines: Sequence[Machine], hosts: int, enabled: bool) -> list[AntiAffinityRule]:
    """Control planes on different hosts; workers spread in groups no larger than the host count.

    No rules with anti_affinity off, or fewer than two hosts (nothing to spread over).
    """
    if not enabled or hosts < 2:
        return []
    prefix = rule_prefix(cluster)
    rules: list[AntiAffinityRule] = []
    control_planes = [m.name for m in machines if m.role == "control-plane"]
    if len(control_planes) >= 2:
        rules.append(AntiAffinityRule(prefix + "control-planes", tuple(control_planes)))
    workers = [m.name for m in machines if m.role != "control-plane"]
    groups = [tuple(workers[i:i + hosts]) for i in range(0, len(workers), hosts)]
    for number, group in enumerate((g for g in groups if len(g) >= 2), start=1):
        rules.append(AntiAffinityRule(f"{prefix}workers-{number}", group))
    return rules


def placement_warnings(cluster: LiveCluster, control_planes: int, enabled: bool) -> list[str]:
    """Warn, never fail: a small lab cluster or DRS off still gets its VMs."""
    if not enabled:
        return []
    warnings = []
    if not cluster.drs_enabled:
        warnings.append(f"DRS is off on cluster {cluster.name}: anti-affinity rules are kept but nothing enforces them "
                        "(turn DRS on for control planes on different hosts)")
    if cluster.hosts < control_planes:
        warnings.append(f"cluster {cluster.name} has {cluster.hosts} usable host(s) for {control_planes} control planes: "
                        "some will share a host, and losing that host can cost etcd its quorum")
    return warnings


def diff_rules(desired: Sequence[AntiAffinityRule], live: Iterable[LiveRule], cluster: str,
               owned_vms: set[str]) -> list[Diff]:
    """Per rule: create / update (members, enabled) / unchanged / delete (ours, no longer wanted) / conflict."""
    by_name = {r.name: r for r in live}
    diffs: list[Diff] = []
    for rule in desired:
        current = by_name.get(rule.name)
        if current is None:
            diffs.append(Diff("create", "drs-rule", rule.name, f"keep {', '.join(rule.members)} on different hosts"))
            continue
        foreign = [m for m in current.members if m not in owned_vms]
        if current.kind != "anti-affinity" or foreign:
            why = f"it holds VMs that are not ours ({', '.join(foreign)})" if foreign else f"it is an {current.kind} rule"
            diffs.append(Diff("conflict", "drs-rule", rule.name, f"{why}: nsxkube leaves it alone; rename or remove it"))
            continue
        fields = []
        if set(current.members) != set(rule.members):
            added = sorted(set(rule.members) - set(current.members))
            removed = sorted(set(current.members) - set(rule.members))
            fields.append("members" + "".join(f" +{m}" for m in added) + "".join(f" -{m}" for m in removed))
        if not current.enabled:
            fields.append("enabled")
        diffs.append(Diff("update", "drs-rule", rule.name, "", tuple(fields)) if fields
                     else Diff("unchanged", "drs-rule", rule.name))
    wanted = {r.name for r in desired}
    for current in by_name.values():
        if current.name in wanted or not is_our_rule(current.name, cluster):
            continue
        diffs.append(_teardown_rule(current, owned_vms, "no longer wanted by cluster.yaml"))
    return diffs


def _teardown_rule(rule: LiveRule, owned_vms: set[str], why: str) -> Diff:
    foreign = [m for m in rule.members if m not in owned_vms]
    if foreign:
        return Diff("manual", "drs-rule", rule.name, f"it now holds VMs that are not ours ({', '.join(foreign)}): "
                    "nsxkube leaves it alone; remove it by hand")
    return Diff("delete", "drs-rule", rule.name, why)


# ---- destroy -----------------------------------------------------------------------------------


def diff_teardown(vms: Iterable[LiveVm], rules: Iterable[LiveRule], cluster: str) -> list[Diff]:
    """Only what carries this cluster's marker: its rules first, then its VMs."""
    owned = sorted((vm for vm in vms if vm.owned_by(cluster) and not vm.is_template), key=lambda vm: vm.name)
    owned_names = {vm.name for vm in owned}
    diffs = [_teardown_rule(rule, owned_names, "destroy") for rule in rules if is_our_rule(rule.name, cluster)]
    for vm in owned:
        how = "power off and delete" if vm.powered_on else "delete"
        diffs.append(Diff("delete", "vm", vm.name, f"{how} ({vm.moref}, {OWNER_FIELD}={cluster})"))
    return diffs
