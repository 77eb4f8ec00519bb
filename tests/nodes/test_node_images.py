"""The kube-proxy and CoreDNS images of the lab's nodes (nsxkube.lab.nodes.images).

The fast tests plan and lay out the images with stand-ins for the Go programs and this machine's real
iptables and nft (scripts/setup installs them). The slow test imports a bundle of the real images
into a node's containerd and runs them there: kube-proxy drives iptables and nft from its image, and
CoreDNS answers a DNS query.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tarfile
import time
from pathlib import Path, PurePosixPath

import pytest

from nsxkube.design.versions import MINORS
from nsxkube.lab.nodes import images as I
from nsxkube.lab.nodes.images import ImageError, _mirror, machine_files, plan_images, write_layout
from nsxkube.lab.programs import ALL_PROGRAMS, BUILD_SCRIPT, versions

KUBERNETES = versions()["KUBERNETES_VERSION"]
KUBE_PROXY = f"registry.k8s.io/kube-proxy:{KUBERNETES}"
COREDNS = f"registry.k8s.io/coredns/coredns:{versions()['COREDNS_VERSION']}"
# What kube-proxy's iptables rules use (pkg/proxy/iptables): each is an xtables module iptables loads.
KUBE_PROXY_MODULES = ("libxt_comment.so", "libxt_conntrack.so", "libxt_statistic.so", "libxt_mark.so",
                      "libxt_MARK.so", "libxt_DNAT.so", "libxt_MASQUERADE.so", "libxt_addrtype.so",
                      "libxt_recent.so", "libxt_standard.so", "libxt_tcp.so", "libxt_udp.so")


@pytest.fixture
def go_programs(tmp_path, monkeypatch) -> Path:
    """Stand-ins for the Go-built kube-proxy and coredns, as prebuilt programs of the cache."""
    cache = tmp_path / "test-bin"
    cache.mkdir()
    for name in ("kube-proxy", "coredns", "kube-apiserver", "etcd", "etcdctl", "etcdutl"):
        program = cache / name
        program.write_bytes(b"\x7fELF stand-in for " + name.encode())
        program.chmod(0o755)
    monkeypatch.setenv("NSXKUBE_TEST_BIN", str(cache))
    return cache


class Layer:
    """An image's one layer, read back from the OCI layout, with paths resolved as in a container."""

    def __init__(self, layout: Path, descriptor: dict) -> None:
        def blob(desc: dict) -> bytes:
            return (layout / "blobs" / "sha256" / desc["digest"].split(":")[1]).read_bytes()

        manifest = json.loads(blob(descriptor))
        self.config = json.loads(blob(manifest["config"]))
        (layer,) = manifest["layers"]
        self.contents: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob(layer)))) as tar:
            self.order = [m.name for m in tar.getmembers()]
            self.members = {m.name: m for m in tar.getmembers()}
            for member in self.members.values():
                extracted = tar.extractfile(member) if member.isfile() else None
                if extracted is not None:
                    self.contents[member.name] = extracted.read()

    def resolve(self, path: str) -> str | None:
        """The member ``path`` leads to, following symbolic links (absolute ones from the image's
        root); None when it leads nowhere."""
        parts = list(PurePosixPath(path.lstrip("/")).parts)
        current = PurePosixPath()
        for _ in range(100):
            if not parts:
                return str(current) if str(current) != "." else ""
            candidate = current / parts.pop(0)
            member = self.members.get(str(candidate))
            if member is None:
                return None
            if member.issym():
                target = PurePosixPath(member.linkname)
                base = PurePosixPath() if target.is_absolute() else candidate.parent
                joined = os.path.normpath(str(base / target).lstrip("/")).split("/")
                parts = [p for p in joined if p not in (".", "")] + parts
                current = PurePosixPath()
                continue
            current = candidate
        raise AssertionError(f"{path}: symbolic link loop")

    def read(self, path: str) -> bytes:
        resolved = self.resolve(path)
        assert resolved, f"{path} is not in the image"
        assert self.members[resolved].isfile(), f"{path} → {resolved} is not a file"
        return self.contents[resolved]


def _layers(specs, tmp_path: Path) -> dict[str, Layer]:
    layout = tmp_path / "layout"
    descriptors = write_layout(specs, layout)
    return {d["annotations"]["io.containerd.image.name"]: Layer(layout, d) for d in descriptors}


