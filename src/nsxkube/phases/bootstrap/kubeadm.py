"""bootstrap: kubeadm init on the first control plane and kubeadm join on the others, with the
rendered scripts. The join values (token, CA hash, certificate key) live in memory only: they
reach the join scripts on stdin, never in a process's arguments, a log or the work directory."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from nsxkube.design import Node
from nsxkube.errors import ProviderError
from nsxkube.phases.bootstrap.remote import PHASE_NAME, REMOTE_BUNDLE, Nodes

JOIN_KEYS = ("NSXKUBE_JOIN_TOKEN", "NSXKUBE_CA_CERT_HASH", "NSXKUBE_CERTIFICATE_KEY")


@dataclass
class NodeProgress:
    """One node's fate in this run, for the summary at the end of the phase."""

    status: str = "to do"
    seconds: float = 0.0
    failed: bool = False


def init_or_mint(nodes: Nodes, first: Node, todo: Sequence[Node], progress: dict[str, NodeProgress]) -> dict[str, str]:
    """kubeadm init when the first control plane is to do, and the join values when anyone is to
    join (an initialized first control plane mints fresh ones)."""
    from nsxkube.providers.nodes import probes

    initializing = first in todo
    if not initializing and not [n for n in todo if n is not first]:
        return {}
    start = time.monotonic()
    script = f"{REMOTE_BUNDLE}/scripts/bootstrap-control-plane.sh" + ("" if initializing else " --print-join")
    label = "kubeadm init" if initializing else "minting join values"
    nodes.ctx.reporter.step(PHASE_NAME, f"{first.name}: {label}")
    result = nodes.run(first, label, script, nodes.timeouts.long, check=False, log_stdout=False)
    values = {k: v for k, v in probes.key_values(result.stdout).items() if k in JOIN_KEYS}
    nodes.client.add_secrets(values.values())
    if not result.ok or len(values) != len(JOIN_KEYS):
        progress[first.name] = NodeProgress(f"{label} failed: {result.last_line()}", failed=True)
        raise ProviderError(f"{label} on {first.name} ({first.address}) failed: {result.last_line()}",
                            hint=f"see logs/{first.name}.log; the script resumes when run again (after a "
                                 "half-finished init it asks for kubeadm reset -f)")
    if initializing:
        progress[first.name].status = "initialized"
        progress[first.name].seconds += time.monotonic() - start
    return values


def join(nodes: Nodes, node: Node, values: dict[str, str], progress: dict[str, NodeProgress]) -> None:
    from nsxkube.providers.nodes import commands

    keys = JOIN_KEYS if node.is_control_plane else JOIN_KEYS[:2]  # workers never see the certificate key
    secrets = [values[k] for k in keys]
    script = commands.with_secret_env(keys, commands.env_prefix({"NSXKUBE_NODE_NAME": node.name})
                                      + f"{REMOTE_BUNDLE}/scripts/join-{node.role}.sh")
    start = time.monotonic()
    nodes.ctx.reporter.progress(PHASE_NAME, node.name, 3, 4, "joining")
    result = nodes.run(node, f"kubeadm join as {node.role}", script, nodes.timeouts.long, check=False,
                       stdin=commands.secret_stdin(secrets), secrets=tuple(secrets))
    progress[node.name].seconds += time.monotonic() - start
    if not result.ok:
        progress[node.name] = NodeProgress(f"join failed: {result.last_line()}", progress[node.name].seconds, True)
        raise ProviderError(f"kubeadm join of {node.name} ({node.address}) failed: {result.last_line()}",
                            hint=f"see logs/{node.name}.log")
    progress[node.name].status = "joined"
    nodes.ctx.reporter.progress(PHASE_NAME, node.name, 4, 4, "joined")


def install_bridge_cni(nodes: Nodes, node: Node) -> None:
    """sandbox.cni bridge: the rendered script writes the node's CNI configuration from its pod CIDR."""
    from nsxkube.providers.nodes import commands
    from nsxkube.render.bridge_cni import SCRIPT

    script = commands.env_prefix({"NSXKUBE_NODE_NAME": node.name}) + f"bash {REMOTE_BUNDLE}/scripts/{SCRIPT}"
    result = nodes.run(node, "installing the bridge CNI", script, nodes.timeouts.short + 60)
    nodes.ctx.reporter.step(PHASE_NAME, f"{node.name}: {result.stdout.strip().splitlines()[-1]}")
