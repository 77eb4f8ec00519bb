"""Add-on files of the bundle (``addons/``): Helm values, manifests, secret templates, schedules, tests.

Every file is built from the design alone. Secrets appear only as placeholders named after the
environment variables that hold them; ``addons/create-secrets.sh`` turns those variables into
Kubernetes Secrets at apply time.
"""

from __future__ import annotations

from nsxkube.design import Design
from nsxkube.render.addons import paths
from nsxkube.render.addons.acceptance import render_acceptance
from nsxkube.render.addons.backups import render_backups
from nsxkube.render.addons.cilium import render_cilium
from nsxkube.render.addons.ingress import render_ingress
from nsxkube.render.addons.loadbalancer import render_loadbalancer
from nsxkube.render.addons.observability import render_observability
from nsxkube.render.addons.secrets_script import render_secrets_script
from nsxkube.render.addons.security import render_security
from nsxkube.render.addons.versions import render_versions_doc
from nsxkube.render.addons.vsphere import render_vsphere
from nsxkube.render.files import RenderedFile

__all__ = ["paths", "render_addons"]


def render_addons(design: Design) -> list[RenderedFile]:
    """Every file under ``addons/``, in the order the runbook installs them."""
    return [
        *render_cilium(design),
        *render_vsphere(design),
        *render_loadbalancer(design),
        *render_ingress(design),
        *render_observability(design),
        *render_backups(design),
        *render_security(design),
        *render_acceptance(design),
        render_secrets_script(design),
        RenderedFile(paths.VERSIONS, render_versions_doc(design)),
    ]
