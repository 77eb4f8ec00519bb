"""The SSH test hosts are real: separate addresses, hostnames, private directories, MTU on the wire."""

from __future__ import annotations

import subprocess

from tests.support.hosts import host_network


def ssh(net, host, command: str) -> subprocess.CompletedProcess:
    known = net.workdir / "known_hosts"
    known.write_text("\n".join(net.known_hosts_lines()) + "\n")
    return subprocess.run(
        ["ssh", "-i", str(net.client_key), "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
         "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", f"root@{host.address}", command],
        capture_output=True, text=True, timeout=30,
    )


def test_hosts_answer_over_ssh_with_their_own_name_and_directories(tmp_path):
    with host_network(tmp_path, 2, names=["n1", "n2"], tag="nkt1", subnet="10.213.8.0/24") as net:
        first, second = net.hosts
        first.install_program("whoami-stand-in", "#!/bin/sh\necho stand-in on $(hostname)\n")
        result = ssh(net, first, "hostname; whoami-stand-in; touch /etc/kubernetes/marker; ls /etc/kubernetes")
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["n1", "stand-in", "on", "n1", "marker"]
        other = ssh(net, second, "hostname; ls /etc/kubernetes; command -v whoami-stand-in || echo absent")
        assert other.stdout.split() == ["n2", "absent"]
        assert first.path("/etc/kubernetes/marker").exists()


def test_a_host_key_that_changed_is_refused(tmp_path):
    with host_network(tmp_path, 1, tag="nkt2", subnet="10.213.9.0/24") as net:
        host = net.hosts[0]
        (net.workdir / "known_hosts").write_text(f"{host.address} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBxr0vYp1Jx7V2bq0s6x1Lq2P0r9bNRq3hY1ZtbdK2Qm\n")
        result = subprocess.run(
            ["ssh", "-i", str(net.client_key), "-o", f"UserKnownHostsFile={net.workdir / 'known_hosts'}",
             "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"root@{host.address}", "true"],
            capture_output=True, text=True, timeout=30)
        assert result.returncode != 0 and "HOST IDENTIFICATION HAS CHANGED" in result.stderr


def test_the_path_mtu_is_real(tmp_path):
    with host_network(tmp_path, 2, mtu=1400, tag="nkt3", subnet="10.213.10.0/24") as net:
        a, b = net.hosts
        fits = a.netns_run("ping", "-c1", "-W1", "-M", "do", "-s", "1372", str(b.address))
        too_big = a.netns_run("ping", "-c1", "-W1", "-M", "do", "-s", "1373", str(b.address))
        assert fits.returncode == 0, fits.stdout + fits.stderr
        assert too_big.returncode != 0


def test_a_host_that_fails_to_start_leaves_no_namespace_or_link_behind(tmp_path):
    import pytest

    from tests.support.hosts import require_root

    require_root()
    subprocess.run(["ip", "link", "add", "nkt9v2", "type", "bridge"], check=True)  # the 2nd host's veth name, taken
    try:
        with pytest.raises(RuntimeError, match="nkt9v2"), host_network(tmp_path, 2, tag="nkt9", subnet="10.213.12.0/24"):
            pass
    finally:
        subprocess.run(["ip", "link", "del", "nkt9v2"], capture_output=True)
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "nkt9-" not in namespaces
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    assert "nkt9br" not in links and "nkt9v1" not in links
