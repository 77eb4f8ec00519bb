"""What the lab holds after the main job, read back through the simulators' APIs (the same reads
nsxkube's providers make), plus the last apply's record and the files the job wrote."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nsxkube.errors import UsageError
from nsxkube.lab import state as files


@dataclass(frozen=True)
class Vm:
    name: str
    power: str
    addresses: tuple[str, ...]
    owned: bool


@dataclass(frozen=True)
class KubeNode:
    name: str
    kubelet: str
    ready: bool
    roles: tuple[str, ...]
    address: str
    also_holds: tuple[str, ...] = ()  # the API VIP, LoadBalancer addresses (lab nodes only)


@dataclass
class LabSummary:
    lab: files.LabState
    cluster: str
    nsx_owned: Counter[str] = field(default_factory=Counter)  # resource type → objects tagged for this cluster
    nsx_others: Counter[str] = field(default_factory=Counter)  # owner label → objects nsxkube left alone
    port_bindings: int = 0  # address bindings on the node ports (SpoofGuard allowlist)
    nsx_vms_tagged: int = 0
    vms: list[Vm] = field(default_factory=list)
    drs_rules: list[str] = field(default_factory=list)
    nsx_requests: Counter[str] = field(default_factory=Counter)  # HTTP method → count
    last_apply: dict[str, Any] | None = None
    kube_nodes: list[KubeNode] = field(default_factory=list)
    kube_error: str | None = None  # why the cluster could not be read ("" : no kubeconfig yet)
    api_vip: str = ""


def summarize(lab_dir: Path, workdir: Path | None = None) -> LabSummary:
    from nsxkube.design import load_design
    from nsxkube.lab.control import status
    from nsxkube.pipeline.context import default_workdir
    from nsxkube.pipeline.record import read_record

    lab = status(lab_dir)
    if lab is None:
        raise UsageError(f"no lab is running in {lab_dir}", hint=f"start it with `nsxkube lab up --dir {lab_dir}`")
    spec_path = lab_dir / files.CLUSTER_FILE
    design = load_design(spec_path)
    secrets = files.read_env(lab_dir)  # the lab's own throwaway credentials

    def secret(name: str, what: str) -> str:
        return secrets[name]

    summary = LabSummary(lab, design.name)
    _read_nsx(summary, design, secret)
    _read_vcenter(summary, design, secret)
    summary.nsx_requests = _request_counts(lab_dir / files.REQUEST_LOG)
    workdir = workdir or default_workdir(spec_path, design.name)
    summary.last_apply = read_record(workdir, "apply")
    summary.api_vip = str(design.ip_plan.api_vip)
    if lab.nodes:
        _read_kubernetes(summary, workdir / "kubeconfig", _lab_nodes(lab_dir))
    return summary


def _lab_nodes(lab_dir: Path) -> dict[str, Any]:
    from nsxkube.untrusted import InputError, read_json

    try:
        nodes = read_json(lab_dir / files.NODES_FILE)
    except InputError:
        return {}
    return nodes if isinstance(nodes, dict) else {}


def _read_kubernetes(summary: LabSummary, kubeconfig: Path, lab_nodes: dict[str, Any]) -> None:
    """The cluster's nodes through the API VIP (the admin kubeconfig apply wrote), and which node
    holds which extra address according to the lab."""
    from nsxkube.errors import NsxkubeError
    from nsxkube.providers.kube.client import KubeClient

    if not kubeconfig.is_file():
        summary.kube_error = ""
        return
    try:
        with KubeClient(kubeconfig) as client:
            items = client.get("/api/v1/nodes").get("items") or []
    except NsxkubeError as err:
        summary.kube_error = err.one_line()
        return
    for item in items:
        meta, status = item.get("metadata") or {}, item.get("status") or {}
        name = str(meta.get("name", "?"))
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())
        roles = tuple(sorted(k.rsplit("/", 1)[1] for k in (meta.get("labels") or {})
                             if k.startswith("node-role.kubernetes.io/")))
        address = next((a.get("address", "") for a in status.get("addresses") or () if a.get("type") == "InternalIP"), "")
        holds = str((lab_nodes.get(name) or {}).get("also_holds") or "").split()
        summary.kube_nodes.append(KubeNode(name, str((status.get("nodeInfo") or {}).get("kubeletVersion", "?")), ready,
                                           roles, address, tuple(holds)))


def _read_nsx(summary: LabSummary, design: Any, secret: Any) -> None:
    from nsxkube.providers.nsx.client import NsxClient
    from nsxkube.providers.nsx.connect import client_config
    from nsxkube.providers.nsx.inventory import get_full_inventory
    from nsxkube.providers.nsx.ownership import LABELS, ownership_of
    from nsxkube.providers.nsx.vms import list_ports, list_vms
    from nsxkube.render.nsx_objects import segment_path

    client = NsxClient(client_config(design.spec.nsx, secret))
    try:
        inventory = get_full_inventory(client)
        for obj in inventory.objects.values():
            ownership = ownership_of(obj)
            if ownership.owner == "nsxkube" and ownership.detail == design.name:
                summary.nsx_owned[obj.resource_type] += 1
                summary.nsx_owned["Rule"] += len(obj.body.get("rules") or ()) if obj.resource_type == "SecurityPolicy" else 0
            elif ownership.owner in ("tanzu-ncp", "nsx-operator", "unknown"):
                summary.nsx_others[LABELS[ownership.owner]] += 1
        if inventory.get(segment_path(design)) is not None:
            summary.port_bindings = sum(len(p.address_bindings) for p in list_ports(client, segment_path(design)))
        summary.nsx_vms_tagged = sum(1 for vm in list_vms(client) if ("nsxkube/cluster", design.name) in vm.tags)
    finally:
        client.close()


def _read_vcenter(summary: LabSummary, design: Any, secret: Any) -> None:
    from nsxkube.providers.vsphere.connection import open_session
    from nsxkube.providers.vsphere.observe import observe

    session = open_session(design.spec.vsphere, secret, warn=lambda message: None)
    try:
        names = [n.name for n in design.ip_plan.nodes]
        state = observe(session, design.spec.vsphere, design.name, names)
        summary.vms = [Vm(vm.name, vm.power_state, vm.ip_addresses, vm.owned_by(design.name))
                       for vm in sorted(state.vms.values(), key=lambda v: names.index(v.name))]
        summary.drs_rules = sorted(r.name for r in state.cluster.rules if r.name.startswith(f"nsxkube-{design.name}-"))
    finally:
        session.close()


def _request_counts(log: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    try:
        lines = log.read_text(encoding="utf-8").splitlines()
    except OSError:
        return counts
    for line in lines:
        try:
            counts[str(json.loads(line).get("method", "?"))] += 1
        except (ValueError, AttributeError, RecursionError):  # a torn, foreign or hostile line is not a request
            continue
    return counts
