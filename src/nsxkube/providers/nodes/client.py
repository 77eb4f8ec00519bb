"""SSH to the nodes with asyncssh: verified host keys, an optional bastion, root rights, logs.

One event loop in a background thread carries every connection of a run, so the phase stays
plain synchronous code: it calls ``run`` from as many threads as it wants nodes busy at once.
Every call has a timeout; every failure becomes one ``ProviderError`` line naming the node,
its address and what to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from nsxkube.errors import ProviderError
from nsxkube.providers.nodes import commands, hostkeys, ssh_library
from nsxkube.providers.nodes.log import NodeLog, log_path, redact
from nsxkube.providers.nodes.model import Command, Result, Target

T = TypeVar("T")
# What a connection may take beyond the TCP connect itself (key exchange, login).
LOGIN_GRACE_SECONDS = 10.0


def parse_bastion(text: str, default_user: str) -> Target:
    """``user@host[:port]`` (the spec's ``ssh.bastion``) → a Target."""
    user, _, rest = text.rpartition("@")
    host, _, port = rest.partition(":")
    if rest.startswith("["):  # [v6]:port
        host, _, port = rest[1:].partition("]")
        port = port.lstrip(":")
    if not host or (port and not port.isdigit()):
        raise ProviderError(f"ssh.bastion {text!r} is not user@host[:port]")
    return Target("bastion", host, int(port or 22), user or default_user)


class NodeClient:
    """Connections to the nodes of one cluster, opened on first use and kept for the run."""

    def __init__(self, *, user: str, port: int, key_file: Path, known_hosts_file: Path, trust_on_first_use: bool,
                 bastion: str | None, workdir: Path, connect_timeout: float,
                 on_new_host_key: Callable[[Target, str], None]) -> None:
        self.user, self.port = user, port
        self.key_file = key_file.expanduser()
        self.known_hosts_file = known_hosts_file.expanduser()
        self.trust_on_first_use = trust_on_first_use
        self.bastion = parse_bastion(bastion, user) if bastion else None
        self.workdir = workdir
        self.connect_timeout = connect_timeout
        self._on_new_host_key = on_new_host_key
        self.secrets: set[str] = set()
        self._logs: dict[str, NodeLog] = {}
        self._connections: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nsxkube-ssh", daemon=True)
        self._thread.start()

    # ---- the synchronous surface ---------------------------------------------------------------

    def target(self, name: str, address: str) -> Target:
        return Target(name, address, self.port, self.user)

    def add_secrets(self, values: Iterable[str]) -> None:
        """Values redacted from every log line from now on (join token, CA hash, certificate key)."""
        self.secrets.update(v for v in values if v)

    def log_of(self, target: Target) -> NodeLog:
        if target.name not in self._logs:
            self._logs[target.name] = NodeLog(log_path(self.workdir, target.name), self.secrets)
        return self._logs[target.name]

    def connect(self, target: Target) -> None:
        self._call(self._connection(target))

    def run(self, target: Target, command: Command) -> Result:
        return self._call(self._run(target, command))

    def create_files(self, target: Target, directory: str, files: Mapping[str, tuple[str, int]],
                     timeout: float) -> Result:
        """Writes ``path → (text, mode)`` under ``directory`` on the node (root-owned, private)."""
        command = Command(f"upload {len(files)} files to {directory}", commands.extract_into(directory), timeout,
                          stdin=commands.tar_archive(files))
        result = self.run(target, command)
        if not result.ok:
            raise ProviderError(f"could not write {directory} on {target.where}: {result.last_line()}",
                                hint=f"see {self.log_of(target).path}")
        return result

    def upload_file(self, target: Target, local: Path, remote: str, timeout: float) -> Result:
        """Copies a local file to ``remote`` on the node (root-owned, 0600), streamed; the file
        appears whole or not at all."""
        part = shlex.quote(f"{remote}.part")
        script = (f"install -d -m 0700 {shlex.quote(str(PurePosixPath(remote).parent))} && umask 077 && "
                  f"cat > {part} && mv {part} {shlex.quote(remote)}")
        result = self.run(target, Command(f"upload {local.name}", script, timeout, stdin_file=str(local)))
        if not result.ok:
            raise ProviderError(f"could not copy {local} to {remote} on {target.where}: {result.last_line()}",
                                hint=f"see {self.log_of(target).path}")
        return result

    def close(self) -> None:
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    # ---- connections ---------------------------------------------------------------------------

    async def _connection(self, target: Target) -> Any:
        lock = self._locks.setdefault(target.name, asyncio.Lock())
        async with lock:
            connection = self._connections.get(target.name)
            if connection is None or connection.is_closed():
                tunnel = await self._connection(self.bastion) if self.bastion and target is not self.bastion else None
                connection = await self._open(target, tunnel)
                self._connections[target.name] = connection
                if target.user != "root" and target is not self.bastion:
                    await self._check_sudo(target, connection)
            return connection

    async def _open(self, target: Target, tunnel: Any) -> Any:
        asyncssh = ssh_library.asyncssh()

        if not self.key_file.exists():
            raise ProviderError(f"the SSH private key {self.key_file} does not exist",
                                hint="set ssh.private_key_file in cluster.yaml to the key whose public half is in "
                                     "ssh.public_keys")
        known_hosts = hostkeys.read_known_hosts(self.known_hosts_file)
        recorded = hostkeys.find_host_keys(known_hosts, target)
        trusting = not recorded and self.trust_on_first_use
        # Without a recorded key (and no trust on first use) the handshake still runs, so that an
        # unreachable node is reported as unreachable; asyncssh then refuses its unknown key.
        options: dict[str, Any] = {
            "port": target.port, "username": target.user, "client_keys": [str(self.key_file)],
            "known_hosts": None if trusting else known_hosts, "config": [],
            "connect_timeout": self.connect_timeout, "login_timeout": self.connect_timeout + LOGIN_GRACE_SECONDS,
        }
        if tunnel is not None:
            options["tunnel"] = tunnel
        via = f" through the bastion {self.bastion.address}" if tunnel is not None and self.bastion else ""
        try:
            connection = await asyncio.wait_for(asyncssh.connect(target.address, **options),
                                                self.connect_timeout + LOGIN_GRACE_SECONDS)
        except asyncssh.HostKeyNotVerifiable:
            if recorded:
                raise hostkeys.changed_key_error(target, self.known_hosts_file) from None
            raise hostkeys.unknown_key_error(target, self.known_hosts_file) from None
        except asyncssh.PermissionDenied:
            raise ProviderError(f"SSH login as {target.user} to {target.where} was refused",
                                hint=f"the node must accept the key {self.key_file} (its public half belongs in "
                                     "ssh.public_keys, which cloud-init installs)") from None
        except (OSError, asyncssh.ChannelOpenError, asyncssh.DisconnectError) as err:
            reason = f"no answer within {self.connect_timeout:.0f} s" if isinstance(err, TimeoutError) else _reason(err)
            raise ProviderError(f"cannot reach {target.where} on port {target.port}{via}: {reason}",
                                hint="check that the VM is powered on and its address is right; from outside the "
                                     "node network set ssh.bastion") from None
        except (asyncssh.KeyImportError, ValueError) as err:
            raise ProviderError(f"cannot use the SSH private key {self.key_file}: {_reason(err)}",
                                hint="an encrypted key must be loaded into ssh-agent") from None
        if trusting:
            key = connection.get_server_host_key()
            self._on_new_host_key(target, hostkeys.create_host_key(self.known_hosts_file, target, key))
        return connection

    async def _check_sudo(self, target: Target, connection: Any) -> None:
        result = await connection.run("sudo -n true", timeout=self.connect_timeout, check=False)
        if result.exit_status != 0:
            raise ProviderError(f"{target.user} on {target.where} cannot run sudo without a password",
                                hint="nsxkube runs kubeadm with sudo -n; cloud-init's user has NOPASSWD sudo")

    async def _close_all(self) -> None:
        for connection in list(self._connections.values()):
            connection.close()
        for connection in list(self._connections.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.wait_closed(), 5)
        self._connections.clear()

    # ---- commands ------------------------------------------------------------------------------

    async def _run(self, target: Target, command: Command) -> Result:
        asyncssh = ssh_library.asyncssh()

        connection = await self._connection(target)
        remote = commands.as_root(command.script, target.user)
        log = self.log_of(target)
        start = time.monotonic()
        try:
            feed: dict[str, Any] = ({"stdin": command.stdin_file} if command.stdin_file
                                    else {"input": command.stdin or None})
            process = await connection.run(remote, **feed, encoding=None, timeout=command.timeout, check=False)
        except asyncssh.TimeoutError as err:
            seconds = time.monotonic() - start
            log.command(command.label, command.script, "TIMED OUT", seconds,
                        _text(err.stdout) if command.log_stdout else None, _text(err.stderr), command.secrets)
            raise ProviderError(f"{command.label} on {target.where} did not finish within {command.timeout:.0f} s",
                                hint=f"what it printed so far is in {log.path}") from None
        except (OSError, asyncssh.Error) as err:
            self._connections.pop(target.name, None)
            log.command(command.label, command.script, f"CONNECTION LOST: {_reason(err)}",
                        time.monotonic() - start, "", "", command.secrets)
            raise ProviderError(f"lost the SSH connection to {target.where} while running {command.label}: "
                                f"{_reason(err)}", hint="run the phase again once the node answers") from None
        seconds = time.monotonic() - start
        status = process.exit_status if process.exit_status is not None else 255
        # stderr reaches error messages and the screen: no secret in it (stdout may carry the join values).
        stderr = redact(_text(process.stderr), [*self.secrets, *command.secrets])
        if process.exit_signal:
            stderr += f"\nkilled by signal {process.exit_signal[0]}"
        result = Result(command.label, status, _text(process.stdout), stderr, seconds)
        log.command(command.label, command.script, f"exit {status}", seconds,
                    result.stdout if command.log_stdout else None, result.stderr, command.secrets)
        return result


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode("utf-8", errors="replace")


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.errno:
        return os.strerror(err.errno)  # "No route to host", not asyncio's "Connect call failed (…)"
    text = getattr(err, "reason", None) or str(err) or type(err).__name__
    return " ".join(str(text).split())


def client_for(ssh: Any, workdir: Path, *, connect_timeout: float,
               on_new_host_key: Callable[[Target, str], None]) -> NodeClient:
    """A client from the spec's ``ssh`` section; known_hosts defaults to ``<workdir>/known_hosts``."""
    return NodeClient(user=ssh.user, port=ssh.port, key_file=ssh.private_key_file,
                      known_hosts_file=ssh.known_hosts_file or workdir / "known_hosts",
                      trust_on_first_use=ssh.trust_on_first_use, bastion=ssh.bastion, workdir=workdir,
                      connect_timeout=connect_timeout, on_new_host_key=on_new_host_key)
