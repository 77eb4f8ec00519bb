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
``tests/bin/build.sh`` (see tests/support/binaries.py); without it the test is skipped with the
build's reason.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.binaries import locate_binary, log_tail, require_binary, start_process, stop_process

_URL_LINE = re.compile(r"GOVC_URL=(\S+)")


def _colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02X}" for b in digest)


@dataclass
class Vcsim:
    """A running simulator."""

    url: str  # https://127.0.0.1:PORT/sdk (no credentials in it)
    host: str
    port: int
    username: str
    password: str
    cert_pem: str
    thumbprint_sha256: str  # "AB:CD:..." upper-case, colon-separated, like vCenter shows it
    thumbprint_sha1: str
    origin: str  # e.g. "govmomi v0.56.0 (Go module)" or "govmomi 0.24.2 (Debian fallback)"
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    startup_seconds: float = 0.0

    @property
    def base_url(self) -> str:
        """https://HOST:PORT (the REST API lives under /rest and /api)."""
        return f"https://{self.host}:{self.port}"

    def stop(self) -> int:
        return stop_process(self.process)


def start_vcsim(
    workdir: Path,
    *,
    datacenters: int = 1,
    clusters: int = 1,
    hosts_per_cluster: int = 3,
    standalone_hosts: int = 0,
    vms: int = 0,
    username: str = "administrator@vsphere.local",
    password: str | None = None,
    extra_args: tuple[str, ...] = (),
    timeout: float = 30.0,
) -> Vcsim:
    """Starts vcsim on a free loopback port (the OS picks it) and waits until it answers HTTPS.

    Raises RuntimeError (with the simulator's log) when it does not come up; skips the test when
    the program was not built.
    """
    binary = require_binary("vcsim")
    origin = locate_binary("vcsim").origin
    password = password if password is not None else secrets.token_urlsafe(12)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"vcsim-{secrets.token_hex(4)}.log"
    argv = [
        binary,
        "-l", "127.0.0.1:0",
        "-dc", str(datacenters),
        "-cluster", str(clusters),
        "-host", str(hosts_per_cluster),
        "-standalone-host", str(standalone_hosts),
        "-vm", str(vms),
        "-username", username,
        "-password", password,
        "-stdinexit",  # ends with the test process: its stdin pipe closes
        *extra_args,
    ]  # fmt: skip
    started = time.monotonic()
    proc = start_process(argv, log_path=log_path, stdin=subprocess.PIPE)
    try:
        host, port = _wait_for_url(proc, log_path, started + timeout)
        cert_pem = _wait_until_answering(host, port, started + timeout)
    except BaseException:
        stop_process(proc)
        raise
    der = ssl.PEM_cert_to_DER_cert(cert_pem)
    return Vcsim(
        url=f"https://{host}:{port}/sdk",
        host=host,
        port=port,
        username=username,
        password=password,
        cert_pem=cert_pem,
        thumbprint_sha256=_colon_hex(hashlib.sha256(der).digest()),
        thumbprint_sha1=_colon_hex(hashlib.sha1(der).digest()),
        origin=origin,
        log_path=log_path,
        process=proc,
        startup_seconds=time.monotonic() - started,
    )


def _wait_for_url(proc: subprocess.Popen[bytes], log_path: Path, deadline: float) -> tuple[str, int]:
    """vcsim prints ``export GOVC_URL=https://user:pass@127.0.0.1:PORT/sdk ...`` once listening."""
    while time.monotonic() < deadline:
        match = _URL_LINE.search(log_path.read_text(errors="replace"))
        if match:
            url = httpx.URL(match.group(1))
            assert url.host and url.port, url
            return url.host, url.port
        if proc.poll() is not None:
            raise RuntimeError(f"vcsim exited with {proc.returncode}:\n{log_tail(log_path)}")
        time.sleep(0.05)
    raise RuntimeError(f"vcsim printed no GOVC_URL line in time:\n{log_tail(log_path)}")


def _wait_until_answering(host: str, port: int, deadline: float) -> str:
    """Waits for the SOAP endpoint's version document; returns the served certificate (PEM)."""
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            # the test talks to a self-signed simulator on loopback: no verification here
            response = httpx.get(f"https://{host}:{port}/sdk/vimServiceVersions.xml", verify=False, timeout=5)
            if response.status_code == 200 and b"namespace" in response.content:
                return ssl.get_server_certificate((host, port), timeout=5)
            last_error = RuntimeError(f"HTTP {response.status_code}")
        except (httpx.HTTPError, OSError) as exc:
            last_error = exc
        time.sleep(0.05)
    raise RuntimeError(f"vcsim on {host}:{port} did not answer: {last_error}")


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
