"""Where the Go-built programs of the slow tests are, and how tests run them.

``tests/bin/build.sh`` builds them into a cache outside the repository, keyed by version
(``$CACHE/kubernetes-v1.35.N/kube-apiserver``, ``$CACHE/etcd-v3.6.N/etcd``,
``$CACHE/govmomi-vX.Y.Z/vcsim``). ``CACHE`` is ``$NSXKUBE_TEST_BIN`` or
``~/.cache/nsxkube/test-bin``; a program at the top of that directory
(``$NSXKUBE_TEST_BIN/kube-apiserver``) is a prebuilt one and wins.

A test that needs a program calls :func:`require_binary`: it returns the path, or skips the
test with the reason (the build failure that ``build.sh`` recorded, or that nothing was built).
With ``NSXKUBE_REQUIRE_TEST_BIN=1`` a missing program fails the test instead (for CI runs that
must not skip).

As a pytest plugin this module also prints, in the report header, which programs were found and
where they came from.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

# re-exported for the fixtures: one implementation, shared with the product's lab
from nsxkube.lab.process import log_tail, start_process, stop_process  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "tests" / "bin" / "build.sh"
VERSIONS_FILE = REPO_ROOT / "tests" / "bin" / "versions.env"

KUBERNETES_PROGRAMS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubeadm",
    "kubectl",
    "kubelet",
)
ETCD_PROGRAMS = ("etcd", "etcdctl", "etcdutl")
ALL_PROGRAMS = (*KUBERNETES_PROGRAMS, *ETCD_PROGRAMS, "vcsim")


@functools.cache
def versions() -> dict[str, str]:
    """The pinned versions from tests/bin/versions.env (KEY=value lines, # comments)."""
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
    """The Kubernetes version the test programs are built at, e.g. ``v1.35.8``."""
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
        return [
            cache / f"govmomi-{v['GOVMOMI_VERSION']}",
            cache / f"govmomi-{v['GOVMOMI_DEBIAN_VERSION']}-debian",
        ]
    raise ValueError(f"unknown test program {name!r} (known: {', '.join(ALL_PROGRAMS)})")


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


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def locate_binary(name: str) -> Program:
    """Finds ``name``: prebuilt at the top of the cache, else built by build.sh.

    ``origin`` is what the build recorded next to it (e.g. ``govmomi v0.56.0 (Go module)`` or
    ``govmomi 0.24.2 (Debian fallback)``); a missing program's ``reason`` is the recorded build
    failure or the hint to run build.sh.
    """
    dirs = _build_dirs(name)
    prebuilt = cache_dir() / name
    if _executable(prebuilt):
        return Program(name, prebuilt, f"prebuilt in {prebuilt.parent}")
    for d in dirs:
        if _executable(d / name):
            source = d / f"{name}.source"
            origin = source.read_text().splitlines()[0] if source.is_file() else "origin unknown"
            return Program(name, d / name, origin)
    failures = [
        (d / f"{name}.failed").read_text().strip() or "build failed (empty marker)"
        for d in dirs
        if (d / f"{name}.failed").is_file()
    ]
    if failures:  # vcsim: the module build's reason, then the Debian fallback's
        return Program(name, None, "", f"{name} not built: {'; fallback: '.join(failures)}")
    looked = ", ".join(str(d / name) for d in dirs)
    return Program(
        name,
        None,
        "",
        f"{name} not built: run {BUILD_SCRIPT.relative_to(REPO_ROOT)} {name} (looked in {prebuilt}, {looked})",
    )


def require_binary(name: str) -> Path:
    """The path of ``name``, or skips the calling test with the reason it is missing."""
    program = locate_binary(name)
    if program.path is None:
        assert program.reason is not None
        if os.environ.get("NSXKUBE_REQUIRE_TEST_BIN") == "1":
            pytest.fail(f"{program.reason} (NSXKUBE_REQUIRE_TEST_BIN=1)", pytrace=False)
        pytest.skip(program.reason)
    return program.path


def require_binaries(*names: str) -> dict[str, Path]:
    """Like :func:`require_binary` for several programs; one skip names every missing one."""
    programs = [locate_binary(name) for name in names]
    reasons = [p.reason for p in programs if p.reason]
    if reasons:
        if os.environ.get("NSXKUBE_REQUIRE_TEST_BIN") == "1":
            pytest.fail(f"{'; '.join(reasons)} (NSXKUBE_REQUIRE_TEST_BIN=1)", pytrace=False)
        pytest.skip("; ".join(reasons))
    return {p.name: p.path for p in programs if p.path is not None}


# ---- running them ----------------------------------------------------------------------
# start_process / stop_process / log_tail are the product lab's (nsxkube.lab.process), imported above.


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# ---- pytest plugin -----------------------------------------------------------------------


def pytest_report_header(config: pytest.Config) -> list[str]:
    """One header line: the test programs found, and where each came from."""
    found, missing = [], []
    for name in ("kube-apiserver", "kubeadm", "etcd", "vcsim"):
        program = locate_binary(name)
        (found if program.found else missing).append(f"{name}: {program.origin}" if program.found else name)
    lines = [f"test programs ({cache_dir()}): " + ("; ".join(found) or "none built")]
    if missing:
        lines.append(f"  missing (slow tests that need them skip): {', '.join(missing)}")
    return lines