def _host_libraries(program: str) -> list[str]:
    """The shared libraries ldd names for ``program`` here: names the image's loader must find."""
    listed = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
    return re.findall(r"=> (/\S+)", listed) + re.findall(r"^\s*(/\S+) \(", listed, re.MULTILINE)


def test_kube_proxy_is_planned_with_iptables_nft_their_libraries_and_xtables_modules(go_programs, tmp_path):
    plan = plan_images([KUBE_PROXY, COREDNS], pause=None)
    assert plan.missing == {}
    by_reference = {spec.reference: spec for spec in plan.specs}
    kube_proxy = by_reference[KUBE_PROXY]
    assert [(f.path, f.source) for f in kube_proxy.files] == [("/usr/local/bin/kube-proxy",
                                                                go_programs / "kube-proxy")]
    assert kube_proxy.entrypoint == ()  # kubeadm's DaemonSet runs /usr/local/bin/kube-proxy
    machine = {f.path: f for f in kube_proxy.machine}
    iptables = Path(shutil.which("iptables", path=I.MACHINE_PATH) or "").resolve()
    assert iptables.is_file(), "iptables is not installed here (scripts/setup installs it)"
    assert machine[str(iptables)].source == iptables and not machine[str(iptables)].link
    # the commands are links to the multi-call program, beside it
    for command in ("iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save",
                    "ip6tables-restore"):
        assert machine[str(iptables.parent / command)].link == iptables.name
    xtables = {Path(p).name for p in machine if Path(p).parent.name == "xtables"}
    assert set(KUBE_PROXY_MODULES) <= xtables
    libraries = [Path(p).resolve() for p in _host_libraries(str(iptables))]
    assert any(lib.name.startswith("libxtables.so") for lib in libraries)
    assert {str(lib) for lib in libraries} <= set(machine)
    assert all(machine[str(lib)].mode == lib.stat().st_mode & 0o7777 for lib in libraries)
    if shutil.which("dpkg-query"):
        assert re.search(r"\biptables 1\.8\.\d+", kube_proxy.labels["io.nsxkube.machine-packages"])

    coredns = by_reference[COREDNS]
    assert [(f.path, f.source) for f in coredns.files] == [("/coredns", go_programs / "coredns")]
    assert coredns.entrypoint == ("/coredns",) and coredns.machine == ()


def test_the_other_images_take_nothing_from_this_machine(go_programs):
    etcd = f"registry.k8s.io/etcd:{versions()['ETCD_VERSION'].lstrip('v')}-0"
    plan = plan_images([f"registry.k8s.io/kube-apiserver:{KUBERNETES}", etcd], pause=None)
    assert plan.missing == {}
    assert [[f.path for f in spec.files] for spec in plan.specs] == [
        ["/usr/local/bin/kube-apiserver"], ["/usr/local/bin/etcd", "/usr/local/bin/etcdctl", "/usr/local/bin/etcdutl"]]
    assert all(spec.machine == () and spec.labels == {} for spec in plan.specs)


def test_the_kube_proxy_layer_resolves_every_command_and_library_as_the_loader_will(go_programs, tmp_path):
    plan = plan_images([KUBE_PROXY, COREDNS], pause=None)
    layers = _layers(plan.specs, tmp_path)
    layer = layers[KUBE_PROXY]
    assert layer.read("/usr/local/bin/kube-proxy") == (go_programs / "kube-proxy").read_bytes()
    path = next(e for e in layer.config["config"]["Env"] if e.startswith("PATH="))[len("PATH="):].split(":")
    for command in I.MACHINE_COMMANDS_BY_REPOSITORY["kube-proxy"]:
        found = [d for d in path if layer.resolve(f"{d}/{command}")]
        assert found, f"{command} is on no directory of the image's PATH"
        host = Path(shutil.which(command, path=I.MACHINE_PATH) or "").resolve()
        assert layer.read(f"{found[0]}/{command}") == host.read_bytes()
        # every library the way ldd names it here (/lib/x86_64-linux-gnu/…, /lib64/ld-linux-…)
        for library in _host_libraries(str(host)):
            assert layer.read(library) == Path(library).read_bytes(), library
    modules = PurePosixPath(layer.resolve("/lib/x86_64-linux-gnu/libxtables.so.12") or "").parent / "xtables"
    for module in KUBE_PROXY_MODULES:  # some are links (libxt_DNAT.so → libxt_NAT.so)
        assert layer.read(f"/{modules}/{module}") == Path(f"/{modules}/{module}").read_bytes()
    # no dangling link, and each directory comes before what it holds
    for name, member in layer.members.items():
        if member.issym():
            assert layer.resolve(name) is not None, f"{name} → {member.linkname} leads nowhere"
    for index, name in enumerate(layer.order):
        parent = str(PurePosixPath(name).parent)
        if parent != ".":
            assert parent in layer.order[:index], f"{name} comes before its directory"
    assert layer.config["history"][0]["created_by"].startswith("nsxkube lab images: /usr/local/bin/kube-proxy and ")

    coredns = layers[COREDNS]
    assert coredns.config["config"]["Entrypoint"] == ["/coredns"]
    assert coredns.members["coredns"].mode == 0o755
    assert coredns.read("/coredns") == (go_programs / "coredns").read_bytes()
    assert not any(name.startswith(("usr/sbin", "lib")) for name in coredns.members)


