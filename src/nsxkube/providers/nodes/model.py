"""Plain records of the node provider: where to connect, what to run, what came back."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Target:
    """One SSH endpoint: a node, or the bastion in front of the nodes."""

    name: str
    address: str
    port: int = 22
    user: str = "root"

    @property
    def where(self) -> str:
        """``k8s-prod-worker-1 (172.16.50.14)``: how every message names a node."""
        return self.name if self.name == self.address else f"{self.name} ({self.address})"

    @property
    def known_hosts_name(self) -> str:
        """The host field of a known_hosts line (OpenSSH writes ``[host]:port`` off port 22)."""
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"


@dataclass(frozen=True)
class Command:
    """A shell command run on a node with root rights (sudo unless the login user is root).

    ``script`` is visible in the node's process list and in the log: it never holds a secret.
    Secrets travel in ``stdin`` (see ``commands.with_secret_env``) and are redacted from the log.
    """

    label: str
    script: str
    timeout: float
    stdin: bytes = b""
    stdin_file: str | None = None  # a local file streamed to stdin instead (large uploads: never held in memory)
    secrets: tuple[str, ...] = field(default=(), repr=False)
    log_stdout: bool = True


@dataclass(frozen=True)
class Result:
    label: str
    exit_status: int
    stdout: str = field(repr=False)
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def last_line(self) -> str:
        """The last non-empty line of stderr (else stdout): what a failed script said last."""
        for text in (self.stderr, self.stdout if self.exit_status else ""):
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if lines:
                return lines[-1]
        return f"exit status {self.exit_status}"
