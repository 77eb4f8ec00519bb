"""Resolution of the spec's names against an inventory snapshot (pure; built from tables).

The snapshot holds pyVmomi managed object references made locally (no server): exactly what
``read_inventory`` stores.
"""

from __future__ import annotations

from typing import Any

import pytest
from pyVmomi import vim

from nsxkube.errors import ProviderError
from nsxkube.providers.vsphere.inventory import Inventory, listing
from nsxkube.providers.vsphere.model import OWNER_EXTRA_CONFIG, Entity


def e(moref: str, kind: str, name: str, parent: str | None, **props: Any) -> Entity:
    return Entity(moref, kind, name, parent, {"name": name, **props})


def owner(value: str, key: int = 101) -> list[Any]:
    return [vim.CustomFieldsManager.StringValue(key=key, value=value)]


INVENTORY = Inventory.of([
    e("group-d1", "Folder", "Datacenters", None),
    e("dc-1", "Datacenter", "DC0", "group-d1", vmFolder=vim.Folder("group-v1")),
    e("group-v1", "Folder", "vm", "dc-1"),
    e("group-k", "Folder", "k8s", "group-v1"),
    e("group-kp", "Folder", "prod", "group-k"),
    e("group-h1", "Folder", "host", "dc-1"),
    e("group-hx", "Folder", "site-a", "group-h1"),
    e("domain-c1", "ClusterComputeResource", "Cluster", "group-hx", resourcePool=vim.ResourcePool("resgroup-1")),
    e("resgroup-1", "ResourcePool", "Resources", "domain-c1"),
    e("resgroup-2", "ResourcePool", "k8s", "resgroup-1"),
    e("resgroup-3", "ResourcePool", "prod", "resgroup-2"),
    e("resgroup-4", "ResourcePool", "prod", "resgroup-1"),
    e("resgroup-5", "ResourcePool", "gpu", "resgroup-2"),
    e("resgroup-6", "ResourcePool", "gpu", "resgroup-4"),
    e("group-s1", "Folder", "datastore", "dc-1"),
    e("datastore-1", "Datastore", "vsanDatastore", "group-s1"),
    e("datastore-2", "Datastore", "nfs-1", "group-s1"),
    e("group-n1", "Folder", "network", "dc-1"),
    e("network-1", "Network", "k8s-nodes-segment", "group-n1"),
    e("dvs-1", "VmwareDistributedVirtualSwitch", "vds", "group-n1", uuid="50 2a ff"),
    e("dvportgroup-1", "DistributedVirtualPortgroup", "k8s-nodes-segment", "group-n1", key="dvportgroup-1",
      **{"config.distributedVirtualSwitch": vim.DistributedVirtualSwitch("dvs-1")}),
    e("dvportgroup-2", "DistributedVirtualPortgroup", "vds-uplinks", "group-n1", **{"config.uplink": True}),
    e("network-o", "OpaqueNetwork", "nsx-seg", "group-n1", **{"summary.opaqueNetworkId": "ls-1",
                                                               "summary.opaqueNetworkType": "nsx.LogicalSwitch"}),
    e("vm-1", "VirtualMachine", "ubuntu-2404-k8s-template", "group-v1", **{"config.template": True}),
    e("vm-2", "VirtualMachine", "k8s-prod-cp-1", "group-k", customValue=owner("k8s-prod")),
    e("vm-3", "VirtualMachine", "k8s-prod-cp-2", "group-k",
      **{f'config.extraConfig["{OWNER_EXTRA_CONFIG}"]': vim.option.OptionValue(key=OWNER_EXTRA_CONFIG, value="k8s-prod")}),
    e("vm-4", "VirtualMachine", "db-1", "group-v1", customValue=owner("k8s-prod", key=7)),
    e("vm-5", "VirtualMachine", "k8s-prod-cp-1", "group-v1"),
    e("dc-2", "Datacenter", "DC1", "group-d1", vmFolder=vim.Folder("group-v2")),
    e("group-v2", "Folder", "vm", "dc-2"),
    e("vm-9", "VirtualMachine", "k8s-prod-cp-3", "group-v2", customValue=owner("k8s-prod")),
], server="vc.example.com", owner_field_key=101)  # fmt: skip
DC = INVENTORY.entities["dc-1"]
CLUSTER = INVENTORY.entities["domain-c1"]


def one_line(action: Any) -> str:
    with pytest.raises(ProviderError) as caught:
        action()
    return caught.value.one_line()


def test_names_resolve_within_the_datacenter() -> None:
    assert INVENTORY.find_datacenter("DC0").moref == "dc-1"
    assert INVENTORY.find_cluster(DC, "Cluster").moref == "domain-c1"  # in a host subfolder
    assert INVENTORY.find_datastore(DC, "nfs-1").moref == "datastore-2"
    assert INVENTORY.find_template(DC, "ubuntu-2404-k8s-template").moref == "vm-1"
    assert INVENTORY.datacenter_of(INVENTORY.entities["vm-9"]).name == "DC1"


