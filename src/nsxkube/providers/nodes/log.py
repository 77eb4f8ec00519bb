"""The per-node log file: every command, its exit status and output, with secrets redacted.

``<workdir>/logs/<node>.log``, mode 0600, appended to by every run, so an operator can read
what happened on a node without logging in. Secrets are replaced before anything is written.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path

REDACTED = "<redacted>"


def log_path(workdir: Path, node: str) -> Path:
    return workdir / "logs" / f"{node}.log"


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


class NodeLog:
    """Appends to one node's log; shared secrets (join values) are redacted from every entry."""

    def __init__(self, path: Path, secrets: set[str]) -> None:
        self.path = path
        self._secrets = secrets
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)

    def write(self, text: str, extra_secrets: Iterable[str] = ()) -> None:
        clean = redact(text, [*self._secrets, *extra_secrets])
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(clean if clean.endswith("\n") else clean + "\n")

    def command(self, label: str, script: str, status: str, seconds: float, stdout: str | None, stderr: str,
                secrets: Iterable[str] = ()) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        parts = [f"=== {stamp} {label}: {status} ({seconds:.1f} s)", f"$ {script}"]
        if stdout is None:
            parts.append("--- stdout withheld: it holds secrets")
        elif stdout.strip():
            parts += ["--- stdout", stdout.rstrip("\n")]
        if stderr.strip():
            parts += ["--- stderr", stderr.rstrip("\n")]
        self.write("\n".join(parts) + "\n", secrets)
