"""A stand-in for the guest OS of node VMs on vcsim (the simulator runs no guests).

Once a VM is powered on, it does what cloud-init and open-vm-tools would do on a real node: reads
``guestinfo.metadata`` from the VM (gzip+base64, as delivered), takes the static address from its
network config, and reports VMware Tools running with that address — through vcsim's
``SET.guest.*`` extraConfig hooks, i.e. through the vCenter API. The address therefore comes from
what nsxkube delivered, not from the design. ``on_boot`` and ``on_gone`` let the lab tell NSX that
a VM joined or left (what vCenter reports to NSX on real infrastructure); ``on_halt`` is called when
a booted VM is powered off or deleted (the lab stops its node then).
"""

from __future__ import annotations

import base64
import gzip
import io
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

VM_PROPERTIES = ["name", "runtime.powerState"]


GUESTINFO_LIMIT = 1 << 20
"""Decoded guestinfo the lab's guest reads: cloud-init's data for a node is a few KiB; anything a
VM carries beyond 1 MiB (a gzip bomb, say) is refused rather than inflated."""


def decode_guestinfo(value: str, encoding: str) -> str:
    raw = base64.b64decode(value)
    if encoding == "gzip+base64":
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            raw = stream.read(GUESTINFO_LIMIT + 1)
    if len(raw) > GUESTINFO_LIMIT:
        raise ValueError(f"guestinfo over {GUESTINFO_LIMIT >> 20} MiB decoded")
    return raw.decode("utf-8")


def address_from_metadata(meta_data: str) -> str | None:
    network = (yaml.safe_load(meta_data) or {}).get("network") or {}
    for nic in (network.get("ethernets") or {}).values():
        for address in nic.get("addresses") or ():
            return str(address).split("/", 1)[0]
    return None


@dataclass(frozen=True)
class BootedVm:
    name: str
    moref: str
    instance_uuid: str
    address: str
    mac: str | None  # of the first NIC
    portgroup_key: str | None  # the distributed port group the first NIC is on
    bios_uuid: str = ""  # config.uuid: what the guest reads as its DMI product UUID
    meta_data: str = ""  # guestinfo.metadata, decoded
    user_data: str = ""  # guestinfo.userdata, decoded ("" when the VM has none)


class GuestSimulator:
    """Background thread: every powered-on VM named in ``names`` (or, with ``names=None``, every
    VM that carries ``guestinfo.metadata``) gets its guest "booted" once."""

    def __init__(self, session: Any, names: set[str] | None = None, *, interval: float = 0.05,
                 on_boot: Callable[[BootedVm], None] | None = None,
                 on_gone: Callable[[BootedVm], None] | None = None,
                 on_halt: Callable[[BootedVm], None] | None = None,
                 start_guest: Callable[[BootedVm, Callable[[], None]], None] | None = None) -> None:
        self.session = session
        self.names = set(names) if names is not None else None
        self.interval = interval
        self.on_boot = on_boot
        self.on_gone = on_gone
        self.on_halt = on_halt
        self.start_guest = start_guest  # None: the guest "runs" at once; else it calls back when it does
        self.booted: dict[str, str] = {}  # name → address ("" when the guest could not boot)
        self.errors: list[str] = []
        self._seen: dict[str, BootedVm | None] = {}  # moref → what booted (None: not a node VM)
        self._halted: dict[str, BootedVm] = {}  # moref → a booted VM powered off since: gone when deleted
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="guest-simulator", daemon=True)

    def __enter__(self) -> GuestSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception as err:  # the simulator may be going away; keep the reason for the report
                self.errors.append(f"{type(err).__name__}: {err}")

    def poll(self) -> None:
        """One round: boot the VMs that powered on, report the ones that are gone."""
        from pyVmomi import vim

        rows = self.session.read_view(self.session.content.rootFolder, {vim.VirtualMachine: VM_PROPERTIES})
        present, running = set(), set()
        for vm, props in rows:
            present.add(vm._moId)
            name = props.get("name")
            if props.get("runtime.powerState") == "poweredOn":
                running.add(vm._moId)
            if vm._moId in self._seen or props.get("runtime.powerState") != "poweredOn":
                continue
            if self.names is not None and name not in self.names:
                continue
            self._seen[vm._moId] = self._boot(vm, name)
        for moref in [m for m in self._seen if m not in running]:
            halted = self._seen.pop(moref)  # powered on again later, it boots again
            if halted is None:
                continue
            if self.on_halt is not None:
                self.on_halt(halted)
            self._halted[moref] = halted
        for moref in [m for m in self._halted if m not in present or m in self._seen]:
            gone = self._halted.pop(moref)
            if moref not in present and self.on_gone is not None:
                self.on_gone(gone)

    def report_running(self, vm: Any, address: str) -> None:
        """VMware Tools running with ``address``, through vcsim's SET.guest.* extraConfig hooks."""
        from pyVmomi import vim

        spec = vim.vm.ConfigSpec(extraConfig=[
            vim.option.OptionValue(key="SET.guest.ipAddress", value=address),
            vim.option.OptionValue(key="SET.guest.toolsRunningStatus", value="guestToolsRunning"),
        ])
        vm.ReconfigVM_Task(spec=spec)

    def _boot(self, vm: Any, name: str) -> BootedVm | None:
        from pyVmomi import vim

        props = self.session.read_objects([vm], ["config.extraConfig", "config.instanceUuid", "config.uuid",
                                                 "config.hardware.device"])[vm._moId]
        extra = {o.key: o.value for o in props.get("config.extraConfig") or ()}
        meta = extra.get("guestinfo.metadata")
        if meta is None:
            if self.names is not None:
                self.errors.append(f"{name}: no guestinfo.metadata")
                self.booted[name] = ""
            return None
        meta_data = decode_guestinfo(meta, extra.get("guestinfo.metadata.encoding", "base64"))
        user = extra.get("guestinfo.userdata")
        user_data = decode_guestinfo(user, extra.get("guestinfo.userdata.encoding", "base64")) if user else ""
        address = address_from_metadata(meta_data)
        if address is None:
            self.errors.append(f"{name}: no address in the network config")
            self.booted[name] = ""
            return None
        nic = next((d for d in props.get("config.hardware.device") or () if isinstance(d, vim.vm.device.VirtualEthernetCard)),
                   None)
        port = getattr(getattr(nic, "backing", None), "port", None)
        booted = BootedVm(name, vm._moId, str(props.get("config.instanceUuid") or ""), address,
                          getattr(nic, "macAddress", None), getattr(port, "portgroupKey", None),
                          str(props.get("config.uuid") or ""), meta_data, user_data)
        if self.start_guest is None:
            self.report_running(vm, address)
        else:  # VMware Tools report the address once the guest is up, as on a real VM
            self.start_guest(booted, lambda: self.report_running(vm, address))
        self.booted[name] = address
        if self.on_boot is not None:
            self.on_boot(booted)
        return booted
