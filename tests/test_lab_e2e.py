"""The README's main job, end to end, exactly as a user runs it: `scripts/lab` as a subprocess
against the lab (vcsim + the NSX emulator, preset tanzu, and a real node for every node VM). What it
built is read back through the simulators' own APIs and the cluster's API through the VIP; a second
run changes nothing; `apply` killed (-9) during kubeadm init, a control-plane join and the worker
joins converges when run again; destroy removes VMs, nodes and NSX objects; `lab down` leaves no
process, port, mount, namespace, link or cgroup behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from nsxkube.lab import state as files
from nsxkube.lab.nodes import runtime
from nsxkube.lab.nodes.setup import programs_needed
from nsxkube.lab.nsx import NsxEmulator
from nsxkube.lab.process import pid_alive, port_is_open
from nsxkube.providers.nsx.client import ClientConfig, NsxClient, parse_manager
from nsxkube.spec.model import Tls
from tests.support.binaries import REPO_ROOT, require_binaries, require_binary

pytestmark = pytest.mark.slow

CLUSTER = "k8s-lab"
SEGMENT = "/infra/segments/k8s-nodes-segment"
NODES = [f"{CLUSTER}-cp-{i}" for i in (1, 2, 3)] + [f"{CLUSTER}-worker-{i}" for i in (1, 2)]
WRITES = ("PATCH", "PUT", "POST", "DELETE")


def main_job(lab_dir: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(REPO_ROOT / "scripts" / "lab")], capture_output=True, text=True, timeout=1500,
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
                "name", "runtime.powerState", "guest.ipAddress", "config.hardware.device", "config.template",
                "config.uuid"]}):
            nics = [d for d in props.get("config.hardware.device") or () if isinstance(d, vim.vm.device.VirtualEthernetCard)]
            found[props["name"]] = {"power": props["runtime.powerState"], "ip": props.get("guest.ipAddress"),
                                    "bios_uuid": str(props.get("config.uuid") or ""),
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


def kill_apply_during(lab_dir: Path, env: dict[str, str], node: str, written: str, delay: float, log: Path) -> str:
    """`nsxkube apply` killed with SIGKILL ``delay`` s after kubeadm wrote ``written`` on ``node`` (seen
    in the node's own files: the moment the init or join is under way); its output."""
    trigger = lab_dir / "nodes" / node / "fs" / written.strip("/")
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "nsxkube", "apply", str(lab_dir / "cluster.yaml")],
                                   stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 600
    while not trigger.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert process.poll() is None, f"apply ended before {node} had {written}:\n{log.read_text()[-3000:]}"
    assert trigger.exists(), f"{node} had no {written} within 600 s"
    time.sleep(delay)
    process.kill()
    process.wait(timeout=30)
    return log.read_text()


def node_leftovers(lab_dir: Path, supervisor: int) -> list[str]:
    """Anything of the lab's nodes that outlived `lab down`."""
    tag = f"nxl{supervisor}"
    found = []
    for pid_dir in Path("/proc").iterdir():
        if pid_dir.name.isdigit():
            try:
                cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(lab_dir) in cmdline:
                found.append(f"process {pid_dir.name}: {cmdline[:160]}")
    found += [f"mount {line}" for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if str(lab_dir) in line or f"/run/netns/{tag}-" in line]
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [f"netns {line}" for line in netns.splitlines() if line.startswith(tag)]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    found += [f"link {line.split(':')[1].strip()}" for line in links.splitlines() if f": {tag}" in line]
    for hierarchy in runtime.cgroup_hierarchies():
        group = hierarchy.mountpoint / hierarchy.current.lstrip("/") / f"nsxkube-{tag}"
        if group.exists():
            found.append(f"cgroup {group}")
    return found


