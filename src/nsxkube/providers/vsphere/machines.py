"""Node VMs on vCenter: read them in bulk, clone, resize, mark, power, wait for the guest, delete;
folders and DRS rules. Each function does one thing; the machines phase decides the order."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from nsxkube.errors import ProviderError
from nsxkube.providers.vsphere.faults import describe_fault, fault_name
from nsxkube.providers.vsphere.inventory import Inventory, moref
from nsxkube.providers.vsphere.model import (
    OWNER_EXTRA_CONFIG,
    Entity,
    LiveCluster,
    LiveDisk,
    LiveNetwork,
    LiveNic,
    LiveRule,
    LiveVm,
    Machine,
    Placement,
)
from nsxkube.providers.vsphere.tasks import TaskWaiter

VM_PATHS = (
    "name", "config.template", "runtime.powerState", "config.hardware.numCPU", "config.hardware.memoryMB",
    "config.hardware.device", "config.version", "config.instanceUuid", "config.uuid", "config.cpuHotAddEnabled",
    "config.memoryHotAddEnabled", "config.extraConfig", "customValue", "guest.toolsRunningStatus", "guest.net",
)  # fmt: skip
# Whole `runtime` or `config` objects are never read: vcsim (and some vCenter builds) fail to
# serialize parts of them; these paths are all the phase needs. The whole extraConfig is read for
# these few VMs (a key-indexed path such as config.extraConfig["x"] is what the bulk inventory
# read uses for every VM, but the Debian 0.24 simulator does not answer it).
CLUSTER_PATHS = ("configurationEx.drsConfig.enabled", "configurationEx.rule")

_CONTROLLERS = {
    "ParaVirtualSCSIController": "pvscsi", "VirtualLsiLogicController": "lsilogic",
    "VirtualLsiLogicSASController": "lsilogic-sas", "VirtualBusLogicController": "buslogic",
    "VirtualNVMEController": "nvme", "VirtualAHCIController": "sata", "VirtualIDEController": "ide",
}  # fmt: skip
_ADAPTERS = {
    "VirtualVmxnet3": "vmxnet3", "VirtualVmxnet3Vrdma": "vmxnet3", "VirtualE1000e": "e1000e", "VirtualE1000": "e1000",
    "VirtualVmxnet2": "vmxnet2", "VirtualVmxnet": "vmxnet", "VirtualPCNet32": "pcnet32",
    "VirtualSriovEthernetCard": "sriov",
}  # fmt: skip


def _short(obj: Any) -> str:
    return type(obj).__name__.rsplit(".", 1)[-1]


def _nic_network(backing: Any) -> str | None:
    port = getattr(backing, "port", None)
    if port is not None:
        return getattr(port, "portgroupKey", None)
    if getattr(backing, "opaqueNetworkId", None):
        return backing.opaqueNetworkId
    return moref(getattr(backing, "network", None)) or getattr(backing, "deviceName", None)


def parse_devices(devices: Iterable[Any]) -> tuple[tuple[LiveDisk, ...], tuple[LiveNic, ...]]:
    """Disks (boot disk first: lowest bus, then unit) and NICs of a VM's device list."""
    devices = list(devices)
    controllers = {d.key: d for d in devices if hasattr(d, "busNumber")}
    disks, nics = [], []
    for device in devices:
        name = _short(device)
        label = getattr(getattr(device, "deviceInfo", None), "label", "") or ""
        if name == "VirtualDisk":
            controller = controllers.get(getattr(device, "controllerKey", None))
            kind = _CONTROLLERS.get(_short(controller), "other") if controller is not None else "other"
            capacity = getattr(device, "capacityInKB", 0) or (getattr(device, "capacityInBytes", 0) or 0) // 1024
            order = (getattr(controller, "busNumber", 99), getattr(device, "unitNumber", 99) or 0)
            disks.append((order, LiveDisk(device.key, label, int(capacity), kind, device)))
        elif hasattr(device, "macAddress"):
            nics.append(LiveNic(device.key, label, _ADAPTERS.get(name, "other"), device.macAddress,
                                _nic_network(getattr(device, "backing", None)), device))
    return tuple(d for _, d in sorted(disks, key=lambda pair: pair[0])), tuple(nics)


