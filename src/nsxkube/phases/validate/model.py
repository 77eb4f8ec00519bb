"""What a validation check is and what it returns."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from nsxkube.pipeline.change import Change
from nsxkube.pipeline.context import Context

Verdict = Literal["ok", "warn", "fail", "skipped"]
GROUPS = ("nsx", "vsphere", "nodes", "kubernetes", "network", "storage", "loadbalancer", "ingress",
          "observability", "backup", "security")
TROUBLESHOOTING = "docs/troubleshooting.md"


@dataclass(frozen=True)
class Outcome:
    """What a check function returns: its verdict, what it saw, and for warn/fail how to fix it."""

    verdict: Verdict
    detail: str
    hint: str = ""


@dataclass
class Probe:
    """What the checks of one run share: the context, and each phase's plan read once (checks run in
    parallel; the first to ask reads, the others wait for it)."""

    ctx: Context
    _plans: dict[str, tuple[Any, list[Change]]] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)
    _kube_clients: list[Any] = field(default_factory=list)

    def kube(self, server: str | None = None) -> Any:
        """A Kubernetes client on the kubeconfig the bootstrap phase wrote (closed by the runner)."""
        from nsxkube.providers.kube.client import KubeClient

        client = KubeClient(self.ctx.options.workdir / "kubeconfig", server=server)
        with self._guard:
            self._kube_clients.append(client)
        return client

    def close(self) -> None:
        for client in self._kube_clients:
            client.close()

    def observed(self, phase: Any) -> tuple[Any, list[Change]]:
        """The phase's snapshot and plan, read once per run."""
        from nsxkube.pipeline.runner import observe_and_plan

        with self._guard:
            lock = self._locks.setdefault(phase.name, threading.Lock())
        with lock:
            if phase.name not in self._plans:
                self._plans[phase.name] = observe_and_plan(self.ctx, phase)
            return self._plans[phase.name]

    def plan(self, phase: Any) -> list[Change]:
        return self.observed(phase)[1]


@dataclass(frozen=True)
class Check:
    id: str  # group.name, stable: JSON, JUnit and tickets refer to it
    title: str
    run: Callable[[Probe], Outcome]
    doc: str = ""  # the troubleshooting section for warn/fail ("#the-api-vip-…")

    @property
    def group(self) -> str:
        return self.id.split(".", 1)[0]


@dataclass(frozen=True)
class CheckResult:
    id: str
    group: str
    title: str
    verdict: Verdict
    detail: str
    hint: str = ""
    doc: str = ""
    seconds: float = 0.0


def ok(detail: str) -> Outcome:
    return Outcome("ok", detail)


def fail(detail: str, hint: str) -> Outcome:
    return Outcome("fail", detail, hint)


def warn(detail: str, hint: str) -> Outcome:
    return Outcome("warn", detail, hint)


def skipped(why: str) -> Outcome:
    return Outcome("skipped", why)
