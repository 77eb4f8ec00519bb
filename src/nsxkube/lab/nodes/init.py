#!/usr/bin/python3
"""The first process of a lab or test node, standing in for systemd; and the ``systemctl`` shim.

Runs with the Python standard library only (``/usr/bin/python3``): the node's private
``/usr/local/bin`` hides whatever lives there on the machine.

``init.py boot CONFIG.json`` — started by nsxkube/lab/nodes/runtime.py inside the node's network,
mount, UTS and cgroup namespaces (already in the node's own cgroups). It

1. mounts what a machine has: a sysfs of the node's network namespace on ``/sys``, the cgroup
   hierarchies again below it (the cgroup namespace makes the node's cgroup their root, so the
   kubelet's ``/kubepods`` lands inside the node), a fresh tmpfs on ``/run``, and the node's
   private directories and files (bind mounts from the node's directory on the host);
2. sets the hostname and the network sysctls of the node's network namespace;
3. starts the enabled units (containerd, ssh, kubelet) like systemd would, restarting them when
   they exit (``Restart=always``, ``RestartSec``), with ``EnvironmentFile=`` files read at each start
   and ``$VAR`` / ``${VAR}`` expanded in the command line as systemd does;
4. answers ``systemctl`` requests on a unix socket (``/run/nsxkube-init/control.sock``);
5. on SIGTERM stops the units in reverse order and kills whatever is left in the node's cgroups.

``init.py systemctl ARGS…`` / ``init.py journalctl ARGS…`` — the clients that the
node's ``/usr/local/bin/systemctl`` and ``journalctl`` run. The subset kubeadm and operators use:
``start stop restart try-restart is-active is-enabled is-failed status enable disable
daemon-reload show -p MainPID,ActiveState,NRestarts`` and ``journalctl -u UNIT [-n N]``.
Unit output goes to ``/var/log/journal/UNIT.log`` (a private directory of the node).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shlex
import signal
import socket
import sys
import threading
import time

CONTROL_DIR = "/run/nsxkube-init"
CONTROL_SOCKET = f"{CONTROL_DIR}/control.sock"
LOG_DIR = "/var/log/journal"
PR_SET_CHILD_SUBREAPER = 36
STOP_TIMEOUT = 10.0


# ---- boot: mounts ----------------------------------------------------------------------------


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    libc = _libc()
    result = libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                        data.encode() if data else None)
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target} ({fstype or 'bind'}, {data or ''}): {os.strerror(err)}")


MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8


def setup_mounts(config: dict) -> None:
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    # The sysfs of this network namespace: /sys/class/net shows the node's own interfaces.
    mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount("tmpfs", "/sys/fs/cgroup", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755")
    for hierarchy in config["cgroups"]:
        target = hierarchy["target"]
        os.makedirs(target, exist_ok=True)
        mount("cgroup", target, hierarchy["fstype"], MS_NOSUID | MS_NODEV | MS_NOEXEC, hierarchy["options"] or None)
    mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755")
    for directory in ("/run/sshd", "/run/lock", CONTROL_DIR):
        os.makedirs(directory, mode=0o755, exist_ok=True)
    # Sources are opened before any bind: a bind over /tmp or /root must not hide the others.
    sources = {item["target"]: os.open(item["source"], os.O_PATH | os.O_CLOEXEC) for item in config["binds"]}
    for item in config["binds"]:
        if item.get("file"):
            if not os.path.exists(item["target"]):
                continue
        else:
            os.makedirs(item["target"], exist_ok=True)
        mount(f"/proc/self/fd/{sources[item['target']]}", item["target"], None, MS_BIND | MS_REC)
    for fd in sources.values():
        os.close(fd)
    if config.get("product_uuid"):
        report_product_uuid(config["product_uuid"])


DMI_PRODUCT_UUID = "/sys/class/dmi/id/product_uuid"


def report_product_uuid(value: str) -> None:
    """The VM's BIOS UUID as the node's DMI product UUID (the kubelet reports it as systemUUID, which
    the vSphere cloud provider matches against the VM). Without DMI in this machine's sysfs (which
    takes no new files), a tmpfs goes over /sys/class with every class bound back, plus dmi/id."""
    source = f"{CONTROL_DIR}/product_uuid"
    with open(source, "w") as handle:
        handle.write(value + "\n")
    os.chmod(source, 0o444)
    if not os.path.exists(DMI_PRODUCT_UUID):
        classes = {name: os.open(f"/sys/class/{name}", os.O_PATH | os.O_CLOEXEC)
                   for name in os.listdir("/sys/class") if name != "dmi"}
        mount("tmpfs", "/sys/class", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755")
        for name, fd in classes.items():
            os.mkdir(f"/sys/class/{name}")
            mount(f"/proc/self/fd/{fd}", f"/sys/class/{name}", None, MS_BIND | MS_REC)
            os.close(fd)
        os.makedirs(os.path.dirname(DMI_PRODUCT_UUID))
        open(DMI_PRODUCT_UUID, "w").close()
    mount(source, DMI_PRODUCT_UUID, None, MS_BIND)


def set_sysctls(values: dict[str, str]) -> None:
    for key, value in values.items():
        path = "/proc/sys/" + key.replace(".", "/")
        with contextlib.suppress(FileNotFoundError), open(path, "w") as handle:
            handle.write(value)


# ---- units -----------------------------------------------------------------------------------


def read_environment_file(path: str) -> dict[str, str]:
    """KEY=VALUE lines as systemd reads them (quotes removed, # comments skipped)."""
    values: dict[str, str] = {}
    with open(path) as handle:
        for raw in handle:
            line = raw.strip()
            if not line or line.startswith(("#", ";")) or "=" not in line:
                continue
            key, _, value = line.partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            values[key.strip()] = value
    return values


def expand_command(words: list[str], env: dict[str, str]) -> list[str]:
    """systemd's ExecStart expansion: a word ``$VAR`` splits into words, ``${VAR}`` stays one."""
    result: list[str] = []
    for word in words:
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            result.extend(env.get(whole.group(1), "").split())
            continue
        result.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word))
    return result


