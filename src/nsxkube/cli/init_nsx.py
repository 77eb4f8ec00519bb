"""`nsxkube init --from-nsx MANAGER`: the example cluster.yaml, with pod and service ranges chosen
from what that NSX already uses. Only GETs, HTTP basic on each call (as `nsx discover`); the login
comes from the example's variables NSX_USER and NSX_PASSWORD (or a prompt), never from a file.

When NCP or nsx-operator objects show that vSphere with Tanzu runs there, Tanzu's default ranges
are avoided as well, even where NSX does not show them yet. Without --from-nsx, init is offline and
writes the example as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from nsxkube.errors import UsageError


@dataclass(frozen=True)
class NsxTrust:
    thumbprint: str | None = None
    ca_file: Path | None = None
    insecure: bool = False

    def yaml_lines(self) -> list[str]:
        if self.thumbprint:
            return [f'    thumbprint: "{self.thumbprint}"']
        if self.ca_file:
            return [f"    ca_file: {self.ca_file}"]
        return [f"    insecure: {'true' if self.insecure else 'false'}"]


def example_from_nsx(text: str, manager: str, trust: NsxTrust) -> tuple[str, list[str]]:
    """The example text pointed at `manager`, with ranges that avoid what it uses; and what was changed."""
    from nsxkube.checks.nsx_ranges import propose_ranges
    from nsxkube.providers.nsx.client import NsxClient
    from nsxkube.providers.nsx.connect import INSECURE_WARNING, client_config
    from nsxkube.providers.nsx.inventory import get_full_inventory
    from nsxkube.spec import parse_spec

    if sum(map(bool, (trust.thumbprint, trust.ca_file, trust.insecure))) > 1:
        raise UsageError("--nsx-thumbprint, --nsx-ca-file and --nsx-insecure exclude each other: choose one")
    text = _point_at(text, manager, trust)
    spec = parse_spec(text, source="the example cluster.yaml")
    client = NsxClient(client_config(spec.nsx.model_copy(update={"auth": "basic"})))
    try:
        inventory = get_full_inventory(client)
    finally:
        client.close()
    k8s = spec.kubernetes
    proposal = propose_ranges(inventory, pod_cidr=k8s.pod_cidr, service_cidr=k8s.service_cidr,
                              node_segment=spec.nsx.segment.cidr)
    notes = [f"warning: {INSECURE_WARNING}"] if trust.insecure else []
    notes += [f"vSphere with Tanzu found on {manager}" if proposal.tanzu else f"no vSphere with Tanzu on {manager}"]
    for key, value, reason in (("pod_cidr", proposal.pod_cidr, proposal.pod_reason),
                               ("service_cidr", proposal.service_cidr, proposal.service_reason)):
        text = re.sub(rf"(?m)^  {key}: \S+.*$", f"  {key}: {value}" + (f"   # {reason}" if reason else ""),
                      text, count=1)
        if reason:
            notes.append(f"kubernetes.{key}: {value} ({reason})")
    parse_spec(text, source="the proposed cluster.yaml")  # what is written must load
    return text, notes


def _point_at(text: str, manager: str, trust: NsxTrust) -> str:
    start = text.index("\nnsx:\n")
    section = text[start:]
    section = re.sub(r"(?m)^  manager: \S+", f"  manager: {manager}", section, count=1)
    section = re.sub(r"(?m)^  tls:\n    insecure: false\n", "  tls:\n" + "\n".join(trust.yaml_lines()) + "\n",
                     section, count=1)
    return text[:start] + section