@pytest.mark.timeout(2400)  # two main jobs with a cluster each, three interrupted applies, two destroys
def test_the_main_job_builds_a_cluster_on_real_nodes_changes_nothing_the_second_time_survives_kills_and_cleans_up(
        tmp_path: Path) -> None:
    require_binary("vcsim")
    reason = runtime.missing_node_tools()
    if reason:
        pytest.skip(f"the lab's {reason}")
    require_binaries(*programs_needed())
    lab_dir = tmp_path / "lab"
    nsxkube = [sys.executable, "-m", "nsxkube"]
    lab = None
    try:
        first = main_job(lab_dir)
        out = first.stdout
        for title in ("start the lab with nodes", "check cluster.yaml", "discover the existing NSX", "plan",
                      "apply: NSX, VMs, bindings, Kubernetes", "apply again", "validate",
                      "kubectl get nodes through the API VIP", "render", "summary", "timings"):
            assert f"==> {title}" in out, title
        lab = files.read_state(lab_dir)
        assert lab is not None and lab.nodes and (lab_dir / "nsx-report.md").read_text().count("Tanzu") > 0
        assert (lab_dir / "bundle" / "README.md").is_file()
        kubectl_out = out[out.index("==> kubectl get nodes"):out.index("==> render")]
        ready = [line.split() for line in kubectl_out.splitlines() if line.startswith(CLUSTER)]
        assert sorted(row[0] for row in ready) == NODES and {row[1] for row in ready} == {"Ready"}, kubectl_out
        assert {row[4] for row in ready} == {"v1.35.8"}
        from xml.etree import ElementTree as ET

        junit = ET.parse(lab_dir / "validate.xml").getroot()  # every check of validate, on the real cluster
        assert junit.get("failures") == "0" and int(junit.get("tests") or 0) >= 9, ET.tostring(junit, encoding="unicode")
        summary_text = out[out.index("==> summary"):]
        for shown in ("Kubernetes through the API VIP 172.16.51.10: 5/5 nodes Ready", "API VIP holder: k8s-lab-cp-",
                      "last apply (", "bootstrap ", "next, on real vSphere + NSX:"):
            assert shown in summary_text, shown
        exported = files.read_env(lab_dir)
        assert exported["NSXKUBE_LAB_NSX_URL"] == lab.service("nsx").url

        secrets = {v for k, v in files.read_env(lab_dir).items() if k.endswith("PASSWORD")}
        leaking = [str(p) for p in (lab_dir / "bundle").rglob("*") if p.is_file()
                   and any(secret.encode() in p.read_bytes() for secret in secrets)]
        leaking += [str(p) for p in lab_dir.glob("*") if p.is_file() and p.name not in (files.ENV_FILE, "images.tar")
                    and any(secret.encode() in p.read_bytes() for secret in secrets)]
        assert leaking == []  # not in cluster.yaml, logs, the request log, the report or the bundle
        kubeconfig = lab_dir / ".nsxkube" / CLUSTER / "kubeconfig"
        assert kubeconfig.stat().st_mode & 0o777 == 0o600

        client = nsx_client(lab_dir)
        tanzu_before = foreign_revisions(client)
        ports = client.list_objects(f"{SEGMENT}/ports")
        bound = {p["display_name"].split("/")[0]: {b["ip_address"] for b in p.get("address_bindings") or ()}
                 for p in ports}
        assert "172.16.51.10" in bound[f"{CLUSTER}-cp-1"] and "172.16.51.10" not in bound[f"{CLUSTER}-worker-1"]
        first_apply = [r for r in requests(lab_dir) if r["method"] == "PATCH"]
        assert [r["path"] for r in first_apply] == ["/policy/api/v1/infra"]  # one hierarchical call

        seen = vcenter_vms(lab_dir)
        assert {n: (seen[n]["power"], seen[n]["network"]) for n in NODES} == {
            n: ("poweredOn", "k8s-nodes-segment") for n in NODES}
        summary = json.loads(subprocess.run([*nsxkube, "lab", "summary", "--dir", str(lab_dir), "-o", "json"],
                                            capture_output=True, text=True, timeout=60, check=True).stdout)
        kube = summary["kubernetes"]
        assert sorted(n["name"] for n in kube["nodes"] if n["ready"]) == NODES
        holders = [n["name"] for n in kube["nodes"] if "172.16.51.10" in n["also_holds"]]
        assert len(holders) == 1 and holders[0].startswith(f"{CLUSTER}-cp-"), kube
        # each node reports its VM's BIOS UUID, which is how the vSphere cloud provider matches them
        listed = subprocess.run([str(lab_dir / "bin" / "kubectl"), "--kubeconfig", str(kubeconfig), "get", "nodes",
                                 "-o", "json"], capture_output=True, text=True, timeout=60, check=True).stdout
        system_uuids = {n["metadata"]["name"]: n["status"]["nodeInfo"]["systemUUID"] for n in json.loads(listed)["items"]}
        assert system_uuids == {n: seen[n]["bios_uuid"].lower() for n in NODES}

        logged = len(requests(lab_dir))
        second = main_job(lab_dir)
        assert "lab already running" in second.stdout
        record = json.loads((lab_dir / ".nsxkube" / CLUSTER / "last-apply.json").read_text())
        assert [p["name"] for p in record["phases"]] == ["network", "machines", "network-bindings", "bootstrap"]
        assert {c["action"] for p in record["phases"] for c in p["changes"]} == {"unchanged"}
        writes = [r for r in requests(lab_dir)[logged:] if r["method"] in WRITES
                  and not r["path"].startswith("/api/session/")]  # log in and out: not changes
        assert writes == []  # not even the cluster lease: it is taken only before a write
        assert foreign_revisions(client) == tanzu_before  # Tanzu / NCP objects untouched

        env = {**os.environ, **files.read_env(lab_dir)}

        def destroy() -> None:
            destroyed = subprocess.run([*nsxkube, "destroy", str(lab_dir / "cluster.yaml"), "--yes"],
                                       capture_output=True, text=True, timeout=300, env=env)
            assert destroyed.returncode == 0, destroyed.stdout[-3000:]
            assert client.get_object(SEGMENT) is None
            assert not [n for n in vcenter_vms(lab_dir) if n.startswith(CLUSTER)]
            deadline = time.monotonic() + 60  # the lab removes a node once vCenter shows its VM gone
            while [d for d in (lab_dir / "nodes").iterdir() if d.name.startswith(CLUSTER)] \
                    and time.monotonic() < deadline:
                time.sleep(0.5)
            assert not [d.name for d in (lab_dir / "nodes").iterdir() if d.name.startswith(CLUSTER)]
            assert (lab_dir / "known_hosts").read_text() == ""

        destroy()

        # apply killed during kubeadm init, during a control-plane join and during the worker joins:
        # each run again picks up where the last one stopped, and the last converges
        for round_, (node, written, delay) in enumerate((
                (f"{CLUSTER}-cp-1", "etc/kubernetes/manifests/etcd.yaml", 2.0),  # init: static Pods written
                (f"{CLUSTER}-cp-2", "etc/kubernetes/pki/ca.crt", 2.0),  # control-plane join: certificates fetched
                (f"{CLUSTER}-worker-1", "etc/kubernetes/pki/ca.crt", 0.5))):  # worker joins under way
            kill_apply_during(lab_dir, env, node, written, delay, tmp_path / f"killed-{round_}.log")
        converged = subprocess.run([*nsxkube, "apply", str(lab_dir / "cluster.yaml")], capture_output=True,
                                   text=True, timeout=900, env=env)
        assert converged.returncode == 0, converged.stdout[-4000:]
        assert "took over the cluster lease" in " ".join(converged.stdout.split())  # of the killed run
        validated = subprocess.run([*nsxkube, "validate", str(lab_dir / "cluster.yaml"), "-o", "json"],
                                   capture_output=True, text=True, timeout=300, env=env)
        checks = {c["id"]: c for c in json.loads(validated.stdout)["checks"]}
        for check in ("nodes.ready", "kubernetes.etcd", "kubernetes.api-vip"):
            assert checks[check]["verdict"] == "ok", f"{check}: {checks[check]['detail']}\n{converged.stdout[-3000:]}"
        again = subprocess.run([*nsxkube, "apply", str(lab_dir / "cluster.yaml"), "-o", "json"], capture_output=True,
                               text=True, timeout=300, env=env)
        assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False
        destroy()
        assert foreign_revisions(client) == tanzu_before
        client.close()
    finally:
        down = subprocess.run([*nsxkube, "lab", "down", "--dir", str(lab_dir)], capture_output=True, text=True,
                              timeout=180)
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert lab is not None
    for service in lab.services:
        assert not pid_alive(service.pid), f"{service.name} (pid {service.pid}) still runs"
        assert not port_is_open(service.host, service.port), f"{service.name} still listens on {service.port}"
    assert not (lab_dir / files.STATE_FILE).exists() and not (lab_dir / files.ENV_FILE).exists()
    assert node_leftovers(lab_dir, lab.pid) == []
