"""Test hosts: real OpenSSH servers in network + mount + UTS namespaces on a private bridge.

Each host has its own address on a test bridge, its own hostname, and its own view of the
directories kubeadm writes (/etc/kubernetes, /var/lib/kubelet, …) and of /usr/local/bin, where
tests may place stand-in programs. Everything is created by the fixture and removed after it;
no address outside the test range is ever used.

Needs root (network namespaces). Without root the fixture skips with that reason.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# Directories each host sees as its own (bind-mounted from the host's root directory).
PRIVATE_DIRS = ("/etc/kubernetes", "/var/lib/kubelet", "/var/lib/etcd", "/usr/local/bin", "/var/log/nsxkube",
                "/var/backups/etcd", "/etc/cni/net.d")
SSHD = "/usr/sbin/sshd"


@dataclass
class TestHost:
    name: str
    address: ipaddress.IPv4Address
    netns: str
    root: Path
    host_key_public: str
    process: subprocess.Popen | None = None

    def path(self, inside: str) -> Path:
        """Where a private directory of this host lives on the real filesystem."""
        for private in PRIVATE_DIRS:
            if inside == private or inside.startswith(private + "/"):
                return self.root / private.strip("/").replace("/", "_") / inside[len(private):].lstrip("/")
        raise ValueError(f"{inside} is not private to the test host")

    def install_program(self, name: str, script: str) -> Path:
        """Put an executable into this host's /usr/local/bin (stand-ins for kubeadm and friends)."""
        target = self.path(f"/usr/local/bin/{name}")
        target.write_text(script)
        target.chmod(0o755)
        return target

    def netns_run(self, *command: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.netns, *command], capture_output=True, text=True,
                              timeout=timeout)


@dataclass
class HostNetwork:
    subnet: ipaddress.IPv4Network
    bridge: str
    workdir: Path
    client_key: Path
    client_public_key: str
    mtu: int = 1500
    hosts: list[TestHost] = field(default_factory=list)
    tag: str = "nk"
    namespaces: list[str] = field(default_factory=list)  # every one created, even for a host that failed to start

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self.subnet.network_address + 1

    def known_hosts_lines(self) -> list[str]:
        return [f"{h.address} {h.host_key_public}" for h in self.hosts]


def _run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip()}")


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("test hosts need root (network namespaces)")
    if not Path(SSHD).exists():
        pytest.skip("OpenSSH server is not installed (scripts/setup installs openssh-server)")


@contextlib.contextmanager
def host_network(workdir: Path, count: int, *, subnet: str = "10.213.7.0/24", first_host: int = 11,
                 mtu: int = 1500, names: list[str] | None = None, tag: str | None = None) -> Iterator[HostNetwork]:
    """Start ``count`` SSH hosts on a fresh bridge; tear everything down afterwards."""
    require_root()
    tag = tag or f"nk{os.getpid() % 10000}"
    network = ipaddress.IPv4Network(subnet)
    key = workdir / "client_ed25519"
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nsxkube-tests", "-f", str(key))
    net = HostNetwork(network, f"{tag}br", workdir, key, (workdir / "client_ed25519.pub").read_text().strip(),
                      mtu=mtu, tag=tag)
    Path("/run/sshd").mkdir(exist_ok=True)
    for private in PRIVATE_DIRS:
        Path(private).mkdir(parents=True, exist_ok=True)
    try:
        _run("ip", "link", "add", net.bridge, "type", "bridge")
        _run("ip", "link", "set", net.bridge, "mtu", str(mtu), "up")
        _run("ip", "addr", "add", f"{net.gateway}/{network.prefixlen}", "dev", net.bridge)
        for index in range(count):
            name = names[index] if names else f"host-{index + 1}"
            address = network.network_address + first_host + index
            net.hosts.append(_start_host(net, name, address, index))
        for host in net.hosts:
            _wait_for_port(host)
        yield net
    finally:
        _teardown(net)


def _start_host(net: HostNetwork, name: str, address: ipaddress.IPv4Address, index: int) -> TestHost:
    netns = f"{net.tag}-{index + 1}"
    root = net.workdir / name
    root.mkdir()
    _run("ip", "netns", "add", netns)
    net.namespaces.append(netns)
    peer = f"{net.tag}v{index + 1}"
    _run("ip", "link", "add", peer, "mtu", str(net.mtu), "type", "veth", "peer", "name", "eth0", "mtu", str(net.mtu),
         "netns", netns)
    _run("ip", "link", "set", peer, "master", net.bridge, "up")
    for command in (["ip", "addr", "add", f"{address}/{net.subnet.prefixlen}", "dev", "eth0"],
                    ["ip", "link", "set", "eth0", "up"], ["ip", "link", "set", "lo", "up"],
                    ["ip", "route", "add", "default", "via", str(net.gateway)]):
        _run("ip", "netns", "exec", netns, *command)

    ssh_dir = root / "ssh"
    ssh_dir.mkdir()
    host_key = ssh_dir / "ssh_host_ed25519_key"
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
    (ssh_dir / "authorized_keys").write_text(net.client_public_key + "\n")
    config = ssh_dir / "sshd_config"
    config.write_text(
        f"Port 22\nListenAddress {address}\nHostKey {host_key}\nPidFile {ssh_dir}/sshd.pid\n"
        f"AuthorizedKeysFile {ssh_dir}/authorized_keys\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "Subsystem sftp internal-sftp\nMaxStartups 100\nMaxSessions 50\n"
    )
    mounts = []
    for private in PRIVATE_DIRS:
        source = root / private.strip("/").replace("/", "_")
        source.mkdir(parents=True)
        mounts.append(f"mount --bind {source} {private}")
    inner = " && ".join([*mounts, f"hostname {name}", f"exec {SSHD} -D -e -f {config}"])
    log = (root / "sshd.log").open("w")
    process = subprocess.Popen(
        ["ip", "netns", "exec", netns, "unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", inner],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    public = (ssh_dir / "ssh_host_ed25519_key.pub").read_text().split()
    return TestHost(name, address, netns, root, f"{public[0]} {public[1]}", process)


def _wait_for_port(host: TestHost, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if host.process and host.process.poll() is not None:
            raise RuntimeError(f"sshd on {host.name} exited: {(host.root / 'sshd.log').read_text()[-500:]}")
        probe = host.netns_run("bash", "-c", f"exec 3<>/dev/tcp/{host.address}/22", timeout=5)
        if probe.returncode == 0:
            return
        time.sleep(0.05)
    raise RuntimeError(f"sshd on {host.name} ({host.address}) did not listen within {timeout} s")


def _teardown(net: HostNetwork) -> None:
    for host in net.hosts:
        if host.process and host.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(host.process.pid, 15)
            try:
                host.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(host.process.pid, 9)
        # processes a test left inside the namespace (stand-ins, sessions) go with it
        pids = subprocess.run(["ip", "netns", "pids", host.netns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), 9)
    for netns in net.namespaces:  # deleting a namespace also deletes its end of the veth pair
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
    subprocess.run(["ip", "link", "del", net.bridge], capture_output=True)
    shutil.rmtree(net.workdir / "unused", ignore_errors=True)