def test_a_missing_program_or_command_is_reported_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("NSXKUBE_TEST_BIN", str(tmp_path / "empty"))
    plan = plan_images([COREDNS, KUBE_PROXY], pause=None)
    assert plan.specs == ()
    assert "coredns not built: run programs/build.sh coredns" in plan.missing[COREDNS]
    assert "kube-proxy not built: run programs/build.sh kube-proxy" in plan.missing[KUBE_PROXY]

    (tmp_path / "empty" / "kube-proxy").parent.mkdir()
    (tmp_path / "empty" / "kube-proxy").write_bytes(b"\x7fELF")
    (tmp_path / "empty" / "kube-proxy").chmod(0o755)
    monkeypatch.setattr(I, "MACHINE_PATH", str(tmp_path / "no-sbin"))
    plan = plan_images([KUBE_PROXY], pause=None)
    assert plan.specs == ()
    assert plan.missing[KUBE_PROXY].startswith("iptables is not installed on this machine")
    with pytest.raises(ImageError, match="nft is not installed"):
        machine_files(["nft"], search=str(tmp_path))


def test_a_path_is_mirrored_with_each_link_on_the_way(tmp_path):
    root = tmp_path.resolve()
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "usr" / "lib" / "libfoo.so.1.2").write_bytes(b"foo")
    (root / "usr" / "lib" / "libfoo.so.1.2").chmod(0o644)
    (root / "usr" / "lib" / "libfoo.so.1").symlink_to("libfoo.so.1.2")
    (root / "lib").symlink_to("usr/lib")
    into: dict = {}
    _mirror(root / "lib" / "libfoo.so.1", into)
    assert {path: (f.link, f.source, f.mode) for path, f in into.items()} == {
        f"{root}/lib": ("usr/lib", None, 0o755),
        f"{root}/usr/lib/libfoo.so.1": ("libfoo.so.1.2", None, 0o755),
        f"{root}/usr/lib/libfoo.so.1.2": ("", root / "usr" / "lib" / "libfoo.so.1.2", 0o644),
    }
    (root / "lib" / "loop").symlink_to("loop")
    with pytest.raises(ImageError, match="too many levels"):
        _mirror(root / "lib" / "loop", {})


def test_build_sh_knows_every_program_the_lab_locates(tmp_path):
    result = subprocess.run([str(BUILD_SCRIPT), "no-such-program"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "NSXKUBE_TEST_BIN": str(tmp_path)}, check=False)
    assert result.returncode == 2
    known = re.search(r"known: ([^;)]*)", result.stderr)
    assert known and set(known.group(1).split()) == set(ALL_PROGRAMS)


def test_the_coredns_built_is_the_one_kubeadm_deploys():
    minor = ".".join(KUBERNETES.lstrip("v").split(".")[:2])
    assert versions()["COREDNS_VERSION"] == MINORS[minor].coredns
    assert versions()["ETCD_VERSION"] == MINORS[minor].etcd


# ---- slow: the real images in a node ---------------------------------------------------------------


