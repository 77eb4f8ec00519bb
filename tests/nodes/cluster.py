"""Kubernetes on the test nodes: the rendered bundle, its test-only overrides, the test CNI, checks.

What is real: the files ``nsxkube render`` writes (``kubeadm/*.yaml``, ``scripts/*.sh``), copied to
the nodes with scp and run over SSH exactly as the runbook says; kubeadm, the kubelet, containerd,
runc, etcd and the control-plane components (Go-built, in images assembled without a registry).

What this machine forces (cgroup driver, cgroup v1, a skipped preflight check) is declared in the
test design's ``sandbox:`` section (:data:`SANDBOX`), which the product renders. What is still
changed for a test, and why, is :func:`overrides` (the API endpoint of milestones a and c) and an
extra skipped ImagePull check while an image cannot be built: applied to the rendered YAML only
(never to the product's code) and printed by the tests.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nsxkube.design import Design
from nsxkube.render.bundle import render_bundle
from nsxkube.render.cloud_init import NODE_NIC
from nsxkube.render.files import to_yaml_documents
from nsxkube.render.kubeadm import API_PORT, INIT_PATH, JOIN_CONTROL_PLANE_PATH, JOIN_WORKER_PATH
from tests.nodes.node import Node, NodeNetwork
from tests.support.specs import example_design

# The nodes' bridge: a range the tests own (tests/support/hosts.py uses 10.213.7-10.0/24).
NODE_SUBNET = "10.213.20.0/24"
API_VIP = "10.213.20.10"


# What this machine forces, declared in the design's `sandbox:` section (shown by `check`, rendered
# into kubeadm's files by the product) instead of edits to the rendered files.
SANDBOX = {
    "reason": "test nodes are network namespaces on one machine whose PID 1 is not systemd, on cgroup v1",
    "kubelet_cgroup_driver": "cgroupfs",  # no systemd cgroup manager for the kubelet or runc
    "allow_cgroup_v1": True,  # kubelet 1.35 refuses to start on cgroup v1 unless told so (KEP-5573)
    # kubeadm 1.35's cgroups validator fails on v1 ('… you must also explicitly skip this validation')
    "ignore_preflight_errors": ["SystemVerification"],
}


def test_design(control_planes: int = 3, workers: int = 2, provider: str = "kube-vip") -> Design:
    """The example cluster.yaml moved onto the test bridge, with the machine's constraints declared in
    its `sandbox:` section; everything else as `nsxkube init` writes it."""
    return example_design({
        "sandbox": SANDBOX,
        "network.api_vip_provider": provider,
        "nsx.segment.cidr": NODE_SUBNET,
        "nsx.segment.gateway": "10.213.20.1",
        "network.api_vip": API_VIP,
        "network.loadbalancer_pools": [{"name": "default", "range": "10.213.20.200-10.213.20.250"}],
        "nodes.address_range": "10.213.20.11-10.213.20.99",
        "nodes.control_planes.count": control_planes,
        "nodes.workers.count": workers,
    })


@dataclass(frozen=True)
class Override:
    file: str
    change: str
    why: str


KUBEADM_FILES = (INIT_PATH, JOIN_CONTROL_PLANE_PATH, JOIN_WORKER_PATH)

# The only edits left to the rendered files, and only for the milestones that run no VIP holder (a
# and c): b and d use the rendered VIP endpoint, and run the rendered files unchanged.
ENDPOINT_OVERRIDES = (
    Override(INIT_PATH, "ClusterConfiguration.controlPlaneEndpoint: <first control plane>:6443 (rendered: the VIP)",
             "this milestone runs no VIP holder (milestones b and d do, with the rendered endpoint)"),
    Override(f"{JOIN_CONTROL_PLANE_PATH}, {JOIN_WORKER_PATH}",
             "discovery.bootstrapToken.apiServerEndpoint: <first control plane>:6443 (rendered: the VIP)",
             "same reason: no VIP"),
)


def _documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def apply_overrides(path: str, text: str, endpoint: str | None, extra_ignored: Sequence[str] = ()) -> str:
    """The rendered kubeadm file with the endpoint overrides (milestones a and c) and any extra
    preflight checks to skip (ImagePull, when an image cannot be built here) applied."""
    documents = _documents(text)
    for document in documents:
        kind = document.get("kind")
        if kind in ("InitConfiguration", "JoinConfiguration"):
            registration = document.setdefault("nodeRegistration", {})
            if extra_ignored:
                registration["ignorePreflightErrors"] = [*registration.get("ignorePreflightErrors", []),
                                                         *extra_ignored]
            if kind == "JoinConfiguration" and endpoint:
                document["discovery"]["bootstrapToken"]["apiServerEndpoint"] = endpoint
        elif kind == "ClusterConfiguration" and endpoint:
            document["controlPlaneEndpoint"] = endpoint
    return to_yaml_documents(documents)


def overrides(vip: bool) -> tuple[Override, ...]:
    return () if vip else ENDPOINT_OVERRIDES


def write_node_bundle(design: Design, directory: Path, *, extra_ignored: Sequence[str] = (), vip: bool = False) -> Path:
    """Writes what `nsxkube render` writes for the nodes (kubeadm/, keepalived/, scripts/), overrides applied;
    with ``vip`` the rendered API endpoint (the VIP) stays."""
    endpoint = None if vip else f"{design.ip_plan.control_planes[0].address}:{API_PORT}"
    for rendered in render_bundle(design):
        if not rendered.path.startswith(BUNDLE_DIRS):
            continue
        target = directory / rendered.path
        target.parent.mkdir(parents=True, exist_ok=True)
        content = rendered.content
        if rendered.path in KUBEADM_FILES:
            content = apply_overrides(rendered.path, content, endpoint, extra_ignored)
        target.write_text(content)
        target.chmod(rendered.mode)
    return directory


# ---- running the runbook's commands over SSH ----------------------------------------------------

NODE_WORKDIR = "nsxkube"  # the runbook copies kubeadm/ and scripts/ (and keepalived/) to ~/nsxkube on each node
BUNDLE_DIRS = ("kubeadm/", "keepalived/", "scripts/")


def copy_bundle(node: Node, bundle: Path) -> None:
    result = node.ssh(f"mkdir -p {NODE_WORKDIR}")
    if result.returncode == 0:
        parts = [bundle / d.rstrip("/") for d in BUNDLE_DIRS if (bundle / d).is_dir()]
        result = node.scp(parts, f"{NODE_WORKDIR}/")
    if result.returncode != 0:
        raise RuntimeError(f"copying the bundle to {node.name} failed: {result.stderr.strip()}")


def bootstrap(node: Node, timeout: float = 900) -> tuple[dict[str, str], str]:
    """`cd nsxkube && bash scripts/bootstrap-control-plane.sh` over SSH: the join values and the log."""
    result = node.ssh(f"cd {NODE_WORKDIR} && bash scripts/bootstrap-control-plane.sh", timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"bootstrap-control-plane.sh on {node.name} exited {result.returncode}:\n"
                           f"{result.stderr[-6000:]}\n--- kubelet:\n{node.journal('kubelet', 30)}")
    values = dict(line.split("=", 1) for line in result.stdout.splitlines() if line.startswith("NSXKUBE_"))
    return values, result.stderr


def join(node: Node, script: str, join_values: dict[str, str], timeout: float = 900) -> str:
    """The runbook's join: the values go to the script's environment through stdin, never argv."""
    inner = f'bash -c "set -a && . /dev/stdin && set +a && exec bash {script}"'
    result = node.ssh(f"cd {NODE_WORKDIR} && {inner}", input="".join(f"{k}={v}\n" for k, v in join_values.items()),
                      timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{script} on {node.name} exited {result.returncode}:\n{result.stderr[-6000:]}\n"
                           f"--- kubelet:\n{node.journal('kubelet', 30)}")
    return result.stderr


# ---- the API from the host ----------------------------------------------------------------------


@dataclass
class Kubectl:
    binary: Path
    kubeconfig: Path

    def __call__(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([str(self.binary), "--kubeconfig", str(self.kubeconfig), *args],
                                capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)

    def nodes(self) -> dict[str, dict]:
        return {n["metadata"]["name"]: n for n in self.json("get", "nodes")["items"]}


def fetch_admin_kubeconfig(node: Node, target: Path) -> Path:
    """`ssh cp 'cat /etc/kubernetes/admin.conf' > kubeconfig` (umask 077), as the runbook does."""
    result = node.ssh("cat /etc/kubernetes/admin.conf")
    if result.returncode != 0:
        raise RuntimeError(f"reading admin.conf on {node.name}: {result.stderr.strip()}")
    target.touch(mode=0o600)
    target.write_text(result.stdout)
    return target


def node_ready(node: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))


def wait_for(what: str, probe, timeout: float, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as error:
            last = error
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s (last: {str(last)[-1500:]})")


# ---- test CNI: bridge + host-local from Debian's containernetworking-plugins ---------------------

CNI_CONFIG = "/etc/cni/net.d/10-nsxkube-test.conflist"


def cni_config(pod_cidr: str, mtu: int) -> str:
    """One bridge per node (cni0) with the node's pod CIDR; no masquerade (nothing leaves the bridge)."""
    return json.dumps({
        "cniVersion": "1.0.0",
        "name": "nsxkube-test",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False, "hairpinMode": True, "mtu": mtu,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": pod_cidr}]], "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }, indent=2) + "\n"


