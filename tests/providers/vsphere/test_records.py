"""Pure parts of the provider from tables: template checks, device parsing, the clone spec,
vCenter faults as one line, server addresses and the TLS trust settings. pyVmomi data objects are
built locally (no server)."""

from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim

from nsxkube.errors import ProviderError
from nsxkube.providers.vsphere.connection import _PinnedContext, parse_server, tls_context
from nsxkube.providers.vsphere.faults import describe_fault
from nsxkube.providers.vsphere.machines import clone_spec, live_vm, nic_backing, parse_devices, size_spec
from nsxkube.providers.vsphere.model import (
    OWNER_EXTRA_CONFIG,
    Entity,
    LiveDisk,
    LiveFolder,
    LiveNetwork,
    LiveNic,
    LiveVm,
    Machine,
    Placement,
)
from nsxkube.providers.vsphere.template import check_template, failures
from nsxkube.spec.model import Tls

GIB_KIB = 1024 * 1024
READY = LiveVm("tmpl", "vm-1", is_template=True, hardware_version=19, cpus=2, memory_mib=4096,
               disks=(LiveDisk(2000, "Hard disk 1", 40 * GIB_KIB, "pvscsi"),),
               nics=(LiveNic(4000, "Network adapter 1", "vmxnet3", "00:50:56:00:00:01", "dvportgroup-1"),),
               extra_config={"disk.EnableUUID": "TRUE"})


@pytest.mark.parametrize(("vm", "failed"), [
    (READY, []),
    (replace(READY, is_template=False), ["template"]),
    (replace(READY, hardware_version=13, extra_config={}), ["hardware version", "disk.EnableUUID"]),
    (replace(READY, extra_config={"disk.EnableUUID": "false"}), ["disk.EnableUUID"]),
    (replace(READY, disks=(LiveDisk(2000, "Hard disk 1", 40 * GIB_KIB, "lsilogic"),)), ["SCSI controller"]),
    (replace(READY, disks=(LiveDisk(2000, "Hard disk 1", 80 * GIB_KIB, "pvscsi"),)), ["disk size"]),
    (replace(READY, disks=()), ["disk"]),
    (replace(READY, nics=()), ["NICs"]),
    (replace(READY, nics=READY.nics * 2), ["NICs"]),
    (replace(READY, nics=(replace(READY.nics[0], adapter="e1000"),)), ["NIC type"]),
])  # fmt: skip
def test_template_checks(vm: LiveVm, failed: list[str]) -> None:
    findings = check_template(vm, min_disk_gib=60)
    assert findings, "the template check found nothing to say"
    assert [f.check for f in failures(findings)] == failed
    for finding in findings:
        assert bool(finding.hint) is not finding.ok  # every failure says how to fix it, a pass says nothing
        assert "\n" not in finding.one_line()


def test_template_findings_explain_the_fix() -> None:
    lines = [f.one_line() for f in failures(check_template(replace(
        READY, is_template=False, hardware_version=13, disks=(LiveDisk(1, "d", 80 * GIB_KIB, "pvscsi"),)),
        min_disk_gib=60))]
    assert lines == [
        "template: is a VM, not a template — run `nsxkube template prepare <cluster.yaml> --vm tmpl`: it powers the VM "
        "off and marks it as a template",
        "hardware version: vmx-13 — the vSphere CSI driver needs vmx-15 or later: `nsxkube template prepare "
        "<cluster.yaml> --vm tmpl` upgrades it",
        "disk size: 80 GiB, nodes get 60 GiB or more — clones grow a disk but never shrink it: set every role's "
        "disk_gib to at least 80, or build the template with a smaller disk",
    ]


