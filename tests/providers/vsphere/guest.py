"""A stand-in for the guest OS of node VMs on vcsim (the simulator runs no guests).

Once a VM is powered on, it does what cloud-init and open-vm-tools would do on a real node:
reads ``guestinfo.metadata`` from the VM (gzip+base64, as delivered), takes the static address
from its network config, and reports VMware Tools running with that address — through vcsim's
``SET.guest.*`` extraConfig hooks, i.e. through the vCenter API, never by mocking the client.
The address therefore comes from what nsxkube delivered, not from the design.
"""

from __future__ import annotations

import base64
import gzip
import threading
from typing import Any

import yaml


def decode_guestinfo(value: str, encoding: str) -> str:
    raw = base64.b64decode(value)
    return (gzip.decompress(raw) if encoding == "gzip+base64" else raw).decode("utf-8")


def address_from_metadata(meta_data: str) -> str | None:
    network = (yaml.safe_load(meta_data) or {}).get("network") or {}
    for nic in (network.get("ethernets") or {}).values():
        for address in nic.get("addresses") or ():
            return str(address).split("/", 1)[0]
    return None


class GuestSimulator:
    """Background thread: every powered-on VM named in ``names`` gets its guest "booted" once."""

    def __init__(self, session: Any, names: set[str], *, interval: float = 0.05) -> None:
        self.session = session
        self.names = set(names)
        self.interval = interval
        self.booted: dict[str, str] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="guest-simulator", daemon=True)

    def __enter__(self) -> GuestSimulator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        from pyVmomi import vim

        content = self.session.content
        while not self._stop.wait(self.interval):
            try:
                rows = self.session.read_view(content.rootFolder, {vim.VirtualMachine: ["name", "runtime.powerState"]})
                for vm, props in rows:
                    name = props.get("name")
                    if name not in self.names or name in self.booted or props.get("runtime.powerState") != "poweredOn":
                        continue
                    extra = self.session.read_objects([vm], ["config.extraConfig"])[vm._moId]
                    self._boot(vm, name, {o.key: o.value for o in extra.get("config.extraConfig") or ()})
            except Exception as err:
                self.errors.append(f"{type(err).__name__}: {err}")

    def _boot(self, vm: Any, name: str, extra: dict[str, str]) -> None:
        from pyVmomi import vim

        meta = extra.get("guestinfo.metadata")
        if meta is None:
            self.errors.append(f"{name}: no guestinfo.metadata")
            self.booted[name] = ""
            return
        address = address_from_metadata(decode_guestinfo(meta, extra.get("guestinfo.metadata.encoding", "base64")))
        if address is None:
            self.errors.append(f"{name}: no address in the network config")
            self.booted[name] = ""
            return
        spec = vim.vm.ConfigSpec(extraConfig=[
            vim.option.OptionValue(key="SET.guest.ipAddress", value=address),
            vim.option.OptionValue(key="SET.guest.toolsRunningStatus", value="guestToolsRunning"),
        ])
        vm.ReconfigVM_Task(spec=spec)
        self.booted[name] = address
