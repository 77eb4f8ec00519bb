"""The command line: parse arguments, call one function, render its result, exit.

Heavy libraries (pydantic, pyVmomi, httpx) are imported inside the commands so that
`nsxkube --help` starts fast.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from nsxkube import __version__

app = typer.Typer(
    name="nsxkube",
    help="Production Kubernetes on vSphere VMs attached to NSX-T networking, from one cluster.yaml.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


from nsxkube.cli.lab import lab_app  # noqa: E402  (sub-apps import only typer)
from nsxkube.cli.nsx import nsx_app  # noqa: E402
from nsxkube.cli.template import template_app  # noqa: E402

app.add_typer(nsx_app, name="nsx")
app.add_typer(lab_app, name="lab")
app.add_typer(template_app, name="template")


class Output(StrEnum):
    text = "text"
    json = "json"


# readable=False: load_spec says in one line why a file cannot be read (click would print a usage block)
SpecPath = Annotated[Path, typer.Argument(help="the cluster file", show_default=True, readable=False)]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nsxkube {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """nsxkube builds and operates Kubernetes clusters on vSphere + NSX-T."""


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="where to write the example")] = Path("cluster.yaml"),
    name: Annotated[str | None, typer.Option(help="cluster name to put in the file")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
    from_nsx: Annotated[str | None, typer.Option(
        "--from-nsx", metavar="MANAGER",
        help="read this NSX Manager (GETs only; login from $NSX_USER/$NSX_PASSWORD) and choose pod and service "
             "ranges it does not use, avoiding vSphere with Tanzu's defaults when Tanzu runs there")] = None,
    nsx_thumbprint: Annotated[str | None, typer.Option(help="with --from-nsx: SHA-256 of NSX's certificate")] = None,
    nsx_ca_file: Annotated[Path | None, typer.Option(help="with --from-nsx: CA that signed NSX's certificate")] = None,
    nsx_insecure: Annotated[bool, typer.Option("--nsx-insecure", help="with --from-nsx: skip TLS verification")]
    = False,
) -> None:
    """Write a commented example cluster.yaml (the seed plan's environment) to PATH."""
    from nsxkube.cli.commands import write_example

    trust = None
    if from_nsx:
        from nsxkube.cli.init_nsx import NsxTrust

        trust = NsxTrust(nsx_thumbprint, nsx_ca_file, nsx_insecure)
    written, notes = write_example(path, name=name, force=force, from_nsx=from_nsx, trust=trust)
    for note in notes:
        typer.echo(note)
    typer.echo(f"wrote {written}; edit it, then run: nsxkube check {written}")


@app.command()
def check(
    path: SpecPath = Path("cluster.yaml"),
    output: Annotated[Output, typer.Option("--output", "-o", help="text for people, json for scripts")] = Output.text,
    charts: Annotated[bool, typer.Option("--charts/--no-charts",
                                         help="look up the pinned Helm charts where addons.charts says")] = True,
) -> None:
    """Validate cluster.yaml and show the design: IP plan, MTU chain, ports, versions. Reads neither NSX nor
    vCenter; only looks up the pinned Helm charts (a source it cannot reach is reported, not failed)."""
    from nsxkube.cli.commands import check_spec

    raise typer.Exit(check_spec(path, as_json=output is Output.json, charts=charts))


@app.command()
def render(
    path: SpecPath = Path("cluster.yaml"),
    out: Annotated[Path, typer.Option("--out", "-o", help="the bundle directory")] = Path("bundle"),
) -> None:
    """Write every file an operator needs to build this cluster by hand (and that apply sends)."""
    from nsxkube.cli.commands import render_to

    count, target = render_to(path, out)
    typer.echo(f"wrote {count} files to {target}; start with {target / 'README.md'}")


PhaseOption = Annotated[
    str | None, typer.Option("--phase", help="comma-separated phases (network,machines,network-bindings,bootstrap); default all")
]
ForceUnlockOption = Annotated[
    bool, typer.Option("--force-unlock", help="take over the cluster lease of another run that is known to be dead "
                                                "(normally refused while it holds the lease)")
]
WorkdirOption = Annotated[
    Path | None, typer.Option("--workdir", help="kubeconfig, logs and bundle; default .nsxkube/<name> beside the file")
]
OutputOption = Annotated[Output, typer.Option("--output", "-o", help="text for people, json for scripts")]


@app.command()
def plan(path: SpecPath = Path("cluster.yaml"), phase: PhaseOption = None, workdir: WorkdirOption = None,
         output: OutputOption = Output.text) -> None:
    """Show, phase by phase, what apply would change (reads only)."""
    from nsxkube.cli.run import run

    raise typer.Exit(run("plan", path, phase, workdir, as_json=output is Output.json))


@app.command()
def apply(path: SpecPath = Path("cluster.yaml"), phase: PhaseOption = None, workdir: WorkdirOption = None,
          output: OutputOption = Output.text, force_unlock: ForceUnlockOption = False) -> None:
    """Make the cluster match cluster.yaml; run again to resume after a failure."""
    from nsxkube.cli.run import run

    raise typer.Exit(run("apply", path, phase, workdir, as_json=output is Output.json, force_unlock=force_unlock))


class ValidateOutput(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


@app.command()
def validate(
    path: SpecPath = Path("cluster.yaml"),
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="a group (nsx, vsphere, nodes, kubernetes) or a check id; repeatable")] = None,
    output: Annotated[ValidateOutput, typer.Option("--output", "-o", help="table for people, json for scripts, "
                                                   "markdown for a change ticket")] = ValidateOutput.table,
    junit: Annotated[Path | None, typer.Option("--junit", help="also write JUnit XML (one testcase per check)")] = None,
    lang: Annotated[str, typer.Option("--lang", help="the report's words: en or ru (JSON keys never change)")] = "en",
    workdir: WorkdirOption = None,
    deadline: Annotated[float, typer.Option("--deadline", min=1, help="seconds the whole run may take")] = 300.0,
) -> None:
    """Check the live cluster against cluster.yaml: NSX, vCenter, nodes, Kubernetes. Reads only.
    Exit 1 when a check fails."""
    from nsxkube.cli.validate import run_validate

    raise typer.Exit(run_validate(path, only=only or [], output=output.value, junit=junit, lang=lang,
                                  workdir=workdir, deadline=deadline))


@app.command()
def destroy(path: SpecPath = Path("cluster.yaml"), phase: PhaseOption = None, workdir: WorkdirOption = None,
            yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
            output: OutputOption = Output.text, force_unlock: ForceUnlockOption = False) -> None:
    """Delete what nsxkube created for this cluster (only objects it owns); asks first."""
    from nsxkube.cli.run import run

    raise typer.Exit(run("destroy", path, phase, workdir, yes=yes, as_json=output is Output.json,
                         force_unlock=force_unlock))


def main() -> None:
    """Console entry point: every expected failure is one line on stderr and a non-zero exit."""
    from nsxkube.errors import NsxkubeError

    try:
        app(prog_name="nsxkube")  # exits by itself on success and on usage errors
    except NsxkubeError as err:
        typer.echo(f"error: {err.one_line()}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as err:  # the promise is: never a traceback for the operator
        if os.environ.get("NSXKUBE_DEBUG"):
            raise
        typer.echo(f"internal error: {type(err).__name__}: {err} (set NSXKUBE_DEBUG=1 for the traceback)", err=True)
        sys.exit(70)
