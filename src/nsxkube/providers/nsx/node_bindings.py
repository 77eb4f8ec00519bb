"""The diff of the node bindings: for each node, its VM (tagged `nsxkube/cluster=<name>` so the
nodes group's tag condition finds it) and, in allowlist mode, its segment port (carrying the
manual address bindings of its own address, the API VIP on control planes, and the pools). Pure.

A VM is found by vCenter's instance UUID when the machines phase reported it (NSX's `external_id`
of a vSphere VM is that UUID), else by its unique display name. A node whose VM or port NSX does
not know yet is `waiting` (NSX learns VMs from vCenter a little after they power on).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nsxkube.design import OWNERSHIP_SCOPE
from nsxkube.providers.nsx.model import LivePort, LiveVif, LiveVm

Binding = tuple[str, str]  # (ip_address, mac_address)


@dataclass(frozen=True)
class NodeTarget:
    name: str
    addresses: tuple[str, ...]  # what the port may send from; empty when SpoofGuard's allowlist is off
    instance_uuid: str | None = None
    mac: str | None = None


@dataclass(frozen=True)
class NodePlan:
    node: str
    vm: LiveVm | None = None
    port: LivePort | None = None
    missing_bindings: tuple[Binding, ...] = ()
    tags: tuple[tuple[str, str], ...] | None = None  # the VM's tags to set, None when nothing to change
    waiting: str | None = None
    conflict: str | None = None


def targets(nodes: Sequence[str], bindings: Mapping[str, Sequence[str]],
            known: Mapping[str, tuple[str | None, str | None]]) -> list[NodeTarget]:
    """One target per node: the addresses to bind, and what vCenter said of its VM (instance UUID,
    MAC) when the machines phase ran in this command."""
    def target(name: str) -> NodeTarget:
        uuid, mac = known.get(name, (None, None))
        return NodeTarget(name, tuple(bindings.get(name, ())), uuid or None, (mac or "").lower() or None)

    return [target(n) for n in nodes]


def find_vm(target: NodeTarget, vms: Sequence[LiveVm]) -> tuple[LiveVm | None, str | None]:
    """(the node's VM, or None; a conflict when the name alone cannot tell which VM it is)."""
    if target.instance_uuid:
        by_id = [vm for vm in vms if vm.external_id.lower() == target.instance_uuid.lower()]
        if by_id:
            return by_id[0], None
    named = [vm for vm in vms if vm.display_name == target.name]
    if len(named) > 1:
        return None, f"{len(named)} VMs in NSX are named {target.name}; nsxkube cannot tell which one is the node"
    return (named[0] if named else None), None


def plan_node(target: NodeTarget, vm: LiveVm | None, vifs: Sequence[LiveVif],
              ports: Mapping[str, LivePort], cluster: str) -> NodePlan:
    if vm is None:
        return NodePlan(target.name, waiting=f"VM {target.name} is not in NSX's inventory yet")
    owners = [tag for scope, tag in vm.tags if scope == OWNERSHIP_SCOPE]
    if any(owner != cluster for owner in owners):
        return NodePlan(target.name, vm, conflict=f"VM {vm.display_name} is tagged for nsxkube cluster {owners[0]!r}")
    tags = None if cluster in owners else (*vm.tags, (OWNERSHIP_SCOPE, cluster))
    if not target.addresses:
        return NodePlan(target.name, vm, tags=tags)
    on_segment = [v for v in vifs if v.attachment_id in ports]
    if target.mac:
        on_segment = [v for v in on_segment if v.mac_address == target.mac] or on_segment
    if not on_segment:
        return NodePlan(target.name, vm, tags=tags, waiting=f"VM {vm.display_name} has no port on the node segment yet")
    vif = on_segment[0]
    port = ports[str(vif.attachment_id)]
    if port.protection in ("REQUIRE_OVERRIDE", "PROTECTED"):
        return NodePlan(target.name, vm, port, conflict=f"port {port.path} is protected by a principal identity")
    have = set(port.address_bindings)
    missing = tuple((address, vif.mac_address) for address in target.addresses if (address, vif.mac_address) not in have)
    return NodePlan(target.name, vm, port, missing, tags)
