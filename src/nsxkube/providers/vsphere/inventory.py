"""The vCenter inventory in bulk, and the spec's names resolved against it.

``read_inventory`` reads every datacenter, cluster, host, datastore, network, folder, resource
pool and VM with the few properties needed, in one property-collector retrieval through a
container view (three SOAP requests whatever the size of vCenter). Resolution is pure: when a
name is missing, the error says which and lists what exists there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nsxkube.errors import ProviderError
from nsxkube.providers.vsphere.model import OWNER_EXTRA_CONFIG, OWNER_FIELD, Entity, LiveFolder, LiveNetwork

_LISTED = 12


def listing(names: Iterable[str], none: str = "none") -> str:
    unique = sorted(set(names), key=str.lower)
    if not unique:
        return none
    shown = ", ".join(unique[:_LISTED])
    return shown + (f" … and {len(unique) - _LISTED} more" if len(unique) > _LISTED else "")


def moref(obj: Any) -> str | None:
    return getattr(obj, "_moId", None) if obj is not None else None


def kind_of(obj: Any) -> str:
    return type(obj).__name__.rsplit(".", 1)[-1]


@dataclass
class Inventory:
    """A snapshot of the inventory: entities by managed object id, and the owner field's key."""

    entities: dict[str, Entity]
    server: str = "vCenter"
    owner_field_key: int | None = None
    _children: dict[str, list[Entity]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for entity in self.entities.values():
            if entity.parent:
                self._children.setdefault(entity.parent, []).append(entity)

    @classmethod
    def of(cls, entities: Iterable[Entity], server: str = "vCenter", owner_field_key: int | None = None) -> Inventory:
        return cls({e.moref: e for e in entities}, server, owner_field_key)

    def children(self, parent: Entity) -> list[Entity]:
        return self._children.get(parent.moref, [])

    def ancestors(self, entity: Entity) -> list[Entity]:
        chain, seen = [], {entity.moref}
        current = self.entities.get(entity.parent or "")
        while current is not None and current.moref not in seen:
            chain.append(current)
            seen.add(current.moref)
            current = self.entities.get(current.parent or "")
        return chain

    def datacenter_of(self, entity: Entity) -> Entity | None:
        return next((a for a in self.ancestors(entity) if a.kind == "Datacenter"), None)

    def within(self, root: Entity, *kinds: str) -> list[Entity]:
        """Entities of these kinds anywhere below ``root``."""
        found: list[Entity] = []
        stack = list(self.children(root))
        while stack:
            entity = stack.pop()
            if entity.kind in kinds:
                found.append(entity)
            stack.extend(self.children(entity))
        return found

    def by_kind(self, *kinds: str) -> list[Entity]:
        return [e for e in self.entities.values() if e.kind in kinds]

    def path_below(self, entity: Entity, root: Entity) -> str:
        names = []
        for node in [entity, *self.ancestors(entity)]:
            if node.moref == root.moref:
                break
            names.append(node.name)
        return "/".join(reversed(names))

    # ---- resolution of the spec's names (pure; errors list what exists) -------------------

    def find_datacenter(self, name: str) -> Entity:
        datacenters = self.by_kind("Datacenter")
        return _one([d for d in datacenters if d.name == name], "datacenter", name, f"on {self.server}",
                    [d.name for d in datacenters], "vsphere.datacenter")

    def find_cluster(self, datacenter: Entity, name: str) -> Entity:
        clusters = self.within(datacenter, "ClusterComputeResource")
        return _one([c for c in clusters if c.name == name], "cluster", name, f"in datacenter {datacenter.name}",
                    [c.name for c in clusters], "vsphere.cluster")

    def find_datastore(self, datacenter: Entity, name: str) -> Entity:
        stores = self.within(datacenter, "Datastore")
        return _one([s for s in stores if s.name == name], "datastore", name, f"in datacenter {datacenter.name}",
                    [s.name for s in stores], "vsphere.datastore")

    def networks(self, datacenter: Entity) -> list[Entity]:
        """The networks a NIC can attach to: standard networks, port groups (not uplinks), opaque networks."""
        return [n for n in self.within(datacenter, "Network", "DistributedVirtualPortgroup", "OpaqueNetwork")
                if not n.props.get("config.uplink")]

    def find_network(self, datacenter: Entity, name: str) -> LiveNetwork:
        networks = self.networks(datacenter)
        matches = [n for n in networks if n.name == name]
        # a standard network and a port group may share a name: the port group is the segment
        if len(matches) > 1 and any(m.kind != "Network" for m in matches):
            matches = [m for m in matches if m.kind != "Network"]
        found = _one(matches, "port group", name, f"in datacenter {datacenter.name}", [n.name for n in networks],
                     "vsphere.network", hint="set vsphere.network to the port group of the NSX node segment "
                     "(NSX shows the segment to vCenter once the network phase has created it); networks there: ")
        if found.kind == "DistributedVirtualPortgroup":
            switch = self.entities.get(moref(found.props.get("config.distributedVirtualSwitch")) or "")
            return LiveNetwork(found.name, found.moref, "distributed", switch_uuid=switch.props.get("uuid") if switch
                               else None, portgroup_key=found.props.get("key") or found.moref, ref=found.ref)
        if found.kind == "OpaqueNetwork":
            return LiveNetwork(found.name, found.moref, "opaque", opaque_id=found.props.get("summary.opaqueNetworkId"),
                               opaque_type=found.props.get("summary.opaqueNetworkType"), ref=found.ref)
        return LiveNetwork(found.name, found.moref, "standard", ref=found.ref)

    def find_resource_pool(self, cluster: Entity, path: str | None) -> Entity:
        root = self.entities.get(moref(cluster.props.get("resourcePool")) or "")
        if root is None:
            raise ProviderError(f"cluster {cluster.name} has no root resource pool in the inventory read",
                                hint="check the user's read permission on the cluster")
        if not path or path.strip("/") in ("", root.name):
            return root
        pools = self.within(root, "ResourcePool", "VirtualApp")
        wanted = path.strip("/").removeprefix(root.name + "/")
        matches = [p for p in pools if self.path_below(p, root) == wanted]
        if not matches and "/" not in wanted:
            matches = [p for p in pools if p.name == wanted]
        return _one(matches, "resource pool", path, f"in cluster {cluster.name}",
                    [self.path_below(p, root) for p in pools] + [root.name], "vsphere.resource_pool")

    def find_folder(self, datacenter: Entity, path: str | None) -> LiveFolder:
        """The VM folder path under the datacenter's VM folder; missing parts are to be created."""
        root = self.entities.get(moref(datacenter.props.get("vmFolder")) or "")
        if root is None:
            raise ProviderError(f"datacenter {datacenter.name} has no VM folder in the inventory read",
                                hint="check the user's read permission on the datacenter")
        parts = [p for p in (path or "").split("/") if p]
        if parts[:2] == [datacenter.name, root.name]:  # a full inventory path /DC/vm/a/b
            parts = parts[2:]
        current, existing = root, 0
        for part in parts:
            child = next((c for c in self.children(current) if c.kind == "Folder" and c.name == part), None)
            if child is None:
                break
            current, existing = child, existing + 1
        return LiveFolder(tuple(parts), current, tuple(parts[existing:]))

    def find_vms(self, datacenter: Entity, names: Iterable[str]) -> dict[str, list[Entity]]:
        wanted = set(names)
        found: dict[str, list[Entity]] = {}
        for vm in self.within(datacenter, "VirtualMachine"):
            if vm.name in wanted:
                found.setdefault(vm.name, []).append(vm)
        return found

    def find_template(self, datacenter: Entity, name: str) -> Entity:
        vms = self.within(datacenter, "VirtualMachine")
        templates = [v.name for v in vms if v.props.get("config.template")]
        return _one([v for v in vms if v.name == name], "template", name, f"in datacenter {datacenter.name}",
                    templates, "vsphere.template", hint="build one (see `nsxkube template prepare`) or set "
                    "vsphere.template; templates there: ")

    def owned_vms(self, datacenter: Entity, cluster: str) -> list[Entity]:
        """VMs in the datacenter that carry this cluster's marker (custom attribute or extraConfig)."""
        return [v for v in self.within(datacenter, "VirtualMachine") if self.owner_of(v) == cluster
                or self.owner_of(v, extra_config=True) == cluster]

    def owner_of(self, vm: Entity, *, extra_config: bool = False) -> str | None:
        if extra_config:
            option = vm.props.get(f'config.extraConfig["{OWNER_EXTRA_CONFIG}"]')
            return getattr(option, "value", None) if option is not None else None
        if self.owner_field_key is None:
            return None
        return next((v.value for v in vm.props.get("customValue") or () if v.key == self.owner_field_key), None)


def _one(matches: Sequence[Entity], what: str, name: str | None, where: str, existing: Iterable[str], key: str,
         hint: str | None = None) -> Entity:
    if len(matches) == 1:
        return matches[0]
    if not matches:
        there = listing(existing)
        fix = (hint + there) if hint else f"set {key} to one of: {there}"
        raise ProviderError(f"{what} {name!r} not found {where}", hint=fix)
    raise ProviderError(f"{len(matches)} objects named {name!r} ({what}) {where}: {', '.join(sorted(m.moref for m in matches))}",
                        hint=f"rename one in vCenter, or give {key} a path that tells them apart")


# ---- reading -------------------------------------------------------------------------------------


def inventory_paths() -> dict[Any, list[str]]:
    from pyVmomi import vim

    return {
        vim.Datacenter: ["name", "parent", "vmFolder"],
        vim.ClusterComputeResource: ["name", "parent", "resourcePool"],
        vim.HostSystem: ["name", "parent", "runtime.connectionState", "runtime.inMaintenanceMode"],
        vim.Datastore: ["name", "parent"],
        vim.Network: ["name", "parent"],
        vim.dvs.DistributedVirtualPortgroup: ["key", "config.distributedVirtualSwitch", "config.uplink"],
        vim.OpaqueNetwork: ["summary.opaqueNetworkId", "summary.opaqueNetworkType"],
        vim.DistributedVirtualSwitch: ["name", "parent", "uuid"],
        vim.Folder: ["name", "parent"],
        vim.ResourcePool: ["name", "parent"],
        vim.VirtualMachine: ["name", "parent", "config.template", "customValue",
                             f'config.extraConfig["{OWNER_EXTRA_CONFIG}"]'],
    }


def read_inventory(session: Any) -> Inventory:
    """The whole inventory snapshot and the owner field's key, in one property-collector retrieval."""
    from pyVmomi import vim, vmodl

    pc = vmodl.query.PropertyCollector
    content = session.content
    paths = inventory_paths()
    view = content.viewManager.CreateContainerView(content.rootFolder, list(paths), True)
    try:
        traverse = pc.TraversalSpec(name="view", type=vim.view.ContainerView, path="view", skip=False)
        inventory_spec = pc.FilterSpec(objectSet=[pc.ObjectSpec(obj=view, skip=True, selectSet=[traverse])],
                                       propSet=[pc.PropertySpec(type=t, pathSet=p) for t, p in paths.items()])
        fields_spec = pc.FilterSpec(objectSet=[pc.ObjectSpec(obj=content.customFieldsManager)],
                                    propSet=[pc.PropertySpec(type=vim.CustomFieldsManager, pathSet=["field"])])
        objects = session.retrieve([inventory_spec, fields_spec])
    finally:
        view.DestroyView()
    entities, owner_key = [], None
    root = content.rootFolder
    entities.append(Entity(root._moId, "Folder", "Datacenters", None, {}, root))
    for item in objects:
        props = {p.name: p.val for p in item.propSet}
        if isinstance(item.obj, vim.CustomFieldsManager):
            owner_key = next((f.key for f in props.get("field") or () if f.name == OWNER_FIELD), None)
            continue
        entities.append(Entity(item.obj._moId, kind_of(item.obj), props.get("name", ""), moref(props.get("parent")),
                               props, item.obj))
    return Inventory.of(entities, session.where, owner_key)
