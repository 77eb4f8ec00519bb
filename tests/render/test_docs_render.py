"""The bundle's runbook and per-stage docs: complete, specific to the cluster, and runnable."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest

from nsxkube.render.addons import render_addons
from nsxkube.render.docs import render_docs
from nsxkube.render.files import RenderedFile
from tests.support.specs import example_design

VELERO_ON = {
    "addons.backups.velero.enabled": True,
    "addons.backups.velero.s3_url": "https://s3.example.com",
    "addons.backups.velero.bucket": "k8s-prod-backups",
}
# The files other parts of the bundle render: the runbook must walk through every one of them.
BUNDLE_PATHS = (
    "nsx/infra-patch.json", "nsx/apply.sh", "nsx/segment.md", "nsx/spoofguard-allowlist.md", "nsx/dfw-rules.md",
    "vm-template/user-data", "vm-template/prepare-vm.sh", "vm-template/packages.txt", "vm-template/vm-settings.md",
    "kubeadm/init.yaml", "kubeadm/join-control-plane.yaml", "kubeadm/join-worker.yaml", "kubeadm/kube-vip.yaml",
    "scripts/bootstrap-control-plane.sh", "scripts/join-control-plane.sh", "scripts/join-worker.sh",
    "scripts/etcd-backup.sh", "scripts/etcd-restore.sh", "scripts/check-mtu.sh",
)
DOC_PATHS = {
    "README.md", "docs/stage-0-nsx-and-template.md", "docs/stage-1-cluster-and-addons.md",
    "docs/stage-2-operations.md", "docs/stage-3-migration-from-tanzu.md", "docs/troubleshooting.md",
}
VARIANTS: dict[str, dict[str, Any]] = {
    "example": {},
    "velero, cilium-l2, nginx, vxlan": {**VELERO_ON, "addons.loadbalancer.provider": "cilium-l2",
                                        "addons.ingress.controller": "ingress-nginx", "addons.cilium.tunnel": "vxlan",
                                        "ssh.port": 2222, "ssh.bastion": "ops@jump.example.com"},
    "minimal": {"addons.loadbalancer.provider": "none", "addons.ingress.controller": "none",
                "addons.gateway_api.enabled": False, "addons.storage.enabled": False,
                "addons.monitoring.enabled": False, "addons.metrics_server.enabled": False,
                "addons.backups.etcd.enabled": False, "nodes.control_planes.count": 1, "nodes.workers.count": 0,
                "kubernetes.image_bundle": "/srv/k8s-images.tar"},
}


def docs(changes: dict[str, Any] | None = None) -> dict[str, RenderedFile]:
    return {f.path: f for f in render_docs(example_design(changes))}


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_docs_are_the_readme_and_one_runbook_per_stage():
    assert set(docs()) == DOC_PATHS


def test_the_runbook_names_every_bundle_file():
    readme = docs()["README.md"].content
    missing = [path for path in BUNDLE_PATHS if f"`{path}`" not in readme]
    assert missing == []


def test_the_runbook_names_every_node_file_and_every_addon_file():
    design = example_design(VELERO_ON)
    readme = {f.path: f for f in render_docs(design)}["README.md"].content
    for node in design.ip_plan.nodes:
        for name in ("meta-data", "user-data", "guestinfo.env"):
            assert f"`nodes/{node.name}/{name}`" in readme
    missing = [f.path for f in render_addons(design) if f"`{f.path}`" not in readme]
    assert missing == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_file_the_runbook_uses_exists_in_the_bundle(variant):
    """Paths under addons/ that the steps mention are files render_addons produces (no dangling reference)."""
    design = example_design(VARIANTS[variant])
    produced = {f.path for f in render_addons(design)}
    text = "".join(f.content for f in render_docs(design))
    mentioned = set(re.findall(r"addons/[\w./-]+\.(?:yaml|sh|conf|md|service|timer)", text))
    assert mentioned and mentioned <= produced


def test_the_runbook_carries_this_clusters_values():
    design = example_design()
    readme = docs()["README.md"].content
    for value in ("172.16.50.10", "172.16.50.10:6443", "k8s-nodes-segment", "172.16.50.0/24", "172.16.50.1",
                  "172.16.50.200-172.16.50.250", design.versions.kubernetes, design.versions.cilium,
                  "vcenter.example.com", "nsx.example.com", "t1-k8s", "ubuntu-2404-k8s-template"):
        assert value in readme, value
    for node in design.ip_plan.nodes:
        assert node.name in readme and str(node.address) in readme


def test_the_runbook_follows_another_cluster():
    changes = {"name": "lab", "vsphere.folder": "lab", "network.api_vip": "172.16.50.20",
               "nsx.segment.name": "lab-nodes",
               "kubernetes.version": "1.36", "nodes.address_range": "172.16.50.21-172.16.50.99"}
    design = example_design(changes)
    readme = docs(changes)["README.md"].content
    assert "172.16.50.20:6443" in readme and "lab-nodes" in readme and design.versions.kubernetes in readme
    assert "lab-cp-1" in readme
    assert "k8s-prod" not in readme and "172.16.50.10" not in readme


def test_the_runbook_installs_in_the_order_that_works():
    text = docs()["README.md"].content
    readme = text[text.index("## Stage 0"):]  # the steps, not the layout list above them
    order = ["bash nsx/apply.sh", "govc vm.markastemplate", "govc vm.clone", "scripts/check-mtu.sh",
             "scripts/bootstrap-control-plane.sh", "scripts/join-control-plane.sh", "scripts/join-worker.sh",
             "kubectl certificate approve", "standard-install.yaml", "helm upgrade --install cilium",
             "bash addons/create-secrets.sh", "vsphere-cloud-controller-manager.yaml", "vsphere-csi-driver.yaml",
             "addons/loadbalancer/metallb-pools.yaml", "addons/ingress/gateway.yaml", "addons/tests/pvc-test.yaml",
             "cilium connectivity test"]
    positions = [readme.index(marker) for marker in order]
    assert positions == sorted(positions)


def test_control_planes_join_one_by_one_and_workers_in_parallel():
    readme = docs()["README.md"].content
    cp_joins = [line for line in readme.splitlines() if "exec bash scripts/join-control-plane.sh" in line]
    worker_joins = [line for line in readme.splitlines() if "exec bash scripts/join-worker.sh" in line]
    assert [line.split("'")[0] for line in cp_joins] == ["ssh ubuntu@172.16.50.12 ", "ssh ubuntu@172.16.50.13 "]
    assert not any(line.rstrip().endswith("&") for line in cp_joins)
    assert len(worker_joins) == 2 and all(line.rstrip().endswith("&") for line in worker_joins)
    # The join secrets reach the nodes through stdin, never a command line.
    assert all(line.endswith('<<< "$JOIN"') for line in cp_joins)
    assert "NSXKUBE_JOIN_TOKEN=" not in readme


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_command_block_is_valid_bash(variant, tmp_path):
    findings = []
    for path, file in docs(VARIANTS[variant]).items():
        for i, block in enumerate(bash_blocks(file.content)):
            script = tmp_path / f"{path.replace('/', '_')}-{i}.sh"
            script.write_text(block, encoding="utf-8")
            result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
            if result.returncode != 0:
                findings.append(f"{path} block {i}: {result.stderr.strip()}")
    assert findings == []


def test_ssh_port_and_bastion_reach_every_ssh_command():
    text = "".join(f.content for f in docs(VARIANTS["velero, cilium-l2, nginx, vxlan"]).values())
    ssh_options = re.findall(r"\bssh ([^'\"|;&]*?)ubuntu@", text)
    scp_commands = re.findall(r"\bscp (.*)", text)
    assert len(ssh_options) > 10 and set(ssh_options) == {"-p 2222 -J ops@jump.example.com "}
    assert scp_commands and all(c.startswith("-P 2222 -J ops@jump.example.com ") for c in scp_commands)


def test_troubleshooting_carries_this_clusters_mtu_numbers():
    text = docs()["docs/troubleshooting.md"].content
    for value in ("TEP MTU 1700", "node MTU 1500", "pod MTU 1450", "at most 1600", "-s 1472", "-s 1473", "MTU: 1500"):
        assert value in text, value
    smaller = docs({"network.node_mtu": 1400})["docs/troubleshooting.md"].content
    for value in ("node MTU 1400", "pod MTU 1350", "-s 1372", "-s 1373", "MTU: 1400"):
        assert value in smaller, value
    assert "-s 1472" not in smaller


def test_troubleshooting_covers_the_known_nsx_pains():
    text = docs()["docs/troubleshooting.md"].content
    titles = re.findall(r"^## (.*)$", text, flags=re.M)
    for topic in ("VIP", "Large packets", "VXLAN", "ProviderID", "disk.EnableUUID"):
        assert any(topic in title for title in titles), topic
    for section in text.split("\n## ")[1:]:
        assert "**Symptom.**" in section and "**Confirm:**" in section and "**Fix:**" in section
    assert "spoofguard" in text.lower() and "ethtool -K" in text and "uninitialized" in text


def test_troubleshooting_follows_the_vip_mode_and_tunnel():
    allowlist = docs()["docs/troubleshooting.md"].content
    profiles = docs({"nsx.vip_mode": "segment-profiles", "addons.cilium.tunnel": "vxlan"})
    assert "vip_mode allowlist" in allowlist
    text = profiles["docs/troubleshooting.md"].content
    assert "vip_mode segment-profiles" in text
    assert "udp port 8472" in text and "Switch to Geneve" in text
    assert "Switch to Geneve" not in allowlist


def test_stage_docs_cover_the_seed_stages():
    files = docs(VELERO_ON)
    stage0 = files["docs/stage-0-nsx-and-template.md"].content
    assert "nsx/apply.sh" in stage0 and "-s 1472" in stage0 and "disk.enableUUID" in stage0
    stage1 = files["docs/stage-1-cluster-and-addons.md"].content
    assert "cilium connectivity test" in stage1 and "addons/tests/pvc-test.yaml" in stage1
    stage2 = files["docs/stage-2-operations.md"].content
    assert "scripts/etcd-restore.sh" in stage2 and "velero restore create" in stage2
    assert "addons/tests/pvc-read-test.yaml" in stage2
    stage3 = files["docs/stage-3-migration-from-tanzu.md"].content
    assert "ncp" in stage3 and "ingressClassName: cilium" in stage3


def test_the_minimal_cluster_runbook_skips_what_is_not_installed():
    readme = docs(VARIANTS["minimal"])["README.md"].content
    for absent in ("join-control-plane.sh'", "join-worker.sh'", "metallb", "vsphere-csi-driver.yaml",
                   "kube-prometheus-stack", "nsxkube-etcd-backup.timer", "standard-install.yaml"):
        assert absent not in readme, absent
    assert "vsphere-cloud-controller-manager.yaml" in readme  # the CPI initialises nodes in every cluster


def test_the_docs_hold_names_of_secrets_never_values(monkeypatch):
    monkeypatch.setenv("VSPHERE_PASSWORD", "sentinel-docs-vsphere-3e1f")
    monkeypatch.setenv("NSX_PASSWORD", "sentinel-docs-nsx-77aa")
    monkeypatch.setenv("VELERO_S3_SECRET_KEY", "sentinel-docs-s3-0c4d")
    text = "".join(f.content for f in docs(VELERO_ON).values())
    assert "sentinel-docs" not in text
    assert "read -rsp 'VSPHERE_PASSWORD: '" in text and "$NSX_PASSWORD" in text


@pytest.mark.parametrize("variant", VARIANTS)
def test_rendering_twice_is_byte_identical(variant):
    first = render_docs(example_design(VARIANTS[variant]))
    second = render_docs(example_design(VARIANTS[variant]))
    assert [(f.path, f.content) for f in first] == [(f.path, f.content) for f in second]


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_docs_and_the_whole_bundle_agree(variant):
    """Every bundle path the docs name is rendered by some part of nsxkube, and every file is named."""
    from nsxkube.render.bundle import render_bundle

    files = {f.path for f in render_bundle(example_design(VARIANTS[variant]))}
    text = "".join(f.content for f in render_docs(example_design(VARIANTS[variant])))
    named = set(re.findall(r"\b(?:nsx|vm-template|kubeadm|scripts|addons|docs)/[\w./-]+\.(?:json|sh|md|txt|yaml|conf"
                           r"|service|timer)|\bnodes/[\w-]+/(?:meta-data|user-data|guestinfo\.env)"
                           r"|\bvm-template/user-data", text))
    assert sorted(named - files) == []
    assert sorted(path for path in files - {"README.md"} if path not in text) == []