def devices() -> list[Any]:
    device = vim.vm.device
    return [
        device.ParaVirtualSCSIController(key=1000, busNumber=0),
        device.VirtualLsiLogicController(key=1001, busNumber=1),
        device.VirtualDisk(key=2001, controllerKey=1001, unitNumber=0, capacityInKB=10 * GIB_KIB,
                           deviceInfo=vim.Description(label="Hard disk 2", summary="")),
        device.VirtualDisk(key=2000, controllerKey=1000, unitNumber=0, capacityInKB=40 * GIB_KIB,
                           deviceInfo=vim.Description(label="Hard disk 1", summary="")),
        device.VirtualVmxnet3(key=4000, macAddress="00:50:56:aa:bb:cc", backing=device.VirtualEthernetCard.
                              DistributedVirtualPortBackingInfo(port=vim.dvs.PortConnection(portgroupKey="dvportgroup-7"))),
        device.VirtualE1000e(key=4001, macAddress="00:50:56:aa:bb:cd", backing=device.VirtualEthernetCard.
                             NetworkBackingInfo(network=vim.Network("network-3"), deviceName="VM Network")),
    ]


def test_devices_parse_into_disks_boot_disk_first_and_nics() -> None:
    disks, nics = parse_devices(devices())
    assert [(d.key, d.capacity_kib // GIB_KIB, d.controller) for d in disks] == [(2000, 40, "pvscsi"),
                                                                               (2001, 10, "lsilogic")]
    assert [(n.adapter, n.mac, n.network) for n in nics] == [("vmxnet3", "00:50:56:aa:bb:cc", "dvportgroup-7"),
                                                            ("e1000e", "00:50:56:aa:bb:cd", "network-3")]


def test_a_vm_reads_its_owner_from_the_field_with_the_right_key() -> None:
    props = {
        "name": "k8s-prod-cp-1", "config.version": "vmx-21", "runtime.powerState": "poweredOn",
        "config.hardware.device": devices(), "config.hardware.numCPU": 4, "config.hardware.memoryMB": 8192,
        "customValue": [vim.CustomFieldsManager.StringValue(key=3, value="x"),
                        vim.CustomFieldsManager.StringValue(key=101, value="k8s-prod")],
        "config.extraConfig": [vim.option.OptionValue(key=OWNER_EXTRA_CONFIG, value="k8s-prod"),
                               vim.option.OptionValue(key="disk.EnableUUID", value="TRUE")],
        "guest.toolsRunningStatus": "guestToolsRunning",
        "guest.net": [vim.vm.GuestInfo.NicInfo(ipAddress=["172.16.50.11", "fe80::1"])],
    }  # fmt: skip
    vm = live_vm(vim.VirtualMachine("vm-7"), props, owner_key=101)
    assert (vm.owner, vm.owner_in_extra_config, vm.hardware_version, vm.disk_gib) == ("k8s-prod", "k8s-prod", 21, 40)
    assert vm.tools_running and vm.ip_addresses == ("172.16.50.11", "fe80::1") and vm.owned_by("k8s-prod")
    assert vm.extra_config == {OWNER_EXTRA_CONFIG: "k8s-prod", "disk.EnableUUID": "TRUE"}
    assert live_vm(vim.VirtualMachine("vm-7"), props, owner_key=None).owner is None


NODE = Machine("k8s-prod-cp-1", "control-plane", "172.16.50.11", 4, 8192, 60,
               {"guestinfo.metadata": "H4sI…", "guestinfo.metadata.encoding": "gzip+base64"})


def placement(network: LiveNetwork, template: LiveVm) -> Placement:
    def entity(ref: Any) -> Entity:
        return Entity(ref._moId, type(ref).__name__, ref._moId, None, {}, ref)

    return Placement(entity(vim.Datacenter("dc-1")), entity(vim.ClusterComputeResource("domain-c1")),
                     entity(vim.Datastore("datastore-1")), entity(vim.ResourcePool("resgroup-1")), network,
                     LiveFolder(("k8s",), entity(vim.Folder("group-1")), ()), template)


TEMPLATE = replace(READY, disks=(LiveDisk(2000, "Hard disk 1", 40 * GIB_KIB, "pvscsi", devices()[3]),),
                   nics=(LiveNic(4000, "nic", "vmxnet3", "00:50:56:aa:bb:cc", None, devices()[4]),))


@pytest.mark.parametrize(("network", "backing"), [
    (LiveNetwork("seg", "dvportgroup-9", "distributed", switch_uuid="50 2a", portgroup_key="dvportgroup-9"),
     "DistributedVirtualPortBackingInfo"),
    (LiveNetwork("seg", "network-9", "opaque", opaque_id="ls-1", opaque_type="nsx.LogicalSwitch"),
     "OpaqueNetworkBackingInfo"),
    (LiveNetwork("seg", "network-9", "standard", ref=vim.Network("network-9")), "NetworkBackingInfo"),
])  # fmt: skip
def test_the_clone_spec_carries_size_nic_guestinfo_uuid_and_marker(network: LiveNetwork, backing: str) -> None:
    spec = clone_spec(placement(network, TEMPLATE), NODE, "k8s-prod")
    assert (spec.powerOn, spec.template) == (False, False)
    assert (spec.location.datastore._moId, spec.location.pool._moId) == ("datastore-1", "resgroup-1")
    assert (spec.config.numCPUs, spec.config.memoryMB) == (4, 8192)
    assert {o.key: o.value for o in spec.config.extraConfig} == {
        **NODE.guestinfo, "disk.EnableUUID": "TRUE", OWNER_EXTRA_CONFIG: "k8s-prod"}
    # the disk is grown by a reconfigure after the clone, never in the CloneSpec (see clone_spec: vcsim)
    [nic] = (c.device for c in spec.config.deviceChange)
    assert type(nic.backing).__name__.rsplit(".", 1)[-1] == backing and nic.addressType == "generated"
    assert nic.connectable.startConnected
    assert TEMPLATE.disks[0].device.capacityInKB == 40 * GIB_KIB  # the template's device objects stay as read
    if network.kind == "distributed":
        assert (nic.backing.port.switchUuid, nic.backing.port.portgroupKey) == ("50 2a", "dvportgroup-9")
    assert nic_backing(network).__class__ is type(nic.backing)


SIZED = replace(TEMPLATE, is_template=False, cpus=4, memory_mib=8192, extra_config=dict(NODE.guestinfo),
                disks=(LiveDisk(2000, "d", 60 * GIB_KIB, "pvscsi", devices()[3]),),
                nics=(LiveNic(4000, "nic", "vmxnet3", "00:50:56:aa:bb:cc", "dvportgroup-7", devices()[4]),))
SEGMENT = LiveNetwork("seg", "dvportgroup-7", "distributed", switch_uuid="50 2a", portgroup_key="dvportgroup-7")
OTHER = LiveNetwork("other", "dvportgroup-8", "distributed", switch_uuid="50 2a", portgroup_key="dvportgroup-8")


@pytest.mark.parametrize(("vm", "network", "fields"), [
    (SIZED, None, None),
    (SIZED, SEGMENT, None),
    (replace(SIZED, cpus=2), SEGMENT, {"numCPUs": 4}),
    (replace(TEMPLATE, extra_config=dict(NODE.guestinfo)), None, {"numCPUs": 4, "memoryMB": 8192, "disk": 60 * GIB_KIB}),
    (SIZED, OTHER, {"nic": "dvportgroup-8"}),  # the NIC moves in place (edit of its backing)
    (replace(SIZED, nics=()), SEGMENT, {"nic-add": "dvportgroup-7"}),
    (replace(SIZED, extra_config={"guestinfo.metadata": "old"}), None, {"guestinfo": set(NODE.guestinfo)}),
    (replace(SIZED, extra_config={"guestinfo.metadata": "old"}, power_state="poweredOn"), None, None),
])  # fmt: skip
def test_size_spec_changes_only_what_differs(vm: LiveVm, network: LiveNetwork | None, fields: dict | None) -> None:
    spec = size_spec(vm, NODE, network)
    if fields is None:
        assert spec is None
        return
    assert spec.numCPUs == fields.get("numCPUs") and spec.memoryMB == fields.get("memoryMB")
    changes = spec.deviceChange or []
    assert [c.device.capacityInKB for c in changes if isinstance(c.device, vim.vm.device.VirtualDisk)] == (
        [fields["disk"]] if "disk" in fields else [])
    nics = [c for c in changes if isinstance(c.device, vim.vm.device.VirtualEthernetCard)]
    if "nic" in fields or "nic-add" in fields:
        [nic] = nics
        assert nic.operation == ("add" if "nic-add" in fields else "edit")
        assert nic.device.backing.port.portgroupKey == fields.get("nic", fields.get("nic-add"))
        assert SIZED.nics[0].device.backing.port.portgroupKey == "dvportgroup-7"  # the read device is not changed
    else:
        assert nics == []
    assert {o.key for o in spec.extraConfig or []} == fields.get("guestinfo", set())


@pytest.mark.parametrize(("fault", "expected"), [
    (vim.fault.DuplicateName(name="k8s-prod-cp-1", object=vim.VirtualMachine("vm-9"), msg="*types.DuplicateName"),
     "DuplicateName: 'k8s-prod-cp-1' already exists (vm-9)"),
    (vim.fault.NoPermission(privilegeId="VirtualMachine.Provisioning.Clone", object=vim.Folder("group-v3")),
     "NoPermission: missing privilege VirtualMachine.Provisioning.Clone on group-v3"),
    (vim.fault.InvalidPowerState(existingState="poweredOn", requestedState="poweredOff"),
     "InvalidPowerState: the VM is poweredOn, the operation needs it poweredOff"),
    (vim.fault.NoDiskSpace(msg="Insufficient disk space on datastore 'vsanDatastore'.\n"),
     "NoDiskSpace: Insufficient disk space on datastore 'vsanDatastore'."),
    (vim.fault.InvalidLogin(), "InvalidLogin: wrong user name or password"),
    (vim.fault.VimFault(), "VimFault"),
    (TimeoutError("timed out"), "TimeoutError: timed out"),
])  # fmt: skip
def test_vcenter_faults_read_as_one_line(fault: Any, expected: str) -> None:
    assert describe_fault(fault) == expected


@pytest.mark.parametrize(("server", "expected"), [
    ("vcenter.example.com", ("vcenter.example.com", 443)),
    ("vcenter.example.com:8443", ("vcenter.example.com", 8443)),
    ("https://vcenter.example.com/sdk", ("vcenter.example.com", 443)),
    ("127.0.0.1:34601", ("127.0.0.1", 34601)),
    ("[fd00::5]:443", ("fd00::5", 443)),
])  # fmt: skip
def test_server_addresses(server: str, expected: tuple[str, int]) -> None:
    assert parse_server(server) == expected


def test_an_invalid_port_is_one_line() -> None:
    with pytest.raises(ProviderError, match=r"^vsphere.server 'vc:99999' has an invalid port$"):
        parse_server("vc:99999")


def test_trust_settings_make_the_tls_context(tmp_path: Path) -> None:
    warnings: list[str] = []
    default = tls_context(Tls(), server="vc", warn=warnings.append)
    assert default.verify_mode == ssl.CERT_REQUIRED and default.check_hostname
    pinned = tls_context(Tls(thumbprint="AB:" * 31 + "CD"), server="vc", warn=warnings.append)
    assert isinstance(pinned, _PinnedContext) and pinned.pin == "ab" * 31 + "cd"
    assert warnings == []
    insecure = tls_context(Tls(insecure=True), server="vc", warn=warnings.append)
    assert insecure.verify_mode == ssl.CERT_NONE
    assert warnings == ["vCenter vc: TLS certificate verification is OFF (vsphere.tls.insecure); anyone on the path "
                        "can read the vCenter password — set vsphere.tls.thumbprint or ca_file"]
    with pytest.raises(ProviderError, match=r"^vsphere.tls.ca_file .*/missing.pem: cannot load it"):
        tls_context(Tls(ca_file=tmp_path / "missing.pem"), server="vc", warn=warnings.append)
