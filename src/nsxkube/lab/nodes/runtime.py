"""Lab and test nodes: real Kubernetes nodes in network + mount + UTS + cgroup namespaces.

A node is what a VM is to nsxkube, as far as this machine allows:

* its own **network namespace** with ``ens192`` (the name netplan gives the VMs' NIC, which the rendered
  kube-vip and keepalived configurations name) on a private test bridge (an address in a range the
  tests own) and no default route: nothing a node does can leave the bridge;
* its own **mount namespace**: a sysfs of its network namespace, a fresh ``/run``, and private
  ``/etc/kubernetes``, ``/var/lib/kubelet``, ``/var/lib/etcd``, ``/var/lib/containerd``,
  ``/var/lib``, ``/var/log``, ``/usr/local/bin``, ``/root``, ``/tmp`` … (:data:`PRIVATE_DIRS`) bind-mounted from
  the node's directory on the host, plus its own ``/etc/hosts``, ``/etc/hostname``, ``/etc/resolv.conf``
  and ``/etc/machine-id``;
* its own **UTS namespace** (hostname) and **cgroup namespace** rooted at the node's own cgroup in
  every hierarchy, so the kubelet's ``/kubepods`` tree and every container end up inside the node's
  cgroup — which is also how teardown finds and kills everything the node started;
* a **supervisor** standing in for systemd (nsxkube/lab/nodes/init.py) running **containerd**
  (Debian's, with its own config, root, state and socket), **sshd** and the **kubelet** the way
  kubeadm's systemd drop-in does, behind a ``systemctl`` (and ``journalctl``) shim in the node's
  ``/usr/local/bin``.

:func:`node_network` starts several nodes on one bridge and tears everything down afterwards;
:func:`leftovers` lists anything that survived (processes, cgroups, mounts, namespaces, links).
Needs root; without it (or without containerd, runc, sshd) the fixture skips with the reason.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nsxkube.lab.nodes import init as init_module
from nsxkube.render.cloud_init import NODE_NIC

SUPERVISOR = Path(init_module.__file__).resolve()
# The supervisor uses the standard library only, run by Debian's Python: the node's private
# /usr/local/bin hides whatever Python lives there on the machine.
NODE_PYTHON = "/usr/bin/python3"
NODE_SUPERVISOR = "/usr/local/bin/nsxkube-supervisor"
SSHD = "/usr/sbin/sshd"
CONTAINERD = "/usr/bin/containerd"
CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins
PAUSE_IMAGE_DEFAULT = "registry.k8s.io/pause:3.10.1"
CAP_SYS_RESOURCE = 24
LOCK_FILE = Path("/run/lock/nsxkube-test-nodes.lock")

# Directories each node sees as its own. /etc starts as a copy of the machine's (a few MiB: like the
# /etc of a VM image), so whatever kubeadm, cloud-init or an operator writes there stays in the node;
# the others start empty.
PRIVATE_DIRS = ("/etc", "/var/lib", "/var/log", "/var/backups", "/usr/local/bin", "/root", "/home", "/tmp")
COPIED_DIRS = ("/etc",)
# What a fresh node's /etc must not inherit from the machine's.
# default/keepalived: the package's file empties DAEMON_ARGS, and the node has no syslog for keepalived
# to log to; the unit's own arguments send its log to the console, which the node's journal keeps.
CLEARED_FROM_ETC = ("ssh/ssh_host_*", "ssh/sshd_config.d/*", "kubernetes", "cni/net.d/*", "keepalived/*.conf",
                    "containerd/*", "default/kubelet", "default/keepalived", "sudoers.d/*", "netplan/*")

# Machine-wide sysctls the kubelet sets on start (protectKernelDefaults: false): restored afterwards.
KUBELET_GLOBAL_SYSCTLS = ("vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops",
                          "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes")
# Per network namespace: what kubeadm's preflight and the bridge CNI need on a node.
NODE_SYSCTLS = {"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1",
                "net.bridge.bridge-nf-call-ip6tables": "1", "net.ipv4.conf.all.rp_filter": "0"}

# kubeadm's kubelet drop-in (10-kubeadm.conf) and the kubelet package's unit, as supervisor units.
KUBELET_UNIT = {
    "description": "kubelet: The Kubernetes Node Agent",
    "exec": ["/usr/local/bin/kubelet", "$KUBELET_KUBECONFIG_ARGS", "$KUBELET_CONFIG_ARGS", "$KUBELET_KUBEADM_ARGS",
             "$KUBELET_EXTRA_ARGS"],
    "environment": {
        "KUBELET_KUBECONFIG_ARGS": "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf "
                                   "--kubeconfig=/etc/kubernetes/kubelet.conf",
        "KUBELET_CONFIG_ARGS": "--config=/var/lib/kubelet/config.yaml",
    },
    "environment_files": ["-/var/lib/kubelet/kubeadm-flags.env", "-/etc/default/kubelet"],
    "restart_sec": 10,
    "kill_mode": "control-group",
}
# Debian's keepalived.service (Ubuntu's is the same): started by the bootstrap and join scripts
# with keepalived as the API VIP provider; logs to the unit's journal file instead of syslog.
KEEPALIVED = "/usr/sbin/keepalived"
KEEPALIVED_UNIT = {
    "description": "Keepalive Daemon (LVS and VRRP)",
    "exec": [KEEPALIVED, "--dont-fork", "$DAEMON_ARGS"],
    "environment": {"DAEMON_ARGS": "--log-console --log-detail"},
    "environment_files": ["-/etc/default/keepalived"],
    "restart_sec": 1,
    "kill_mode": "control-group",
}
CONTAINERD_UNIT = {
    "description": "containerd container runtime",
    "exec": [CONTAINERD, "--config", "/etc/containerd/config.toml"],
    "restart_sec": 5,
    "kill_mode": "process",  # like containerd.service: containers outlive a containerd restart
}


def can_lower_oom_score_adj() -> bool:
    """Whether this process may set a negative oom_score_adj (needs CAP_SYS_RESOURCE)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) & (1 << CAP_SYS_RESOURCE))
    return False


