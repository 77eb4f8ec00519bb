"""The `sandbox:` section: each setting is shown as a warning with what production does instead,
reaches exactly the rendered place it names, and nothing changes without it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from nsxkube.design import Design
from nsxkube.errors import SpecError
from nsxkube.render.bundle import render_bundle
from nsxkube.render.kubeadm import render_kubeadm
from nsxkube.render.scripts import render_scripts
from tests.support.binaries import require_binary
from tests.support.specs import example_design
from tests.support.validators import require_tool

LAB = {"sandbox": {"reason": "nodes are network namespaces", "kubelet_cgroup_driver": "cgroupfs",
                   "allow_cgroup_v1": True, "ignore_preflight_errors": ["SystemVerification"], "cni": "bridge",
                   "kube_proxy_conntrack_max_per_core": 0, "skip_node_checks": ["clock"]},
       "addons.cilium.kube_proxy_replacement": False, "addons.ingress.controller": "none",
       "addons.gateway_api.enabled": False}


def documents(design: Design, path: str) -> dict[str, dict[str, Any]]:
    text = next(f.content for f in render_kubeadm(design) if f.path == path)
    return {d["kind"]: d for d in yaml.safe_load_all(text) if d}


def test_every_setting_is_a_warning_that_names_its_key_and_the_reason() -> None:
    warnings = {w.key: w.one_line() for w in example_design(LAB).warnings}
    for key in ("sandbox", "sandbox.kubelet_cgroup_driver", "sandbox.allow_cgroup_v1",
                "sandbox.ignore_preflight_errors", "sandbox.cni", "sandbox.kube_proxy_conntrack_max_per_core",
                "sandbox.skip_node_checks"):
        assert key in warnings and "nodes are network namespaces" in warnings[key], key
    assert "instead of systemd" in warnings["sandbox.kubelet_cgroup_driver"]
    assert "instead of Cilium" in warnings["sandbox.cni"]
    assert not [w for w in example_design().warnings if w.key.startswith("sandbox")]


def test_the_settings_reach_kubeadm_and_containerd() -> None:
    design = example_design(LAB)
    init = documents(design, "kubeadm/init.yaml")
    assert init["KubeletConfiguration"]["cgroupDriver"] == "cgroupfs"
    assert init["KubeletConfiguration"]["failCgroupV1"] is False
    assert init["InitConfiguration"]["nodeRegistration"]["ignorePreflightErrors"] == ["SystemVerification"]
    assert init["KubeProxyConfiguration"]["conntrack"] == {"maxPerCore": 0}
    for path in ("kubeadm/join-control-plane.yaml", "kubeadm/join-worker.yaml"):
        assert documents(design, path)["JoinConfiguration"]["nodeRegistration"]["ignorePreflightErrors"] == [
            "SystemVerification"]
    files = {f.path: f.content for f in render_bundle(design)}
    assert any("SystemdCgroup = false" in text for text in files.values())
    assert "scripts/install-bridge-cni.sh" in files


def test_without_a_sandbox_production_settings_are_rendered() -> None:
    design = example_design()
    init = documents(design, "kubeadm/init.yaml")
    assert init["KubeletConfiguration"]["cgroupDriver"] == "systemd" and "failCgroupV1" not in init["KubeletConfiguration"]
    assert "ignorePreflightErrors" not in init["InitConfiguration"]["nodeRegistration"]
    assert "KubeProxyConfiguration" not in init  # kube-proxy's own defaults (and none at all with Cilium's)
    files = {f.path: f.content for f in render_bundle(design)}
    assert any("SystemdCgroup = true" in text for text in files.values())
    assert not any("SystemdCgroup = false" in text for text in files.values())
    assert "scripts/install-bridge-cni.sh" not in files


def test_the_bridge_cni_needs_kube_proxy() -> None:
    with pytest.raises(SpecError) as refused:
        example_design({**LAB, "addons.cilium.kube_proxy_replacement": True})
    assert refused.value.one_line().startswith("addons.cilium.kube_proxy_replacement: sandbox.cni is bridge")


@pytest.mark.parametrize("bad", [{"sandbox": {"cni": "bridge"}}, {"sandbox": {"reason": " "}},
                                 {"sandbox": {"reason": "x", "ignore_preflight_errors": ["all; rm -rf /"]}},
                                 {"sandbox": {"reason": "x", "kubelet_cgroup_driver": "cgroupv1"}},
                                 {"sandbox": {"reason": "x", "skip_node_checks": ["swap"]}},
                                 {"sandbox": {"reason": "x", "kube_proxy_conntrack_max_per_core": -1}}])
def test_a_sandbox_without_a_reason_or_with_odd_values_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(SpecError) as refused:
        example_design(bad)
    assert refused.value.one_line().startswith("sandbox.") or "sandbox" in refused.value.one_line()


def test_the_bridge_cni_script_passes_shellcheck(tmp_path: Path) -> None:
    shellcheck = require_tool("shellcheck")
    script = next(f for f in render_scripts(example_design(LAB)) if f.path == "scripts/install-bridge-cni.sh")
    assert script.mode == 0o755
    path = tmp_path / "install-bridge-cni.sh"
    path.write_text(script.content)
    result = subprocess.run([shellcheck, str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.slow
def test_kubeadm_accepts_the_sandbox_configuration(tmp_path: Path) -> None:
    kubeadm = require_binary("kubeadm")
    path = tmp_path / "init.yaml"
    path.write_text(next(f.content for f in render_kubeadm(example_design(LAB)) if f.path == "kubeadm/init.yaml"))
    result = subprocess.run([kubeadm, "config", "validate", "--config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
