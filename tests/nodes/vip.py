"""The API VIP on the test nodes: who holds it, what the host sees of it, faults (milestones b and d).

The host is the client: it sits on the test bridge (the gateway address), so it reaches the VIP
the way a machine on the segment does, learning the holder's MAC by ARP. Everything here asks
the nodes (``ip`` in their namespaces, the keepalived journal, the kube-vip Lease) or the host
(``ip neigh``, HTTPS to ``/readyz``); nothing stands in for the VIP holder.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import re
import signal
import ssl
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from nsxkube.design import Design
from nsxkube.lab.nodes.images import locate_kube_vip
from nsxkube.render.cloud_init import NODE_NIC
from nsxkube.render.kubeadm import API_PORT, KUBE_VIP_LEASE, KUBE_VIP_METRICS_PORT
from tests.nodes.cluster import API_VIP, Kubectl, wait_for
from tests.nodes.node import KEEPALIVED, Node, NodeNetwork, cgroup_pids

TRIALS = 3
FAILOVER_DEADLINE = 90.0


def require_provider(design: Design) -> None:
    """keepalived must be installed (CI installs it: scripts/setup); kube-vip runs when its prebuilt binary is there."""
    if design.api_vip_provider == "keepalived":
        if not Path(KEEPALIVED).exists():
            reason = f"keepalived is not installed ({KEEPALIVED}): apt-get install keepalived (scripts/setup does)"
            if os.environ.get("NSXKUBE_REQUIRE_TEST_BIN") == "1":
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)
        return
    binary, where = locate_kube_vip(design.versions.kube_vip)
    if binary is None:
        pytest.skip(where)


# ---- what the nodes and the host see ------------------------------------------------------------


def has_vip(node: Node, device: str = NODE_NIC) -> bool:
    result = node.run("ip", "-4", "-o", "addr", "show", "dev", device)
    return f"inet {API_VIP}/" in result.stdout


def holders(net: NodeNetwork, among: list[Node] | None = None) -> list[Node]:
    return [n for n in (among or net.nodes) if has_vip(n)]


def nic_mac(node: Node) -> str:
    return node.run("cat", f"/sys/class/net/{NODE_NIC}/address", check=True).stdout.strip()


def host_neighbor(net: NodeNetwork, address: str) -> str | None:
    """The MAC the host's ARP cache holds for ``address`` on the test bridge (None: no entry)."""
    out = subprocess.run(["ip", "neigh", "show", address, "dev", net.bridge], capture_output=True, text=True,
                         check=False).stdout
    match = re.search(r"lladdr ([0-9a-f:]{17})", out)
    return match.group(1) if match else None


def readyz(address: str, ca: Path | None = None, timeout: float = 1.0) -> bool:
    """GET https://ADDRESS:6443/readyz from the host answers ``ok`` (verified against the cluster CA
    when given; anonymous, as kubeadm's system:public-info-viewer allows)."""
    context = ssl.create_default_context(cafile=str(ca)) if ca else ssl._create_unverified_context()
    connection = http.client.HTTPSConnection(address, API_PORT, context=context, timeout=timeout)
    try:
        connection.request("GET", "/readyz")
        response = connection.getresponse()
        return response.status == 200 and response.read().strip() == b"ok"
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def cluster_ca(kubeconfig: Path, target: Path) -> Path:
    config = yaml.safe_load(kubeconfig.read_text())
    target.write_bytes(base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]))
    return target


def kubeconfig_server(kubeconfig: Path) -> str:
    return yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]


def etcd_healthy(node: Node) -> int:
    """How many etcd members answer healthy, asked from ``node`` (``endpoint health --cluster``)."""
    result = node.run("etcdctl", "--endpoints=https://127.0.0.1:2379", "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
                      "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
                      "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key", "--command-timeout=3s",
                      "endpoint", "health", "--cluster", "-w", "json", timeout=60)
    try:
        return sum(1 for entry in json.loads(result.stdout or "[]") if entry.get("health"))
    except json.JSONDecodeError:
        return 0


def keepalived_state(node: Node) -> str | None:
    """The last state keepalived logged for the API VIP instance (MASTER, BACKUP, FAULT)."""
    states = re.findall(r"\(api_vip\) Entering (\w+) STATE", node.journal("keepalived", 2000))
    return states[-1] if states else None


def kube_vip_leader(kubectl: Kubectl) -> str | None:
    lease = kubectl.json("-n", "kube-system", "get", "lease", KUBE_VIP_LEASE)
    return lease["spec"].get("holderIdentity") or None


def reported_holder(design: Design, node: Node, kubectl: Kubectl) -> str:
    """What the provider itself says about ``node``: keepalived's state, or the kube-vip Lease's holder."""
    if design.api_vip_provider == "keepalived":
        return f"keepalived on {node.name}: {keepalived_state(node)}"
    return f"Lease {KUBE_VIP_LEASE} held by {kube_vip_leader(kubectl)}"


