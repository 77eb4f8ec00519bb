"""Terminal views of nsxkube's results (rich). Nothing here decides anything."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from nsxkube.design import Design

# Piped output (logs, CI, the README tour) is not wrapped at 80 columns.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)


def show_design(design: Design, *, source: str) -> None:
    plan, mtu, versions = design.ip_plan, design.mtu, design.versions
    console.print(
        f"[bold]{design.name}[/]: Kubernetes {versions.kubernetes}, API {design.api_endpoint} "
        f"(VIP held by {design.api_vip_provider}), "
        f"{len(plan.control_planes)} control planes + {len(plan.workers)} workers on "
        f"{design.spec.nsx.segment.name} {plan.segment}"
    )

    ip_table = Table(title="IP plan", title_justify="left")
    ip_table.add_column("addresses")
    ip_table.add_column("count", justify="right")
    ip_table.add_column("use")
    for row in plan.reservations():
        ip_table.add_row(str(row.range), str(row.range.size), row.purpose)
    console.print(ip_table)

    node_table = Table(title="Nodes", title_justify="left")
    for column in ("VM", "role", "address", "vCPU", "memory", "disk"):
        node_table.add_column(column)
    for node in plan.nodes:
        node_table.add_row(node.name, node.role, f"{node.address}/{plan.prefix_length}", str(node.cpus),
                           f"{node.memory_gib} GiB", f"{node.disk_gib} GiB")
    console.print(node_table)

    console.print("[bold]MTU chain[/]")
    console.print(
        f"  NSX TEP {mtu.tep_mtu} − Geneve {mtu.nsx_overhead} → node MTU ≤ {mtu.node_mtu_max}; "
        f"node {mtu.node_mtu} − Cilium {mtu.tunnel} {mtu.tunnel_overhead} → pod MTU {mtu.pod_mtu}"
    )
    console.print(
        f"  probe between nodes: ping -M do -s {mtu.probe_payload} must pass, "
        f"-s {mtu.probe_payload_over} must fail"
    )

    port_table = Table(title="Port matrix (the DFW rules)", title_justify="left")
    for column in ("flow", "from", "to", "proto", "ports", "why"):
        port_table.add_column(column)
    for flow in design.ports:
        port_table.add_row(flow.id, flow.source, flow.destination, flow.protocol, flow.ports_text, flow.reason)
    console.print(port_table)

    version_table = Table(title="Versions", title_justify="left")
    version_table.add_column("component")
    version_table.add_column("version")
    for field, value in vars(versions).items():
        version_table.add_row(field.replace("_", " "), value)
    version_table.add_row("package repository", versions.package_repo)
    console.print(version_table)
    bundle = design.spec.kubernetes.image_bundle
    console.print(f"Node images ({'preloaded from ' + str(bundle) if bundle else 'pulled; an image bundle must hold'}): "
                  + ", ".join(design.node_images), markup=False)

    for warning in design.warnings:
        console.print(f"[yellow]warning:[/] {warning.one_line()}")
    console.print(f"[green]{source} is valid[/] ({len(design.warnings)} warnings)")
