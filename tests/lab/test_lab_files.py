"""The lab's files and its start/stop logic without simulators: the cluster.yaml it writes, the
state file, finding vcsim, and every refusal (one line, non-zero exit, nothing started)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from nsxkube.design import derive_design
from nsxkube.errors import UsageError
from nsxkube.lab import control
from nsxkube.lab import state as files
from nsxkube.lab.cluster_file import CLUSTER_NAME, Endpoint, _replace, is_lab_file, lab_cluster_yaml, ssh_keypair
from nsxkube.lab.vcsim import locate_vcsim
from nsxkube.spec import load_spec
from nsxkube.spec.example import example_text

THUMB_A = ":".join(["AB"] * 32)
THUMB_B = ":".join(["0F"] * 32)


def nsxkube(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nsxkube", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def write_lab_yaml(path: Path) -> Path:
    _, public = ssh_keypair("test")
    path.write_text(lab_cluster_yaml(example_text(CLUSTER_NAME), vcenter=Endpoint("127.0.0.1", 8989, THUMB_A),
                                     nsx=Endpoint("127.0.0.1", 8443, THUMB_B), public_key=public,
                                     private_key_file=path.parent / "ssh" / "id_ed25519"), encoding="utf-8")
    return path


def test_the_lab_cluster_file_is_valid_and_points_at_the_simulators(tmp_path: Path) -> None:
    path = write_lab_yaml(tmp_path / "cluster.yaml")
    spec = load_spec(path)
    design = derive_design(spec)
    assert (spec.name, spec.vsphere.server, spec.vsphere.datacenter, spec.vsphere.cluster) == (
        "k8s-lab", "127.0.0.1:8989", "DC0", "DC0_C0")
    assert (spec.vsphere.tls.thumbprint, spec.nsx.tls.thumbprint) == (THUMB_A, THUMB_B)
    assert not spec.vsphere.tls.insecure and not spec.nsx.tls.insecure  # pinned, never "insecure"
    assert (spec.nsx.manager, spec.nsx.transport_zone, spec.nsx.tier1) == ("127.0.0.1:8443", "overlay-tz", "t1-gw")
    assert str(spec.nsx.segment.cidr) == "172.16.51.0/24"  # clear of the tanzu preset's 172.16.50.128/25
    assert all(str(n.address).startswith("172.16.51.") for n in design.ip_plan.nodes)
    assert "172.16.50." not in path.read_text().split("\n", 3)[3]  # below the header that explains the move
    assert spec.ssh.public_keys[0].endswith(" test") and spec.ssh.private_key_file == tmp_path / "ssh" / "id_ed25519"
    assert "# " in path.read_text().splitlines()[10]  # the example's comments are kept
    assert is_lab_file(path)


def test_a_file_not_written_by_the_lab_is_recognised(tmp_path: Path) -> None:
    other = tmp_path / "cluster.yaml"
    other.write_text(example_text())
    assert not is_lab_file(other)
    assert not is_lab_file(tmp_path / "missing.yaml")


def test_an_example_that_changed_shape_fails_loudly_instead_of_keeping_its_values() -> None:
    with pytest.raises(RuntimeError, match="matched 0 times"):
        _replace("server: vcenter.example.com\n", r"^  server: vcenter\.example\.com", "x")


def test_the_throwaway_key_is_a_real_openssh_ed25519_pair() -> None:
    from cryptography.hazmat.primitives import serialization

    private, public = ssh_keypair("lab")
    key = serialization.load_ssh_private_key(private, password=None)
    derived = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    assert public == f"{derived.decode()} lab" and public.startswith("ssh-ed25519 ")


def test_state_round_trips_and_a_torn_file_reads_as_no_lab(tmp_path: Path) -> None:
    lab = files.LabState(123, "2026-11-26T00:00:00+00:00", "k8s-lab",
                         (files.Service("vcenter", "127.0.0.1", 1, THUMB_A, "govmomi", 11),
                          files.Service("nsx", "127.0.0.1", 2, THUMB_B, "preset tanzu", 123)))
    files.write_private(tmp_path / files.STATE_FILE, lab.to_json())
    assert files.read_state(tmp_path) == lab
    assert stat.S_IMODE((tmp_path / files.STATE_FILE).stat().st_mode) == 0o600
    assert lab.service("nsx").url == "https://127.0.0.1:2"
    (tmp_path / files.STATE_FILE).write_text('{"pid": 1, "started')
    assert files.read_state(tmp_path) is None


def test_a_stale_state_file_is_no_running_lab_and_is_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for pid in (dead.pid, os.getpid()):  # a dead process, and a live one that is not a supervisor
        lab = files.LabState(pid, "then", "k8s-lab", ())
        files.write_private(tmp_path / files.STATE_FILE, lab.to_json())
        assert control.status(tmp_path) is None
        assert not (tmp_path / files.STATE_FILE).exists()


def test_up_refuses_to_overwrite_a_cluster_file_it_did_not_write_and_starts_nothing(tmp_path: Path) -> None:
    (tmp_path / "cluster.yaml").write_text(example_text())
    with pytest.raises(UsageError, match=r"cluster\.yaml exists and was not written by `nsxkube lab up`"):
        control.up(tmp_path)
    assert not (tmp_path / files.LOG_FILE).exists()


def test_lab_up_without_the_simulator_is_one_line_with_how_to_build_it(tmp_path: Path) -> None:
    result = nsxkube("lab", "up", "--dir", str(tmp_path / "lab"), env={"NSXKUBE_VCSIM": str(tmp_path / "nope")})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "NSXKUBE_VCSIM=" in result.stderr and "programs/build.sh vcsim" in result.stderr
    assert not (tmp_path / "lab" / files.LOG_FILE).exists()


def test_down_and_status_without_a_lab_say_so(tmp_path: Path) -> None:
    down = nsxkube("lab", "down", "--dir", str(tmp_path))
    assert (down.returncode, down.stdout.strip()) == (0, f"no lab is running in {tmp_path}")
    status = nsxkube("lab", "status", "--dir", str(tmp_path))
    assert (status.returncode, status.stdout.strip()) == (1, f"no lab is running in {tmp_path}")
    summary = nsxkube("lab", "summary", "--dir", str(tmp_path))
    assert summary.returncode == 2 and summary.stderr.startswith(f"error: no lab is running in {tmp_path}")
    yaml_out = nsxkube("lab", "summary", "--dir", str(tmp_path), "-o", "yaml")
    assert (yaml_out.returncode, yaml_out.stderr) == (2, "error: --output 'yaml': use text or json\n")


def _fake_program(path: Path, origin: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    if origin:
        path.with_name(f"{path.name}.source").write_text(f"{origin}\nbuilt …\n")
    return path


def test_vcsim_is_found_prebuilt_then_newest_module_build_then_debian_then_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, bin_dir = tmp_path / "cache", tmp_path / "bin"
    monkeypatch.setenv("NSXKUBE_TEST_BIN", str(cache))
    monkeypatch.delenv("NSXKUBE_VCSIM", raising=False)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(UsageError, match="not built"):
        locate_vcsim()
    _fake_program(bin_dir / "vcsim")
    assert locate_vcsim().path == bin_dir / "vcsim"
    _fake_program(cache / "govmomi-0.24.2-debian" / "vcsim", "govmomi 0.24.2 (Debian fallback)")
    assert locate_vcsim().origin == "govmomi 0.24.2 (Debian fallback)"
    _fake_program(cache / "govmomi-v0.9.0" / "vcsim", "govmomi v0.9.0 (Go module)")
    _fake_program(cache / "govmomi-v0.56.0" / "vcsim", "govmomi v0.56.0 (Go module)")
    assert locate_vcsim().origin == "govmomi v0.56.0 (Go module)"  # 0.56 > 0.9, by number not by text
    prebuilt = _fake_program(cache / "vcsim")
    assert locate_vcsim().path == prebuilt  # a prebuilt one wins
    monkeypatch.setenv("NSXKUBE_VCSIM", str(cache / "govmomi-v0.9.0" / "vcsim"))
    assert locate_vcsim().origin == "govmomi v0.9.0 (Go module)"


@pytest.mark.parametrize(("args", "message"), [
    (("up", "--dir", "/etc/passwd"), "error: --dir /etc/passwd: not a directory"),
    (("down", "--dir", "/etc/passwd"), "error: --dir /etc/passwd: not a directory"),
    (("summary", "--dir", "/etc/passwd"), "error: --dir /etc/passwd: not a directory"),
    (("up", "--dir", "/proc/no-such-dir"), "error: --dir /proc/no-such-dir: cannot create it"),
    (("up", "--dir", "{tmp}", "--vcenter-port", "99999"), "error: --vcenter-port 99999: a TCP port is 1–65535"),
    (("up", "--dir", "{tmp}", "--nsx-port", "-1"), "error: --nsx-port -1: a TCP port is 1–65535"),
])
def test_bad_lab_arguments_are_one_line_before_anything_starts(tmp_path: Path, args: tuple[str, ...],
                                                                message: str) -> None:
    result = nsxkube("lab", *(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert result.returncode == 2 and result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / files.LOG_FILE).exists()


def test_lab_env_reads_back_what_the_shell_would_set(tmp_path: Path) -> None:
    values = {"NSX_PASSWORD": "it's $secret; `x`", "NSX_MANAGER": "127.0.0.1:8443"}
    files.write_env(tmp_path, values)
    assert files.read_env(tmp_path) == values
    assert stat.S_IMODE((tmp_path / files.ENV_FILE).stat().st_mode) == 0o600
    sourced = subprocess.run(["bash", "-c", f". {tmp_path / files.ENV_FILE} && printf %s \"$NSX_PASSWORD\""],
                             capture_output=True, text=True, check=True)
    assert sourced.stdout == values["NSX_PASSWORD"]