def containerd_config(sandbox_image: str = PAUSE_IMAGE_DEFAULT, restrict_oom_score_adj: bool | None = None) -> str:
    """containerd 1.6 (config version 2): CRI with runc and the cgroupfs driver, CNI from Debian."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    if restrict_oom_score_adj is None:
        restrict_oom_score_adj = not can_lower_oom_score_adj()
    return f"""\
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "/var/lib/containerd/opt"

[{cri}]
  sandbox_image = "{sandbox_image}"
  # Root on this machine lacks CAP_SYS_RESOURCE: the kernel refuses a negative oom_score_adj, and
  # runc fails every static Pod (-997/-998) with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = {"true" if restrict_oom_score_adj else "false"}
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
  [{cri}.cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "/etc/cni/net.d"
"""


# ---- cgroups -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hierarchy:
    mountpoint: Path
    fstype: str  # cgroup | cgroup2
    options: str  # mount options that select it: "cpu", "name=systemd", "" (cgroup2)
    current: str  # this process's cgroup in it


def cgroup_hierarchies() -> list[Hierarchy]:
    """The cgroup hierarchies mounted under /sys/fs/cgroup and this process's place in each."""
    own: dict[frozenset[str], str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        own[frozenset(c for c in controllers.split(",") if c)] = path
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype, _, super_options = right.split(" ", 2)
        mountpoint = left.split(" ")[4]
        if fstype not in ("cgroup", "cgroup2") or not mountpoint.startswith("/sys/fs/cgroup"):
            continue
        selected = [o for o in super_options.split(",") if o not in ("rw", "ro") and (fstype == "cgroup")
                    and (o.startswith("name=") or "=" not in o) and o not in ("xattr", "noprefix", "clone_children",
                                                                              "cpuset_v2_mode")]
        key = frozenset(selected)
        if key not in own:
            continue
        options = ",".join(selected)
        if options.startswith("name="):
            options = "none," + options  # a named hierarchy without controllers
        found.append(Hierarchy(Path(mountpoint), fstype, options, own[key]))
    return found


def _write(path: Path, value: str) -> None:
    with path.open("w") as handle:
        handle.write(value)


def create_cgroup(hierarchies: Sequence[Hierarchy], relative: str) -> list[Path]:
    """``relative`` (``nsxkube-TAG/NODE``) below this process's cgroup in every hierarchy."""
    created = []
    for h in hierarchies:
        base = h.mountpoint / h.current.lstrip("/")
        path = base
        for part in relative.split("/"):
            parent, path = path, path / part
            if not path.is_dir():
                path.mkdir()
                if "cpuset" in h.options.split(","):  # a new cpuset has no CPUs until given some
                    for name in ("cpuset.cpus", "cpuset.mems"):
                        _write(path / name, (parent / name).read_text().strip())
        created.append(path)
    return created


def cgroup_pids(paths: Sequence[Path]) -> set[int]:
    pids: set[int] = set()
    for root in paths:
        if not root.is_dir():
            continue
        for directory, _, files in os.walk(root):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in Path(directory, "cgroup.procs").read_text().split())
    return pids


def remove_cgroup(paths: Sequence[Path], timeout: float = 20.0) -> list[str]:
    """Kills every process in the cgroups (frozen first, so nothing forks meanwhile), removes them.

    Returns what could not be removed (for the leftover check).
    """
    freezer = next((p for p in paths if (p / "freezer.state").exists()), None)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = cgroup_pids(paths)
        if not pids:
            break
        if freezer is not None:
            with contextlib.suppress(OSError):
                _write(freezer / "freezer.state", "FROZEN")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if freezer is not None:
            with contextlib.suppress(OSError):
                _write(freezer / "freezer.state", "THAWED")
        time.sleep(0.1)
    problems = []
    for root in paths:
        if not root.is_dir():
            continue
        for directory, _, _ in sorted(os.walk(root, topdown=False), key=lambda w: -len(w[0])):
            for _ in range(50):
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                problems.append(f"cgroup {directory} could not be removed")
    return problems


# ---- nodes -------------------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    address: ipaddress.IPv4Address
    netns: str
    root: Path
    network: NodeNetwork
    index: int = 0
    cgroups: list[Path] = field(default_factory=list)
    host_key_public: str = ""
    process: subprocess.Popen | None = None
    started: float = 0.0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def path(self, inside: str) -> Path:
        """Where a private directory or file of this node lives on the host's filesystem."""
        for private in PRIVATE_DIRS:
            if inside == private or inside.startswith(private + "/"):
                return self.root / "fs" / private.strip("/").replace("/", "_") / inside[len(private):].lstrip("/")
        raise ValueError(f"{inside} is not private to the node")

    def _join_cgroups(self) -> None:  # pragma: no cover - runs between fork and exec
        for path in self.cgroups:
            _write(path / "cgroup.procs", str(os.getpid()))
        _die_with_parent()

    def run(self, *command: str, timeout: float = 120, input: str | None = None, stdin=None,
            env: dict[str, str] | None = None, check: bool = False) -> subprocess.CompletedProcess:
        """Runs a command inside the node (its namespaces and cgroup), as root, from /."""
        argv = ["nsenter", "-t", str(self.pid), "-n", "-m", "-u", "-C", "--wd=/", "--", *command]
        environment = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                       "LANG": "C.UTF-8", **(env or {})}
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input, env=environment,
                                preexec_fn=self._join_cgroups, check=False, **({"stdin": stdin} if stdin else {}))
        if check and result.returncode != 0:
            raise RuntimeError(f"{self.name}: {' '.join(command)} exited {result.returncode}: "
                               f"{(result.stderr or result.stdout).strip()[-2000:]}")
        return result

    def ssh(self, command: str, *, input: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
        """``ssh root@node COMMAND`` with the network's client key and known_hosts (strict)."""
        return subprocess.run(
            ["ssh", *self.network.ssh_options(), f"root@{self.address}", command],
            capture_output=True, text=True, input=input, timeout=timeout, check=False,
        )

    def scp(self, sources: Sequence[Path], target: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["scp", *self.network.ssh_options(), "-r", *map(str, sources),
                               f"root@{self.address}:{target}"], capture_output=True, text=True, timeout=timeout,
                              check=False)

    def systemctl(self, *args: str) -> tuple[int, str, str]:
        """The node's supervisor, asked from the host (through the node's /run, seen via /proc)."""
        return init_module.request(list(args), f"/proc/{self.pid}/root{init_module.CONTROL_SOCKET}")

    def journal(self, unit: str, lines: int = 40) -> str:
        path = self.path(f"/var/log/journal/{unit}.log")
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as error:
            return f"(no log for {unit}: {error})"

    def memory_bytes(self) -> int:
        """Memory charged to the node's cgroup (containers included)."""
        for path in self.cgroups:
            usage = path / "memory.usage_in_bytes"
            if usage.exists():
                return int(usage.read_text())
        return 0

    def install_program(self, name: str, source: Path) -> Path:
        """Puts a program into the node's /usr/local/bin (a hard link when it can, else a copy)."""
        target = self.path(f"/usr/local/bin/{name}")
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
        target.chmod(0o755)
        return target

    def install_script(self, name: str, text: str) -> Path:
        target = self.path(f"/usr/local/bin/{name}")
        target.write_text(text)
        target.chmod(0o755)
        return target


@dataclass
class NodeNetwork:
    subnet: ipaddress.IPv4Network
    bridge: str
    workdir: Path
    tag: str
    client_key: Path
    mtu: int = 1500
    nodes: list[Node] = field(default_factory=list)
    hierarchies: list[Hierarchy] = field(default_factory=list)
    saved_sysctls: dict[str, str] = field(default_factory=dict)
    indices: int = 0  # veth and namespace names are numbered; a number is never reused within a network
    gateway_address: ipaddress.IPv4Address | None = None  # the host's side of the bridge; default: the first address

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self.gateway_address or self.subnet.network_address + 1

    @property
    def known_hosts(self) -> Path:
        return self.workdir / "known_hosts"

    def ssh_options(self) -> list[str]:
        return ["-i", str(self.client_key), "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                "-o", "LogLevel=ERROR"]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def memory_bytes(self) -> int:
        return sum(n.memory_bytes() for n in self.nodes)


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip()}")


class NodeToolsMissing(RuntimeError):
    """This machine cannot run nodes; the message says what is missing."""


def missing_node_tools() -> str | None:
    """Why this machine cannot run nodes (root, containerd, runc, sshd, CNI plugins, nsenter …), or None."""
    if os.geteuid() != 0:
        return "nodes need root (namespaces, cgroups, mounts)"
    missing = [p for p in (CONTAINERD, "/usr/sbin/runc", SSHD, f"{CNI_BIN_DIR}/bridge", f"{CNI_BIN_DIR}/host-local",
                           f"{CNI_BIN_DIR}/loopback", NODE_PYTHON) if not Path(p).exists() and not shutil.which(Path(p).name)]
    if missing:
        return (f"nodes need {', '.join(missing)} (scripts/setup installs containerd, runc, "
                "containernetworking-plugins, openssh-server)")
    for tool in ("nsenter", "unshare", "ip", "ssh-keygen", "ctr", "iptables"):
        if not shutil.which(tool):
            return f"nodes need {tool}"
    if not Path("/sys/fs/cgroup/freezer").is_dir() and not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return "nodes need cgroup v1 with the freezer (tried here), or cgroup v2 (untried)"
    return None


def require_node_tools() -> None:
    reason = missing_node_tools()
    if reason:
        raise NodeToolsMissing(reason)


def _save_sysctls() -> dict[str, str]:
    saved = {}
    for key in KUBELET_GLOBAL_SYSCTLS:
        path = Path("/proc/sys") / key.replace(".", "/")
        if path.exists():
            saved[key] = path.read_text().strip()
    return saved


def _restore_sysctls(saved: dict[str, str]) -> None:
    for key, value in saved.items():
        with contextlib.suppress(OSError):
            _write(Path("/proc/sys") / key.replace(".", "/"), value)


@contextlib.contextmanager
def node_network(workdir: Path, names: Sequence[str], *, subnet: str = "10.213.20.0/24", first_host: int = 11,
                 addresses: Sequence[str] | None = None, tag: str | None = None, mtu: int = 1500,
                 programs: dict[str, Path] | None = None, sandbox_image: str = PAUSE_IMAGE_DEFAULT,
                 start_kubelet: bool = True) -> Iterator[NodeNetwork]:
    """Starts one node per name on a fresh bridge; stops and removes everything afterwards.

    ``programs`` (name → path) go into every node's /usr/local/bin (kubeadm, kubelet, kubectl …).
    The kubelet unit is enabled like the Debian/Ubuntu package leaves it: it restarts every 10 s
    until kubeadm has written its configuration. Raises NodeToolsMissing when the machine cannot.
    """
    require_node_tools()
    with machine_lock():
        sweep_stale()
        net = open_network(workdir, subnet=subnet, tag=tag, mtu=mtu)
        try:
            network = net.subnet
            prepared = []
            for index, name in enumerate(names):
                address = (ipaddress.IPv4Address(addresses[index]) if addresses
                           else network.network_address + first_host + index)
                prepared.append(prepare_node(net, name, address, programs=programs or {}, sandbox_image=sandbox_image,
                                             start_kubelet=start_kubelet, root_login=True))
            net.known_hosts.write_text("".join(f"{n.address} {n.host_key_public}\n" for n in prepared))
            for node in prepared:
                _start_node(node)
            for node in prepared:
                _wait_for_node(node)
            yield net
        finally:
            teardown(net)


def open_network(workdir: Path, *, subnet: str, tag: str | None = None, mtu: int = 1500,
                 gateway: str | None = None) -> NodeNetwork:
    """A bridge for nodes, with ``gateway`` (default: the subnet's first address) on the host's side."""
    tag = tag or f"nn{os.getpid()}"
    network = ipaddress.IPv4Network(subnet)
    workdir.mkdir(parents=True, exist_ok=True)
    key = workdir / "client_ed25519"
    if not key.exists():
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nsxkube-nodes", "-f", str(key))
    net = NodeNetwork(network, f"{tag}br", workdir, tag, key, mtu=mtu, hierarchies=cgroup_hierarchies(),
                      gateway_address=ipaddress.IPv4Address(gateway) if gateway else None)
    net.saved_sysctls = _save_sysctls()
    try:
        _run("ip", "link", "add", net.bridge, "type", "bridge")
        _run("ip", "link", "set", net.bridge, "mtu", str(mtu), "up")
        _run("ip", "addr", "add", f"{net.gateway}/{network.prefixlen}", "dev", net.bridge)
    except RuntimeError:
        subprocess.run(["ip", "link", "del", net.bridge], capture_output=True, check=False)
        raise
    return net


def add_node(net: NodeNetwork, name: str, address: str | ipaddress.IPv4Address, **options) -> Node:
    """Prepares, starts and waits for one more node on the network (see :func:`prepare_node`)."""
    node = prepare_node(net, name, ipaddress.IPv4Address(address), **options)
    try:
        _start_node(node)
        _wait_for_node(node)
    except BaseException:
        remove_node(net, node)
        raise
    return node


@contextlib.contextmanager
def machine_lock(timeout: float = 1800.0) -> Iterator[None]:
    """One set of test nodes per machine at a time: they share the test subnet, the kubelet's
    machine-wide sysctls and the CPU. A second test run waits here (and says for whom)."""
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with LOCK_FILE.open("a+") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.seek(0)
                    raise RuntimeError(f"{LOCK_FILE} is held by another test run (pid {handle.read().strip()}) "
                                       f"for more than {timeout:.0f} s") from None
                time.sleep(1)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sweep_stale() -> list[str]:
    """Removes what an earlier run that was killed left behind (its default tag ``nn<pid>``, pid gone).

    The supervisors end with their test process (PR_SET_PDEATHSIG) and take their nodes' processes
    with them; the bridge, veths, namespace names and cgroup directories of a killed run remain.
    """
    def stale(tag_pid: str) -> bool:
        return int(tag_pid) != os.getpid() and not Path(f"/proc/{tag_pid}").exists()

    removed = []
    for h in cgroup_hierarchies():
        base = h.mountpoint / h.current.lstrip("/")
        for group in base.glob("nsxkube-n*"):
            match = re.fullmatch(r"nsxkube-(?:nn|nxl)(\d+)", group.name)
            if match and stale(match.group(1)):
                remove_cgroup([group])
                removed.append(f"cgroup {group}")
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    for line in names.splitlines():
        match = re.fullmatch(r"(?:nn|nxl)(\d+)-\d+", line.split()[0]) if line.split() else None
        if match and stale(match.group(1)):
            subprocess.run(["ip", "netns", "del", line.split()[0]], capture_output=True, check=False)
            removed.append(f"netns {line.split()[0]}")
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=False).stdout
    for line in links.splitlines():
        ifname = line.split(":")[1].strip().split("@")[0]
        match = re.fullmatch(r"(?:nn|nxl)(\d+)(?:br|v\d+)", ifname)
        if match and stale(match.group(1)):
            subprocess.run(["ip", "link", "del", ifname], capture_output=True, check=False)
            removed.append(f"link {ifname}")
    return removed


