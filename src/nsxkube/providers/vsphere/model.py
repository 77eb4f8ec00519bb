"""What the vSphere provider reads and what it is asked to build, as plain frozen records.

Observed objects start with ``Live``; desired ones are plain nouns. Nothing here imports
pyVmomi: the ``ref`` fields hold the pyVmomi managed object of a live object (``None`` in
table tests) and never take part in comparisons.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

OWNER_FIELD = "nsxkube/cluster"
"""The custom attribute (vSphere custom field) on VMs whose value is the owning cluster's name."""
OWNER_EXTRA_CONFIG = "nsxkube.cluster"
"""The same marker in the VM's extraConfig, set atomically by the clone itself (see ownership.py)."""
MIN_HARDWARE_VERSION = 15
KIB_PER_GIB = 1024 * 1024
MIB_PER_GIB = 1024


# ---- inventory ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entity:
    """One inventory object: its managed object id, type name, name and parent's id."""

    moref: str
    kind: str
    name: str
    parent: str | None
    props: Mapping[str, Any] = field(default_factory=dict, compare=False)
    ref: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class LiveNetwork:
    """The node port group and how a NIC attaches to it (standard, distributed or NSX opaque)."""

    name: str
    moref: str
    kind: str  # "standard" | "distributed" | "opaque"
    switch_uuid: str | None = None
    portgroup_key: str | None = None
    opaque_id: str | None = None
    opaque_type: str | None = None
    ref: Any = field(default=None, compare=False, repr=False)

    @property
    def attachment(self) -> str:
        """What a NIC attached here reports as its network (see ``LiveNic.network``)."""
        if self.kind == "distributed" and self.portgroup_key:
            return self.portgroup_key
        if self.kind == "opaque" and self.opaque_id:
            return self.opaque_id
        return self.moref


@dataclass(frozen=True)
class LiveFolder:
    """The VM folder of the spec: the deepest part that exists and the names still to create."""

    path: tuple[str, ...]
    existing: Entity
    missing: tuple[str, ...]

    @property
    def display(self) -> str:
        return "/".join(self.path) or "(the datacenter's VM folder)"


@dataclass(frozen=True)
class Placement:
    """Where node VMs go, resolved from the spec's names. ``template`` is None when no VM is to be
    created (a re-apply must not need a template that was deleted after the build). ``network`` is
    None while NSX has not yet published the segment the network phase creates as a port group:
    plan goes on without it, apply waits for it before cloning."""

    datacenter: Entity
    cluster: Entity
    datastore: Entity
    resource_pool: Entity
    network: LiveNetwork | None
    folder: LiveFolder
    template: LiveVm | None = None


# ---- virtual machines --------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveDisk:
    key: int
    label: str
    capacity_kib: int
    controller: str  # "pvscsi", "lsilogic", "lsilogic-sas", "buslogic", "nvme", "sata", "ide", "other"
    device: Any = field(default=None, compare=False, repr=False)

    @property
    def capacity_gib(self) -> float:
        return self.capacity_kib / KIB_PER_GIB


@dataclass(frozen=True)
class LiveNic:
    key: int
    label: str
    adapter: str  # "vmxnet3", "e1000", "e1000e", "vmxnet2", "pcnet32", "other"
    mac: str | None
    network: str | None  # the port group key, network moref or opaque id the NIC is on
    device: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class LiveVm:
    name: str
    moref: str
    is_template: bool = False
    power_state: str = "poweredOff"  # "poweredOn" | "poweredOff" | "suspended"
    cpus: int = 0
    memory_mib: int = 0
    hardware_version: int = 0
    disks: tuple[LiveDisk, ...] = ()
    nics: tuple[LiveNic, ...] = ()
    extra_config: Mapping[str, str] = field(default_factory=dict, compare=False)
    owner: str | None = None  # value of the nsxkube/cluster custom attribute
    owner_in_extra_config: str | None = None  # value of extraConfig nsxkube.cluster
    instance_uuid: str | None = None
    bios_uuid: str | None = None
    cpu_hot_add: bool = False
    memory_hot_add: bool = False
    tools_running: bool = False
    ip_addresses: tuple[str, ...] = ()
    ref: Any = field(default=None, compare=False, repr=False)

    @property
    def boot_disk(self) -> LiveDisk | None:
        return self.disks[0] if self.disks else None

    @property
    def disk_gib(self) -> float:
        return self.boot_disk.capacity_gib if self.boot_disk else 0.0

    @property
    def powered_on(self) -> bool:
        return self.power_state == "poweredOn"

    def owned_by(self, cluster: str) -> bool:
        return cluster in (self.owner, self.owner_in_extra_config)

    @property
    def owner_text(self) -> str:
        owner = self.owner or self.owner_in_extra_config
        return f"{OWNER_FIELD}={owner}" if owner else f"no {OWNER_FIELD} marker"


@dataclass(frozen=True)
class Machine:
    """A node VM as the design wants it."""

    name: str
    role: str  # "control-plane" | "worker"
    address: str
    cpus: int
    memory_mib: int
    disk_gib: int
    guestinfo: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def disk_kib(self) -> int:
        return self.disk_gib * KIB_PER_GIB


@dataclass(frozen=True)
class NodeVm:
    """A node's VM as the machines phase found or made it: what later phases need (NSX port
    bindings, the CPI, SSH)."""

    name: str
    moref: str
    instance_uuid: str | None
    bios_uuid: str | None
    mac: str | None
    address: str

    def as_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "moref": self.moref, "instance_uuid": self.instance_uuid,
                "bios_uuid": self.bios_uuid, "mac": self.mac, "address": self.address}


# ---- DRS rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AntiAffinityRule:
    """A DRS VM-VM anti-affinity rule as the design wants it (members are VM names)."""

    name: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class LiveRule:
    key: int
    name: str
    kind: str  # "anti-affinity" | "affinity" | "other"
    enabled: bool
    members: tuple[str, ...]  # VM names (moref when the VM is not in the inventory read)
    member_refs: tuple[Any, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class LiveCluster:
    name: str
    moref: str
    hosts: int  # connected hosts that are not in maintenance mode
    drs_enabled: bool
    rules: tuple[LiveRule, ...] = ()
    ref: Any = field(default=None, compare=False, repr=False)
