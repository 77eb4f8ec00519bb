"""How the bootstrap phase talks to its nodes: one helper over the SSH executor, so every step
runs commands, reads kubectl output and reports failures the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nsxkube.design import Design, Node
from nsxkube.errors import ProviderError
from nsxkube.phases.clients import SSH_CONNECT_SECONDS, nodes_client
from nsxkube.pipeline.context import Context

PHASE_NAME = "bootstrap"
REMOTE_BUNDLE = "/var/lib/nsxkube/bundle"


@dataclass(frozen=True)
class Timeouts:
    connect: float
    short: float  # probes, uploads, kubectl
    long: float  # cloud-init, kubeadm init and join
    csr: float  # how long new nodes get to ask for their serving certificate

    @classmethod
    def of(cls, ctx: Context) -> Timeouts:
        total = ctx.options.timeout_seconds
        return cls(min(SSH_CONNECT_SECONDS, total), min(120.0, total), total, min(120.0, total))


class Nodes:
    """The run's SSH executor, bound to this phase's timeouts and messages."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.client: Any = nodes_client(ctx, PHASE_NAME)
        self.timeouts = Timeouts.of(ctx)

    @property
    def design(self) -> Design:
        return self.ctx.design

    def target(self, node: Node) -> Any:
        return self.client.target(node.name, str(node.address))

    def run(self, node: Node, label: str, script: str, timeout: float | None = None, *, check: bool = True,
            **command: Any) -> Any:
        """Runs ``script`` on ``node``; with ``check`` a failure is a ProviderError naming the node's log."""
        from nsxkube.providers.nodes.model import Command

        result = self.client.run(self.target(node), Command(label, script, timeout or self.timeouts.short, **command))
        if check and not result.ok:
            raise ProviderError(f"{label} on {node.name} ({node.address}) failed: {result.last_line()}",
                                hint=f"see logs/{node.name}.log")
        return result

    def kubectl(self, first: Node, label: str, script: str) -> str:
        """kubectl with admin.conf on the first control plane; its output."""
        return self.run(first, label, script).stdout

    def log_path(self, node: Node) -> Any:
        return self.client.log_of(self.target(node)).path

    def log(self, node: Node, text: str) -> None:
        self.client.log_of(self.target(node)).write(text)