def prepare_node(net: NodeNetwork, name: str, address: ipaddress.IPv4Address, *, programs: dict[str, Path],
                 sandbox_image: str = PAUSE_IMAGE_DEFAULT, start_kubelet: bool = True, root_login: bool = True,
                 product_uuid: str | None = None, reuse: bool = False) -> Node:
    """Everything of a node but its processes: files, the NIC on the bridge, sshd's configuration
    and host key, the programs, the init's configuration, the cgroup. ``root_login``: root may log
    in with the network's client key (the tests); without it nobody can until accounts are added
    (the lab's cloud-init). ``product_uuid``: what the node reports as its DMI product UUID.
    ``reuse``: a node of that name ran before (a VM powered on again): its files stay, like a disk."""
    if address not in net.subnet:
        raise ValueError(f"{address} is outside the nodes' subnet {net.subnet}")
    if any(n.name == name for n in net.nodes):
        raise ValueError(f"there is a node {name} already")
    net.indices += 1
    index = net.indices
    netns = f"{net.tag}-{index}"
    root = net.workdir / name
    rebooting = reuse and (root / "fs").is_dir()
    if not rebooting:
        shutil.rmtree(root / "fs", ignore_errors=True)
        (root / "fs").mkdir(parents=True)
    node = Node(name, address, netns, root, net, index)
    net.nodes.append(node)
    binds = []
    for private in PRIVATE_DIRS:
        source = node.path(private)
        if private in COPIED_DIRS and not rebooting:
            shutil.copytree(private, source, symlinks=True, ignore_dangling_symlinks=True, dirs_exist_ok=True)
            for leftover in CLEARED_FROM_ETC:  # the machine's host keys, cluster files … are not the node's
                for path in source.glob(leftover):
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
        source.mkdir(parents=True, exist_ok=True)
        binds.append({"source": str(source), "target": private})
    node.path("/tmp").chmod(0o1777)
    node.path("/root").chmod(0o700)
    if not rebooting:
        hosts = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
        node.path("/etc/hostname").write_text(f"{name}\n")
        node.path("/etc/hosts").write_text(hosts + (f"{address} {name}\n" if root_login else ""))
        # No name server is reachable from a node: lookups fail at once instead of leaving the bridge.
        node.path("/etc/resolv.conf").unlink(missing_ok=True)  # the machine's may be a symlink
        node.path("/etc/resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        node.path("/etc/machine-id").write_text(os.urandom(16).hex() + "\n")

    # network: the NIC on the bridge, no default route
    _run("ip", "netns", "add", netns)
    peer = f"{net.tag}v{index}"
    _run("ip", "link", "add", peer, "mtu", str(net.mtu), "type", "veth", "peer", "name", NODE_NIC, "mtu", str(net.mtu),
         "netns", netns)
    _run("ip", "link", "set", peer, "master", net.bridge, "up")
    for command in (["ip", "addr", "add", f"{address}/{net.subnet.prefixlen}", "dev", NODE_NIC],
                    ["ip", "link", "set", NODE_NIC, "up"], ["ip", "link", "set", "lo", "up"]):
        _run("ip", "netns", "exec", netns, *command)

    # ssh: the node's own /etc/ssh (config, host key) and, for the tests, root's authorized_keys
    ssh_dir = node.path("/etc/ssh")
    host_key = ssh_dir / "ssh_host_ed25519_key"
    if not host_key.exists():
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{name}", "-f", str(host_key))
    if root_login and not rebooting:
        dot_ssh = node.path("/root/.ssh")
        dot_ssh.mkdir(mode=0o700)
        (dot_ssh / "authorized_keys").write_text((net.client_key.with_suffix(".pub")).read_text())
    (ssh_dir / "sshd_config").write_text(
        f"Include /etc/ssh/sshd_config.d/*.conf\nPort 22\nListenAddress {address}\nHostKey /etc/ssh/ssh_host_ed25519_key\nPidFile /run/sshd.pid\n"
        f"PermitRootLogin {'prohibit-password' if root_login else 'no'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\nSubsystem sftp internal-sftp\nMaxStartups 100\nMaxSessions 50\n"
        "SetEnv PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    )
    public = (ssh_dir / "ssh_host_ed25519_key.pub").read_text().split()
    node.host_key_public = f"{public[0]} {public[1]}"

    # containerd, programs, the systemctl shim
    node.path("/etc/containerd/config.toml").write_text(containerd_config(sandbox_image))
    for program, source in programs.items():
        node.install_program(program, source)
    # The supervisor's own copy inside the node: the shims must not depend on where the repository is.
    shutil.copy2(SUPERVISOR, node.path(NODE_SUPERVISOR))
    for shim in ("systemctl", "journalctl", "timedatectl"):
        node.install_script(shim, f"#!/bin/sh\nexec {NODE_PYTHON} {NODE_SUPERVISOR} {shim} \"$@\"\n")

    config = {
        "hostname": name,
        "cgroups": [{"target": str(h.mountpoint), "fstype": h.fstype, "options": h.options} for h in net.hierarchies],
        "binds": binds,
        "sysctls": NODE_SYSCTLS,
        **({"product_uuid": product_uuid} if product_uuid else {}),
        "units": {
            "containerd": {**CONTAINERD_UNIT, "enabled": True},
            "ssh": {"description": "OpenBSD Secure Shell server", "exec": [SSHD, "-D", "-e"],
                    "restart_sec": 1, "kill_mode": "process", "enabled": True},
            "kubelet": {**KUBELET_UNIT, "enabled": True, "start": start_kubelet},
            # installed, not enabled: like the package on a node whose keepalived.conf is not written yet
            **({"keepalived": {**KEEPALIVED_UNIT, "enabled": False}} if Path(KEEPALIVED).exists() else {}),
        },
    }
    (root / "node.json").write_text(json.dumps(config, indent=2))
    node.cgroups = create_cgroup(net.hierarchies, f"nsxkube-{net.tag}/{name}")
    return node


def _start_node(node: Node) -> None:
    log = (node.root / "supervisor.log").open("w")
    argv = ["nsenter", f"--net=/run/netns/{node.netns}", "--",
            "unshare", "--mount", "--uts", "--cgroup", "--propagation", "private", "--",
            NODE_PYTHON, str(node.path(NODE_SUPERVISOR)), "boot", str(node.root / "node.json")]
    with log:
        node.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        preexec_fn=node._join_cgroups, cwd="/")
    node.started = time.monotonic()


def _wait_for_node(node: Node, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    ready = Path(f"/proc/{node.pid}/root{init_module.CONTROL_DIR}/ready")
    while time.monotonic() < deadline:
        if node.process is not None and node.process.poll() is not None:
            raise RuntimeError(f"node {node.name} did not boot: {(node.root / 'supervisor.log').read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            if ready.exists():
                probe = subprocess.run(["ip", "netns", "exec", node.netns, "bash", "-c",
                                        f"exec 3<>/dev/tcp/{node.address}/22"], capture_output=True, timeout=5, check=False)
                socket_ok = Path(f"/proc/{node.pid}/root/run/containerd/containerd.sock").exists()
                if probe.returncode == 0 and socket_ok:
                    return
        time.sleep(0.1)
    raise RuntimeError(f"node {node.name} not up within {timeout} s (sshd and containerd): "
                       f"{node.journal('init')}\n{node.journal('containerd', 15)}\n{node.journal('ssh', 5)}")


def start_node(node: Node, timeout: float = 30.0) -> None:
    """Boots a prepared node and waits until its sshd and containerd answer."""
    _start_node(node)
    _wait_for_node(node, timeout)


def _stop(nodes: Sequence[Node]) -> list[str]:
    problems: list[str] = []
    for node in nodes:
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGTERM)
    for node in nodes:
        if node.process is None:
            continue
        try:
            node.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            problems.append(f"{node.name}: the init did not stop within 30 s")
            node.process.kill()
            node.process.wait(timeout=10)
    for node in nodes:
        problems += remove_cgroup(node.cgroups)
        # The kernel frees a network namespace (and the veth in it) asynchronously after its last
        # user is gone; deleting the host's end of the pair removes both at once.
        subprocess.run(["ip", "link", "del", f"{node.network.tag}v{node.index}"], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", node.netns], capture_output=True, check=False)
    return problems


def halt_node(net: NodeNetwork, node: Node) -> list[str]:
    """Stops one node (units, containers, sessions) and removes its cgroup, namespace and link; its
    files stay, like a powered-off VM's disk (prepare_node with reuse boots from them again)."""
    problems = _stop([node])
    if node in net.nodes:
        net.nodes.remove(node)
    return problems


def remove_node(net: NodeNetwork, node: Node) -> list[str]:
    """Stops one node and removes everything of it, its files included."""
    problems = halt_node(net, node)
    if not problems:
        shutil.rmtree(node.root, ignore_errors=True)
    return problems


def teardown(net: NodeNetwork) -> list[str]:
    """Stops every node (units, containers, sessions), removes cgroups, namespaces, links, files."""
    problems = _stop(net.nodes)
    for h in net.hierarchies:
        group = h.mountpoint / h.current.lstrip("/") / f"nsxkube-{net.tag}"
        with contextlib.suppress(FileNotFoundError, OSError):
            group.rmdir()
    subprocess.run(["ip", "link", "del", net.bridge], capture_output=True, check=False)
    _restore_sysctls(net.saved_sysctls)
    if not leftovers(net):
        for node in net.nodes:
            shutil.rmtree(node.root / "fs", ignore_errors=True)
    return problems


def leftovers(net: NodeNetwork) -> list[str]:
    """Everything of these nodes that still exists: should be empty after :func:`teardown`."""
    found: list[str] = []
    workdir = str(net.workdir)
    for h in net.hierarchies:
        group = h.mountpoint / h.current.lstrip("/") / f"nsxkube-{net.tag}"
        if group.exists():
            found.append(f"cgroup {group}")
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if workdir in cmdline or f"nsxkube-{net.tag}/" in (pid_dir / "cgroup").read_text():
                found.append(f"process {pid_dir.name}: {cmdline[:200]}")
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            if workdir in line or f"/run/netns/{net.tag}-" in line:
                found.append(f"mount {line}")
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    found += [f"netns {line.split()[0]}" for line in names.splitlines() if line.startswith(f"{net.tag}-")]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=False).stdout
    for line in links.splitlines():
        ifname = line.split(":")[1].strip().split("@")[0]
        if ifname.startswith(net.tag):
            found.append(f"link {ifname}")
    for key, value in net.saved_sysctls.items():
        current = (Path("/proc/sys") / key.replace(".", "/")).read_text().strip()
        if current != value:
            found.append(f"sysctl {key} = {current} (was {value})")
    return found
