"""NsxEmulator: the NSX Policy API emulator as one object — start it, point a client at `.url`
with `.username`/`.password`, verify TLS by `.thumbprint` or `.ca_file`, inject faults, read the
store and the request log, stop it. `run_foreground` serves one until SIGINT/SIGTERM."""

from __future__ import annotations

import secrets
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, TextIO

from nsxkube.lab.nsx.api import DEFAULT_NSX_VERSION, NsxApi, Request, Response, note_changes
from nsxkube.lab.nsx.auth import DEFAULT_SESSION_TTL, Authenticator
from nsxkube.lab.nsx.control import CONTROL_PREFIX, handle_control
from nsxkube.lab.nsx.faults import FaultPlan
from nsxkube.lab.nsx.inventory import Inventory
from nsxkube.lab.nsx.presets import load_preset, plant
from nsxkube.lab.nsx.realization import DEFAULT_REALIZATION_DELAY, Realizer
from nsxkube.lab.nsx.request_log import RequestLog
from nsxkube.lab.nsx.server import EmulatorHttpServer, require_loopback
from nsxkube.lab.nsx.store import Store
from nsxkube.lab.nsx.tls import Certificate, create_self_signed, server_context
from nsxkube.lab.nsx.transaction import NOT_PROTECTED, REQUIRE_OVERRIDE, Actor
from nsxkube.lab.nsx.vms import LabVm, attach_vm, detach_vm

DEFAULT_USERNAME = "admin"