def install_test_cni(net: NodeNetwork, kubectl: Kubectl, names: Iterable[str] | None = None) -> dict[str, str]:
    """Writes each node's CNI config from its spec.podCIDR (allocated by the controller-manager)
    and routes every node's pod CIDR via that node on all the others. Returns name → pod CIDR."""
    wanted = set(names) if names is not None else {n.name for n in net.nodes}
    cidrs = wait_for("pod CIDRs allocated to " + ", ".join(sorted(wanted)), lambda: (
        lambda found: found if wanted <= set(found) else None)(
        {name: n["spec"]["podCIDR"] for name, n in kubectl.nodes().items() if n.get("spec", {}).get("podCIDR")}),
        timeout=180)
    by_name = {n.name: n for n in net.nodes}
    for name in wanted:
        by_name[name].path(CNI_CONFIG).write_text(cni_config(cidrs[name], net.mtu))
    for node in net.nodes:
        for name, cidr in cidrs.items():
            if name == node.name or name not in by_name:
                continue
            node.run("ip", "route", "replace", cidr, "via", str(by_name[name].address), "dev", NODE_NIC, check=True)
    return {name: cidrs[name] for name in wanted}


# ---- measurements -------------------------------------------------------------------------------


def _memory_stat(path: Path) -> dict[str, int]:
    stats = {}
    for line in (path / "memory.stat").read_text().splitlines():
        key, value = line.split()
        stats[key] = int(value)
    return stats