def _dns_query(server: str, port: int, name: str, timeout: float = 2.0) -> bytes:
    """One A query over UDP; the answer's raw bytes."""
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    query = struct.pack(">HHHHHH", 0x4e58, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(query, (server, port))
        return sock.recv(512)


@pytest.mark.slow
def test_the_kube_proxy_and_coredns_images_run_in_a_node(tmp_path, capsys):
    from tests.nodes.node import leftovers, node_network
    from tests.support.binaries import require_binaries

    require_binaries("kube-proxy", "coredns")
    start = time.monotonic()
    plan = plan_images([KUBE_PROXY, COREDNS], pause=None)
    assert plan.missing == {}
    archive = I.write_archive(plan.specs, tmp_path / "images.tar")
    assembled = time.monotonic() - start

    def ctr(node, *args: str, timeout: float = 60) -> str:
        result = node.run("ctr", "-n", "k8s.io", *args, timeout=timeout)
        assert result.returncode == 0, f"ctr {' '.join(args)}: {result.stdout}{result.stderr[-2000:]}"
        return result.stdout

    with node_network(tmp_path / "net", ["images"], subnet="10.213.58.0/24", start_kubelet=False) as net:
        node = net.nodes[0]
        shutil.copy(archive, node.path("/tmp") / "images.tar")
        ctr(node, "images", "import", "/tmp/images.tar", timeout=120)
        assert {KUBE_PROXY, COREDNS} <= set(ctr(node, "images", "ls", "-q").split())

        def kube_proxy(name: str, *command: str) -> str:
            return ctr(node, "run", "--rm", "--net-host", "--privileged", KUBE_PROXY, name, *command)

        assert kube_proxy("kp-version", "kube-proxy", "--version").strip() == f"Kubernetes {KUBERNETES}"
        # leftovers of both modes in the node's network namespace, made with the image's own tools …
        kube_proxy("kp-chain", "iptables", "-t", "nat", "-N", "KUBE-SERVICES")
        kube_proxy("kp-jump", "iptables", "-t", "nat", "-A", "PREROUTING", "-m", "comment", "--comment",
                   "kubernetes service portals", "-j", "KUBE-SERVICES")
        kube_proxy("kp-table", "nft", "add", "table", "ip", "kube-proxy")
        assert "-j KUBE-SERVICES" in kube_proxy("kp-save", "iptables-save", "-t", "nat")
        assert "table ip kube-proxy" in kube_proxy("kp-nft", "nft", "list", "tables")
        assert "Chain INPUT" in kube_proxy("kp-ip6", "ip6tables", "-L", "-n")
        # … which kube-proxy --cleanup removes: it ran iptables-save/-restore and nft from its image
        kube_proxy("kp-cleanup", "kube-proxy", "--cleanup")
        assert "KUBE-SERVICES" not in kube_proxy("kp-after", "iptables-save", "-t", "nat")
        assert "kube-proxy" not in kube_proxy("kp-nft-after", "nft", "list", "tables")

        corefile = node.path("/tmp") / "coredns" / "Corefile"
        corefile.parent.mkdir()
        corefile.write_text(".:53 {\n    errors\n    hosts {\n        10.213.58.99 probe.lab.example\n"
                            "        fallthrough\n    }\n    whoami\n    log\n}\n")
        ctr(node, "run", "-d", "--net-host", "--mount", "type=bind,src=/tmp/coredns,dst=/etc/coredns,options=rbind:ro",
            COREDNS, "coredns", "/coredns", "-conf", "/etc/coredns/Corefile")
        try:
            answer = b""
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not answer:
                with contextlib.suppress(OSError):
                    answer = _dns_query(str(node.address), 53, "probe.lab.example")
                time.sleep(0 if answer else 0.3)
            assert answer, "CoreDNS in the node did not answer within 20 s"
            flags, _, answers = struct.unpack(">HHH", answer[2:8])
            assert flags & 0x000f == 0 and answers == 1 and answer[-4:] == socket.inet_aton("10.213.58.99")
        finally:
            node.run("ctr", "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", "coredns", timeout=30)
            for _ in range(50):
                if node.run("ctr", "-n", "k8s.io", "containers", "rm", "coredns", timeout=30).returncode == 0:
                    break
                time.sleep(0.2)
        with capsys.disabled():
            print(f"\nimages: {archive.stat().st_size / 1e6:.0f} MB assembled in {assembled:.1f} s; "
                  f"imported and run in a node in {time.monotonic() - start - assembled:.1f} s", flush=True)
    left = leftovers(net)
    assert not left, left