class NsxEmulator:
    """An NSX Policy API on 127.0.0.1. Usable as a context manager."""

    def __init__(
        self,
        preset: str = "empty",
        *,
        realization_delay: float = DEFAULT_REALIZATION_DELAY,
        tls: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: str | Path | None = None,
        username: str = DEFAULT_USERNAME,
        password: str | None = None,
        session_ttl: float = DEFAULT_SESSION_TTL,
        nsx_version: str = DEFAULT_NSX_VERSION,
    ) -> None:
        self.preset = preset
        self.host = require_loopback(host)
        self._requested_port = port
        self.tls = tls
        self.username = username
        self.password = password or secrets.token_urlsafe(18)  # throwaway, per emulator
        self.store = Store()
        load_preset(self.store, preset)
        self.realizer = Realizer(realization_delay)
        self.auth = Authenticator(username, self.password, session_ttl=session_ttl)
        self.faults = FaultPlan()
        self.log = RequestLog(log_path)
        self.inventory = Inventory()
        self.api = NsxApi(self.store, self.realizer, self.auth, self.faults, self.log, inventory=self.inventory,
                          secure_cookies=tls, nsx_version=nsx_version)
        self._server: EmulatorHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._cert_dir: Path | None = None
        self._cert: Certificate | None = None

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> NsxEmulator:
        if self._server is not None:
            return self
        context = None
        if self.tls:
            self._cert_dir = Path(tempfile.mkdtemp(prefix="nsx-emulator-tls-"))
            self._cert = create_self_signed(self._cert_dir)
            context = server_context(self._cert)
        self._server = EmulatorHttpServer(self.host, self._requested_port, self._respond, context)
        self._thread = self._server.serve_in_thread()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._cert_dir is not None:
            shutil.rmtree(self._cert_dir, ignore_errors=True)
            self._cert_dir = None

    def __enter__(self) -> NsxEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _respond(self, request: Request) -> Response:
        if request.path.startswith(CONTROL_PREFIX):
            return handle_control(self.api, request)
        return self.api.handle(request)

    # ---- where and how to connect ---------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def thumbprint(self) -> str | None:
        """SHA-256 thumbprint of the server certificate (AA:BB:…), None without TLS."""
        return self._cert.thumbprint if self._cert else None

    @property
    def ca_file(self) -> str | None:
        """PEM file a client can trust as CA (the self-signed certificate itself)."""
        return str(self._cert.cert_file) if self._cert else None

    def env(self) -> dict[str, str]:
        """The NSX_* variables a client or CLI reads to reach this emulator."""
        env = {"NSX_URL": self.url, "NSX_USERNAME": self.username, "NSX_PASSWORD": self.password}
        if self.tls:
            env |= {"NSX_THUMBPRINT": self.thumbprint or "", "NSX_CA_FILE": self.ca_file or ""}
        return env

    # ---- store access for assertions ------------------------------------------------------------

    def get(self, path: str) -> dict[str, Any] | None:
        """An object as GET would show it (policy path, e.g. /infra/segments/x), or None."""
        return self.store.view(path)

    def paths(self, prefix: str = "/infra") -> list[str]:
        return sorted(p for p in self.store.committed() if p.startswith(prefix))

    def find(self, resource_type: str) -> list[dict[str, Any]]:
        return [self.store.view(p) for p, o in sorted(self.store.committed().items())  # type: ignore[misc]
                if o["resource_type"] == resource_type]  # fmt: skip

    def plant(self, path: str, body: dict[str, Any], *, principal: str | None = None) -> None:
        """Create or merge an object behind the API's back; with `principal` it is owned by that
        principal identity (`_protection: REQUIRE_OVERRIDE`), as NCP's objects are."""
        actor = Actor(
            user=principal or self.username,
            protection=REQUIRE_OVERRIDE if principal else NOT_PROTECTED,
            trusted=True,
        )
        note_changes(self.realizer, plant(self.store, actor, [(path, body)]))

    def attach_vm(self, name: str, segment_id: str, *, external_id: str | None = None, mac: str | None = None,
                  tags: list[dict[str, str]] | None = None) -> LabVm:
        """What vCenter + NSX do when VM `name` powers on with a NIC on the segment: inventory VM,
        VIF and segment port (see `vms.attach_vm`)."""
        return attach_vm(self.api, name, segment_id, external_id=external_id, mac=mac, tags=tags)

    def detach_vm(self, external_id: str) -> list[str]:
        """What NSX does when vCenter reports VM `external_id` deleted: forgets it, removes its ports."""
        return detach_vm(self.api, external_id)

    def vm(self, external_id: str) -> dict[str, Any] | None:
        """A VM of the inventory as NSX lists it, or None."""
        return self.inventory.vm(external_id)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every NSX API request received so far, as logged."""
        return self.log.entries()

    # ---- faults ---------------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        error_code: int | None = None,
        method: str | None = None,
        path_prefix: str | None = None,
    ) -> None:
        """Answer the next `count` matching calls with `status` (429, 503, 500 → error_code 607…)."""
        self.faults.fail_next(status, count, error_code=error_code, method=method, path_prefix=path_prefix)

    def stale_next_put(self, count: int = 1) -> None:
        """The next `count` PUTs meet a stale revision (412) whatever they carry."""
        self.faults.stale_next_put(count)

    def expire_sessions(self) -> None:
        self.auth.expire_all()

    def force_realization_error(self, path: str, message: str = "Realization failed (injected).") -> None:
        self.realizer.force_error(path, message)

    def clear_realization_error(self, path: str) -> None:
        self.realizer.clear_error(path)

    def set_realization_delay(self, seconds: float) -> None:
        self.realizer.set_delay(seconds)

    def omit_derived_fields(self, on: bool = True) -> None:
        """Hierarchical reads leave out what a child's place in the tree implies (`parent_path`,
        `relative_path`, …), as an independently written NSX responder may."""
        self.faults.omit_derived_fields(on)

    def set_version(self, version: str) -> None:
        """What GET /api/v1/node/version answers (node_version and product_version)."""
        self.api.nsx_version = version


def parse_listen(listen: str) -> tuple[str, int]:
    """ "127.0.0.1:8443", "[::1]:0", ":0" or "8443" → (host, port)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit():
        raise ValueError(f"--listen wants HOST:PORT, got {listen!r}")
    return host, int(port)


def run_foreground(
    preset: str = "empty",
    listen: str = "127.0.0.1:0",
    log_path: str | Path | None = None,
    realization_delay: float = DEFAULT_REALIZATION_DELAY,
    tls: bool = True,
    *,
    out: TextIO | None = None,
) -> int:
    """Serve an emulator until SIGINT/SIGTERM, after printing how to reach it as `export` lines."""
    out = out or sys.stdout
    host, port = parse_listen(listen)
    emulator = NsxEmulator(preset, realization_delay=realization_delay, tls=tls, host=host, port=port,
                           log_path=log_path)  # fmt: skip
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with emulator:
            out.write(f"# NSX Policy API emulator, preset {preset!r}; Ctrl-C to stop\n")
            for name, value in emulator.env().items():
                out.write(f"export {name}={value}\n")
            out.flush()
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