class Unit:
    def __init__(self, name: str, spec: dict) -> None:
        self.name = name
        self.exec = spec["exec"]
        self.environment = spec.get("environment", {})
        self.environment_files = spec.get("environment_files", [])
        self.restart_sec = float(spec.get("restart_sec", 10))
        self.kill_mode = spec.get("kill_mode", "control-group")
        self.enabled = bool(spec.get("enabled", True))
        self.description = spec.get("description", name)
        self.pid: int | None = None
        self.wanted = False  # started and not stopped by a request
        self.state = "inactive"  # inactive | active | activating (auto-restart) | failed
        self.restart_at: float | None = None
        self.restarts = 0
        self.since = time.time()
        self.last_exit = ""

    def command(self) -> tuple[list[str], dict[str, str]]:
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
        env.update(self.environment)
        for item in self.environment_files:
            optional = item.startswith("-")
            path = item[1:] if optional else item
            try:
                env.update(read_environment_file(path))
            except FileNotFoundError:
                if not optional:
                    raise
        return expand_command(self.exec, env), env


class Supervisor:
    def __init__(self, config: dict) -> None:
        self.config = config
        self.units = {name: Unit(name, spec) for name, spec in config["units"].items()}
        self.order = list(config["units"])
        self.lock = threading.RLock()
        self.stopping = False
        self.log_dir = config.get("log_dir", LOG_DIR)
        os.makedirs(self.log_dir, exist_ok=True)

    # -- processes

    def log(self, message: str) -> None:
        with open(f"{self.log_dir}/init.log", "a") as handle:
            handle.write(f"{time.strftime('%H:%M:%S')} {message}\n")

    def spawn(self, unit: Unit) -> None:
        try:
            argv, env = unit.command()
            path = argv[0] if "/" in argv[0] else next(
                (f"{d}/{argv[0]}" for d in env["PATH"].split(":") if os.access(f"{d}/{argv[0]}", os.X_OK)), argv[0])
            log_path = f"{self.log_dir}/{unit.name}.log"
            with open(log_path, "a") as handle:
                handle.write(f"-- {time.strftime('%H:%M:%S')} starting {unit.name}: {shlex.join(argv)}\n")
            unit.pid = os.posix_spawn(path, argv, env, file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ], setsid=True)
            unit.state = "active"
            unit.since = time.time()
            self.log(f"{unit.name}: started pid {unit.pid}")
        except (OSError, ValueError) as error:
            unit.pid = None
            unit.last_exit = f"could not start: {error}"
            self.log(f"{unit.name}: {unit.last_exit}")
            self.exited(unit)

    def exited(self, unit: Unit) -> None:
        unit.pid = None
        if unit.wanted and not self.stopping:
            unit.state = "activating"
            unit.restart_at = time.monotonic() + unit.restart_sec
            unit.restarts += 1
        else:
            unit.state = "inactive" if not unit.last_exit.startswith("could not") else "failed"

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            with self.lock:
                for unit in self.units.values():
                    if unit.pid == pid:
                        code = os.waitstatus_to_exitcode(status)
                        unit.last_exit = f"exit {code}" if code >= 0 else f"signal {-code}"
                        self.log(f"{unit.name}: pid {pid} ended ({unit.last_exit})")
                        with open(f"{self.log_dir}/{unit.name}.log", "a") as handle:
                            handle.write(f"-- {time.strftime('%H:%M:%S')} {unit.name} ended: {unit.last_exit}\n")
                        self.exited(unit)

    def start(self, unit: Unit) -> None:
        with self.lock:
            unit.wanted = True
            if unit.pid is None:
                unit.restart_at = None
                self.spawn(unit)

    def stop(self, unit: Unit) -> None:
        with self.lock:
            unit.wanted = False
            unit.restart_at = None
            pid = unit.pid
            if pid is None:
                unit.state = "inactive"
                return
            self.signal(unit, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            with self.lock:
                if unit.pid != pid:
                    return
            time.sleep(0.05)
        with self.lock:
            if unit.pid == pid:
                self.signal(unit, signal.SIGKILL)
        while True:
            with self.lock:
                if unit.pid != pid:
                    return
            time.sleep(0.05)

    def signal(self, unit: Unit, sig: int) -> None:
        if unit.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            if unit.kill_mode == "process":
                os.kill(unit.pid, sig)
            else:
                os.killpg(unit.pid, sig)

    def tick(self) -> None:
        self.reap()
        now = time.monotonic()
        with self.lock:
            for unit in self.units.values():
                if unit.wanted and unit.pid is None and unit.restart_at is not None and now >= unit.restart_at:
                    unit.restart_at = None
                    self.spawn(unit)

    # -- requests

    def status_text(self, unit: Unit) -> str:
        enabled = "enabled" if unit.enabled else "disabled"
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unit.since))
        running = {"active": "active (running)", "activating": "activating (auto-restart)",
                   "inactive": "inactive (dead)", "failed": "failed"}[unit.state]
        lines = [f"* {unit.name}.service - {unit.description}",
                 f"     Loaded: loaded (nsxkube test node supervisor; {enabled})",
                 f"     Active: {running} since {since}"]
        if unit.pid:
            lines.append(f"   Main PID: {unit.pid}")
        if unit.last_exit:
            lines.append(f"  Last exit: {unit.last_exit}; restarts: {unit.restarts}")
        return "\n".join(lines) + "\n"

    def handle(self, argv: list[str]) -> tuple[int, str, str]:
        args = [a for a in argv if not a.startswith("-") or a in ("-p",)]
        flags = [a for a in argv if a.startswith("--")]
        if not args:
            return 1, "", "systemctl (nsxkube test node): a command is needed\n"
        command, names = args[0], [n.removesuffix(".service") for n in args[1:]]
        if command == "daemon-reload":
            return 0, "", ""
        if command == "list-units":
            return 0, "".join(f"{u.name}.service loaded {u.state}\n" for u in self.units.values()), ""
        if command == "show":
            properties = []
            if "-p" in names:
                index = names.index("-p")
                properties = names[index + 1].split(",") if index + 1 < len(names) else []
                names = names[:index] + names[index + 2:]
            properties += [f.split("=", 1)[1] for f in flags if f.startswith("--property=")]
            out = []
            for name in names:
                unit = self.units.get(name)
                if unit is None:
                    out.append("LoadState=not-found\nActiveState=inactive\n")
                    continue
                values = {"MainPID": str(unit.pid or 0), "ActiveState": unit.state, "NRestarts": str(unit.restarts),
                          "UnitFileState": "enabled" if unit.enabled else "disabled", "LoadState": "loaded"}
                out.append("".join(f"{k}={v}\n" for k, v in values.items() if not properties or k in properties))
            return 0, "".join(out), ""
        if not names:
            return 1, "", f"systemctl {command}: a unit name is needed\n"
        missing = [n for n in names if n not in self.units]
        if missing:
            if command == "status":
                return 4, "", f"Unit {missing[0]}.service could not be found.\n"
            if command == "is-active":
                return 3, "inactive\n", ""
            if command == "is-enabled":
                return 1, "", f"Failed to get unit file state for {missing[0]}.service: No such file or directory\n"
            return 5, "", f"Failed to {command} {missing[0]}.service: Unit {missing[0]}.service not found.\n"
        units = [self.units[n] for n in names]
        if command == "start":
            for unit in units:
                self.start(unit)
            return 0, "", ""
        if command == "stop":
            for unit in units:
                self.stop(unit)
            return 0, "", ""
        if command in ("restart", "try-restart", "reload-or-restart"):
            for unit in units:
                if command == "try-restart" and unit.pid is None:
                    continue
                self.stop(unit)
                self.start(unit)
            return 0, "", ""
        if command in ("enable", "disable"):
            for unit in units:
                unit.enabled = command == "enable"
            if "--now" in flags:
                for unit in units:
                    (self.start if command == "enable" else self.stop)(unit)
            return 0, "", ""
        if command == "is-active":
            states = [u.state for u in units]
            return (0 if all(s == "active" for s in states) else 3), "".join(f"{s}\n" for s in states), ""
        if command == "is-failed":
            states = [u.state for u in units]
            return (0 if any(s == "failed" for s in states) else 1), "".join(f"{s}\n" for s in states), ""
        if command == "is-enabled":
            values = ["enabled" if u.enabled else "disabled" for u in units]
            return (0 if all(v == "enabled" for v in values) else 1), "".join(f"{v}\n" for v in values), ""
        if command == "status":
            with self.lock:
                text = "".join(self.status_text(u) for u in units)
            return (0 if all(u.state == "active" for u in units) else 3), text, ""
        return 1, "", f"systemctl (nsxkube test node): unsupported command {command!r}\n"

    def serve(self, server: socket.socket) -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=self.answer, args=(connection,), daemon=True).start()

    def answer(self, connection: socket.socket) -> None:
        with connection:
            data = read_line(connection)
            try:
                request = json.loads(data)
                code, out, err = self.handle(list(request["argv"]))
            except Exception as error:  # answered to the client: a bad request never stops the node
                code, out, err = 1, "", f"systemctl (nsxkube test node): {error}\n"
            connection.sendall(json.dumps({"code": code, "stdout": out, "stderr": err}).encode() + b"\n")

    # -- shutdown

    def shutdown(self) -> None:
        self.stopping = True
        for name in reversed(self.order):
            unit = self.units[name]
            if unit.pid is not None:
                self.log(f"shutdown: stopping {name}")
                threading.Thread(target=self.stop, args=(unit,), daemon=True).start()
        deadline = time.monotonic() + STOP_TIMEOUT + 2
        while time.monotonic() < deadline and any(u.pid for u in self.units.values()):
            self.reap()
            time.sleep(0.05)
        # Everything else in the node (container shims, containers, SSH sessions) goes too.
        for _ in range(50):
            pids = node_pids() - {os.getpid()}
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
            self.reap()
        self.log("shutdown: done")


