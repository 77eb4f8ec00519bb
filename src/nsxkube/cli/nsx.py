"""`nsxkube nsx …`: read-only NSX tools. `nsx discover` audits an existing NSX against cluster.yaml
and never writes: every request is a GET, the login too (HTTP basic on each call, whatever
nsx.auth says, because a session login is a POST). Heavy imports stay inside the functions.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

nsx_app = typer.Typer(name="nsx", help="Read-only NSX tools: audit an existing NSX before nsxkube changes it.",
                      no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False)


@nsx_app.callback()
def _group() -> None:
    """Read-only NSX tools."""


class DiscoverOutput(StrEnum):
    text = "text"
    json = "json"


@nsx_app.command()
def discover(
    path: Annotated[Path, typer.Argument(help="the cluster file", readable=False)] = Path("cluster.yaml"),
    output: Annotated[DiscoverOutput, typer.Option("--output", "-o", help="text for people, json for scripts")]
    = DiscoverOutput.text,
    report: Annotated[Path | None, typer.Option("--report", help="also write the investigation report (Markdown)")]
    = None,
) -> None:
    """Inventory NSX (zones, gateways, segments, DFW, profiles, MTU) with owners, and the conflicts with
    cluster.yaml. Only GETs. Exit code 1 when a check fails."""
    raise typer.Exit(run_discover(path, as_json=output is DiscoverOutput.json, report=report))


def run_discover(path: Path, *, as_json: bool, report: Path | None) -> int:
    from nsxkube.checks.nsx_audit import audit, failures
    from nsxkube.checks.nsx_report import discover_dict, render_nsx_report
    from nsxkube.cli.output import write_file
    from nsxkube.design import load_design
    from nsxkube.providers.nsx.client import NsxClient
    from nsxkube.providers.nsx.connect import INSECURE_WARNING, client_config
    from nsxkube.providers.nsx.inventory import get_full_inventory

    design = load_design(path)
    nsx = design.spec.nsx
    if nsx.tls.insecure:
        typer.echo(f"warning: {INSECURE_WARNING}", err=True)
    client = NsxClient(client_config(nsx.model_copy(update={"auth": "basic"})),
                       notify=lambda message: typer.echo(f"  · {message}", err=True))
    try:
        inventory = get_full_inventory(client)
    finally:
        client.close()
    findings = audit(design, inventory)
    if report is not None:
        write_file(report, render_nsx_report(design, inventory, findings), "the report")
    data = discover_dict(design, inventory, findings)
    data["nsx_version"] = inventory.nsx_version
    data["mtu"]["tep_source"] = inventory.tep_mtu_source
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        show_discovery(data)
        if report is not None:
            typer.echo(f"wrote {report}")
    return 1 if failures(findings) else 0


def show_discovery(data: dict[str, Any]) -> None:
    """Terminal tables of the discover result (rich); nothing here decides anything."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)

    def table(title: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        shown = Table(title=title, title_justify="left")
        for column in columns:
            shown.add_column(column)
        for row in rows:
            shown.add_row(*(str(cell) for cell in row))
        console.print(shown)

    def owner(item: dict[str, Any]) -> str:
        return f"{item['owner']}: {item['owner_detail']}" if item["owner_detail"] else item["owner"]

    version = f" (NSX {data['nsx_version']})" if data.get("nsx_version") else ""
    console.print(f"[bold]NSX {data['manager']}[/]{version} for cluster {data['cluster']}", markup=True)
    table("Transport zones", ("zone", "type", "owner"),
          [(z["path"].rsplit("/", 1)[1], z["tz_type"], owner(z)) for z in data["transport_zones"]])
    table("Gateways", ("gateway", "type", "owner"), [(g["path"], g["type"], owner(g)) for g in data["gateways"]])
    table("Segments", ("segment", "subnets", "attached to", "owner"),
          [(s["path"].rsplit("/", 1)[1], ", ".join(s["subnets"]), s["connectivity_path"] or "—", owner(s))
           for s in data["segments"]])
    table("DFW policies", ("category", "policy", "sequence", "rules", "owner"),
          [(p["category"], p["display_name"], p["sequence_number"], p["rule_count"], owner(p))
           for p in data["security_policies"]])
    table("IP discovery / SpoofGuard profiles", ("profile", "settings", "bound to", "owner"),
          [(p["path"].rsplit("/", 1)[1], p["settings"], ", ".join(p["bound_to"]) or "—", owner(p))
           for p in data["profiles"]])
    mtu = data["mtu"]
    source = f" ({mtu['tep_source']})" if mtu.get("tep_source") else ""
    console.print(f"MTU: TEP {mtu['tep']}{source}, gateway {mtu['gateway']}, needed for the nodes {mtu['needed']}",
                  markup=False)
    style = {"ok": "green", "warn": "yellow", "fail": "bold red"}
    shown = Table(title="Conflicts with cluster.yaml", title_justify="left")
    for column in ("check", "result", "detail", "hint"):
        shown.add_column(column)
    for f in data["findings"]:
        shown.add_row(f["check"], f"[{style[f['status']]}]{f['status']}[/]", f["detail"], f["hint"])
    console.print(shown)


def main() -> None:
    """`python -m nsxkube.cli.nsx`: the sub-app alone, with nsxkube's one-line errors."""
    from nsxkube.errors import NsxkubeError

    try:
        nsx_app(prog_name="nsxkube nsx")
    except NsxkubeError as err:
        typer.echo(f"error: {err.one_line()}", err=True)
        sys.exit(err.exit_code)


if __name__ == "__main__":
    main()
