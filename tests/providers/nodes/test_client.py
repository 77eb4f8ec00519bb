"""The SSH client against real OpenSSH servers on test hosts (tests/support/hosts.py)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nsxkube.errors import ProviderError
from nsxkube.providers.nodes import commands
from nsxkube.providers.nodes.client import NodeClient
from nsxkube.providers.nodes.model import Command, Target
from tests.support.hosts import HostNetwork, host_network


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostNetwork]:
    with host_network(tmp_path_factory.mktemp("ssh-hosts"), 2, subnet="10.213.67.0/24", tag="nkc67",
                      names=["node-a", "node-b"]) as network:
        yield network


def client(net: HostNetwork, workdir: Path, *, tofu: bool = False, bastion: str | None = None,
           known: bool = True, seen: list | None = None) -> NodeClient:
    workdir.mkdir(exist_ok=True)
    known_hosts = workdir / "known_hosts"
    if known and not known_hosts.exists():
        known_hosts.write_text("\n".join(net.known_hosts_lines()) + "\n")
    return NodeClient(user="root", port=22, key_file=net.client_key, known_hosts_file=known_hosts,
                      trust_on_first_use=tofu, bastion=bastion, workdir=workdir, connect_timeout=5,
                      on_new_host_key=lambda target, fingerprint: (seen if seen is not None else []).append(
                          (target.name, fingerprint)))


def test_trust_on_first_use_records_the_key_and_reports_its_fingerprint(net: HostNetwork, tmp_path: Path) -> None:
    host = net.hosts[0]
    seen: list = []
    first = client(net, tmp_path, tofu=True, known=False, seen=seen)
    try:
        assert first.run(first.target(host.name, str(host.address)), Command("hostname", "hostname", 10)).stdout == "node-a\n"
    finally:
        first.close()
    printed = subprocess.run(["ssh-keygen", "-lf", str(host.root / "ssh/ssh_host_ed25519_key.pub")],
                             capture_output=True, text=True, check=True).stdout.split()
    assert seen == [("node-a", f"ssh-ed25519 {printed[1]}")]
    assert (tmp_path / "known_hosts").read_text() == f"{host.address} {host.host_key_public}\n"
    again = client(net, tmp_path, seen=seen)  # strict now: the recorded key must match
    try:
        again.connect(again.target(host.name, str(host.address)))
    finally:
        again.close()
    assert len(seen) == 1


def test_an_unknown_key_is_refused_without_trust_on_first_use(net: HostNetwork, tmp_path: Path) -> None:
    host = net.hosts[0]
    strict = client(net, tmp_path, known=False)
    try:
        with pytest.raises(ProviderError) as caught:
            strict.connect(strict.target(host.name, str(host.address)))
    finally:
        strict.close()
    assert caught.value.one_line().startswith(f"host key of node-a ({host.address}) is not in ")
    assert "ssh.trust_on_first_use" in caught.value.one_line() and "\n" not in caught.value.one_line()
    assert not (tmp_path / "known_hosts").exists()


def test_the_bastion_carries_the_connection(net: HostNetwork, tmp_path: Path) -> None:
    jump, node = net.hosts
    via = client(net, tmp_path, bastion=f"root@{jump.address}")
    try:
        result = via.run(via.target(node.name, str(node.address)), Command("hostname", "hostname", 10))
    finally:
        via.close()
    assert result.stdout == "node-b\n"
    log = (node.root / "sshd.log").read_text()
    assert f"Accepted publickey for root from {jump.address}" in log


def test_every_command_has_a_timeout_and_the_log_says_so(net: HostNetwork, tmp_path: Path) -> None:
    host = net.hosts[1]
    runner = client(net, tmp_path)
    target = runner.target(host.name, str(host.address))
    start = time.monotonic()
    try:
        with pytest.raises(ProviderError) as caught:
            runner.run(target, Command("waiting for godot", "echo started; sleep 20", 1))
        assert time.monotonic() - start < 8
        assert runner.run(target, Command("still usable", "true", 5)).ok
    finally:
        runner.close()
    assert caught.value.message == f"waiting for godot on node-b ({host.address}) did not finish within 1 s"
    assert "TIMED OUT" in (tmp_path / "logs" / "node-b.log").read_text()


def test_a_closed_port_is_reported_with_the_address(net: HostNetwork, tmp_path: Path) -> None:
    host = net.hosts[1]
    runner = client(net, tmp_path)
    try:
        with pytest.raises(ProviderError) as caught:
            runner.connect(Target(host.name, str(host.address), 2222))
    finally:
        runner.close()
    assert caught.value.message == f"cannot reach node-b ({host.address}) on port 2222: Connection refused"


def test_secrets_on_stdin_are_invisible_to_ps_and_redacted_in_the_log(net: HostNetwork, tmp_path: Path) -> None:
    host = net.hosts[0]
    secret = "zq81xv.m3k9p2l7r4t6w8y0"
    runner = client(net, tmp_path)
    runner.add_secrets([secret])
    script = commands.with_secret_env(["NSXKUBE_JOIN_TOKEN"], 'ps -eo args; echo "length ${#NSXKUBE_JOIN_TOKEN}"; '
                                      'echo "kubeadm said $NSXKUBE_JOIN_TOKEN" >&2')
    try:
        result = runner.run(runner.target(host.name, str(host.address)),
                            Command("join", script, 10, stdin=commands.secret_stdin([secret])))
    finally:
        runner.close()
    assert result.ok and f"length {len(secret)}" in result.stdout
    assert secret not in result.stdout, "the secret showed in a process's arguments"
    assert result.stderr == "kubeadm said <redacted>\n", "stderr reaches messages and the screen"
    assert secret not in (tmp_path / "logs" / "node-a.log").read_text()


def test_files_are_uploaded_root_owned_and_private(net: HostNetwork, tmp_path: Path) -> None:
    host = net.hosts[0]
    runner = client(net, tmp_path)
    files = {"scripts/run.sh": ("#!/bin/sh\necho ran on $(hostname)\n", 0o755), "kubeadm/x.yaml": ("x: 1\n", 0o644)}
    target = runner.target(host.name, str(host.address))
    try:
        runner.create_files(target, "/var/log/nsxkube/bundle", files, 10)
        result = runner.run(target, Command("run", "/var/log/nsxkube/bundle/scripts/run.sh && "
                                                   "stat -c '%a %U' /var/log/nsxkube/bundle /var/log/nsxkube/bundle/kubeadm/x.yaml", 10))
    finally:
        runner.close()
    assert result.stdout.splitlines() == ["ran on node-a", "700 root", "600 root"]
    assert host.path("/var/log/nsxkube/bundle/kubeadm/x.yaml").read_text() == "x: 1\n"


def test_template_vm_runs_the_rendered_prepare_script_over_ssh(net: HostNetwork, tmp_path: Path) -> None:
    from nsxkube.providers.nodes.template import prepare_vm_script, update_template_vm
    from tests.support.specs import example_design

    host = net.hosts[1]
    design = example_design({"ssh.user": "root", "ssh.private_key_file": str(net.client_key)})
    assert "--seal-at-shutdown" in prepare_vm_script(design)
    (tmp_path / "known_hosts").write_text("\n".join(net.known_hosts_lines()) + "\n")
    fake = '#!/bin/bash\necho "$(hostname) $(id -u) $*" >/var/log/nsxkube/prepare.out\necho "E: no $1" >&2\nexit ${FAIL:-0}\n'
    steps: list[str] = []
    update_template_vm(design, str(host.address), tmp_path, step=steps.append, warn=steps.append, script=fake)
    assert host.path("/var/log/nsxkube/prepare.out").read_text() == "node-b 0 --seal-at-shutdown\n"
    assert steps[-1].startswith(f"prepare-vm.sh finished on {host.address}")
    with pytest.raises(ProviderError) as caught:
        update_template_vm(design, str(host.address), tmp_path, step=steps.append, warn=steps.append,
                           script=fake.replace("${FAIL:-0}", "1"))
    assert caught.value.message == f"prepare-vm.sh on {host.address} failed: E: no --seal-at-shutdown"