def node_pids() -> set[int]:
    """Every process in the node's cgroups (the cgroup namespace makes /sys/fs/cgroup/pids the node's root)."""
    pids: set[int] = set()
    base = "/sys/fs/cgroup/pids"
    if not os.path.isdir(base):
        base = "/sys/fs/cgroup/memory"
    for directory, _, files in os.walk(base):
        if "cgroup.procs" in files:
            with contextlib.suppress(OSError), open(f"{directory}/cgroup.procs") as handle:
                pids.update(int(p) for p in handle.read().split())
    return pids


def boot(config_path: str) -> int:
    with open(config_path) as handle:
        config = json.load(handle)
    setup_mounts(config)
    with open("/proc/sys/kernel/hostname", "w") as handle:
        handle.write(config["hostname"])
    set_sysctls(config.get("sysctls", {}))
    _libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    supervisor = Supervisor(config)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(CONTROL_SOCKET)
    server.listen(16)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=supervisor.serve, args=(server,), daemon=True).start()
    for name in supervisor.order:
        if supervisor.units[name].enabled and supervisor.units[name].wanted is False and config["units"][name].get("start", True):
            supervisor.start(supervisor.units[name])
    with open(f"{CONTROL_DIR}/ready", "w") as handle:
        handle.write(f"{os.getpid()}\n")
    supervisor.log("booted")
    while not stop.is_set():
        supervisor.tick()
        stop.wait(0.1)
    supervisor.shutdown()
    server.close()
    return 0


