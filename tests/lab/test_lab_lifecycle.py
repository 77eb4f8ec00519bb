"""`lab up` / `status` / `summary` / `down` with the real simulators, beyond the main job's test:
a port that is taken, reuse of a running lab, the JSON summary."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from nsxkube.lab import state as files
from nsxkube.lab.process import pid_alive
from tests.support.binaries import require_binary

pytestmark = pytest.mark.slow


def nsxkube(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nsxkube", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_a_taken_port_is_one_line_and_leaves_nothing_running(tmp_path: Path) -> None:
    require_binary("vcsim")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = nsxkube("lab", "up", "--dir", str(tmp_path), "--nsx-port", str(port))
    assert result.returncode == 4, result.stdout + result.stderr
    assert result.stderr.startswith("error: the lab did not start: ") and result.stderr.count("\n") == 1
    assert "Address already in use" in result.stderr and "Traceback" not in result.stderr
    assert files.read_state(tmp_path) is None
    leftovers = subprocess.run(["pgrep", "-f", f"nsxkube.lab.supervisor {tmp_path}"], capture_output=True, text=True)
    assert leftovers.stdout == ""


def test_up_twice_reuses_the_lab_and_the_summary_reads_it_back(tmp_path: Path) -> None:
    require_binary("vcsim")
    try:
        first = nsxkube("lab", "up", "--dir", str(tmp_path))
        assert first.returncode == 0, first.stderr
        lab = files.read_state(tmp_path)
        assert lab is not None and f"\nlab up in {tmp_path}" in first.stdout
        cluster_yaml = (tmp_path / "cluster.yaml").read_text()
        again = nsxkube("lab", "up", "--dir", str(tmp_path))
        assert again.returncode == 0 and again.stdout.startswith(f"lab already running in {tmp_path}")
        assert files.read_state(tmp_path) == lab and (tmp_path / "cluster.yaml").read_text() == cluster_yaml
        status = nsxkube("lab", "status", "--dir", str(tmp_path))
        assert status.returncode == 0 and f"supervisor pid {lab.pid}" in status.stdout
        summary = json.loads(nsxkube("lab", "summary", "--dir", str(tmp_path), "-o", "json").stdout)
        assert summary["cluster"] == "k8s-lab" and summary["nsx_owned"] == {} and summary["vms"] == []
        assert summary["nsx_others"]["Tanzu / NCP"] > 0  # the preset is there, and not ours
        assert summary["last_apply"] is None
        assert stat_mode(tmp_path / files.ENV_FILE) == stat_mode(tmp_path / files.SSH_KEY) == 0o600
        assert "PASSWORD" not in (tmp_path / files.STATE_FILE).read_text()
        assert "PASSWORD" not in cluster_yaml.replace("password_env: VSPHERE_PASSWORD", "").replace(
            "password_env: NSX_PASSWORD", "")
    finally:
        down = nsxkube("lab", "down", "--dir", str(tmp_path))
    assert down.returncode == 0, down.stderr
    assert not pid_alive(lab.pid)


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_two_lab_up_at_once_in_one_directory_start_one_lab(tmp_path: Path) -> None:
    require_binary("vcsim")
    command = [sys.executable, "-m", "nsxkube", "lab", "up", "--dir", str(tmp_path)]
    both = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        outputs = [p.communicate(timeout=120) for p in both]
        assert [p.returncode for p in both] == [0, 0], outputs
        said = sorted("already running" in out for out, _ in outputs)
        assert said == [False, True]  # one started it, the other found it
        supervisors = subprocess.run(["pgrep", "-f", f"nsxkube.lab.supervisor {tmp_path} "], capture_output=True,
                                     text=True).stdout.split()
        assert len(supervisors) == 1
    finally:
        nsxkube("lab", "down", "--dir", str(tmp_path))
