"""What one phase hands to the phases after it in the same command, typed: the runner's context
holds one ``Handoff``, and each field names the phase that fills it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nsxkube.providers.vsphere.model import NodeVm


@dataclass
class Handoff:
    node_vms: dict[str, NodeVm] | None = None
    """machines → node name → the VM of each node that exists and is ours (set by observe and
    apply). None when the machines phase did not run in this command: later phases then find the
    VMs themselves (network-bindings) or assume they exist (bootstrap)."""

    doomed_vms: frozenset[str] = field(default_factory=frozenset)
    """machines' teardown → instance UUIDs of the VMs destroy deletes, so that the network phase
    (torn down after it) does not refuse a segment whose only ports are theirs."""

    kubeconfig: Path | None = None
    """bootstrap → the admin kubeconfig it wrote (0600), for the phases that talk to Kubernetes."""
