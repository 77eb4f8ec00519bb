"""`nsxkube init` and `nsxkube check` run as a user runs them: a subprocess, its output and exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def nsxkube(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nsxkube", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=60)


def assert_one_line_error(result: subprocess.CompletedProcess, code: int = 2) -> str:
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_init_writes_an_example_that_check_accepts(tmp_path):
    target = tmp_path / "cluster.yaml"
    result = nsxkube("init", str(target))
    assert result.returncode == 0, result.stderr
    assert target.exists()
    check = nsxkube("check", str(target))
    assert check.returncode == 0, check.stderr
    for expected in ("IP plan", "172.16.50.10", "k8s-prod-cp-1", "MTU chain", "pod MTU 1450", "Port matrix",
                     "2379-2380", "1.35.8", "is valid"):
        assert expected in check.stdout


def test_init_refuses_to_overwrite_without_force(tmp_path):
    target = tmp_path / "cluster.yaml"
    target.write_text("mine\n")
    line = assert_one_line_error(nsxkube("init", str(target)))
    assert "already exists" in line and "--force" in line
    assert target.read_text() == "mine\n"
    assert nsxkube("init", str(target), "--force").returncode == 0
    assert "name: k8s-prod" in target.read_text()


def test_init_sets_the_cluster_name(tmp_path):
    target = tmp_path / "c.yaml"
    assert nsxkube("init", str(target), "--name", "lab-1").returncode == 0
    assert yaml.safe_load(target.read_text())["name"] == "lab-1"
    assert_one_line_error(nsxkube("init", str(tmp_path / "d.yaml"), "--name", "Bad_Name"))


def test_check_json_is_the_design(tmp_path):
    target = tmp_path / "cluster.yaml"
    nsxkube("init", str(target))
    result = nsxkube("check", str(target), "--output", "json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert data["ok"] is True
    design = data["design"]
    assert design["ip_plan"]["api_vip"] == "172.16.50.10"
    assert [n["name"] for n in design["ip_plan"]["nodes"]][:1] == ["k8s-prod-cp-1"]
    assert design["mtu"]["pod_mtu"] == 1450
    assert any(flow["id"] == "etcd-peers" and flow["source"] == "control-planes" for flow in design["ports"])
    assert design["versions"]["kubernetes"] == "1.35.8"


def test_a_broken_file_is_explained_in_one_line_per_problem(tmp_path):
    target = tmp_path / "cluster.yaml"
    nsxkube("init", str(target))
    target.write_text(target.read_text().replace("api_vip: 172.16.50.10", "api_vip: 172.16.50.220"))
    result = nsxkube("check", str(target))
    line = assert_one_line_error(result)
    assert line.startswith(f"error: {target}:")
    assert "network.loadbalancer_pools[0].range" in line and "contains the API VIP" in line


def test_several_problems_are_all_listed(tmp_path):
    target = tmp_path / "cluster.yaml"
    nsxkube("init", str(target))
    text = target.read_text().replace("count: 3", "count: 0").replace("node_mtu: 1500", "node_mtu: 1650")
    target.write_text(text)
    result = nsxkube("check", str(target))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "nodes.control_planes.count" in result.stderr and "network.node_mtu" in result.stderr
    assert all(line.startswith("error: ") for line in result.stderr.splitlines())


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("name: [\n", "YAML syntax error"),
        ("name: ok\nnodez: {}\n", "did you mean"),
        ("", "empty"),
    ],
)
def test_bad_files_give_one_line(tmp_path, content, fragment):
    target = tmp_path / "cluster.yaml"
    target.write_text(content)
    result = nsxkube("check", str(target))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert fragment in result.stderr


def test_missing_file(tmp_path):
    line = assert_one_line_error(nsxkube("check", str(tmp_path / "nope.yaml")))
    assert "no such file" in line and "nsxkube init" in line


def test_check_json_reports_errors_as_data(tmp_path):
    target = tmp_path / "cluster.yaml"
    nsxkube("init", str(target))
    target.write_text(target.read_text().replace("node_mtu: 1500", "node_mtu: 1650"))
    result = nsxkube("check", str(target), "-o", "json")
    assert result.returncode == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["errors"][0]["key"] == "network.node_mtu"
    assert data["errors"][0]["line"] is not None


def test_version_help_and_completion():
    from nsxkube import __version__

    assert nsxkube("--version").stdout.strip() == f"nsxkube {__version__}"
    for command in ([], ["init"], ["check"]):
        result = nsxkube(*command, "--help")
        assert result.returncode == 0 and "Usage" in result.stdout
    completion = nsxkube("--show-completion", "bash")
    assert completion.returncode == 0 and "complete" in completion.stdout


def test_unknown_command_is_a_usage_error():
    result = nsxkube("frobnicate")
    assert result.returncode == 2 and "Traceback" not in result.stderr
