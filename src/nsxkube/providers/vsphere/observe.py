"""A typed snapshot of everything the machines phase decides from, read in four requests:
the inventory (view + retrieval + view destroyed) and one retrieval of VM and cluster details."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from nsxkube.providers.vsphere.inventory import Inventory, read_inventory
from nsxkube.providers.vsphere.machines import read_details
from nsxkube.providers.vsphere.model import Entity, LiveCluster, LiveNetwork, LiveVm, Placement
from nsxkube.spec.model import ClusterSpec, Vsphere


@dataclass
class LiveState:
    inventory: Inventory
    datacenter: Entity
    cluster: LiveCluster | None
    vms: dict[str, LiveVm]
    """VMs with a node's name (one per name; a foreign one wins, so that it shows as a conflict)."""
    owned: list[LiveVm]
    """Every VM in the datacenter that carries this cluster's marker, node name or not."""
    template: LiveVm | None = None
    cluster_entity: Entity | None = field(default=None, repr=False)


def observe(session: Any, vsphere: Vsphere, cluster_name: str, node_names: Iterable[str], *,
            need_cluster: bool = True) -> LiveState:
    inventory = read_inventory(session)
    datacenter = inventory.find_datacenter(vsphere.datacenter)
    if need_cluster:
        cluster_entity: Entity | None = inventory.find_cluster(datacenter, vsphere.cluster)
    else:
        found = [c for c in inventory.within(datacenter, "ClusterComputeResource") if c.name == vsphere.cluster]
        cluster_entity = found[0] if len(found) == 1 else None
    named = inventory.find_vms(datacenter, [*node_names, vsphere.template])
    owned = inventory.owned_vms(datacenter, cluster_name)
    wanted = {e.moref: e for group in named.values() for e in group} | {e.moref: e for e in owned}
    live_vms, live_cluster = read_details(session, inventory, list(wanted.values()), cluster_entity)
    by_moref = {vm.moref: vm for vm in live_vms}
    vms: dict[str, LiveVm] = {}
    for name, entities in named.items():
        candidates = [by_moref[e.moref] for e in entities if e.moref in by_moref]
        if name == vsphere.template and name not in set(node_names):
            continue
        foreign = [vm for vm in candidates if not vm.owned_by(cluster_name)]
        if candidates:
            vms[name] = (foreign or candidates)[0]
    templates = [by_moref[e.moref] for e in named.get(vsphere.template, []) if e.moref in by_moref]
    return LiveState(inventory, datacenter, live_cluster, vms,
                     [by_moref[e.moref] for e in owned if e.moref in by_moref],
                     templates[0] if len(templates) == 1 else None, cluster_entity)


def network_is_segment_to_come(spec: ClusterSpec) -> bool:
    """Whether the node port group is the segment the network phase creates: NSX publishes it to
    vCenter only after that, so its absence before the first apply is expected, not a mistake."""
    return not spec.nsx.segment.use_existing and spec.vsphere.network == spec.nsx.segment.name


def resolve_placement(state: LiveState, vsphere: Vsphere, *, with_template: bool,
                      network_may_be_unpublished: bool = False) -> Placement:
    """The spec's names resolved; ProviderError (naming what is missing and what exists) otherwise.
    With ``network_may_be_unpublished``, a port group that is not in vCenter yet leaves ``network`` None."""
    inventory, datacenter = state.inventory, state.datacenter
    cluster = state.cluster_entity or inventory.find_cluster(datacenter, vsphere.cluster)
    template = None
    if with_template:
        inventory.find_template(datacenter, vsphere.template)  # raises with the list of templates
        template = state.template
    return Placement(
        datacenter=datacenter,
        cluster=cluster,
        datastore=inventory.find_datastore(datacenter, vsphere.datastore),
        resource_pool=inventory.find_resource_pool(cluster, vsphere.resource_pool),
        network=find_node_network(inventory, datacenter, vsphere.network,
                                  may_be_unpublished=network_may_be_unpublished),
        folder=inventory.find_folder(datacenter, vsphere.folder),
        template=template,
    )


def find_node_network(inventory: Inventory, datacenter: Entity, name: str, *,
                      may_be_unpublished: bool) -> LiveNetwork | None:
    """The node port group; None when it may be unpublished and no network has its name (a name
    that is there twice still raises, as does a missing one that may not be unpublished)."""
    if may_be_unpublished and all(n.name != name for n in inventory.networks(datacenter)):
        return None
    return inventory.find_network(datacenter, name)


def observed_network(state: LiveState, vsphere: Vsphere) -> LiveNetwork | None:
    """The node port group as the VMs' NICs are judged against; None when it is missing or ambiguous
    (not yet published by NSX, or a name error that resolving the placement reports)."""
    from nsxkube.errors import ProviderError

    try:
        return find_node_network(state.inventory, state.datacenter, vsphere.network, may_be_unpublished=True)
    except ProviderError:
        return None


def read_node_network(session: Any, vsphere: Vsphere) -> LiveNetwork | None:
    """The node port group from a fresh bulk inventory read (three requests); None while NSX has
    not published it."""
    inventory = read_inventory(session)
    datacenter = inventory.find_datacenter(vsphere.datacenter)
    return find_node_network(inventory, datacenter, vsphere.network, may_be_unpublished=True)