@pytest.mark.parametrize(("action", "expected"), [
    (lambda: INVENTORY.find_datacenter("Datacenter"),
     "datacenter 'Datacenter' not found on vc.example.com (set vsphere.datacenter to one of: DC0, DC1)"),
    (lambda: INVENTORY.find_cluster(DC, "C1"),
     "cluster 'C1' not found in datacenter DC0 (set vsphere.cluster to one of: Cluster)"),
    (lambda: INVENTORY.find_datastore(DC, "ds"),
     "datastore 'ds' not found in datacenter DC0 (set vsphere.datastore to one of: nfs-1, vsanDatastore)"),
    (lambda: INVENTORY.find_network(DC, "seg"),
     "port group 'seg' not found in datacenter DC0 (set vsphere.network to the port group of the NSX node segment "
     "(NSX shows the segment to vCenter once the network phase has created it); networks there: k8s-nodes-segment, "
     "nsx-seg)"),
    (lambda: INVENTORY.find_template(DC, "ubuntu-2204"),
     "template 'ubuntu-2204' not found in datacenter DC0 (build one (see `nsxkube template prepare`) or set "
     "vsphere.template; templates there: ubuntu-2404-k8s-template)"),
    (lambda: INVENTORY.find_resource_pool(CLUSTER, "gold"),
     "resource pool 'gold' not found in cluster Cluster (set vsphere.resource_pool to one of: k8s, k8s/gpu, "
     "k8s/prod, prod, prod/gpu, Resources)"),
    (lambda: INVENTORY.find_resource_pool(CLUSTER, "gpu"),
     "2 objects named 'gpu' (resource pool) in cluster Cluster: resgroup-5, resgroup-6 (rename one in vCenter, or "
     "give vsphere.resource_pool a path that tells them apart)"),
])  # fmt: skip
def test_a_missing_name_says_which_and_lists_what_exists(action: Any, expected: str) -> None:
    assert one_line(action) == expected


def test_networks_resolve_to_how_a_nic_attaches() -> None:
    # a standard network and a port group share the name: the port group is the segment
    portgroup = INVENTORY.find_network(DC, "k8s-nodes-segment")
    assert (portgroup.kind, portgroup.switch_uuid, portgroup.portgroup_key) == ("distributed", "50 2a ff", "dvportgroup-1")
    opaque = INVENTORY.find_network(DC, "nsx-seg")
    assert (opaque.kind, opaque.opaque_id, opaque.opaque_type) == ("opaque", "ls-1", "nsx.LogicalSwitch")
    assert "vds-uplinks" in one_line(lambda: INVENTORY.find_network(DC, "vds-uplinks")).split("(")[0]


@pytest.mark.parametrize(("path", "existing", "missing"), [
    (None, "group-v1", ()),
    ("k8s", "group-k", ()),
    ("k8s/prod", "group-kp", ()),
    ("/DC0/vm/k8s/prod", "group-kp", ()),
    ("k8s/dev/a", "group-k", ("dev", "a")),
    ("new", "group-v1", ("new",)),
])  # fmt: skip
def test_folder_paths_resolve_to_what_exists_and_what_to_create(path: str | None, existing: str,
                                                               missing: tuple[str, ...]) -> None:
    folder = INVENTORY.find_folder(DC, path)
    assert (folder.existing.moref, folder.missing) == (existing, missing)


@pytest.mark.parametrize(("path", "moref"), [(None, "resgroup-1"), ("Resources", "resgroup-1"),
                                             ("k8s/prod", "resgroup-3"), ("Resources/k8s", "resgroup-2"),
                                             ("prod", "resgroup-4"), ("prod/gpu", "resgroup-6")])
def test_resource_pools_resolve_by_path_below_the_cluster(path: str | None, moref: str) -> None:
    assert INVENTORY.find_resource_pool(CLUSTER, path).moref == moref


def test_ownership_is_read_from_the_custom_attribute_or_the_clone_marker() -> None:
    # vm-4 has another custom field (key 7) with the same value: not ours; vm-9 is in DC1
    assert sorted(v.moref for v in INVENTORY.owned_vms(DC, "k8s-prod")) == ["vm-2", "vm-3"]
    assert INVENTORY.owned_vms(DC, "other") == []
    assert {k: sorted(v.moref for v in vs) for k, vs in INVENTORY.find_vms(DC, ["k8s-prod-cp-1"]).items()} == {
        "k8s-prod-cp-1": ["vm-2", "vm-5"]}


def test_listing_is_sorted_and_bounded() -> None:
    assert listing([]) == "none"
    assert listing(["b", "A", "b"]) == "A, b"
    assert listing([f"ds{i:02}" for i in range(20)]) == ", ".join(f"ds{i:02}" for i in range(12)) + " … and 8 more"
