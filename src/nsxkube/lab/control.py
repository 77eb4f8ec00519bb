"""`lab up` / `lab down` / `lab status`: start the supervisor in the background, find it again,
stop it and check that nothing is left listening."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nsxkube.errors import ProviderError, UsageError
from nsxkube.lab import state as files
from nsxkube.lab.process import log_tail, pid_alive, port_is_open

LOCK_FILE = ".lab.lock"
START_TIMEOUT = 90.0
STOP_TIMEOUT = 90.0  # a lab with nodes stops every node's kubelet and containers first


@dataclass(frozen=True)
class UpResult:
    lab: files.LabState
    started: bool  # False: it was running already
    seconds: float


TASK_DELAY = re.compile(r"^[A-Za-z]+=\d{1,6}(,[A-Za-z]+=\d{1,6})*$")


def up(lab_dir: Path, *, vcenter_port: int = 0, nsx_port: int = 0, vcenter_task_delay: str = "", nodes: bool = False,
       api_vip_provider: str = "keepalived", progress: Callable[[str], None] = lambda message: None) -> UpResult:
    """Starts the lab in ``lab_dir`` (or finds it running there) and waits until it is ready.
    ``vcenter_task_delay`` (``CloneVm=3000,PowerOnVm=500``) keeps the simulator's tasks of those
    names running that many milliseconds: to watch progress, or to stop an apply mid-task.
    ``nodes``: every node VM that powers on gets a real node (nsxkube.lab.nodes); the programs and
    images they need are built or found first."""
    for option, port in (("--vcenter-port", vcenter_port), ("--nsx-port", nsx_port)):
        if not 0 <= port <= 65535:
            raise UsageError(f"{option} {port}: a TCP port is 1–65535, or 0 to pick a free one")
    if api_vip_provider not in ("keepalived", "kube-vip"):
        raise UsageError(f"--api-vip-provider {api_vip_provider!r}: keepalived or kube-vip")
    if api_vip_provider != "keepalived" and not nodes:
        raise UsageError("--api-vip-provider is for the lab's nodes", hint="add --nodes")
    if vcenter_task_delay and not TASK_DELAY.match(vcenter_task_delay):
        raise UsageError(f"--vcenter-task-delay {vcenter_task_delay!r}: expected TaskName=milliseconds[,…]",
                         hint="for example CloneVm=3000,PowerOnVm=500")
    lab_dir = _lab_dir(lab_dir)
    try:
        lab_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--dir {lab_dir}: cannot create it ({err.strerror})") from None
    with _exclusive(lab_dir):  # two `lab up` at once in one directory: the second finds the first's lab
        return _up_locked(lab_dir, vcenter_port, nsx_port, vcenter_task_delay, nodes, api_vip_provider, progress)


@contextlib.contextmanager
def _exclusive(lab_dir: Path) -> Iterator[None]:
    import fcntl

    with (lab_dir / LOCK_FILE).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _up_locked(lab_dir: Path, vcenter_port: int, nsx_port: int, task_delay: str, nodes: bool, provider: str,
               progress: Callable[[str], None]) -> UpResult:
    from nsxkube.lab.cluster_file import is_lab_file
    from nsxkube.lab.vcsim import locate_vcsim

    began = time.monotonic()
    running = status(lab_dir)
    if running is not None:
        if nodes and not running.nodes:
            raise UsageError(f"the lab in {lab_dir} runs without nodes", hint=f"nsxkube lab down --dir {lab_dir}, then "
                             "lab up --nodes (the VMs of a lab without nodes have none to move)")
        return UpResult(running, False, time.monotonic() - began)
    cluster_file = lab_dir / files.CLUSTER_FILE
    if cluster_file.exists() and not is_lab_file(cluster_file):
        raise UsageError(f"{cluster_file} exists and was not written by `nsxkube lab up`; the lab would overwrite it",
                         hint="pass another directory with --dir")
    program = locate_vcsim()  # fails here, before anything starts, when the simulator is not built
    if nodes:
        _prepare_nodes(lab_dir, provider, progress)
    progress(f"starting the vCenter simulator ({program.origin}) and the NSX emulator")
    os.chmod(lab_dir, 0o700)
    (lab_dir / files.STATE_FILE).unlink(missing_ok=True)
    log_path = lab_dir / files.LOG_FILE
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", files.SUPERVISOR_MODULE, str(lab_dir),
             "--vcenter-listen", f"127.0.0.1:{vcenter_port}", "--nsx-listen", f"127.0.0.1:{nsx_port}",
             *(["--vcenter-task-delay", task_delay] if task_delay else []), *(["--nodes", "--api-vip-provider", provider] if nodes else [])],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives this command and its terminal
            env={**os.environ, "NSXKUBE_VCSIM": str(program.path)},
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        lab = files.read_state(lab_dir)
        if lab is not None and lab.pid == process.pid:
            return UpResult(lab, True, time.monotonic() - began)
        if process.poll() is not None:
            raise ProviderError(f"the lab did not start: {_last_line(log_path)}",
                                hint=f"the whole log is {log_path}")
        time.sleep(0.1)
    _terminate(process.pid)
    raise ProviderError(f"the lab was not ready after {START_TIMEOUT:.0f} s: {_last_line(log_path)}",
                        hint=f"see {log_path}")


def _prepare_nodes(lab_dir: Path, provider: str, progress: Callable[[str], None]) -> None:
    from nsxkube.lab.nodes import setup
    from nsxkube.lab.nodes.runtime import missing_node_tools, sweep_stale

    reason = missing_node_tools()
    if reason:
        raise UsageError(f"--nodes: this machine cannot run the lab's nodes: {reason}",
                         hint="run lab up without --nodes: VMs without nodes, apply up to network-bindings")
    swept = sweep_stale()  # of a lab whose supervisor was killed
    if swept:
        progress(f"removed what an earlier lab's nodes had left: {', '.join(swept)}")
    located = setup.ensure_programs(progress)
    progress(f"kubectl: {setup.link_tools(lab_dir, located)}")
    setup.ensure_images(lab_dir, progress, provider)


def _lab_dir(lab_dir: Path) -> Path:
    resolved = lab_dir.resolve()
    if resolved.exists() and not resolved.is_dir():
        raise UsageError(f"--dir {lab_dir}: not a directory", hint="the lab keeps its files in a directory")
    return resolved


def status(lab_dir: Path) -> files.LabState | None:
    """The running lab in ``lab_dir``, or None (a stale lab.json of a dead supervisor is removed)."""
    lab_dir = _lab_dir(lab_dir)
    lab = files.read_state(lab_dir)
    if lab is None:
        return None
    if pid_alive(lab.pid) and files.is_supervisor(lab.pid):
        return lab
    (lab_dir / files.STATE_FILE).unlink(missing_ok=True)
    return None


@dataclass(frozen=True)
class DownResult:
    lab: files.LabState | None  # None: nothing was running
    seconds: float
    still_open: tuple[str, ...] = ()
    swept: tuple[str, ...] = ()  # node namespaces, links or cgroups a killed supervisor left, removed now


def down(lab_dir: Path) -> DownResult:
    """Stops the lab's supervisor (it stops both simulators) and checks their ports are closed.
    The cluster file, reports and bundle stay; lab.env's throwaway credentials go with the lab."""
    began = time.monotonic()
    lab_dir = _lab_dir(lab_dir)
    lab = status(lab_dir)
    if lab is None:
        return DownResult(None, time.monotonic() - began)
    _terminate(lab.pid)
    (lab_dir / files.STATE_FILE).unlink(missing_ok=True)
    (lab_dir / files.ENV_FILE).unlink(missing_ok=True)
    deadline = time.monotonic() + 5
    left = [s for s in lab.services if _still_serving(s)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [s for s in left if _still_serving(s)]
    swept: list[str] = []
    if lab.nodes:  # the supervisor stops its nodes; had it been killed, what its nodes leave is removed here
        from nsxkube.lab.nodes.runtime import sweep_stale

        swept = sweep_stale()
    return DownResult(lab, time.monotonic() - began, tuple(f"{s.name} {s.host}:{s.port} (pid {s.pid})" for s in left),
                      tuple(swept))


def _still_serving(service: files.Service) -> bool:
    return port_is_open(service.host, service.port) or (service.pid > 0 and pid_alive(service.pid))


def _terminate(pid: int) -> None:
    """SIGTERM the supervisor's session, SIGKILL it after a grace period."""
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pid)
            if not pid_alive(pid):
                return
            time.sleep(0.05)


def _reap(pid: int) -> None:
    """Collects the exit status when the supervisor is our own child (lab up then down in one process)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _last_line(log_path: Path) -> str:
    lines = [line for line in log_tail(log_path, 40).splitlines() if line.strip()]
    failed = [line for line in lines if "failed" in line or "Error" in line]
    return (failed or lines or ["(empty log)"])[-1]
