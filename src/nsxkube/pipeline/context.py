"""What every phase gets: the design, the options, a reporter, secrets, shared clients and the
handoff between phases."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from nsxkube.design import Design
from nsxkube.pipeline.handoff import Handoff
from nsxkube.pipeline.reporter import Reporter

T = TypeVar("T")


def default_workdir(spec_path: Path, name: str) -> Path:
    """kubeconfig, logs and run records of a cluster: ``.nsxkube/<name>`` beside its cluster.yaml."""
    return spec_path.resolve().parent / ".nsxkube" / name


@dataclass(frozen=True)
class Options:
    """Run options, frozen: they travel with the context, never as module flags."""

    workdir: Path
    assume_yes: bool = False
    timeout_seconds: float = 900.0
    concurrency: int = 8
    realization_timeout_seconds: float = 300.0


@dataclass
class Context:
    design: Design
    options: Options
    reporter: Reporter
    secret: Callable[[str, str], str]
    """``secret(env_name, what)`` → the value, from the environment or a prompt."""
    handoff: Handoff = field(default_factory=Handoff)
    """What a phase learned for later phases (the node VMs for NSX port bindings, …)."""
    _clients: dict[str, Any] = field(default_factory=dict)
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def client(self, name: str, factory: Callable[[Context], T], close: Callable[[T], None] | None = None) -> T:
        """One client per outside system for the whole run (one NSX session, one vCenter login),
        made once even when parallel work asks for it at the same moment."""
        with self._lock:
            if name not in self._clients:
                made = factory(self)
                self._clients[name] = made
                if close is not None:
                    self._closers.append(lambda: close(made))
            return self._clients[name]

    def close(self) -> None:
        while self._closers:
            closer = self._closers.pop()
            # closing must never hide the real outcome of a run
            with contextlib.suppress(Exception):
                closer()
