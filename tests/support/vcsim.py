"""govmomi's vCenter simulator (vcsim) as a pytest fixture: a real SOAP/REST vCenter API on loopback.

Fixtures:

* ``vcsim`` (function scope): a fresh simulator per test, default inventory
  (1 datacenter, 1 cluster of 3 hosts, no VMs) — for tests that change the inventory.
* ``vcsim_session`` (session scope): one shared simulator with the same inventory, for tests
  that only read.
* ``vcsim_factory`` (function scope): ``vcsim_factory(hosts_per_cluster=5, vms=2, ...)`` starts
  more with other sizes; all are stopped after the test.

Each yields a :class:`Vcsim` with ``url``, ``host``, ``port``, ``username``, ``password`` and the
certificate thumbprints read from the TLS handshake. The simulator is started with a login
(``-username``/``-password``), so a wrong password fails like on vCenter. The program comes from
``programs/build.sh`` (see tests/support/binaries.py); without it the test is skipped with the
build's reason.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nsxkube.lab.vcsim import Program, VcsimServer
from nsxkube.lab.vcsim import start_vcsim as start_program
from tests.support.binaries import locate_binary, require_binary

Vcsim = VcsimServer  # the product lab's running simulator, also what the fixtures hand out


def start_vcsim(
    workdir: Path,
    *,
    username: str = "administrator@vsphere.local",
    password: str | None = None,
    **sizes: object,
) -> Vcsim:
    """Starts the pinned vcsim (programs/versions.env) on a free loopback port; skips the test
    when the program was not built. ``sizes``: datacenters, clusters, hosts_per_cluster,
    standalone_hosts, vms, extra_args, timeout (see nsxkube.lab.vcsim.start_vcsim)."""
    program = Program(require_binary("vcsim"), locate_binary("vcsim").origin)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"vcsim-{secrets.token_hex(4)}.log"
    password = password if password is not None else secrets.token_urlsafe(12)
    return start_program(program, log_path, username=username, password=password, **sizes)  # type: ignore[arg-type]


# ---- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def vcsim_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Vcsim]]:
    """Starts simulators with the given sizes (keyword arguments of :func:`start_vcsim`)."""
    started: list[Vcsim] = []
    workdir = tmp_path_factory.mktemp("vcsim")

    def factory(**kwargs: object) -> Vcsim:
        sim = start_vcsim(workdir, **kwargs)  # type: ignore[arg-type]
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()


@pytest.fixture
def vcsim(vcsim_factory: Callable[..., Vcsim]) -> Vcsim:
    """A fresh simulator for this test: 1 datacenter, 1 cluster of 3 hosts, no VMs."""
    return vcsim_factory()


@pytest.fixture(scope="session")
def vcsim_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vcsim]:
    """One simulator shared by the session's read-only tests (same inventory as ``vcsim``)."""
    sim = start_vcsim(tmp_path_factory.mktemp("vcsim-session"))
    yield sim
    sim.stop()
