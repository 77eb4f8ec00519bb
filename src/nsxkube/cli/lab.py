"""`nsxkube lab …`: simulators for demos and tests. `lab nsx` serves the NSX Policy API emulator in
the foreground until Ctrl-C, after printing its URL and throwaway credentials as `export` lines."""

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
