"""govmomi's vCenter simulator (vcsim): finding the program and running it on loopback.

vcsim is a Go program, built from its Go module by ``programs/build.sh vcsim`` (``scripts/lab``
does that) into ``~/.cache/nsxkube/test-bin``. It serves the real vSphere SOAP API with an
in-memory inventory: datacenter ``DC0``, cluster ``DC0_C0`` of 3 hosts, datastore ``LocalDS_0``,
the distributed switch ``DC0_DVS`` and its port group ``DC0_DVPG0``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from nsxkube.errors import UsageError
from nsxkube.lab.process import log_tail, start_process, stop_process

_URL_LINE = re.compile(r"GOVC_URL=https?://(?:\S*@)?([^/@\s]+):(\d+)/sdk")
BUILD_HINT = "build it with `programs/build.sh vcsim` (scripts/lab does), or point NSXKUBE_VCSIM at a vcsim binary"


def cache_dir() -> Path:
    """Where programs/build.sh builds the simulator ($NSXKUBE_TEST_BIN or the default)."""
    configured = os.environ.get("NSXKUBE_TEST_BIN")
    return Path(configured).expanduser().resolve() if configured else Path.home() / ".cache" / "nsxkube" / "test-bin"


@dataclass(frozen=True)
class Program:
    path: Path
    origin: str  # what the build recorded, e.g. "govmomi v0.56.0 (Go module)"


def _origin(binary: Path) -> str:
    source = binary.with_name(f"{binary.name}.source")
    return source.read_text().splitlines()[0] if source.is_file() else f"{binary}"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _version_key(directory: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", directory.name))


def locate_vcsim() -> Program:
    """$NSXKUBE_VCSIM, else a prebuilt or built one in the cache (newest module build first, then
    the Debian fallback), else `vcsim` on PATH; UsageError with the way to build it otherwise."""
    configured = os.environ.get("NSXKUBE_VCSIM")
    if configured:
        path = Path(configured).expanduser()
        if not _executable(path):
            raise UsageError(f"NSXKUBE_VCSIM={configured} is not an executable file", hint=BUILD_HINT)
        return Program(path, _origin(path))
    cache = cache_dir()
    built = sorted((d for d in cache.glob("govmomi-*") if not d.name.endswith("-debian")), key=_version_key,
                   reverse=True)
    fallback = sorted(cache.glob("govmomi-*-debian"), key=_version_key, reverse=True)
    for candidate in [cache / "vcsim", *(d / "vcsim" for d in (*built, *fallback))]:
        if _executable(candidate):
            return Program(candidate, _origin(candidate))
    on_path = shutil.which("vcsim")
    if on_path:
        return Program(Path(on_path), f"{on_path} (PATH)")
    raise UsageError(f"the vCenter simulator (vcsim) is not built: looked in {cache} and on PATH", hint=BUILD_HINT)


def _colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02X}" for b in digest)


@dataclass
class VcsimServer:
    """A running simulator."""

    host: str
    port: int
    username: str
    password: str = field(repr=False)
    cert_pem: str = field(repr=False)
    thumbprint_sha256: str  # "AB:CD:…", as vCenter shows it
    thumbprint_sha1: str
    origin: str
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    startup_seconds: float = 0.0

    @property
    def old_simulator(self) -> bool:
        """The Debian govmomi 0.24 fallback of programs/build.sh, which lacks parts of the API."""
        return "Debian" in self.origin or "0.24" in self.origin

    @property
    def url(self) -> str:
        """https://HOST:PORT/sdk (no credentials in it)."""
        return f"https://{self.host}:{self.port}/sdk"

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def stop(self) -> int:
        return stop_process(self.process)


def start_vcsim(
    program: Program,
    log_path: Path,
    *,
    username: str,
    password: str,
    datacenters: int = 1,
    clusters: int = 1,
    hosts_per_cluster: int = 3,
    standalone_hosts: int = 0,
    vms: int = 0,
    listen: str = "127.0.0.1:0",
    extra_args: tuple[str, ...] = (),
    timeout: float = 30.0,
) -> VcsimServer:
    """Starts vcsim (it exits when our stdin pipe to it closes) and waits until it answers HTTPS.

    RuntimeError with the simulator's log when it does not come up.
    """
    argv = [
        program.path,
        "-l", listen,
        "-dc", str(datacenters),
        "-cluster", str(clusters),
        "-host", str(hosts_per_cluster),
        "-standalone-host", str(standalone_hosts),
        "-vm", str(vms),
        "-username", username,
        "-stdinexit",
        *extra_args,
    ]  # fmt: skip
    started = time.monotonic()
    # the password travels in the environment: an argument would show in every process listing
    proc = start_process(argv, log_path=log_path, stdin=subprocess.PIPE, env={**os.environ, "VCSIM_PASSWORD": password})
    try:
        host, port = _wait_for_address(proc, log_path, started + timeout)
        cert_pem = _wait_until_answering(host, port, started + timeout)
    except BaseException:
        stop_process(proc)
        raise
    der = ssl.PEM_cert_to_DER_cert(cert_pem)
    return VcsimServer(
        host=host, port=port, username=username, password=password, cert_pem=cert_pem,
        thumbprint_sha256=_colon_hex(hashlib.sha256(der).digest()),
        thumbprint_sha1=_colon_hex(hashlib.sha1(der).digest()),
        origin=program.origin, log_path=log_path, process=proc, startup_seconds=time.monotonic() - started,
    )  # fmt: skip


def _wait_for_address(proc: subprocess.Popen[bytes], log_path: Path, deadline: float) -> tuple[str, int]:
    """vcsim prints ``export GOVC_URL=https://user:pass@127.0.0.1:PORT/sdk …`` once listening."""
    while time.monotonic() < deadline:
        match = _URL_LINE.search(log_path.read_text(errors="replace"))
        if match:
            return match.group(1).strip("[]"), int(match.group(2))
        if proc.poll() is not None:
            raise RuntimeError(f"vcsim exited with {proc.returncode}:\n{log_tail(log_path)}")
        time.sleep(0.05)
    raise RuntimeError(f"vcsim printed no GOVC_URL line in time:\n{log_tail(log_path)}")


def _wait_until_answering(host: str, port: int, deadline: float) -> str:
    """Waits for the SOAP endpoint's version document; returns the served certificate (PEM)."""
    import httpx

    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            # our own simulator on loopback, whose certificate we are about to read: nothing to verify yet
            response = httpx.get(f"https://{host}:{port}/sdk/vimServiceVersions.xml", verify=False, timeout=5)
            if response.status_code == 200 and b"namespace" in response.content:
                return ssl.get_server_certificate((host, port), timeout=5)
            last_error = RuntimeError(f"HTTP {response.status_code}")
        except (httpx.HTTPError, OSError) as exc:
            last_error = exc
        time.sleep(0.05)
    raise RuntimeError(f"vcsim on {host}:{port} did not answer: {last_error}")
