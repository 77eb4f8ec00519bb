"""`nsxkube template check|prepare`: the node template every VM is cloned from.

Register with ``app.add_typer(template_app, name="template")``. pyVmomi and the provider are
imported inside the commands, so `nsxkube --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

template_app = typer.Typer(
    name="template",
    help="Check the node template, or turn a VM you built into it.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

# readable=False: load_spec says in one line why a file cannot be read (click would print a usage block)
SpecPath = Annotated[Path, typer.Argument(help="the cluster file", show_default=True, readable=False)]


@template_app.command("check")
def check(path: SpecPath = Path("cluster.yaml")) -> None:
    """Check vsphere.template: template, hardware ≥ vmx-15, disk.EnableUUID, PVSCSI, one vmxnet3 NIC, disk size."""
    raise typer.Exit(check_template_command(path))


@template_app.command("prepare")
def prepare(
    path: SpecPath = Path("cluster.yaml"),
    vm: Annotated[str, typer.Option("--vm", help="the VM to turn into the node template")] = ...,  # type: ignore[assignment]
) -> None:
    """Set disk.EnableUUID, a vmxnet3 NIC and hardware ≥ vmx-15 on VM, power it off, mark it as template."""
    raise typer.Exit(prepare_template_command(path, vm))


# ---- what the commands do ------------------------------------------------------------------------


def _session(spec: Any) -> Any:
    from nsxkube.providers.vsphere.connection import open_session
    from nsxkube.secrets import read_secret

    return open_session(spec.vsphere, read_secret, warn=lambda m: typer.echo(f"warning: {m}", err=True))


def _design(path: Path) -> Any:
    from nsxkube.design import load_design

    return load_design(path)


def _show(findings: list[Any]) -> int:
    for finding in findings:
        typer.echo(f"  {'ok  ' if finding.ok else 'FAIL'} {finding.check}: {finding.detail}")
        if not finding.ok:
            typer.echo(f"       fix: {finding.hint}")
    failed = sum(not f.ok for f in findings)
    typer.echo(f"{failed} of {len(findings)} checks failed" if failed else f"all {len(findings)} checks passed")
    return 1 if failed else 0


def check_template_command(path: Path) -> int:
    from nsxkube.providers.vsphere.template import check_template, read_template

    design = _design(path)
    session = _session(design.spec)
    try:
        vm = read_template(session, design.spec.vsphere)
    finally:
        session.close()
    typer.echo(f"template {vm.name} ({vm.moref}) on {design.spec.vsphere.server}:")
    return _show(check_template(vm, min_disk_gib=min(n.disk_gib for n in design.ip_plan.nodes)))


def prepare_template_command(path: Path, name: str) -> int:
    from nsxkube.providers.vsphere.machines import read_vm
    from nsxkube.providers.vsphere.tasks import TaskWaiter
    from nsxkube.providers.vsphere.template import check_template, prepare_template, read_vm_to_prepare

    design = _design(path)
    session = _session(design.spec)
    try:
        vm, pool = read_vm_to_prepare(session, design.spec.vsphere, name)
        prepare_template(session, TaskWaiter(session), vm, pool, timeout=600.0,
                         step=lambda message: typer.echo(f"  · {message}"))
        vm = read_vm(session, vm.ref, None)
    finally:
        session.close()
    code = _show(check_template(vm, min_disk_gib=min(n.disk_gib for n in design.ip_plan.nodes)))
    if name != design.spec.vsphere.template:
        typer.echo(f"note: {path} clones from vsphere.template {design.spec.vsphere.template!r}: set it to {name!r} "
                   "or rename the template in vCenter")
    return code