def live_vm(ref: Any, props: Mapping[str, Any], owner_key: int | None) -> LiveVm:
    disks, nics = parse_devices(props.get("config.hardware.device") or ())
    owner = None
    if owner_key is not None:
        owner = next((v.value for v in props.get("customValue") or () if v.key == owner_key), None)
    addresses = tuple(ip for nic in props.get("guest.net") or () for ip in (nic.ipAddress or ()))
    version = str(props.get("config.version") or "vmx-0").removeprefix("vmx-")
    extra = {o.key: str(o.value) for o in props.get("config.extraConfig") or ()}
    return LiveVm(
        name=props.get("name", ""), moref=ref._moId, is_template=bool(props.get("config.template")),
        power_state=str(props.get("runtime.powerState") or "poweredOff"), cpus=int(props.get("config.hardware.numCPU") or 0),
        memory_mib=int(props.get("config.hardware.memoryMB") or 0), hardware_version=int(version) if version.isdigit() else 0,
        disks=disks, nics=nics, extra_config=extra, owner=owner, owner_in_extra_config=extra.get(OWNER_EXTRA_CONFIG),
        instance_uuid=props.get("config.instanceUuid"), bios_uuid=props.get("config.uuid"),
        cpu_hot_add=bool(props.get("config.cpuHotAddEnabled")), memory_hot_add=bool(props.get("config.memoryHotAddEnabled")),
        tools_running=props.get("guest.toolsRunningStatus") == "guestToolsRunning", ip_addresses=addresses, ref=ref,
    )  # fmt: skip


def read_details(session: Any, inventory: Inventory, vms: Sequence[Entity],
                 cluster: Entity | None) -> tuple[list[LiveVm], LiveCluster | None]:
    """The VMs' details and the cluster's DRS state and rules, in one property-collector request."""
    from pyVmomi import vim, vmodl

    pc = vmodl.query.PropertyCollector
    specs = []
    if vms:
        specs.append(pc.FilterSpec(objectSet=[pc.ObjectSpec(obj=v.ref) for v in vms],
                                   propSet=[pc.PropertySpec(type=vim.VirtualMachine, pathSet=list(VM_PATHS))]))
    if cluster is not None:
        specs.append(pc.FilterSpec(objectSet=[pc.ObjectSpec(obj=cluster.ref)],
                                   propSet=[pc.PropertySpec(type=vim.ClusterComputeResource,
                                                            pathSet=list(CLUSTER_PATHS))]))
    rows = session.retrieve(specs) if specs else []
    live_vms = [live_vm(r.obj, {p.name: p.val for p in r.propSet}, inventory.owner_field_key)
                for r in rows if isinstance(r.obj, vim.VirtualMachine)]
    live_cluster = None
    for row in rows:
        if isinstance(row.obj, vim.ClusterComputeResource) and cluster is not None:
            live_cluster = live_cluster_of(inventory, cluster, {p.name: p.val for p in row.propSet})
    return live_vms, live_cluster


def live_cluster_of(inventory: Inventory, cluster: Entity, props: Mapping[str, Any]) -> LiveCluster:
    hosts = [h for h in inventory.children(cluster) if h.kind == "HostSystem"
             and h.props.get("runtime.connectionState", "connected") == "connected"
             and not h.props.get("runtime.inMaintenanceMode")]
    rules = []
    for info in props.get("configurationEx.rule") or ():
        kind = {"AntiAffinityRuleSpec": "anti-affinity", "AffinityRuleSpec": "affinity"}.get(_short(info), "other")
        refs = tuple(getattr(info, "vm", None) or ())
        names = tuple(inventory.entities[r._moId].name if r._moId in inventory.entities else r._moId for r in refs)
        rules.append(LiveRule(int(info.key), info.name, kind, bool(info.enabled), names, refs))
    return LiveCluster(cluster.name, cluster.moref, len(hosts), bool(props.get("configurationEx.drsConfig.enabled")),
                       tuple(rules), cluster.ref)


def read_vm(session: Any, ref: Any, owner_key: int | None) -> LiveVm:
    rows = session.read_objects([ref], VM_PATHS)
    return live_vm(ref, rows.get(ref._moId, {}), owner_key)


# ---- folders -------------------------------------------------------------------------------------


def create_folder(session: Any, parent: Any, name: str) -> Any:
    """A VM folder under ``parent``; one that appeared meanwhile is taken as it is."""
    from pyVmomi import vim

    try:
        return parent.CreateFolder(name)
    except vim.fault.DuplicateName as err:
        existing = getattr(err, "object", None)
        if existing is not None and isinstance(existing, vim.Folder):
            return existing
        raise ProviderError(f"cannot create VM folder {name!r}: {describe_fault(err)}",
                            hint="a non-folder object has that name; set vsphere.folder to another path") from None
    except Exception as err:
        raise ProviderError(f"cannot create VM folder {name!r}: {describe_fault(err)}",
                            hint="give the vCenter user Folder.Create on the datacenter's VM folder") from None


# ---- clone and change ----------------------------------------------------------------------------


