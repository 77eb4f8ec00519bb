"""prepare-vm.sh over SSH on the VM an operator turns into the node template.

For `nsxkube template prepare --address`: the rendered vm-template/prepare-vm.sh is uploaded to
the VM and run as root with ``--seal-at-shutdown``, so the guest shutdown that `template
prepare` then asks vCenter for seals it (cloud-init state, machine-id, host keys).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nsxkube.errors import ProviderError
from nsxkube.providers.nodes.model import Command

REMOTE_DIR = "/var/lib/nsxkube/template"


def prepare_vm_script(design: Any) -> str:
    from nsxkube.render.template_vm import prepare_vm_script as rendered

    return rendered(design)


def update_template_vm(design: Any, address: str, workdir: Path, *, step: Callable[[str], None],
                       warn: Callable[[str], None], timeout: float = 1800.0, connect_timeout: float = 15.0,
                       script: str | None = None) -> None:
    """Runs prepare-vm.sh on the VM at ``address`` (ssh settings of cluster.yaml); one-line errors."""
    from nsxkube.providers.nodes.client import client_for

    text = script if script is not None else prepare_vm_script(design)
    client = client_for(design.spec.ssh, workdir, connect_timeout=connect_timeout,
                        on_new_host_key=lambda target, fp: warn(f"trusting the new host key of {target.where}: {fp}"))
    try:
        target = client.target("template-vm", address)
        step(f"uploading prepare-vm.sh to {address}")
        client.create_files(target, REMOTE_DIR, {"prepare-vm.sh": (text, 0o755)}, connect_timeout + 60)
        step(f"running prepare-vm.sh --seal-at-shutdown on {address} (packages, containerd, kubeadm; minutes)")
        result = client.run(target, Command("prepare-vm.sh", f"{REMOTE_DIR}/prepare-vm.sh --seal-at-shutdown",
                                            timeout))
        log = client.log_of(target).path
    finally:
        client.close()
    if not result.ok:
        raise ProviderError(f"prepare-vm.sh on {address} failed: {result.last_line()}",
                            hint=f"its whole output is in {log}; fix the cause and run it again (it is idempotent)")
    step(f"prepare-vm.sh finished on {address}; log {log}")
