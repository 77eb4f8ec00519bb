"""The real programs the lab's nodes and the slow tests run, and where their Go builds are.

``programs/build.sh`` (in a source checkout of nsxkube) builds them from Go modules into a cache
outside the repository, keyed by version: ``$CACHE/kubernetes-v1.35.N/kubeadm``,
``$CACHE/etcd-v3.6.N/etcd``, ``$CACHE/govmomi-vX.Y.Z/vcsim``, ``$CACHE/coredns-v1.13.N/coredns``.
``CACHE`` is ``$NSXKUBE_TEST_BIN`` or ``~/.cache/nsxkube/test-bin``; a program at the top of that
directory is a prebuilt one and wins.
``programs/versions.env`` is the one place their versions are pinned.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from nsxkube.errors import UsageError

REPO_ROOT = Path(__file__).resolve().parents[3]
PROGRAMS_DIR = REPO_ROOT / "programs"
BUILD_SCRIPT = PROGRAMS_DIR / "build.sh"
VERSIONS_FILE = PROGRAMS_DIR / "versions.env"

KUBERNETES_PROGRAMS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kubeadm",
                       "kubectl", "kubelet")
ETCD_PROGRAMS = ("etcd", "etcdctl", "etcdutl")
ALL_PROGRAMS = (*KUBERNETES_PROGRAMS, *ETCD_PROGRAMS, "vcsim", "coredns")
# What a lab node has installed, like the node template: the kubelet package's programs.
NODE_PROGRAMS = ("kubeadm", "kubelet", "kubectl")


def require_checkout() -> None:
    """The programs are built from a source checkout (programs/build.sh); say so once, clearly."""
    if not BUILD_SCRIPT.is_file():
        raise UsageError(f"the lab's programs are built by {BUILD_SCRIPT}, which this installation lacks",
                         hint="run the lab from a source checkout of nsxkube (git clone, then scripts/lab)")


@functools.cache
def versions() -> dict[str, str]:
    """The pinned versions from programs/versions.env (KEY=value lines, # comments)."""
    require_checkout()
    pinned: dict[str, str] = {}
    for raw in VERSIONS_FILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{VERSIONS_FILE}: not KEY=value: {raw!r}")
        pinned[key.strip()] = value.strip()
    return pinned


def kubernetes_version() -> str:
    """The Kubernetes version the programs are built at, e.g. ``v1.35.8``."""
    return versions()["KUBERNETES_VERSION"]


def cache_dir() -> Path:
    """The directory build.sh builds into (``$NSXKUBE_TEST_BIN`` or the default)."""
    configured = os.environ.get("NSXKUBE_TEST_BIN")
    if configured:
        return Path(configured).expanduser().resolve()
    return Path.home() / ".cache" / "nsxkube" / "test-bin"


def _build_dirs(name: str) -> list[Path]:
    """The version-keyed directories that may hold ``name``, preferred first."""
    v = versions()
    cache = cache_dir()
    if name in KUBERNETES_PROGRAMS:
        return [cache / f"kubernetes-{v['KUBERNETES_VERSION']}"]
    if name in ETCD_PROGRAMS:
        return [cache / f"etcd-{v['ETCD_VERSION']}"]
    if name == "vcsim":
        return [cache / f"govmomi-{v['GOVMOMI_VERSION']}", cache / f"govmomi-{v['GOVMOMI_DEBIAN_VERSION']}-debian"]
    if name == "coredns":
        return [cache / f"coredns-{v['COREDNS_VERSION']}"]
    raise ValueError(f"unknown program {name!r} (known: {', '.join(ALL_PROGRAMS)})")


@dataclass(frozen=True)
class Program:
    """A located program: ``path`` is None when it is missing, and ``reason`` says why."""

    name: str
    path: Path | None
    origin: str
    reason: str | None = None

    @property
    def found(self) -> bool:
        return self.path is not None


def executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def locate(name: str) -> Program:
    """Finds ``name``: prebuilt at the top of the cache, else built by build.sh.

    ``origin`` is what the build recorded next to it (e.g. ``govmomi v0.56.0 (Go module)``); a
    missing program's ``reason`` is the recorded build failure or the command that builds it.
    """
    dirs = _build_dirs(name)
    prebuilt = cache_dir() / name
    if executable(prebuilt):
        return Program(name, prebuilt, f"prebuilt in {prebuilt.parent}")
    for d in dirs:
        if executable(d / name):
            source = d / f"{name}.source"
            origin = source.read_text().splitlines()[0] if source.is_file() else "origin unknown"
            return Program(name, d / name, origin)
    failures = [(d / f"{name}.failed").read_text().strip() or "build failed (empty marker)"
                for d in dirs if (d / f"{name}.failed").is_file()]
    if failures:  # vcsim: the module build's reason, then the Debian fallback's
        return Program(name, None, "", f"{name} not built: {'; fallback: '.join(failures)}")
    looked = ", ".join(str(d / name) for d in dirs)
    return Program(name, None, "", f"{name} not built: run programs/build.sh {name} (looked in {prebuilt}, {looked})")