def holder_is_reported(design: Design, node: Node, kubectl: Kubectl) -> bool:
    if design.api_vip_provider == "keepalived":
        return keepalived_state(node) == "MASTER"
    return kube_vip_leader(kubectl) == node.name


def provider_ready(design: Design, node: Node, kubectl: Kubectl) -> bool:
    """The node's VIP holder runs and could take the VIP over."""
    if design.api_vip_provider == "keepalived":
        return keepalived_state(node) in ("BACKUP", "MASTER")
    pod = kubectl.json("-n", "kube-system", "get", "pod", f"kube-vip-{node.name}")
    return any(s.get("ready") for s in pod["status"].get("containerStatuses", []))


# ---- watching the VIP from the host -------------------------------------------------------------


@dataclass
class VipWatch:
    """Asks ``/readyz`` through the VIP every ``interval`` from the host, in a thread, and keeps the answers."""

    net: NodeNetwork
    address: str
    interval: float = 0.1
    samples: list[tuple[float, bool]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> VipWatch:
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            ok = readyz(self.address, timeout=0.5)
            self.samples.append((time.monotonic() - self.started, ok))
            self._stop.wait(self.interval)

    def until_settled(self, seconds: float = 6.0) -> None:
        """Keeps watching a little after the bootstrap returned: a late removal of the VIP shows here."""
        time.sleep(seconds)

    @property
    def first_up(self) -> float | None:
        return next((t for t, ok in self.samples if ok), None)

    def gaps(self) -> list[tuple[float, float]]:
        """(since the watch started, length) of every stretch without an answer after the first answer."""
        found, down_since, last_ok = [], None, None
        for t, ok in self.samples:
            if ok:
                if down_since is not None and last_ok is not None:
                    found.append((last_ok, t - last_ok))
                down_since, last_ok = None, t
            elif last_ok is not None and down_since is None:
                down_since = t
        if down_since is not None and last_ok is not None:
            found.append((last_ok, self.samples[-1][0] - last_ok))
        return found


# ---- milestone b --------------------------------------------------------------------------------


def check_milestone_b(design: Design, net: NodeNetwork, first: Node, kubectl: Kubectl, ca: Path, watch: VipWatch,
                      join_values: dict[str, str], say) -> None:
    endpoint = f"{API_VIP}:{API_PORT}"
    assert [n.name for n in holders(net)] == [first.name], "the VIP must be on the first control plane's NIC only"
    answer = kubectl("--server", f"https://{endpoint}", "get", "--raw=/readyz").stdout.strip()
    assert answer == "ok", answer
    assert host_neighbor(net, API_VIP) == nic_mac(first), "the host must learn the first control plane's MAC by ARP"
    assert kubeconfig_server(kubectl.kubeconfig) == f"https://{endpoint}"
    assert join_values["NSXKUBE_API_ENDPOINT"] == endpoint
    assert holder_is_reported(design, first, kubectl), reported_holder(design, first, kubectl)
    assert watch.first_up is not None, "the VIP never answered during the bootstrap"
    gaps = watch.gaps()
    assert not gaps, "the API stopped answering through the VIP after it first did: " + ", ".join(
        f"{length:.1f} s from {since:.1f} s" for since, length in gaps)
    say(f"b ({design.api_vip_provider}): the VIP answered {watch.first_up:.1f} s into the bootstrap and never "
        f"stopped ({len(watch.samples)} probes every {watch.interval:.1f} s); {reported_holder(design, first, kubectl)}")


def check_kube_vip_switch(first: Node, watch: VipWatch, say) -> None:
    """Issue 21: the switch from super-admin.conf to admin.conf leaves one kube-vip, serving metrics,
    with no bind error, and the VIP on the NIC only (lo let it go). The watch found no gap (above)."""
    manifest = first.path("/etc/kubernetes/manifests/kube-vip.yaml").read_text()
    assert "/etc/kubernetes/admin.conf" in manifest and "super-admin" not in manifest
    logs = sorted(first.path("/var/log/pods").glob("kube-system_kube-vip-*/kube-vip/*.log"))
    assert logs, "no kube-vip container log"
    bind_errors = [f"{log}: {line}" for log in logs for line in log.read_text(errors="replace").splitlines()
                   if "address already in use" in line]
    assert not bind_errors, "\n".join(bind_errors)
    assert not has_vip(first, "lo"), "the VIP must not stay on lo after the switch"
    metrics = subprocess.run(["curl", "-sf", "--max-time", "3", f"http://{first.address}:{KUBE_VIP_METRICS_PORT}/metrics"],
                             capture_output=True, text=True, check=False)
    assert metrics.returncode == 0 and "kube_vip" in metrics.stdout, "kube-vip serves no metrics after the switch"
    say(f"kube-vip switch: no bind error in the running instance's log ({len(logs)} file(s); the kubelet removes "
        "the init instance's with its Pod), metrics served, the VIP back on the NIC only")


def check_vip_stays(net: NodeNetwork, holder: Node, ca: Path, seconds: float) -> None:
    """For ``seconds``: ``holder`` alone has the VIP and the API answers through it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert [n.name for n in holders(net)] == [holder.name]
        assert readyz(API_VIP, ca, timeout=2.0), "the API stopped answering through the VIP"
        time.sleep(0.5)


def wait_all_ready(design: Design, net: NodeNetwork, ca: Path, kubectl: Kubectl, timeout: float) -> None:
    """Every API server ready on its own address, every etcd member healthy, every VIP holder ready."""
    wait_for("all API servers, etcd members and VIP holders ready", lambda: (
        all(readyz(str(n.address), ca) for n in net.nodes)
        and etcd_healthy(net.nodes[0]) == len(net.nodes)
        and all(provider_ready(design, n, kubectl) for n in net.nodes)
        and len(holders(net)) == 1), timeout=timeout)


# ---- milestone d --------------------------------------------------------------------------------


def terminate(paths: list[Path], grace: float = 10.0) -> None:
    """SIGTERM to every process in the cgroups (the container runtime's stop), SIGKILL after ``grace``."""
    for pid in cgroup_pids(paths):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while cgroup_pids(paths) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in cgroup_pids(paths):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def stop_kubelet_and_containers(node: Node) -> None:
    node.systemctl("stop", "kubelet")
    terminate([path / "kubepods" for path in node.cgroups])


def start_kubelet(node: Node) -> None:
    node.systemctl("start", "kubelet")


def cut_link(node: Node) -> None:
    node.run("ip", "link", "set", NODE_NIC, "down", check=True)


def restore_link(node: Node) -> None:
    node.run("ip", "link", "set", NODE_NIC, "up", check=True)


@dataclass(frozen=True)
class Fault:
    name: str
    apply: Callable[[Node], None]
    restore: Callable[[Node], None]


FAULTS = (
    Fault("kubelet and containers stopped", stop_kubelet_and_containers, start_kubelet),
    Fault("link cut", cut_link, restore_link),
)


def failover_trial(design: Design, net: NodeNetwork, kubectl: Kubectl, ca: Path, fault: Fault, say) -> float:
    """Applies ``fault`` to the VIP holder; returns the seconds until the API first answers through the
    VIP from another control plane; checks quorum and the report of the new holder; restores the old
    holder and waits until all is healthy again (and the VIP did not move back)."""
    (old,) = wait_for("one VIP holder", lambda: (lambda found: found if len(found) == 1 else None)(holders(net)),
                      timeout=60, interval=0.5)
    old_mac = nic_mac(old)
    survivors = [n for n in net.nodes if n is not old]
    # The fault runs in a thread (stopping containers takes seconds): the clock and the probes start with it.
    applying = threading.Thread(target=fault.apply, args=(old,), daemon=True)
    start = time.monotonic()
    applying.start()
    while not (readyz(API_VIP, ca, timeout=0.5) and host_neighbor(net, API_VIP) not in (None, old_mac)):
        assert time.monotonic() - start < FAILOVER_DEADLINE, \
            f"{fault.name} on {old.name}: the API did not answer through the VIP from another node"
        time.sleep(0.05)
    seconds = time.monotonic() - start
    applying.join(timeout=60)
    assert not applying.is_alive(), f"{fault.name} on {old.name} did not finish"

    (new,) = wait_for("one surviving VIP holder", lambda: (lambda found: found if len(found) == 1 else None)(
        holders(net, survivors)), timeout=30, interval=0.5)
    assert host_neighbor(net, API_VIP) == nic_mac(new)
    wait_for(f"{design.api_vip_provider} reports {new.name} as the holder",
             lambda: holder_is_reported(design, new, kubectl), timeout=30, interval=0.5)
    healthy = etcd_healthy(new)
    assert healthy == 2, f"etcd during the fault: {healthy} healthy members, want 2 of 3"
    kubectl("create", "configmap", f"failover-{uuid.uuid4().hex[:8]}")  # a write: etcd has quorum
    report = reported_holder(design, new, kubectl)

    fault.restore(old)
    wait_all_ready(design, net, ca, kubectl, timeout=240)
    assert [n.name for n in holders(net)] == [new.name], "the VIP moved back when the old holder returned"
    say(f"d ({design.api_vip_provider}, {fault.name}): {old.name} → {new.name} in {seconds:.1f} s; {report}; "
        f"etcd 2/3 healthy during the fault, 3/3 after {old.name} came back")
    return seconds


def figures_report(provider: str, figures: dict[str, list[float]]) -> str:
    lines = [f"failover with {provider} (fault → first /readyz ok through the VIP from another node):"]
    for fault, values in figures.items():
        lines.append(f"  {fault}: median {statistics.median(values):.1f} s of {len(values)} "
                     f"({', '.join(f'{v:.1f}' for v in values)})")
    return "\n".join(lines)
