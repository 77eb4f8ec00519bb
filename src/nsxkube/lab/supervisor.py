"""The lab's background process (`python -m nsxkube.lab.supervisor DIR`, started by `lab up`):
runs vcsim and the NSX emulator, prepares the template, writes the lab files, then keeps the two
simulators talking (nsxkube.lab.bridge) and the node guests "booting" (nsxkube.lab.guest) until
SIGTERM — when it stops both and removes DIR/lab.json."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from nsxkube.lab import state as files

if TYPE_CHECKING:
    from nsxkube.lab.bridge import NsxVcenterBridge
    from nsxkube.lab.guest import BootedVm, GuestSimulator
    from nsxkube.lab.nodes.fleet import NodeFleet
    from nsxkube.lab.nsx import NsxEmulator
    from nsxkube.lab.vcsim import VcsimServer

POLL_SECONDS = 0.2
ADDRESS_ROUNDS = 10  # the nodes' extra addresses (VIP, LoadBalancer IPs) are read every 2 s
VCENTER_USER = "administrator@vsphere.local"
NSX_PRESET = "tanzu"
NSX_REALIZATION_DELAY = 0.3


def log(message: str) -> None:
    print(f"{dt.datetime.now(dt.UTC):%H:%M:%S} {message}", flush=True)


def serve(lab_dir: Path, *, vcenter_listen: str, nsx_listen: str, vcenter_task_delay: str = "",
          nodes: bool = False, api_vip_provider: str = "keepalived") -> int:
    from nsxkube.lab.bridge import NsxVcenterBridge
    from nsxkube.lab.cluster_file import CLUSTER_NAME, Endpoint, lab_cluster_yaml, ssh_keypair, with_nodes
    from nsxkube.lab.guest import GuestSimulator
    from nsxkube.lab.nodes.fleet import KNOWN_HOSTS
    from nsxkube.lab.nodes.init import clock_synchronized
    from nsxkube.lab.nodes.setup import IMAGES_FILE
    from nsxkube.lab.nsx import NsxEmulator, parse_listen
    from nsxkube.lab.programs import kubernetes_version
    from nsxkube.lab.template import make_template
    from nsxkube.lab.vcsim import locate_vcsim, start_vcsim
    from nsxkube.providers.vsphere.connection import connect
    from nsxkube.spec.example import example_text
    from nsxkube.spec.model import Tls

    stop = threading.Event()
    fleet: NodeFleet | None = None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)

    nsx_host, nsx_port = parse_listen(nsx_listen)
    emulator = NsxEmulator(NSX_PRESET, realization_delay=NSX_REALIZATION_DELAY, host=nsx_host, port=nsx_port,
                           log_path=lab_dir / files.REQUEST_LOG)
    vcsim = start_vcsim(locate_vcsim(), lab_dir / files.VCSIM_LOG, username=VCENTER_USER,
                        password=secrets.token_urlsafe(15), vms=1, listen=vcenter_listen,
                        extra_args=("-task-delay", vcenter_task_delay) if vcenter_task_delay else ())
    log(f"vCenter simulator ({vcsim.origin}) on {vcsim.base_url}, ready in {vcsim.startup_seconds:.1f} s")
    try:
        emulator.start()
        log(f"NSX emulator (preset {NSX_PRESET}) on {emulator.url}")
        session = connect(vcsim.host, vcsim.port, vcsim.username, vcsim.password,
                          Tls(thumbprint=vcsim.thumbprint_sha256), warn=log, pool_size=4)
        make_template(session, old_simulator=vcsim.old_simulator)
        log("template ubuntu-2404-k8s-template prepared")
        private_key, public_key = ssh_keypair(f"{CLUSTER_NAME}@nsxkube-lab")
        key_file = (lab_dir / files.SSH_KEY).resolve()
        files.write_private(key_file, private_key)
        files.write_private(key_file.with_suffix(".pub"), public_key + "\n")
        vcenter = Endpoint(vcsim.host, vcsim.port, vcsim.thumbprint_sha256)
        nsx = Endpoint(emulator.host, emulator.port, emulator.thumbprint or "")
        cluster_yaml = lab_cluster_yaml(example_text(CLUSTER_NAME), vcenter=vcenter, nsx=nsx, public_key=public_key,
                                        private_key_file=key_file)
        if nodes:
            fleet = _start_fleet(lab_dir)
            cluster_yaml = with_nodes(cluster_yaml, kubernetes_version=kubernetes_version(),
                                      image_bundle=(lab_dir / IMAGES_FILE).resolve(),
                                      known_hosts=(lab_dir / KNOWN_HOSTS).resolve(),
                                      clock_synchronized=clock_synchronized(), api_vip_provider=api_vip_provider)
        (lab_dir / files.CLUSTER_FILE).write_text(cluster_yaml, encoding="utf-8")
        files.write_env(lab_dir, exported(vcsim, emulator))
        bridge = NsxVcenterBridge(emulator, session)
        guests = GuestSimulator(session, None, on_boot=bridge.vm_booted,
                                on_gone=bridge.vm_gone if fleet is None else _both(bridge.vm_gone, fleet.gone),
                                on_halt=None if fleet is None else fleet.halt,
                                start_guest=None if fleet is None else fleet.start_guest)
        lab = files.LabState(
            pid=os.getpid(), started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), cluster=CLUSTER_NAME,
            services=(files.Service("vcenter", vcsim.host, vcsim.port, vcsim.thumbprint_sha256, vcsim.origin,
                                    vcsim.process.pid),
                      files.Service("nsx", emulator.host, emulator.port, emulator.thumbprint or "",
                                    f"preset {NSX_PRESET}", os.getpid())), nodes=nodes)
        files.write_private(lab_dir / files.STATE_FILE, lab.to_json())
        log("lab ready" + (" (node VMs get real nodes)" if nodes else ""))
        return _keep_in_sync(stop, vcsim, bridge, guests, fleet, lab_dir)
    finally:
        (lab_dir / files.STATE_FILE).unlink(missing_ok=True)
        if fleet is not None:
            problems = fleet.close()
            log("nodes stopped" + (f": {'; '.join(problems)}" if problems else ""))
        emulator.stop()
        vcsim.stop()
        log("lab stopped")


def _start_fleet(lab_dir: Path) -> NodeFleet:
    from nsxkube.lab import programs
    from nsxkube.lab.nodes.fleet import NodeFleet

    installed = {}
    for name in programs.NODE_PROGRAMS:  # `lab up --nodes` built them before starting this process
        program = programs.locate(name)
        if program.path is None:
            raise RuntimeError(program.reason)
        installed[name] = program.path
    return NodeFleet(lab_dir, installed, log=log)


def _both(first: Callable[[BootedVm], None], second: Callable[[BootedVm], None]) -> Callable[[BootedVm], None]:
    def call(vm: BootedVm) -> None:
        first(vm)
        second(vm)
    return call


def _keep_in_sync(stop: threading.Event, vcsim: VcsimServer, bridge: NsxVcenterBridge, guests: GuestSimulator,
                  fleet: NodeFleet | None, lab_dir: Path) -> int:
    reported: set[str] = set()
    steps: list[Callable[[], None]] = [bridge.sync_segments, guests.poll]
    if fleet is not None:
        last: dict[str, dict[str, str]] = {}
        rounds = 0

        def report_nodes() -> None:
            nonlocal last, rounds
            fleet.sync_pod_routes()
            rounds += 1
            if rounds % ADDRESS_ROUNDS == 0:
                fleet.sync_addresses()
            now = fleet.summary()
            if now != last:
                files.write_private(lab_dir / files.NODES_FILE, json.dumps(now, indent=2) + "\n")
                last = now

        steps.append(report_nodes)
    while not stop.wait(POLL_SECONDS):
        if vcsim.process.poll() is not None:
            log(f"the vCenter simulator exited with {vcsim.process.returncode}; stopping the lab")
            return 1
        for step in steps:
            try:
                step()
            except Exception as err:  # keep serving; the same failure is logged once
                line = f"{type(err).__name__}: {err}"
                if line not in reported:
                    reported.add(line)
                    log(f"lab sync: {line}")
        for error in guests.errors:
            log(f"guest: {error}")
        guests.errors.clear()
    return 0


def exported(vcsim: VcsimServer, emulator: NsxEmulator) -> dict[str, str]:
    """lab.env: the credential variables the lab's cluster.yaml names (throwaway values), where the
    simulators listen with their certificate thumbprints, and NSX_MANAGER for the bundle's nsx/apply.sh."""
    return {
        "VSPHERE_USER": vcsim.username, "VSPHERE_PASSWORD": vcsim.password,
        "NSX_USER": emulator.username, "NSX_PASSWORD": emulator.password,
        "NSXKUBE_LAB_VCENTER_URL": vcsim.url, "NSXKUBE_LAB_VCENTER_THUMBPRINT": vcsim.thumbprint_sha256,
        "NSXKUBE_LAB_NSX_URL": emulator.url, "NSXKUBE_LAB_NSX_THUMBPRINT": emulator.thumbprint or "",
        "NSX_MANAGER": f"{emulator.host}:{emulator.port}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nsxkube.lab.supervisor")
    parser.add_argument("lab_dir", type=Path)
    parser.add_argument("--vcenter-listen", default="127.0.0.1:0")
    parser.add_argument("--nsx-listen", default="127.0.0.1:0")
    parser.add_argument("--vcenter-task-delay", default="")
    parser.add_argument("--nodes", action="store_true", help="a real node for every node VM that powers on")
    parser.add_argument("--api-vip-provider", default="keepalived", choices=("keepalived", "kube-vip"))
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        return serve(args.lab_dir.resolve(), vcenter_listen=args.vcenter_listen, nsx_listen=args.nsx_listen,
                     vcenter_task_delay=args.vcenter_task_delay, nodes=args.nodes,
                     api_vip_provider=args.api_vip_provider)
    except Exception as err:  # the parent shows this line from lab.log
        log(f"lab failed after {time.monotonic() - started:.1f} s: {type(err).__name__}: {err}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
