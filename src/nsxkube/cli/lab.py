"""`nsxkube lab …`: simulators for demos and tests. `lab up` starts the vCenter simulator and the NSX
emulator in the background with a ready cluster.yaml, `lab down` stops them, `lab status` says
whether they run; `lab nsx` serves the NSX emulator alone in the foreground."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

lab_app = typer.Typer(name="lab", help="Simulators for demos and tests (loopback only).", no_args_is_help=True,
                      rich_markup_mode=None, pretty_exceptions_enable=False)


@lab_app.callback()
def _group() -> None:
    """Simulators for demos and tests."""


LabDir = Annotated[Path, typer.Option("--dir", help="the lab's directory: cluster.yaml, lab.env, logs")]


@lab_app.command("up")
def up(
    lab_dir: LabDir = Path("lab"),
    vcenter_port: Annotated[int, typer.Option(help="loopback port of the vCenter simulator; 0 picks a free one")] = 0,
    nsx_port: Annotated[int, typer.Option(help="loopback port of the NSX emulator; 0 picks a free one")] = 0,
    vcenter_task_delay: Annotated[str, typer.Option(
        help="keep the simulator's tasks running longer, e.g. CloneVm=3000 (ms): to watch progress or to "
             "interrupt an apply in the middle of a task")] = "",
    nodes: Annotated[bool, typer.Option(
        "--nodes", help="give every node VM that powers on a real Kubernetes node (network namespaces on this "
                        "machine; needs root); builds the programs and images first")] = False,
    api_vip_provider: Annotated[str, typer.Option(
        help="with --nodes: what holds the API VIP, keepalived (the machine's package) or kube-vip (a prebuilt "
             "kube-vip at $NSXKUBE_KUBE_VIP or ~/.cache/nsxkube/programs/kube-vip-VERSION)")] = "keepalived",
) -> None:
    """Start the vCenter simulator and the NSX emulator (preset tanzu) in the background."""
    from nsxkube.lab import control
    from nsxkube.lab import state as files

    result = control.up(lab_dir, vcenter_port=vcenter_port, nsx_port=nsx_port, vcenter_task_delay=vcenter_task_delay,
                        nodes=nodes, api_vip_provider=api_vip_provider,
                        progress=lambda message: typer.echo(f"  · {message}"))
    lab, where = result.lab, lab_dir
    typer.echo(f"lab {'up' if result.started else 'already running'} in {where} "
               f"({result.seconds:.1f} s, supervisor pid {lab.pid}, since {lab.started_at})")
    for service in lab.services:
        typer.echo(f"  {service.name:8} {service.url}  {service.detail}")
    typer.echo(f"  files    {where / files.CLUSTER_FILE}, {where / files.ENV_FILE} (credentials), "
               f"{where / files.REQUEST_LOG} (NSX requests)")
    if lab.nodes:
        typer.echo(f"  nodes    each node VM that powers on gets a real node; their files in {where / 'nodes'}, "
                   f"state in {where / files.NODES_FILE}")
    typer.echo(f"next: source {where / files.ENV_FILE} && nsxkube check {where / files.CLUSTER_FILE}")


@lab_app.command("down")
def down(lab_dir: LabDir = Path("lab")) -> None:
    """Stop the lab's simulators; cluster.yaml, reports and logs stay in the directory."""
    from nsxkube.lab import control

    result = control.down(lab_dir)
    if result.lab is None:
        typer.echo(f"no lab is running in {lab_dir}")
        return
    if result.still_open:
        typer.echo(f"error: the lab was stopped but still listening: {', '.join(result.still_open)}", err=True)
        raise typer.Exit(1)
    if result.swept:
        typer.echo(f"  removed what the lab's nodes had left: {', '.join(result.swept)}")
    ports = ", ".join(f"{s.host}:{s.port}" for s in result.lab.services)
    typer.echo(f"lab in {lab_dir} stopped in {result.seconds:.1f} s; nothing listens on {ports} any more")


@lab_app.command("status")
def status(lab_dir: LabDir = Path("lab")) -> None:
    """Say whether a lab runs in the directory (exit 0) or not (exit 1)."""
    from nsxkube.lab import control

    lab = control.status(lab_dir)
    if lab is None:
        typer.echo(f"no lab is running in {lab_dir}")
        raise typer.Exit(1)
    typer.echo(f"lab running in {lab_dir} (supervisor pid {lab.pid}, since {lab.started_at})")
    for service in lab.services:
        typer.echo(f"  {service.name:8} {service.url}  {service.detail}")


@lab_app.command("summary")
def summary(
    lab_dir: LabDir = Path("lab"),
    report: Annotated[Path | None, typer.Option(help="the nsx discover report to point at")] = None,
    bundle: Annotated[Path | None, typer.Option(help="the render bundle to point at")] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="text or json")] = "text",
) -> None:
    """What the lab holds now (read through the simulators' APIs), the last apply, and what next."""
    from nsxkube.cli.lab_summary import show_summary, summary_dict
    from nsxkube.errors import UsageError
    from nsxkube.lab.summary import summarize

    if output not in ("text", "json"):
        raise UsageError(f"--output {output!r}: use text or json")
    result = summarize(lab_dir)
    if output == "json":
        import json

        typer.echo(json.dumps(summary_dict(result), indent=2))
    else:
        show_summary(result, lab_dir, report=report, bundle=bundle)


@lab_app.command("nsx")
def nsx(
    preset: Annotated[str, typer.Option(help="empty (fresh NSX) or tanzu (as vSphere with Tanzu leaves it)")] = "empty",
    listen: Annotated[str, typer.Option(help="loopback HOST:PORT; port 0 picks a free one")] = "127.0.0.1:0",
    log: Annotated[Path | None, typer.Option(help="append one JSON line per request to this file")] = None,
    realization_delay: Annotated[float, typer.Option(help="seconds an object stays UNREALIZED after a change")] = 0.5,
) -> None:
    """Serve the NSX Policy API emulator (HTTPS, self-signed; verify it by the printed thumbprint)."""
    from nsxkube.errors import UsageError
    from nsxkube.lab.nsx import run_foreground

    try:
        code = run_foreground(preset, listen, log, realization_delay)
    except ValueError as err:
        raise UsageError(f"lab nsx: {err}") from None
    raise typer.Exit(code)


def main() -> None:
    """`python -m nsxkube.cli.lab`: the sub-app alone, with nsxkube's one-line errors."""
    from nsxkube.errors import NsxkubeError

    try:
        lab_app(prog_name="nsxkube lab")
    except NsxkubeError as err:
        typer.echo(f"error: {err.one_line()}", err=True)
        sys.exit(err.exit_code)


if __name__ == "__main__":
    main()
