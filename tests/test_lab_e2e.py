"""The README's main job, end to end, exactly as a user runs it: `scripts/lab` as a subprocess
against the lab (vcsim + the NSX emulator, preset tanzu). What it built is read back through the
simulators' own APIs; a second run changes nothing; `lab down` leaves no process and no port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nsxkube.lab import state as files
from nsxkube.lab.nsx import NsxEmulator
from nsxkube.lab.process import pid_alive, port_is_open
from nsxkube.providers.nsx.client import ClientConfig, NsxClient, parse_manager
from nsxkube.spec.model import Tls
from tests.support.binaries import REPO_ROOT, require_binary

pytestmark = pytest.mark.slow

CLUSTER = "k8s-lab"
SEGMENT = "/infra/segments/k8s-nodes-segment"
NODES = [f"{CLUSTER}-cp-{i}" for i in (1, 2, 3)] + [f"{CLUSTER}-worker-{i}" for i in (1, 2)]
WRITES = ("PATCH", "PUT", "POST", "DELETE")


def main_job(lab_dir: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(REPO_ROOT / "scripts" / "lab")], capture_output=True, text=True, timeout=900,
                            env={**os.environ, "NSXKUBE_LAB_DIR": str(lab_dir)})
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def nsx_client(lab_dir: Path) -> NsxClient:
    nsx, secrets = files.read_state(lab_dir).service("nsx"), files.read_env(lab_dir)  # type: ignore[union-attr]
    return NsxClient(ClientConfig(parse_manager(f"{nsx.host}:{nsx.port}"), Tls(thumbprint=nsx.thumbprint), "basic",
                                  secrets["NSX_USER"], secrets["NSX_PASSWORD"]))


def vcenter_vms(lab_dir: Path) -> dict[str, dict[str, Any]]:
    """Every VM in the simulator: power state, guest address, and the port group of its NIC."""
    from pyVmomi import vim

    from nsxkube.providers.vsphere.connection import connect

    vcenter, secrets = files.read_state(lab_dir).service("vcenter"), files.read_env(lab_dir)  # type: ignore[union-attr]
    session = connect(vcenter.host, vcenter.port, secrets["VSPHERE_USER"], secrets["VSPHERE_PASSWORD"],
                      Tls(thumbprint=vcenter.thumbprint), warn=lambda m: None)
    try:
        groups = {pg._moId: props["name"] for pg, props in session.read_view(
            session.content.rootFolder, {vim.dvs.DistributedVirtualPortgroup: ["name"]})}
        found = {}
        for _vm, props in session.read_view(session.content.rootFolder, {vim.VirtualMachine: [
                "name", "runtime.powerState", "guest.ipAddress", "config.hardware.device", "config.template"]}):
            nics = [d for d in props.get("config.hardware.device") or () if isinstance(d, vim.vm.device.VirtualEthernetCard)]
            found[props["name"]] = {"power": props["runtime.powerState"], "ip": props.get("guest.ipAddress"),
                                    "template": props.get("config.template"),
                                    "network": groups.get(nics[0].backing.port.portgroupKey) if nics else None}
        return found
    finally:
        session.close()


def requests(lab_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (lab_dir / files.REQUEST_LOG).read_text().splitlines()]


def foreign_revisions(client: NsxClient) -> dict[str, int]:
    """The revision of every object the tanzu preset planted, as the API shows it now."""
    fresh = NsxEmulator("tanzu")  # not started: only its store, to know which paths the preset holds
    return {path: (client.get_object(path) or {}).get("_revision", -1)
            for path in fresh.paths("/infra") if "/ports/" not in path and path.count("/") <= 5}


def test_the_main_job_builds_on_the_lab_changes_nothing_the_second_time_destroys_and_lab_down_cleans_up(tmp_path: Path) -> None:
    require_binary("vcsim")
    lab_dir = tmp_path / "lab"
    nsxkube = [sys.executable, "-m", "nsxkube"]
    try:
        first = main_job(lab_dir)
        out = first.stdout
        for title in ("start the lab", "check cluster.yaml", "discover the existing NSX", "plan", "apply:",
                      "validate", "render", "summary", "timings"):
            assert f"==> {title}" in out
        assert "not in the lab:" in out and "bootstrap phase" in out  # said plainly, not pretended
        lab = files.read_state(lab_dir)
        assert lab is not None and (lab_dir / "nsx-report.md").read_text().count("Tanzu") > 0
        assert (lab_dir / "bundle" / "README.md").is_file()
        from xml.etree import ElementTree as ET

        junit = ET.parse(lab_dir / "validate.xml").getroot()  # validate of NSX and vCenter: all green
        assert (junit.get("tests"), junit.get("failures")) == ("5", "0"), ET.tostring(junit, encoding="unicode")
        assert "5 passed, 0 failed" in out[out.index("==> validate"):]
        summary_text = out[out.index("==> summary"):]
        for shown in (f"{lab_dir / 'nsx-report.md'}", f"bundle: {lab_dir / 'bundle'}", "last apply (",
                      "network ", "machines ", "network-bindings ", "next, on real vSphere + NSX:"):
            assert shown in summary_text, shown
        exported = files.read_env(lab_dir)  # lab.env: where the simulators listen, and how to trust them
        assert exported["NSXKUBE_LAB_VCENTER_URL"] == f"{lab.service('vcenter').url}/sdk"
        assert exported["NSXKUBE_LAB_NSX_URL"] == lab.service("nsx").url
        assert exported["NSXKUBE_LAB_NSX_THUMBPRINT"] == lab.service("nsx").thumbprint

        secrets = {v for k, v in files.read_env(lab_dir).items() if k.endswith("PASSWORD")}
        leaking = [str(p) for p in lab_dir.rglob("*") if p.is_file() and p.name != files.ENV_FILE
                   and any(secret.encode() in p.read_bytes() for secret in secrets)]
        assert leaking == []  # not in cluster.yaml, logs, the request log, the report or the bundle
        processes = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
        assert not [secret for secret in secrets if secret in processes]

        client = nsx_client(lab_dir)
        tanzu_before = foreign_revisions(client)
        segment = client.get_object(SEGMENT)
        assert segment is not None and segment["subnets"][0]["network"] == "172.16.51.0/24"
        assert {"scope": "nsxkube/cluster", "tag": CLUSTER} in segment["tags"]
        ports = client.list_objects(f"{SEGMENT}/ports")
        assert len(ports) == len(NODES)
        bound = {p["display_name"].split("/")[0]: {b["ip_address"] for b in p.get("address_bindings") or ()}
                 for p in ports}
        assert "172.16.51.10" in bound[f"{CLUSTER}-cp-1"] and "172.16.51.10" not in bound[f"{CLUSTER}-worker-1"]
        assert {"172.16.51.14", "172.16.51.200", "172.16.51.250"} <= bound[f"{CLUSTER}-worker-1"]
        vms = client.list_objects("/infra/realized-state/enforcement-points/default/virtual-machines")
        assert sorted(v["display_name"] for v in vms if {"scope": "nsxkube/cluster", "tag": CLUSTER} in v["tags"]) == NODES
        first_apply = [r for r in requests(lab_dir) if r["method"] == "PATCH"]
        assert [r["path"] for r in first_apply] == ["/policy/api/v1/infra"]  # one hierarchical call

        seen = vcenter_vms(lab_dir)
        assert {n: (seen[n]["power"], seen[n]["network"]) for n in NODES} == {
            n: ("poweredOn", "k8s-nodes-segment") for n in NODES}
        assert [seen[n]["ip"] for n in NODES] == [f"172.16.51.{11 + i}" for i in range(len(NODES))]
        assert seen["ubuntu-2404-k8s-template"]["template"] is True

        summary = json.loads(subprocess.run([*nsxkube, "lab", "summary", "--dir", str(lab_dir), "-o", "json"],
                                            capture_output=True, text=True, timeout=60, check=True).stdout)
        assert summary["nsx_owned"]["Segment"] == 1 and summary["nsx_vms_tagged"] == len(NODES)
        assert summary["port_bindings"] == 3 * 53 + 2 * 52  # node + VIP (control planes) + 51 pool addresses
        assert [vm["name"] for vm in summary["vms"] if vm["owned"]] == NODES

        logged = len(requests(lab_dir))
        second = main_job(lab_dir)
        assert "lab already running" in second.stdout
        record = json.loads((lab_dir / ".nsxkube" / CLUSTER / "last-apply.json").read_text())
        assert [p["name"] for p in record["phases"]] == ["network", "machines", "network-bindings"]
        assert {c["action"] for p in record["phases"] for c in p["changes"]} == {"unchanged"}
        writes = [r for r in requests(lab_dir)[logged:] if r["method"] in WRITES
                  and not r["path"].startswith("/api/session/")]  # log in and out: not changes
        assert writes == []  # not even the cluster lease: it is taken only before a write
        assert sorted(n for n in vcenter_vms(lab_dir) if n.startswith(CLUSTER)) == NODES  # no second copy
        assert foreign_revisions(client) == tanzu_before  # Tanzu / NCP objects untouched

        # apply without --phase: every phase in order, stopping at the first that fails (bootstrap:
        # the lab's VMs answer no SSH) with the command to resume
        env = {**os.environ, **files.read_env(lab_dir)}
        everything = subprocess.run([*nsxkube, "apply", str(lab_dir / "cluster.yaml")], capture_output=True,
                                    text=True, timeout=300, env=env)
        assert everything.returncode == 1
        assert "✗ bootstrap" in everything.stdout and "on port 22" in everything.stdout
        said = " ".join(everything.stdout.split())  # the terminal reporter wraps long lines
        assert f"run `nsxkube apply {lab_dir / 'cluster.yaml'} --phase bootstrap` again" in said
        record = json.loads((lab_dir / ".nsxkube" / CLUSTER / "last-apply.json").read_text())
        assert [(p["name"], p["ok"]) for p in record["phases"]] == [
            ("network", True), ("machines", True), ("network-bindings", True), ("bootstrap", False)]

        # destroy: VMs first; NSX drops their ports (the lab tells it, as vCenter would), then the rest
        destroyed = subprocess.run([*nsxkube, "destroy", str(lab_dir / "cluster.yaml"), "--yes"], capture_output=True,
                                   text=True, timeout=300, env=env)
        assert destroyed.returncode == 0, destroyed.stdout[-3000:]
        assert client.get_object(SEGMENT) is None
        assert not [n for n in vcenter_vms(lab_dir) if n.startswith(CLUSTER)]
        assert foreign_revisions(client) == tanzu_before
        client.close()
    finally:
        down = subprocess.run([*nsxkube, "lab", "down", "--dir", str(lab_dir)], capture_output=True, text=True,
                              timeout=60)
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    for service in lab.services:
        assert not pid_alive(service.pid), f"{service.name} (pid {service.pid}) still runs"
        assert not port_is_open(service.host, service.port), f"{service.name} still listens on {service.port}"
    assert not (lab_dir / files.STATE_FILE).exists() and not (lab_dir / files.ENV_FILE).exists()
    again = subprocess.run([*nsxkube, "lab", "down", "--dir", str(lab_dir)], capture_output=True, text=True, timeout=60)
    assert (again.returncode, again.stdout.strip()) == (0, f"no lab is running in {lab_dir}")
