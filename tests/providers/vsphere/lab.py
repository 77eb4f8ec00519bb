"""A vSphere lab on vcsim for the provider and machines-phase tests.

``make_lab`` takes a fresh simulator with one VM, turns that VM into the node template with
nsxkube's own ``prepare_template`` (so every test that clones also exercises prepare), renames it
to the spec's template name, and hands out designs and contexts pointed at the simulator with
its certificate pinned. ``lab.session`` is a separate session for setting up and reading back:
the code under test always opens its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nsxkube.design import Design
from nsxkube.lab import template as lab_template
from nsxkube.lab.guest import GuestSimulator
from nsxkube.lab.template import make_template
from nsxkube.pipeline.context import Context, Options
from nsxkube.pipeline.reporter import RecordingReporter
from nsxkube.providers.vsphere.connection import Session, connect
from nsxkube.providers.vsphere.inventory import read_inventory
from nsxkube.providers.vsphere.machines import read_vm
from nsxkube.providers.vsphere.model import LiveVm
from nsxkube.providers.vsphere.tasks import TaskWaiter
from nsxkube.spec.model import Tls
from tests.support.specs import example_design
from tests.support.vcsim import Vcsim

TEMPLATE = lab_template.TEMPLATE
SIM_VM = lab_template.SAMPLE_VM  # the VM vcsim creates with vms=1


@dataclass
class VsphereLab:
    sim: Vcsim
    session: Session
    workdir: Path
    warnings: list[str] = field(default_factory=list)

    @property
    def secrets(self) -> dict[str, str]:
        return {"VSPHERE_USER": self.sim.username, "VSPHERE_PASSWORD": self.sim.password}

    @property
    def old_simulator(self) -> bool:
        """The Debian govmomi 0.24 fallback of programs/build.sh, which lacks parts of the API."""
        return self.sim.old_simulator

    def secret(self, env_name: str, what: str) -> str:
        return self.secrets[env_name]

    def vsphere_keys(self, **overrides: Any) -> dict[str, Any]:
        keys = {
            "vsphere.server": f"{self.sim.host}:{self.sim.port}",
            "vsphere.datacenter": "DC0",
            "vsphere.cluster": "DC0_C0",
            "vsphere.datastore": "LocalDS_0",
            "vsphere.network": "DC0_DVPG0",
            "vsphere.template": TEMPLATE,
            "vsphere.tls": {"thumbprint": self.sim.thumbprint_sha256},
        }
        keys.update({f"vsphere.{k}": v for k, v in overrides.items()})
        return keys

    def design(self, changes: dict[str, Any] | None = None, **vsphere: Any) -> Design:
        return example_design({**self.vsphere_keys(**vsphere), **(changes or {})})

    def context(self, design: Design | None = None, **options: Any) -> Context:
        options.setdefault("timeout_seconds", 60.0)
        return Context(design=design or self.design(), options=Options(workdir=self.workdir, **options),
                       reporter=RecordingReporter(), secret=self.secret)

    def guest(self, design: Design) -> GuestSimulator:
        return GuestSimulator(self.session, {n.name for n in design.ip_plan.nodes})

    # ---- reading back ----------------------------------------------------------------------

    def vms(self, name: str) -> list[LiveVm]:
        inventory = read_inventory(self.session)
        found = inventory.find_vms(inventory.find_datacenter("DC0"), [name]).get(name, [])
        return [read_vm(self.session, e.ref, inventory.owner_field_key) for e in found]

    def vm(self, name: str) -> LiveVm:
        found = self.vms(name)
        assert len(found) == 1, f"{len(found)} VMs named {name}"
        return found[0]

    def props(self, vm: LiveVm, *paths: str) -> dict[str, Any]:
        return self.session.read_objects([vm.ref], paths)[vm.moref]

    def entity(self, kind: str, name: str) -> Any:
        inventory = read_inventory(self.session)
        return next(e for e in inventory.by_kind(kind) if e.name == name)

    def wait(self, task: Any) -> Any:
        return TaskWaiter(self.session).wait(task, "lab setup", 30)

    def foreign_vm(self, name: str, folder: str | None = None, power_on: bool = True) -> LiveVm:
        """A VM someone else made: cloned from the template, no nsxkube marker at all."""
        from pyVmomi import vim

        template = self.vm(TEMPLATE)
        target = self.entity("Folder", folder).ref if folder else self.entity("Folder", "vm").ref
        pool = self.entity("ResourcePool", "Resources").ref
        spec = vim.vm.CloneSpec(location=vim.vm.RelocateSpec(pool=pool), powerOn=False, template=False)
        clone = self.wait(template.ref.CloneVM_Task(folder=target, name=name, spec=spec))
        if power_on:  # not in the CloneSpec: vcsim 0.24 ignores powerOn there
            self.wait(clone.PowerOnVM_Task())
        return read_vm(self.session, clone, read_inventory(self.session).owner_field_key)

    def folder(self, name: str) -> Any:
        return self.entity("Folder", "vm").ref.CreateFolder(name)


def skip_on_old_simulator(sim: Vcsim, why: str) -> None:
    import pytest

    if sim.old_simulator:
        pytest.skip(f"{sim.origin}: {why}")


def make_lab(sim: Vcsim, workdir: Path) -> VsphereLab:
    session = connect(sim.host, sim.port, sim.username, sim.password, Tls(thumbprint=sim.thumbprint_sha256),
                      warn=lambda m: None, pool_size=4)
    lab = VsphereLab(sim, session, workdir)
    make_template(session, source=SIM_VM, name=TEMPLATE, old_simulator=lab.old_simulator)
    return lab