def nic_backing(network: LiveNetwork) -> Any:
    from pyVmomi import vim

    card = vim.vm.device.VirtualEthernetCard
    if network.kind == "distributed":
        return card.DistributedVirtualPortBackingInfo(port=vim.dvs.PortConnection(
            switchUuid=network.switch_uuid, portgroupKey=network.portgroup_key))
    if network.kind == "opaque":
        return card.OpaqueNetworkBackingInfo(opaqueNetworkId=network.opaque_id, opaqueNetworkType=network.opaque_type)
    return card.NetworkBackingInfo(deviceName=network.name, network=network.ref)


def _disk_edit(disk: LiveDisk, capacity_kib: int) -> Any:
    from pyVmomi import vim

    device = copy.copy(disk.device)
    device.capacityInKB = capacity_kib
    device.capacityInBytes = capacity_kib * 1024
    return vim.vm.device.VirtualDeviceSpec(operation="edit", device=device)


def size_spec(vm: LiveVm, machine: Machine, network: LiveNetwork | None = None) -> Any | None:
    """The ConfigSpec that brings the VM to the machine: CPUs, memory, the boot disk, the first NIC
    onto ``network`` (added when the VM has none), and — on a VM that is off — the guestinfo keys.
    None: nothing differs. The fields are those ``diff_machine`` names as an update."""
    from pyVmomi import vim

    from nsxkube.providers.vsphere.diff import attaches_to

    spec, changes = vim.vm.ConfigSpec(), []
    changed = False
    if vm.cpus != machine.cpus:
        spec.numCPUs, changed = machine.cpus, True
    if vm.memory_mib != machine.memory_mib:
        spec.memoryMB, changed = machine.memory_mib, True
    disk = vm.boot_disk
    if disk is not None and disk.capacity_kib < machine.disk_kib:
        changes.append(_disk_edit(disk, machine.disk_kib))
    if network is not None:
        nic = vm.nics[0] if vm.nics else None
        if nic is None:
            card = vim.vm.device.VirtualVmxnet3(key=-1, backing=nic_backing(network), addressType="generated",
                                                connectable=_connect_info(vm.powered_on))
            changes.append(vim.vm.device.VirtualDeviceSpec(operation="add", device=card))
        elif not attaches_to(nic, network) and nic.device is not None:
            device = copy.copy(nic.device)
            device.backing = nic_backing(network)
            changes.append(vim.vm.device.VirtualDeviceSpec(operation="edit", device=device))
    if not vm.powered_on:  # a running node read its guestinfo at first boot: the diff leaves it to the operator
        stale = {key: value for key, value in machine.guestinfo.items() if vm.extra_config.get(key) != value}
        if stale:
            spec.extraConfig = [vim.option.OptionValue(key=k, value=v) for k, v in stale.items()]
            changed = True
    if changes:
        spec.deviceChange, changed = changes, True
    return spec if changed else None


def _connect_info(connected: bool) -> Any:
    from pyVmomi import vim

    return vim.vm.device.VirtualDevice.ConnectInfo(startConnected=True, allowGuestControl=True, connected=connected)


def clone_spec(placement: Placement, machine: Machine, cluster: str) -> Any:
    """Clone of the template: CPUs, memory, NIC on the node port group, guestinfo, disk.EnableUUID,
    the extraConfig ownership marker; powered off (nsxkube powers it on once it is complete).

    The boot disk is not resized in the clone but by a reconfigure right after it (``size_spec``):
    vcsim takes a disk edit in a CloneSpec literally — the clone's disk then points at the template's
    own file, which destroying the clone deletes, and every later clone of the template comes out
    without a disk (found by `destroy` then `apply` never converging in the lab). vCenter grows a
    copied disk either way; the separate reconfigure costs one task per new VM."""
    from pyVmomi import vim

    template = placement.template
    assert template is not None, "the template is resolved whenever a VM is to be created"
    assert placement.network is not None, "apply waits for the port group before any clone"
    extra = {**machine.guestinfo, "disk.EnableUUID": "TRUE", OWNER_EXTRA_CONFIG: cluster}
    config = vim.vm.ConfigSpec()
    config.numCPUs, config.memoryMB = machine.cpus, machine.memory_mib
    config.extraConfig = [vim.option.OptionValue(key=k, value=v) for k, v in extra.items()]
    changes = []
    if template.nics:
        nic = copy.copy(template.nics[0].device)
        nic.backing = nic_backing(placement.network)
        nic.connectable = _connect_info(False)
        nic.addressType, nic.macAddress = "generated", None  # never copy a template's fixed MAC
        changes.append(vim.vm.device.VirtualDeviceSpec(operation="edit", device=nic))
    config.deviceChange = changes
    location = vim.vm.RelocateSpec(datastore=placement.datastore.ref, pool=placement.resource_pool.ref)
    return vim.vm.CloneSpec(location=location, config=config, powerOn=False, template=False)


