"""The bootstrap phase over real SSH into test hosts (network + mount + UTS namespaces).

The rendered scripts run unchanged on the hosts; kubeadm, kubectl, cloud-init and a few system
tools are stand-ins that record their arguments and environment (tests/providers/nodes/standins.py).
What is real: sshd and the SSH protocol, host-key checks, addresses, hostnames, the MTU of the
wire, bash, openssl, ip, ping, ss, tar. Each scenario has its own subnet (10.213.61–66).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from nsxkube.cli.reporting import show_timings
from nsxkube.design import Design
from nsxkube.phases.bootstrap import PHASE
from nsxkube.pipeline import runner
from nsxkube.pipeline.context import Context, Options
from nsxkube.pipeline.reporter import RecordingReporter
from nsxkube.render.kubeadm import render_kubeadm
from tests.providers.nodes import standins
from tests.support.hosts import HostNetwork, host_network
from tests.support.specs import example_design

SPEC = "cluster.yaml"


def design_for(prefix: str, key: Path, control_planes: int, workers: int, **changes: Any) -> Design:
    return example_design({
        "nsx.segment.cidr": f"{prefix}.0/24", "nsx.segment.gateway": f"{prefix}.1",
        "network.api_vip": f"{prefix}.10",
        "network.loadbalancer_pools": [{"name": "default", "range": f"{prefix}.200-{prefix}.250"}],
        "nodes.address_range": f"{prefix}.11-{prefix}.99",
        "nodes.control_planes.count": control_planes, "nodes.workers.count": workers,
        "ssh.user": "root", "ssh.private_key_file": str(key), **changes,
    })


@dataclass
class Lab:
    design: Design
    net: HostNetwork
    cluster: standins.Cluster
    workdir: Path

    def host(self, name: str) -> Any:
        return next(h for h in self.net.hosts if h.name == name)

    def context(self, reporter: RecordingReporter | None = None, timeout: float = 60) -> Context:
        return Context(self.design, Options(workdir=self.workdir, timeout_seconds=timeout, concurrency=8),
                       reporter or RecordingReporter(), secret=lambda name, what: "")

    def apply(self) -> tuple[runner.RunResult, RecordingReporter]:
        reporter = RecordingReporter()
        ctx = self.context(reporter)
        try:
            return runner.apply(ctx, [PHASE], SPEC), reporter
        finally:
            ctx.close()

    def calls(self, prog: str, *argv_start: str) -> list[dict]:
        found = [r for h in self.net.hosts for r in standins.records(h) if r["prog"] == prog]
        return [r for r in found if r["argv"][:len(argv_start)] == list(argv_start)]


@pytest.fixture(scope="module")
def hosts_available() -> None:
    from tests.support.hosts import require_root

    require_root()


@contextlib.contextmanager
def lab(tmp: Path, prefix: str, tag: str, control_planes: int, workers: int, *, count: int | None = None,
        mtu: int = 1500, known_hosts: bool = True, changes: dict[str, Any] | None = None,
        **settings: Any) -> Iterator[Lab]:
    design = design_for(prefix, tmp / "hosts" / "client_ed25519", control_planes, workers, **(changes or {}))
    (tmp / "hosts").mkdir()
    names = [n.name for n in design.ip_plan.nodes]
    with standins.private_bundle_dir(), host_network(tmp / "hosts", len(names) if count is None else count,
                                                     subnet=f"{prefix}.0/24", names=names, tag=tag, mtu=mtu) as net:
        addresses = {h.name: str(h.address) for h in net.hosts}
        cluster = standins.make_cluster(tmp / "cluster", design.name, addresses, **settings)
        for host in net.hosts:
            standins.install(host, cluster)
        workdir = tmp / "work"
        workdir.mkdir(mode=0o700)
        if known_hosts:
            (workdir / "known_hosts").write_text("\n".join(net.known_hosts_lines()) + "\n")
        yield Lab(design, net, cluster, workdir)


# ---- a full cluster: three control planes, two workers, then a second run -----------------------


@dataclass
class Bootstrapped:
    lab: Lab
    first: runner.RunResult
    first_events: RecordingReporter
    second: runner.RunResult
    second_events: RecordingReporter
    kubeadm_calls_after_first: int
    kubeconfig_mtime_after_first: float


@pytest.fixture(scope="module")
def bootstrapped(hosts_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bootstrapped]:
    tmp = tmp_path_factory.mktemp("bootstrap-full")
    with lab(tmp, "10.213.61", "nkb61", 3, 2, join_seconds=1.0) as the_lab:
        the_lab.cluster.add_csr("csr-intruder", "system:node:intruder",
                                standins.serving_csr("intruder", ["intruder"], ["10.213.61.77"]))
        worker = the_lab.design.ip_plan.workers[0].name
        the_lab.cluster.add_csr("csr-spoofed", f"system:node:{worker}",
                                standins.serving_csr(worker, [worker], ["10.213.61.11"]))
        first, first_events = the_lab.apply()
        kubeadm_calls = len(the_lab.calls("kubeadm"))
        mtime = (the_lab.workdir / "kubeconfig").stat().st_mtime
        second, second_events = the_lab.apply()
        yield Bootstrapped(the_lab, first, first_events, second, second_events, kubeadm_calls, mtime)


def test_the_first_run_builds_the_cluster_and_reports_per_node(bootstrapped: Bootstrapped) -> None:
    result, events = bootstrapped.first, bootstrapped.first_events
    assert result.ok, result.phases[-1].error
    design = bootstrapped.lab.design
    steps = events.texts("step")
    assert len(design.ip_plan.nodes) == 5
    for node in design.ip_plan.nodes:
        expected = "initialized" if node is design.ip_plan.control_planes[0] else "joined"
        line = next(s for s in steps if s.startswith(f"{node.name} ({node.address}): "))
        assert expected in line and f"logs/{node.name}.log" in line, line
    buffer = io.StringIO()
    show_timings(Console(file=buffer, width=120), result)
    assert "bootstrap" in buffer.getvalue() and "per-phase timing" in buffer.getvalue()


def test_init_comes_first_control_planes_join_one_at_a_time_workers_at_once(bootstrapped: Bootstrapped) -> None:
    the_lab = bootstrapped.lab
    (init,) = the_lab.calls("kubeadm", "init", "--config")
    joins = {r["host"]: r for r in the_lab.calls("kubeadm", "join") if not r.get("failed")}
    plan = the_lab.design.ip_plan
    assert set(joins) == {n.name for n in plan.nodes[1:]}
    assert all(init["end"] <= j["start"] for j in joins.values())
    cp2, cp3 = (joins[n.name] for n in plan.control_planes[1:])
    assert cp2["end"] <= cp3["start"], "control planes must join one after the other"
    w1, w2 = (joins[n.name] for n in plan.workers)
    assert cp3["end"] <= min(w1["start"], w2["start"])
    overlap = min(w1["end"], w2["end"]) - max(w1["start"], w2["start"])
    assert overlap > 0.5, f"workers joined one after the other (overlap {overlap:.2f} s)"


def test_kube_vip_holds_the_vip_with_super_admin_during_init_and_admin_conf_after(bootstrapped: Bootstrapped) -> None:
    the_lab = bootstrapped.lab
    rendered = {f.path: f.content for f in render_kubeadm(the_lab.design)}
    first, *others = the_lab.design.ip_plan.control_planes
    during = yaml.safe_load(the_lab.host(first.name).path("/etc/kubernetes/kube-vip-during-init.yaml").read_text())
    assert during["spec"]["volumes"][0]["hostPath"]["path"] == "/etc/kubernetes/super-admin.conf"
    for node in [first, *others]:
        manifest = the_lab.host(node.name).path("/etc/kubernetes/manifests/kube-vip.yaml").read_text()
        assert manifest == rendered["kubeadm/kube-vip.yaml"]
        assert "/etc/kubernetes/admin.conf" in manifest and "super-admin" not in manifest
    assert len(others) == 2 and len(the_lab.design.ip_plan.workers) == 2
    for node in the_lab.design.ip_plan.workers:
        assert not the_lab.host(node.name).path("/etc/kubernetes/manifests/kube-vip.yaml").exists()


def ca_hash(the_lab: Lab) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate((the_lab.cluster.root / "ca.crt").read_bytes())
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def test_join_secrets_reach_the_scripts_only_through_the_environment(bootstrapped: Bootstrapped) -> None:
    the_lab = bootstrapped.lab
    secrets = [standins.TOKEN, ca_hash(the_lab), standins.CERTIFICATE_KEY]
    joins = the_lab.calls("kubeadm", "join")
    assert {j["host"] for j in joins} == {n.name for n in the_lab.design.ip_plan.nodes[1:]}
    for join in joins:
        control_plane = "controlPlane:" in join["config"]
        assert join["env"]["NSXKUBE_JOIN_TOKEN"] == standins.TOKEN
        assert join["env"]["NSXKUBE_CA_CERT_HASH"] == f"sha256:{secrets[1]}"
        assert ("NSXKUBE_CERTIFICATE_KEY" in join["env"]) is control_plane, "workers never get the certificate key"
    seen_in_ps = [r["ps"] for r in joins]
    argv = [" ".join(r["argv"]) for h in the_lab.net.hosts for r in standins.records(h)]
    assert any(a.startswith("join --config") for a in argv), "the stand-ins recorded no kubeadm join"
    for secret in secrets:
        assert not [text for text in seen_in_ps + argv if secret in text], "a secret showed in a process's arguments"


def test_no_secret_lands_in_the_work_directory_logs_or_on_screen(bootstrapped: Bootstrapped) -> None:
    the_lab = bootstrapped.lab
    secrets = [standins.TOKEN, ca_hash(the_lab), standins.CERTIFICATE_KEY]
    files = [p for p in the_lab.workdir.rglob("*") if p.is_file()]
    logs = [p for p in files if p.parent.name == "logs"]
    assert {p.name for p in logs} == {f"{n.name}.log" for n in the_lab.design.ip_plan.nodes}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in logs)
    assert "kubeadm join as worker: exit 0" in (the_lab.workdir / "logs" / f"{the_lab.design.ip_plan.workers[0].name}.log").read_text()
    for path in files:
        data = path.read_bytes()
        assert not [s for s in secrets if s.encode() in data], f"{path} holds a join secret"
        if path.name != "kubeconfig":
            assert standins.ADMIN_KEY_DATA.encode() not in data, f"{path} holds admin.conf's key"
    screen = " ".join(e.text for events in (bootstrapped.first_events, bootstrapped.second_events)
                      for e in events.events)
    assert not [s for s in secrets if s in screen]


def test_the_kubeconfig_is_private_and_points_at_the_api_endpoint(bootstrapped: Bootstrapped) -> None:
    path = bootstrapped.lab.workdir / "kubeconfig"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = yaml.safe_load(path.read_text())
    assert config["clusters"][0]["cluster"]["server"] == f"https://{bootstrapped.lab.design.api_endpoint}"
    assert bootstrapped.lab.design.api_endpoint == "10.213.61.10:6443"
    assert config["users"][0]["user"]["client-key-data"] == standins.ADMIN_KEY_DATA


def test_only_our_nodes_serving_csrs_are_approved_and_nodes_are_labelled(bootstrapped: Bootstrapped) -> None:
    state = bootstrapped.lab.cluster.state()
    design = bootstrapped.lab.design
    assert len(design.ip_plan.nodes) == 5
    for node in design.ip_plan.nodes:
        assert state["csrs"][f"csr-serving-{node.name}"]["approved"], node.name
        labels = state["nodes"][node.name]["labels"]
        assert labels["nsxkube/cluster"] == design.name
        assert labels[f"node-role.kubernetes.io/{node.role}"] == ""
    assert not state["csrs"]["csr-intruder"]["approved"]
    assert not state["csrs"]["csr-spoofed"]["approved"], "a node asking for another node's address"
    warnings = bootstrapped.first_events.texts("warning")
    assert any("csr-intruder" in w and "not by a node of this cluster" in w for w in warnings)
    assert any("csr-spoofed" in w and "10.213.61.11" in w for w in warnings)


def test_a_second_run_changes_nothing(bootstrapped: Bootstrapped) -> None:
    result = bootstrapped.second
    assert result.ok and not result.changed, [c.one_line() for p in result.phases for c in p.changes if c.mutating]
    assert len(bootstrapped.lab.calls("kubeadm")) == bootstrapped.kubeadm_calls_after_first
    assert (bootstrapped.lab.workdir / "kubeconfig").stat().st_mtime == bootstrapped.kubeconfig_mtime_after_first
    assert result.phases[0].changes and all(c.action == "unchanged" for c in result.phases[0].changes)


def test_a_later_serving_csr_and_a_lost_label_are_planned_and_fixed_without_kubeadm(
        bootstrapped: Bootstrapped) -> None:
    the_lab = bootstrapped.lab
    node = the_lab.design.ip_plan.control_planes[1]
    the_lab.cluster.add_csr("csr-rotated", f"system:node:{node.name}",
                            standins.serving_csr(node.name, [node.name], [str(node.address)]))
    state = the_lab.cluster.state()
    worker = the_lab.design.ip_plan.workers[1].name
    del state["nodes"][worker]["labels"]["node-role.kubernetes.io/worker"]
    (the_lab.cluster.root / "cluster.json").write_text(json.dumps(state))
    kubeadm_before = len(the_lab.calls("kubeadm"))
    result, _ = the_lab.apply()
    assert result.ok, result.phases[0].error
    planned = {c.one_line() for c in result.phases[0].changes}
    assert planned == {f"update csr csr-rotated: approve the serving certificate of {node.name}",
                       f"update node {worker} (node-role.kubernetes.io/worker): label it by role"}
    state = the_lab.cluster.state()
    assert state["csrs"]["csr-rotated"]["approved"] and not state["csrs"]["csr-intruder"]["approved"]
    assert state["nodes"][worker]["labels"]["node-role.kubernetes.io/worker"] == ""
    assert len(the_lab.calls("kubeadm")) == kubeadm_before


# ---- resume, failures --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_failed_worker_leaves_the_others_joined_and_is_resumed(hosts_available: None, tmp_path: Path) -> None:
    with lab(tmp_path, "10.213.62", "nkb62", 1, 2) as the_lab:
        failing, other = (n.name for n in the_lab.design.ip_plan.workers)
        the_lab.cluster.fail_join_once(failing)
        first, events = the_lab.apply()
        assert not first.ok
        error = first.phases[0].error or ""
        assert "\n" not in error and f"{failing}: FAILED" in error and "--phase bootstrap again" in error
        assert f"`sudo kubeadm reset -f` on {failing}" in error
        assert any(s.startswith(f"{other} ") and "joined" in s for s in events.texts("step"))
        assert the_lab.host(other).path("/etc/kubernetes/kubelet.conf").exists()
        assert not the_lab.host(failing).path("/etc/kubernetes/kubelet.conf").exists()
        assert "--phase bootstrap" in (first.next_step or "")

        second, _ = the_lab.apply()
        assert second.ok, second.phases[0].error
        created = [c.name for c in second.phases[0].changes if c.action == "create" and c.kind == "worker"]
        assert created == [failing]
        joins = [r["host"] for r in the_lab.calls("kubeadm", "join")]
        assert sorted(joins) == sorted([failing, failing, other])
        assert len(the_lab.calls("kubeadm", "init", "--config")) == 1
        assert the_lab.cluster.state()["csrs"][f"csr-serving-{failing}"]["approved"]


@pytest.mark.slow
def test_a_node_whose_cloud_init_failed_is_reported_with_its_log(hosts_available: None, tmp_path: Path) -> None:
    names = [f"k8s-prod-worker-{i}" for i in (1, 2)]
    with lab(tmp_path, "10.213.63", "nkb63", 1, 2, cloud_init_failures=[names[1]]) as the_lab:
        result, events = the_lab.apply()
        assert not result.ok
        error = result.phases[0].error or ""
        assert "\n" not in error
        assert f"cloud-init failed on {names[1]} (10.213.63.13), status error" in error
        assert "E: Unable to locate package kubeadm" in error
        assert f"{names[1]} | + apt-get install -y kubeadm=1.35.8-*" in events.texts("step")
        assert [r["host"] for r in the_lab.calls("kubeadm", "join")] == [names[0]]


def test_an_mtu_smaller_than_the_nodes_stops_the_phase_with_the_nsx_hint(hosts_available: None,
                                                                           tmp_path: Path) -> None:
    with lab(tmp_path, "10.213.64", "nkb64", 1, 1, mtu=1400) as the_lab:
        assert the_lab.design.mtu.node_mtu == 1500
        result, _ = the_lab.apply()
        error = result.phases[0].error or ""
        assert not result.ok and "\n" not in error
        assert "MTU probe from k8s-prod-cp-1 (10.213.64.11) failed" in error
        assert "1500-byte packets with DF set do not pass" in error
        assert "TEP / uplink MTU must be at least 1600" in error and "docs/troubleshooting.md" in error
        assert the_lab.calls("kubeadm") == [], "nothing may be initialized over a broken path"


def test_a_changed_host_key_is_refused_in_one_line(hosts_available: None, tmp_path: Path) -> None:
    with lab(tmp_path, "10.213.65", "nkb65", 1, 0, known_hosts=False) as the_lab:
        address = the_lab.net.hosts[0].address
        other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBxr0vYp1Jx7V2bq0s6x1Lq2P0r9bNRq3hY1ZtbdK2Qm"
        (the_lab.workdir / "known_hosts").write_text(f"{address} {other}\n")
        ctx = the_lab.context()
        try:
            result = runner.plan(ctx, [PHASE])
        finally:
            ctx.close()
        error = result.phases[0].error or ""
        assert not result.ok and "\n" not in error
        assert error.startswith(f"host key of k8s-prod-cp-1 ({address}) does not match the one recorded in")
        assert "ssh-keygen -R" in error
        assert (the_lab.workdir / "known_hosts").read_text() == f"{address} {other}\n", "never overwritten"


def test_an_unreachable_node_is_reported_in_one_line_with_its_address(hosts_available: None, tmp_path: Path) -> None:
    with lab(tmp_path, "10.213.66", "nkb66", 1, 1, count=1) as the_lab:
        result, _ = the_lab.apply()
        error = result.phases[0].error or ""
        assert not result.ok and "\n" not in error
        assert error.startswith("cannot reach k8s-prod-worker-1 (10.213.66.12) on port 22: No route to host"), error
        assert the_lab.calls("kubeadm") == []


def test_a_plan_with_the_machines_phase_plans_nodes_without_vms_as_new_and_connects_to_none(tmp_path: Path) -> None:
    """`nsxkube plan` on a fresh environment: the machines phase ran before and found no VMs, so
    there is nothing to SSH into yet. The addresses are TEST-NET ones: a connection would fail."""
    design = design_for("192.0.2", tmp_path / "key", 3, 2)
    ctx = Context(design, Options(workdir=tmp_path, timeout_seconds=5), RecordingReporter(), secret=lambda n, w: "")
    ctx.handoff.node_vms = {}  # what the machines phase leaves when none of the VMs exists yet
    try:
        changes = runner.observe_and_plan(ctx, PHASE)[1]
    finally:
        ctx.close()
    nodes = [c for c in changes if c.kind in ("control-plane", "worker")]
    assert [(c.action, c.name) for c in nodes] == [("create", n.name) for n in design.ip_plan.nodes]
    assert all(c.detail.startswith("once its VM is up: ") for c in nodes)
    assert "nodes" not in ctx._clients  # no SSH client was even made
    assert [c.kind for c in changes if c not in nodes] == ["kubeconfig"]


def docker_save(path: Path, tags: Any, padding: int = 0) -> Path:
    """An image archive as `docker save` writes it (manifest.json with RepoTags), padded to a size."""
    import tarfile

    manifest = json.dumps([{"Config": "c.json", "RepoTags": list(tags), "Layers": ["layer.tar"]}]).encode()
    with tarfile.open(path, "w") as archive:
        for name, data in (("manifest.json", manifest), ("c.json", b"{}"), ("layer.tar", os.urandom(padding))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_an_image_bundle_is_copied_once_and_loaded_before_kubeadm(hosts_available: None, tmp_path: Path) -> None:
    required = design_for("10.213.69", tmp_path, 1, 1).node_images
    archive = docker_save(tmp_path / "k8s-images.tar", required, padding=3 << 20)  # streamed, not held in memory
    with lab(tmp_path, "10.213.69", "nkb69", 1, 1, changes={"kubernetes.image_bundle": str(archive)}) as the_lab:
        worker = the_lab.design.ip_plan.workers[0].name
        the_lab.cluster.fail_join_once(worker)
        first, events = the_lab.apply()
        assert not first.ok  # the worker's join failed once; its images were loaded before
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        assert len(the_lab.net.hosts) == 2
        for host in the_lab.net.hosts:
            copied = host.path("/var/lib/nsxkube/bundle/images.tar")
            assert hashlib.sha256(copied.read_bytes()).hexdigest() == digest
            assert stat.S_IMODE(copied.stat().st_mode) == 0o600
            imports = [r for r in standins.records(host) if r["prog"] == "ctr" and "import" in r["argv"]]
            inits_or_joins = [r for r in standins.records(host) if r["prog"] == "kubeadm" and r["argv"][0] in ("init", "join")]
            assert len(imports) == 1 and imports[0]["end"] <= min(r["start"] for r in inits_or_joins)
            assert host.path("/var/lib/nsxkube/ctr-images.txt").read_text().split() == sorted(required)
        assert any("copying k8s-images.tar (3 MiB)" in p for p in events.texts("progress"))

        second, events = the_lab.apply()  # the worker again: the same archive is there, not copied again
        assert second.ok, second.phases[0].error
        assert not any("copying k8s-images.tar" in p for p in events.texts("progress"))
        worker_imports = [r for r in standins.records(the_lab.host(worker)) if r["prog"] == "ctr" and "import" in r["argv"]]
        assert len(worker_imports) == 2  # loaded again (idempotent), copied once


def test_a_bundle_without_every_image_stops_the_plan_before_anything_runs(hosts_available: None, tmp_path: Path) -> None:
    required = design_for("10.213.70", tmp_path, 1, 0).node_images
    archive = docker_save(tmp_path / "partial.tar", [r for r in required if "pause" not in r])
    with lab(tmp_path, "10.213.70", "nkb70", 1, 0, changes={"kubernetes.image_bundle": str(archive)}) as the_lab:
        result, _ = the_lab.apply()
        error = result.phases[0].error or ""
        assert not result.ok and "\n" not in error
        assert f"kubernetes.image_bundle: {archive} lacks registry.k8s.io/pause:" in error
        assert the_lab.calls("kubeadm") == [] and the_lab.calls("ctr") == []


SANDBOX_BRIDGE = {"sandbox": {"reason": "test hosts", "cni": "bridge"},
                  "addons.cilium.kube_proxy_replacement": False, "addons.ingress.controller": "none",
                  "addons.gateway_api.enabled": False}


def test_a_sandbox_bridge_cni_is_installed_on_each_node_from_its_pod_cidr(hosts_available: None,
                                                                          tmp_path: Path) -> None:
    from nsxkube.render.bridge_cni import CONFLIST

    with lab(tmp_path, "10.213.71", "nkb71", 1, 2, changes=SANDBOX_BRIDGE) as the_lab:
        planned = runner.plan(the_lab.context(), [PHASE])
        names = [n.name for n in the_lab.design.ip_plan.nodes]
        assert len(names) == 3
        assert sorted(c.name for c in planned.phases[0].changes if c.kind == "bridge CNI") == sorted(names)
        first, events = the_lab.apply()
        assert first.ok, first.phases[0].error
        subnets = set()
        for host in the_lab.net.hosts:
            conflist = json.loads(host.path(CONFLIST).read_text())
            [bridge] = [p for p in conflist["plugins"] if p["type"] == "bridge"]
            subnets.add(bridge["ipam"]["ranges"][0][0]["subnet"])
            assert any(s == f"{host.name}: bridge CNI on {bridge['ipam']['ranges'][0][0]['subnet']}"
                       for s in events.texts("step"))
        assert len(subnets) == 3  # each node its own pod CIDR, read from its Node object
        second, events = the_lab.apply()
        assert second.ok and not [c for c in second.phases[0].changes if c.kind == "bridge CNI"]
        assert not any("bridge CNI on" in s for s in events.texts("step"))
