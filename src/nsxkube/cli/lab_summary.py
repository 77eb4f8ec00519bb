"""`nsxkube lab summary` on the terminal: what was created, where the files are, what the lab
cannot show, and the next steps on real infrastructure. Presentation only."""

from __future__ import annotations

import dataclasses
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import typer

from nsxkube.lab.summary import LabSummary

NOT_IN_THE_LAB_WITH_NODES = (
    "The lab's nodes are network namespaces on this machine (nsxkube lab up --nodes): what that forces is the "
    "sandbox section of cluster.yaml (nsxkube check lists it): the bridge CNI and kube-proxy instead of Cilium, "
    "the cgroupfs driver on cgroup v1. NSX's dataplane is not emulated (SpoofGuard and the DFW are API objects "
    "only), and the add-ons phase is not built yet."
)
NOT_IN_THE_LAB = (
    "The lab's VMs are records in a simulator: no operating system boots and nothing answers SSH on the node "
    "addresses, so the bootstrap phase (kubeadm over SSH) and the add-ons cannot run here — `nsxkube apply` "
    "without --phase stops at bootstrap with 'cannot reach … on port 22'. The rendered kubeadm files and "
    "scripts are run on real kubelets by the real-node tests (docs/testing.md)."
)
NEXT_STEPS = (
    "nsxkube init cluster.yaml, then set vsphere, nsx and network for your site (docs/cluster-yaml.md)",
    "export the variables cluster.yaml names: VSPHERE_USER, VSPHERE_PASSWORD, NSX_USER, NSX_PASSWORD",
    "nsxkube nsx discover cluster.yaml --report nsx-report.md   (reads only: what Tanzu/NCP already use)",
    "nsxkube template check cluster.yaml   (the Ubuntu 24.04 node template)",
    "nsxkube plan cluster.yaml, then nsxkube apply cluster.yaml   (every phase, resumable)",
    "or apply by hand: nsxkube render cluster.yaml -o bundle, then follow bundle/README.md",
)


def _counted(counter: Counter[str]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"


def _phase_line(phase: dict[str, Any]) -> str:
    """As apply itself reported the phase: ``network 0.45 s: 38 to create``."""
    from nsxkube.pipeline.change import Change, summarize

    changes = [Change(c["action"], c["kind"], c["name"]) for c in phase["changes"]]
    result = summarize(changes) if phase["ok"] else f"FAILED: {phase['error']}"
    return f"{phase['name']} {phase['seconds']:.2f} s: {result}"


def show_summary(summary: LabSummary, lab_dir: Path, *, report: Path | None, bundle: Path | None) -> None:
    lab, say = summary.lab, typer.echo
    nsx, vcenter = lab.service("nsx"), lab.service("vcenter")
    say(f"nsxkube lab — cluster {summary.cluster}, read back through the simulators' APIs")
    say(f"  NSX emulator ({nsx.detail}) {nsx.url}")
    say(textwrap.fill(f"owned by {summary.cluster}: {_counted(summary.nsx_owned)}", width=110,
                      initial_indent="    ", subsequent_indent="      "))
    say(f"    SpoofGuard allowlist: {summary.port_bindings} address bindings on the node ports; "
        f"{summary.nsx_vms_tagged} VMs tagged nsxkube/cluster={summary.cluster}")
    say(f"    left alone (not ours): {_counted(summary.nsx_others)}")
    say(f"    API requests received: {sum(summary.nsx_requests.values())} ({_counted(summary.nsx_requests)})")
    say(f"  vCenter simulator ({vcenter.detail}) {vcenter.url}")
    nodes = [vm for vm in summary.vms if vm.owned]
    say(f"    {len(nodes)} node VMs (cloned from the template, cloud-init in guestinfo):")
    for vm in nodes:
        say(f"      {vm.name:24} {vm.power:10} {'/'.join(vm.addresses) or 'no address'}")
    say(f"    DRS rules: {', '.join(summary.drs_rules) or 'none'}")
    if lab.nodes:
        _show_kubernetes(summary)
    if summary.last_apply:
        phases = summary.last_apply["phases"]
        total = sum(p["seconds"] for p in phases)
        finished = str(summary.last_apply.get("finished_at", "?"))
        # an apply against an earlier lab in this directory: its objects are gone with that lab
        earlier = " — before this lab started" if finished < lab.started_at else ""
        say(f"  last apply ({finished}{earlier}, {total:.2f} s):")
        for phase in phases:
            say(f"    {_phase_line(phase)}")
    else:
        say("  no apply recorded yet")
    shown = [lab_dir / "cluster.yaml", lab_dir / "lab.env", lab_dir / "nsx-requests.jsonl"]
    if report is not None and report.exists():
        shown.append(report)
    say("  files: " + ", ".join(str(p) for p in shown))
    if bundle is not None and bundle.is_dir():
        count = sum(1 for p in bundle.rglob("*") if p.is_file() and not p.name.startswith("."))
        say(f"  bundle: {bundle} ({count} files; start with {bundle / 'README.md'})")
    missing = NOT_IN_THE_LAB_WITH_NODES if lab.nodes else NOT_IN_THE_LAB
    say(textwrap.fill("not in the lab: " + missing, width=110, initial_indent="  ", subsequent_indent="    "))
    say("  next, on real vSphere + NSX:")
    for number, step in enumerate(NEXT_STEPS, 1):
        say(f"    {number}. {step}")
    say(f"  stop the simulators: nsxkube lab down --dir {lab_dir}")


def _show_kubernetes(summary: LabSummary) -> None:
    say = typer.echo
    if summary.kube_error == "":
        say("  Kubernetes: no admin kubeconfig yet (nsxkube apply without --phase writes it)")
        return
    if summary.kube_error:
        say(f"  Kubernetes: the API at {summary.api_vip} did not answer: {summary.kube_error}")
        return
    ready = sum(1 for n in summary.kube_nodes if n.ready)
    say(f"  Kubernetes through the API VIP {summary.api_vip}: {ready}/{len(summary.kube_nodes)} nodes Ready")
    for node in summary.kube_nodes:
        holds = f"  holds {', '.join(node.also_holds)}" if node.also_holds else ""
        say(f"    {node.name:24} {'Ready' if node.ready else 'NotReady':9} {node.kubelet:9} {node.address:15} "
            f"{','.join(node.roles) or '-'}{holds}")
    holders = [n.name for n in summary.kube_nodes if summary.api_vip in n.also_holds]
    say(f"    API VIP holder: {', '.join(holders) or 'none seen'}")


def summary_dict(summary: LabSummary) -> dict[str, Any]:
    # built by hand: dataclasses.asdict turns a Counter into a Counter of (key, count) tuples
    return {
        "cluster": summary.cluster,
        "lab": {"pid": summary.lab.pid, "started_at": summary.lab.started_at,
                "services": [dataclasses.asdict(s) for s in summary.lab.services]},
        "nsx_owned": dict(summary.nsx_owned),
        "nsx_others": dict(summary.nsx_others),
        "port_bindings": summary.port_bindings,
        "nsx_vms_tagged": summary.nsx_vms_tagged,
        "vms": [dataclasses.asdict(vm) for vm in summary.vms],
        "drs_rules": summary.drs_rules,
        "nsx_requests": dict(summary.nsx_requests),
        "last_apply": summary.last_apply,
        "kubernetes": {"api_vip": summary.api_vip, "error": summary.kube_error,
                       "nodes": [dataclasses.asdict(n) for n in summary.kube_nodes]},
    }
