"""The lab's real nodes: one for every node VM that is powered on in the vCenter simulator.

When a VM boots (nsxkube.lab.guest), its node starts on the lab's bridge with the address from the
VM's guestinfo, runs the VM's cloud-init (nsxkube.lab.nodes.cloud_init) and reports its BIOS UUID as
its DMI product UUID; only then do VMware Tools report the VM running with that address, as a real
guest would. Powering the VM off stops the node (its files stay, like a disk); deleting the VM
removes the node and its files. The bridge carries the segment's gateway address, so nsxkube on
this machine reaches the nodes, the API VIP and LoadBalancer addresses the way an admin network would.

Each node has a thread of its own for its whole life: the node's first process is started from it
and is told to end with it (PR_SET_PDEATHSIG), so a lab that dies takes its nodes along.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nsxkube.lab.guest import BootedVm
from nsxkube.lab.nodes import cloud_init, runtime
from nsxkube.render.bridge_cni import CONFLIST as BRIDGE_CONFLIST

NODES_DIR = "nodes"
KNOWN_HOSTS = "known_hosts"
INSTANCE_ID_FILE = "/var/lib/cloud/data/instance-id"


@dataclass
class _Keeper:
    vm: BootedVm
    thread: threading.Thread
    stop: threading.Event
    node: runtime.Node | None = None
    state: str = "booting"  # booting | running | failed | halted


class NodeFleet:
    def __init__(self, lab_dir: Path, programs: dict[str, Path], *, log: Callable[[str], None],
                 sandbox_image: str = runtime.PAUSE_IMAGE_DEFAULT) -> None:
        self.dir = lab_dir / NODES_DIR
        self.known_hosts = lab_dir / KNOWN_HOSTS
        self.programs = programs
        self.sandbox_image = sandbox_image
        self.log = log
        self.net: runtime.NodeNetwork | None = None
        self.keepers: dict[str, _Keeper] = {}
        self._lock = threading.Lock()
        self._pod_cidrs: dict[str, str] = {}  # node → its pod CIDR, once its CNI is configured
        self._routes: dict[str, set[tuple[str, str]]] = {}  # node ("" = this machine) → (cidr, via) it has
        self._extra_addresses: dict[str, tuple[str, ...]] = {}
        shutil.rmtree(self.dir, ignore_errors=True)  # a new lab's vCenter has no VMs: nor has it nodes
        self.dir.mkdir(parents=True)
        self.known_hosts.write_text("")
        self.known_hosts.chmod(0o600)

    # ---- the guest's hooks ---------------------------------------------------------------------

    def start_guest(self, vm: BootedVm, ready: Callable[[], None]) -> None:
        with self._lock:
            keeper = _Keeper(vm, threading.Thread(target=lambda: self._keep(vm.name, ready), name=f"node-{vm.name}",
                                                  daemon=True), threading.Event())
            self.keepers[vm.name] = keeper
        keeper.thread.start()

    def halt(self, vm: BootedVm) -> None:
        keeper = self.keepers.get(vm.name)
        if keeper is not None:
            keeper.stop.set()
            keeper.thread.join(timeout=60)

    def gone(self, vm: BootedVm) -> None:
        self.halt(vm)
        with self._lock:
            self.keepers.pop(vm.name, None)
            shutil.rmtree(self.dir / vm.name, ignore_errors=True)
            self._forget_host_key(vm.address)
        self.log(f"node {vm.name}: removed with its VM")

    def close(self) -> list[str]:
        """Stops every node and removes the bridge: nothing of the nodes keeps running."""
        for keeper in list(self.keepers.values()):
            keeper.stop.set()
        for keeper in list(self.keepers.values()):
            keeper.thread.join(timeout=60)
        problems = runtime.teardown(self.net) if self.net is not None else []
        self.net = None
        return problems

    def summary(self) -> dict[str, dict[str, str]]:
        """name → address, state and pod CIDR (once its CNI is configured): DIR/nodes.json."""
        return {name: {"address": k.vm.address, "state": k.state, "pod_cidr": self._pod_cidrs.get(name, ""),
                       "also_holds": " ".join(self._extra_addresses.get(name, ()))}
                for name, k in sorted(self.keepers.items())}

    def sync_addresses(self) -> None:
        """Which node holds which address besides its own (the API VIP with keepalived or kube-vip,
        LoadBalancer addresses with MetalLB): read from each node's NIC."""
        found = {}
        for name, keeper in list(self.keepers.items()):
            if keeper.state != "running" or keeper.node is None:
                continue
            result = subprocess.run(["ip", "-n", keeper.node.netns, "-4", "-o", "addr", "show", "dev",
                                     runtime.NODE_NIC], capture_output=True, text=True, check=False)
            addresses = [line.split()[3].split("/")[0] for line in result.stdout.splitlines() if len(line.split()) > 3]
            found[name] = tuple(a for a in addresses if a != keeper.vm.address)
        self._extra_addresses = found

    # ---- pod routes: what the network does for the bridge CNI ---------------------------------

    def sync_pod_routes(self) -> None:
        """Each node's pod CIDR (from the conflist its bridge CNI wrote) routed via that node, on
        every other node and on this machine — what the lab's network does in place of Cilium's
        tunnels (sandbox.cni bridge), so pods on different nodes reach each other."""
        running = {name: k.node for name, k in self.keepers.items() if k.state == "running" and k.node is not None}
        for name, node in running.items():
            cidr = pod_cidr_of(node.path(BRIDGE_CONFLIST))
            if cidr:
                self._pod_cidrs[name] = cidr
        for name in [n for n in self._pod_cidrs if n not in running]:
            cidr = self._pod_cidrs.pop(name)
            if self.net is not None:
                _ip("route", "del", cidr)
            for applied in self._routes.values():
                applied.difference_update({r for r in applied if r[0] == cidr})
        if self.net is None:
            return
        for where in ["", *running]:  # "": this machine
            applied = self._routes.setdefault(where, set())
            for owner, cidr in self._pod_cidrs.items():
                if owner == where or owner not in running:
                    continue
                route = (cidr, str(running[owner].address))
                if route in applied:
                    continue
                if where:
                    ok = _ip("-n", running[where].netns, "route", "replace", cidr, "via", route[1])
                else:
                    ok = _ip("route", "replace", cidr, "via", route[1], "dev", self.net.bridge)
                if ok:
                    applied.add(route)

    # ---- one node's life ------------------------------------------------------------------------

    def _keep(self, name: str, ready: Callable[[], None]) -> None:
        keeper = self.keepers[name]
        began = time.monotonic()
        try:
            keeper.node = self._boot(keeper.vm)
        except Exception as err:  # the VM stays "booting" in vCenter: apply's wait names it
            keeper.state = "failed"
            self.log(f"node {name}: did not boot: {type(err).__name__}: {err}")
            if keeper.node is None and self.net is not None:
                stray = next((n for n in self.net.nodes if n.name == name), None)
                if stray is not None:
                    runtime.halt_node(self.net, stray)
            return
        keeper.state = "running"
        self.log(f"node {name} ({keeper.vm.address}) up in {time.monotonic() - began:.1f} s")
        try:
            ready()
        except Exception as err:
            self.log(f"node {name}: reporting VMware Tools failed: {type(err).__name__}: {err}")
        keeper.stop.wait()
        assert self.net is not None
        self._routes.pop(name, None)
        problems = runtime.halt_node(self.net, keeper.node)
        keeper.state = "halted"
        self.log(f"node {name}: stopped" + (f" ({'; '.join(problems)})" if problems else ""))

    def _network(self, config: cloud_init.NetworkConfig) -> runtime.NodeNetwork:
        interface = ipaddress.IPv4Interface(config.address)
        with self._lock:
            if self.net is None:
                self.net = runtime.open_network(self.dir, subnet=str(interface.network), tag=f"nxl{os.getpid()}",
                                                mtu=config.mtu or 1500, gateway=config.gateway)
                self.log(f"node bridge {self.net.bridge}: {interface.network}, the machine at {self.net.gateway}")
            elif interface.ip not in self.net.subnet:
                raise ValueError(f"{interface.ip} is outside the lab's node network {self.net.subnet}")
            return self.net

    def _boot(self, vm: BootedVm) -> runtime.Node:
        config = cloud_init.network_config(vm.meta_data)
        net = self._network(config)
        instance_id = vm.name  # nsxkube's meta-data sets instance-id to the VM name
        node = runtime.prepare_node(net, vm.name, ipaddress.IPv4Address(vm.address), programs=self.programs,
                                    sandbox_image=self.sandbox_image, root_login=False,
                                    product_uuid=vm.bios_uuid or None, reuse=True)
        first_boot = _read(node.path(INSTANCE_ID_FILE)) != instance_id
        started = time.time()
        applied = cloud_init.Applied()
        if first_boot:
            applied = cloud_init.apply_files(cloud_init.user_data_of(vm.user_data), node.path)
            node.path("/etc/resolv.conf").write_text(cloud_init.resolv_conf(config))
        self._remember_host_key(node)
        runtime.start_node(node)
        if config.gateway:
            node.run("ip", "route", "replace", "default", "via", config.gateway, check=True)
        output = [f"Cloud-init (nsxkube lab) {'first boot' if first_boot else 'boot'} of {vm.name}", *applied.log]
        for command in applied.runcmd:
            result = node.run("sh", "-c", command, timeout=600)
            output.append(f"runcmd: {command} (exit {result.returncode})\n{result.stdout}{result.stderr}".rstrip())
            if result.returncode != 0:
                applied.errors.append(f"runcmd: {command} exited {result.returncode}")
        output += [f"ERROR {e}" for e in applied.errors]
        with node.path(cloud_init.OUTPUT_LOG).open("a") as handle:
            handle.write("\n".join(output) + "\n")
        status_dir = Path(f"/proc/{node.pid}/root{cloud_init.STATUS_DIR}")
        status_dir.mkdir(parents=True, exist_ok=True)
        for file, text in cloud_init.status_files(applied, started, time.time()).items():
            (status_dir / file).write_text(text)
        node.path(INSTANCE_ID_FILE).parent.mkdir(parents=True, exist_ok=True)
        node.path(INSTANCE_ID_FILE).write_text(instance_id + "\n")
        return node

    # ---- known_hosts: the host keys of the nodes, for ssh.known_hosts_file --------------------

    def _remember_host_key(self, node: runtime.Node) -> None:
        with self._lock:
            self._forget_host_key(str(node.address))
            with self.known_hosts.open("a") as handle:
                handle.write(f"{node.address} {node.host_key_public}\n")

    def _forget_host_key(self, address: str) -> None:
        lines = [line for line in self.known_hosts.read_text().splitlines() if line.split(" ", 1)[0] != address]
        self.known_hosts.write_text("".join(f"{line}\n" for line in lines))


def pod_cidr_of(conflist: Path) -> str | None:
    """The subnet of the host-local IPAM in a bridge conflist, or None (no file yet, or not ours)."""
    try:
        data = json.loads(conflist.read_text())
        for plugin in data.get("plugins") or ():
            for ranges in (plugin.get("ipam") or {}).get("ranges") or ():
                for item in ranges:
                    if "/" not in str(item["subnet"]):
                        return None  # an address, not a pod CIDR
                    return str(ipaddress.IPv4Network(item["subnet"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return None


def _ip(*args: str) -> bool:
    return subprocess.run(["ip", *args], capture_output=True, check=False).returncode == 0


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