def node_memory(node: Node) -> tuple[int, int]:
    """(resident, page cache) bytes charged to a node's cgroup, its containers included."""
    for path in node.cgroups:
        if (path / "memory.stat").exists():
            stats = _memory_stat(path)
            # cgroup v1 (total_rss/total_cache) or v2 (anon/file)
            return (stats.get("total_rss", stats.get("rss", stats.get("anon", 0))),
                    stats.get("total_cache", stats.get("cache", stats.get("file", 0))))
    return 0, 0


@dataclass
class Measurement:
    name: str
    seconds: float = 0.0
    peak_rss: int = 0
    peak_cache: int = 0
    final_rss: int = 0
    machine_peak_used: int = 0
    samples: int = 0
    steps: list[tuple[str, float]] = field(default_factory=list)

    def step(self, label: str, since: float) -> None:
        self.steps.append((label, time.monotonic() - since))

    def report(self) -> str:
        mib = 1024 * 1024
        steps = ", ".join(f"{label} {seconds:.0f} s" for label, seconds in self.steps)
        return (f"[{self.name}] {self.seconds:.0f} s; nodes' resident memory: peak {self.peak_rss / mib:.0f} MiB, "
                f"end {self.final_rss / mib:.0f} MiB (page cache peak {self.peak_cache / mib:.0f} MiB); "
                f"machine memory in use at peak {self.machine_peak_used / mib:.0f} MiB"
                + (f"\n    steps: {steps}" if steps else ""))


def _machine_used() -> int:
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        info[key] = int(value.split()[0]) * 1024
    return info["MemTotal"] - info["MemAvailable"]


@contextmanager
def measured(name: str, net: NodeNetwork, interval: float = 1.0, say=print) -> Iterator[Measurement]:
    """Times a block and samples the memory of all nodes (resident and cache) once a second;
    ``say`` gets the report line at the end (also when the block fails)."""
    measurement = Measurement(name)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rss = cache = 0
            for node in net.nodes:
                node_rss, node_cache = node_memory(node)
                rss, cache = rss + node_rss, cache + node_cache
            measurement.peak_rss = max(measurement.peak_rss, rss)
            measurement.peak_cache = max(measurement.peak_cache, cache)
            measurement.machine_peak_used = max(measurement.machine_peak_used, _machine_used())
            measurement.final_rss = rss
            measurement.samples += 1
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    start = time.monotonic()
    thread.start()
    try:
        yield measurement
    finally:
        stop.set()
        thread.join(timeout=5)
        measurement.seconds = time.monotonic() - start
        say("\n" + measurement.report())


def address_of(design: Design, name: str) -> ipaddress.IPv4Address:
    return next(n.address for n in design.ip_plan.nodes if n.name == name)


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false", "no")
