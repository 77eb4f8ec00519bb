"""`nsxkube apply` killed with -9 while a write is in flight, then run again, on the lab: in the
middle of the NSX hierarchical PATCH, of a VM clone task, and of a port-binding update. Each time
the next apply converges (no duplicate, nothing orphaned, the plan after it is a no-op), and the
lease the killed run left behind does not stand in the way of the next run that writes (a run with
nothing to write takes no lease at all). Also the lease over the real CLI: a
run elsewhere holds the cluster → apply is refused with one line; --force-unlock takes it over.

The fault points are the simulators' own: the NSX emulator holds the chosen call before carrying
it out (it commits with nobody listening, as a manager does when its client dies), and vcsim keeps
its CloneVm tasks running (`nsxkube lab up --vcenter-task-delay`)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nsxkube.lab import state as files
from nsxkube.providers.nsx.lease import lease_path
from tests.support.binaries import require_binary
from tests.test_lab_e2e import NODES, SEGMENT, nsx_client, vcenter_vms

pytestmark = pytest.mark.slow

CLUSTER = "k8s-lab"
NSXKUBE = [sys.executable, "-m", "nsxkube"]
HOLD_SECONDS = 3.0


class Lab:
    def __init__(self, lab_dir: Path) -> None:
        self.dir, self.spec = lab_dir, str(lab_dir / files.CLUSTER_FILE)
        self.env = {**os.environ, **files.read_env(lab_dir)}
        nsx = files.read_state(lab_dir).service("nsx")  # type: ignore[union-attr]
        self.control = httpx.Client(base_url=f"https://{nsx.host}:{nsx.port}/_emulator",
                                    auth=(self.env["NSX_USER"], self.env["NSX_PASSWORD"]), verify=False, timeout=10)

    def nsxkube(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*NSXKUBE, *args], capture_output=True, text=True, timeout=300, env=self.env)

    def start_apply(self, phases: str) -> subprocess.Popen[str]:
        return subprocess.Popen([*NSXKUBE, "apply", self.spec, "--phase", phases], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=self.env)

    def hold(self, **body: Any) -> int:
        """Makes the emulator hold the next matching call; returns how many holds had started before."""
        started = self.control.get("/holds").json()["started"]
        self.control.post("/hold", json={"seconds": HOLD_SECONDS, **body}).raise_for_status()
        return int(started)

    def holds_started(self) -> int:
        return int(self.control.get("/holds").json()["started"])

    def record(self) -> dict[str, Any]:
        return json.loads((self.dir / ".nsxkube" / CLUSTER / "last-apply.json").read_text())


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def kill(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGKILL)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    return out


def converges(lab: Lab, phases: str, *, writes: bool = True) -> dict[str, Any]:
    """apply again: it succeeds — when it has something to write, taking over the dead run's lease at
    once — and a plan after it is a no-op."""
    again = lab.nsxkube("apply", lab.spec, "--phase", phases)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    said = " ".join(again.stdout.split())
    if not writes:  # nothing to do: read-only, the dead run's lease is left for a run that writes
        assert "took over" not in said and nsx_object(lab, lease_path(CLUSTER)) is not None
        return lab.record()
    assert "took over the cluster lease" in said and "its process on this machine is gone" in said
    plan = lab.nsxkube("plan", lab.spec, "--phase", phases, "-o", "json")
    assert plan.returncode == 0, plan.stderr
    actions = {c["action"] for p in json.loads(plan.stdout)["phases"] for c in p["changes"]}
    assert actions == {"unchanged"}, plan.stdout[-2000:]
    assert nsx_object(lab, lease_path(CLUSTER)) is None  # released at the end of the run
    return lab.record()


def nsx_object(lab: Lab, path: str) -> dict[str, Any] | None:
    client = nsx_client(lab.dir)
    try:
        return client.get_object(path)
    finally:
        client.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    require_binary("vcsim")
    lab_dir = tmp_path_factory.mktemp("interrupted") / "lab"
    up = subprocess.run([*NSXKUBE, "lab", "up", "--dir", str(lab_dir), "--vcenter-task-delay", "CloneVm=4000"],
                        capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield Lab(lab_dir)
    finally:
        subprocess.run([*NSXKUBE, "lab", "down", "--dir", str(lab_dir)], capture_output=True, timeout=60)


def test_1_a_run_elsewhere_holds_the_cluster_and_force_unlock_takes_it_over(lab: Lab) -> None:
    now = dt.datetime.now(dt.UTC)
    holder = "nsxkube apply by ops@jump-host (pid 1)"
    tags = [{"scope": "nsxkube/cluster", "tag": CLUSTER}, {"scope": "nsxkube/lease", "tag": holder},
            {"scope": "nsxkube/lease-since", "tag": now.isoformat(timespec="seconds")},
            {"scope": "nsxkube/lease-expires", "tag": (now + dt.timedelta(minutes=10)).isoformat(timespec="seconds")}]
    lab.control.post("/plant", json={"path": lease_path(CLUSTER), "body": {
        "resource_type": "Group", "display_name": "nsxkube lease", "expression": [], "tags": tags}}).raise_for_status()
    refused = lab.nsxkube("apply", lab.spec, "--phase", "network")
    assert refused.returncode == 5
    line = refused.stderr.strip()
    assert "\n" not in line and line.startswith(f"error: cluster {CLUSTER} is locked by {holder} since"), line
    assert "--force-unlock" in line
    assert nsx_object(lab, SEGMENT) is None  # nothing was changed

    forced = lab.nsxkube("apply", lab.spec, "--phase", "network", "--force-unlock")
    assert forced.returncode == 0, forced.stdout[-3000:]
    assert "forced (--force-unlock)" in " ".join(forced.stdout.split())
    assert nsx_object(lab, SEGMENT) is not None and nsx_object(lab, lease_path(CLUSTER)) is None
    destroyed = lab.nsxkube("destroy", lab.spec, "--phase", "network", "--yes")
    assert destroyed.returncode == 0, destroyed.stdout[-3000:]


def test_2_killed_in_the_middle_of_the_hierarchical_patch(lab: Lab) -> None:
    before = lab.hold(method="PATCH", path_prefix="/policy/api/v1/infra")
    apply = lab.start_apply("network")
    wait_for(lambda: lab.holds_started() > before, "the PATCH to reach NSX")
    kill(apply)
    time.sleep(HOLD_SECONDS + 1)  # NSX carries the PATCH out with nobody listening
    assert nsx_object(lab, SEGMENT) is not None
    record = converges(lab, "network", writes=False)  # the PATCH is done: nothing left to write
    assert {c["action"] for c in record["phases"][0]["changes"]} == {"unchanged"}  # nothing left to send


def test_3_killed_in_the_middle_of_the_vm_clones(lab: Lab) -> None:
    apply = lab.start_apply("machines")
    assert apply.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while not any("cloning" in line for line in seen):  # the clone tasks run 4 s each in vcsim
        assert time.monotonic() < deadline, "".join(seen)
        seen.append(apply.stdout.readline())
    kill(apply)
    time.sleep(5)  # vcsim finishes the clones it started
    record = converges(lab, "machines")
    assert sorted(c["name"] for c in record["phases"][0]["changes"] if c["kind"] == "vm") == sorted(NODES)
    vms = vcenter_vms(lab.dir)
    assert sorted(n for n in vms if n.startswith(CLUSTER)) == sorted(NODES)  # each node once: no duplicate
    assert all(vms[n]["power"] == "poweredOn" for n in NODES)
    assert set(vms) == {*NODES, "ubuntu-2404-k8s-template"}  # nothing orphaned


def test_4_killed_in_the_middle_of_a_port_binding_update(lab: Lab) -> None:
    before = lab.hold(method="PUT", path_prefix=f"/policy/api/v1{SEGMENT}/ports/")
    apply = lab.start_apply("network-bindings")
    wait_for(lambda: lab.holds_started() > before, "a port update to reach NSX")
    kill(apply)
    time.sleep(HOLD_SECONDS + 1)
    converges(lab, "network-bindings")
    client = nsx_client(lab.dir)
    try:
        ports = client.list_objects(f"{SEGMENT}/ports")
    finally:
        client.close()
    assert len(ports) == len(NODES)
    for port in ports:
        bindings = [(b["ip_address"], b["mac_address"]) for b in port.get("address_bindings") or ()]
        assert bindings and len(bindings) == len(set(bindings)), port["display_name"]  # none twice


def test_5_destroy_leaves_nothing(lab: Lab) -> None:
    destroyed = lab.nsxkube("destroy", lab.spec, "--yes")
    assert destroyed.returncode == 0, destroyed.stdout[-3000:]
    assert not [n for n in vcenter_vms(lab.dir) if n.startswith(CLUSTER)]
    assert nsx_object(lab, SEGMENT) is None and nsx_object(lab, lease_path(CLUSTER)) is None