def create_vm(session: Any, waiter: TaskWaiter, placement: Placement, folder: Any, machine: Machine, cluster: str,
              timeout: float) -> Any:
    """Clones the node VM (powered off); returns its managed object."""
    assert placement.template is not None
    task = placement.template.ref.CloneVM_Task(folder=folder, name=machine.name,
                                               spec=clone_spec(placement, machine, cluster))
    return waiter.wait(task, "clone", timeout)


def update_vm(session: Any, waiter: TaskWaiter, vm: LiveVm, spec: Any, timeout: float) -> None:
    waiter.wait(vm.ref.ReconfigVM_Task(spec=spec), "reconfigure", timeout)


def power_on_vm(session: Any, waiter: TaskWaiter, vm: LiveVm, timeout: float) -> None:
    try:
        waiter.wait(vm.ref.PowerOnVM_Task(), "power on", timeout)
    except ProviderError as err:
        if fault_name(getattr(err, "fault", None)) != "InvalidPowerState":  # on already
            raise


def delete_vm(session: Any, waiter: TaskWaiter, vm: LiveVm, timeout: float) -> None:
    """Powers the VM off (hard: the cluster is being destroyed) and deletes it with its disks."""
    if vm.power_state != "poweredOff":
        try:
            waiter.wait(vm.ref.PowerOffVM_Task(), "power off", timeout)
        except ProviderError as err:
            if fault_name(getattr(err, "fault", None)) != "InvalidPowerState":
                raise
    waiter.wait(vm.ref.Destroy_Task(), "delete", timeout)


def wait_for_guests(session: Any, targets: Mapping[str, tuple[Any, str]], timeout: float,
                    progress: Callable[[str, str], None]) -> dict[str, str]:
    """Waits until each VM's VMware Tools run and its guest reports the expected address.

    ``targets``: name → (VM managed object, address). One property-collector read per poll for
    all of them. Returns name → why, for the VMs that did not come up within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    pending = dict(targets)
    tools_seen: set[str] = set()
    last: dict[str, dict[str, Any]] = {}
    interval = 0.2
    while pending:
        rows = session.read_objects([ref for ref, _ in pending.values()], ["guest.toolsRunningStatus", "guest.net"])
        for name, (ref, address) in list(pending.items()):
            props = last[name] = rows.get(ref._moId, {})
            if props.get("guest.toolsRunningStatus") == "guestToolsRunning" and name not in tools_seen:
                tools_seen.add(name)
                progress(name, "VMware Tools running")
            addresses = {ip for nic in props.get("guest.net") or () for ip in (nic.ipAddress or ())}
            if name in tools_seen and address in addresses:
                progress(name, f"address {address} up")
                del pending[name]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 3.0)
    failures = {}
    for name, (_, address) in pending.items():
        props = last.get(name, {})
        tools = props.get("guest.toolsRunningStatus") or "unknown"
        seen = sorted({ip for nic in props.get("guest.net") or () for ip in (nic.ipAddress or ())})
        failures[name] = (f"no address {address} after {timeout:g} s (VMware Tools: {tools}; guest addresses: "
                          f"{', '.join(seen) or 'none'}) — check the VM console: cloud-init network config, "
                          "open-vm-tools in the template")
    return failures


# ---- DRS rules -------------------------------------------------------------------------------------


def update_rules(session: Any, waiter: TaskWaiter, cluster: LiveCluster, *, add: Sequence[tuple[str, list[Any]]] = (),
                 edit: Sequence[tuple[LiveRule, list[Any]]] = (), remove: Sequence[LiveRule] = (),
                 timeout: float = 300.0) -> None:
    """Adds, edits and removes VM-VM anti-affinity rules in one cluster reconfiguration."""
    from pyVmomi import vim

    specs = [vim.cluster.RuleSpec(operation="add", info=vim.cluster.AntiAffinityRuleSpec(
        name=name, enabled=True, mandatory=False, vm=refs)) for name, refs in add]
    specs += [vim.cluster.RuleSpec(operation="edit", info=vim.cluster.AntiAffinityRuleSpec(
        key=rule.key, name=rule.name, enabled=True, mandatory=False, vm=refs)) for rule, refs in edit]
    specs += [vim.cluster.RuleSpec(operation="remove", removeKey=rule.key) for rule in remove]
    if not specs:
        return
    task = cluster.ref.ReconfigureComputeResource_Task(spec=vim.cluster.ConfigSpecEx(rulesSpec=specs), modify=True)
    waiter.wait(task, f"DRS rules of cluster {cluster.name}", timeout)