# ---- clients ---------------------------------------------------------------------------------


def read_line(connection: socket.socket) -> bytes:
    """One JSON line of the control protocol (requests and answers are one line each)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def request(argv: list[str], socket_path: str = CONTROL_SOCKET, timeout: float = 60.0) -> tuple[int, str, str]:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(timeout)
    with client:
        client.connect(socket_path)
        client.sendall(json.dumps({"argv": argv}).encode() + b"\n")
        data = read_line(client)
    answer = json.loads(data)
    return answer["code"], answer["stdout"], answer["stderr"]


def systemctl(argv: list[str]) -> int:
    try:
        code, out, err = request(argv)
    except OSError as error:
        sys.stderr.write(f"System has not been booted with the nsxkube test supervisor ({error})\n")
        return 1
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


def journalctl(argv: list[str]) -> int:
    unit, lines = None, None
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg in ("-u", "--unit") and index + 1 < len(argv):
            unit = argv[index + 1].removesuffix(".service")
            index += 1
        elif arg.startswith("--unit="):
            unit = arg.split("=", 1)[1].removesuffix(".service")
        elif arg in ("-n", "--lines") and index + 1 < len(argv):
            lines = int(argv[index + 1])
            index += 1
        index += 1
    path = f"{LOG_DIR}/{unit or 'init'}.log"
    try:
        with open(path, errors="replace") as handle:
            text = handle.read().splitlines()
    except FileNotFoundError:
        sys.stdout.write("-- No entries --\n")
        return 0
    if lines is not None:
        text = text[-lines:]
    sys.stdout.write("".join(f"{line}\n" for line in text))
    return 0


class _Timex(ctypes.Structure):  # struct timex of <sys/timex.h> (x86_64), for adjtimex(2)
    _fields_ = [("modes", ctypes.c_uint), *((f, ctypes.c_long) for f in ("offset", "freq", "maxerror", "esterror")),
                ("status", ctypes.c_int), *((f, ctypes.c_long) for f in ("constant", "precision", "tolerance",
                                                                         "time_sec", "time_usec", "tick", "ppsfreq",
                                                                         "jitter")),
                ("shift", ctypes.c_int), *((f, ctypes.c_long) for f in ("stabil", "jitcnt", "calcnt", "errcnt",
                                                                         "stbcnt")),
                ("tai", ctypes.c_int), ("padding", ctypes.c_int * 11)]


TIME_ERROR = 5  # adjtimex: the kernel's clock is not synchronized (STA_UNSYNC)


def clock_synchronized() -> bool:
    """What systemd-timedated reports as NTPSynchronized: the kernel's own verdict (adjtimex)."""
    return _libc().adjtimex(ctypes.byref(_Timex())) != TIME_ERROR


def timedatectl(argv: list[str]) -> int:
    """``timedatectl [status]`` and ``timedatectl show [-p NTPSynchronized] [--value]``: a node shares
    the machine's clock, so it reports the machine kernel's synchronization."""
    synced = "yes" if clock_synchronized() else "no"
    if argv[:1] == ["show"]:
        value_only = "--value" in argv
        sys.stdout.write(f"{synced}\n" if value_only else f"NTPSynchronized={synced}\nNTP=no\n")
        return 0
    if argv[:1] in ([], ["status"]):
        sys.stdout.write(f"               Local time: {time.strftime('%a %Y-%m-%d %H:%M:%S %Z')}\n"
                         f"System clock synchronized: {synced}\n              NTP service: n/a (the machine's clock)\n")
        return 0
    sys.stderr.write(f"timedatectl {' '.join(argv)}: not supported on a lab node\n")
    return 1


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "boot":
        return boot(argv[1])
    if argv and argv[0] == "systemctl":
        return systemctl(argv[1:])
    if argv and argv[0] == "journalctl":
        return journalctl(argv[1:])
    if argv and argv[0] == "timedatectl":
        return timedatectl(argv[1:])
    sys.stderr.write(__doc__ or "")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
