"""Where the Go-built programs of the slow tests are, and how tests run them.

``programs/build.sh`` builds them into a cache outside the repository, keyed by version
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

import os
import socket
from pathlib import Path

import pytest

# re-exported for the fixtures: one implementation, shared with the product's lab
from nsxkube.lab.process import log_tail, start_process, stop_process  # noqa: F401
from nsxkube.lab.programs import (  # noqa: F401  (the one implementation, shared with the lab)
    ALL_PROGRAMS,
    BUILD_SCRIPT,
    ETCD_PROGRAMS,
    KUBERNETES_PROGRAMS,
    REPO_ROOT,
    VERSIONS_FILE,
    Program,
    cache_dir,
    kubernetes_version,
    versions,
)
from nsxkube.lab.programs import locate as locate_binary


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
