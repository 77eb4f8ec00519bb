"""The bundle's scripts/: the scripts run on the nodes (bootstrap, joins, etcd backup and restore,
the MTU probe, and the image preload with kubernetes.image_bundle). Each lives in its own module."""

from __future__ import annotations

from nsxkube.design import Design
from nsxkube.render.bootstrap_scripts import bootstrap_script, join_script
from nsxkube.render.etcd_scripts import etcd_backup_script, etcd_restore_script
from nsxkube.render.files import RenderedFile
from nsxkube.render.mtu_script import check_mtu_script

SCRIPT_MODE = 0o755


def render_scripts(design: Design) -> list[RenderedFile]:
    """scripts/: bootstrap-control-plane, join-control-plane, join-worker, etcd-backup, etcd-restore, check-mtu,
    preload-images with kubernetes.image_bundle, install-bridge-cni with sandbox.cni bridge."""
    scripts = {
        "bootstrap-control-plane.sh": bootstrap_script(design),
        "join-control-plane.sh": join_script(design, control_plane=True),
        "join-worker.sh": join_script(design, control_plane=False),
        "etcd-backup.sh": etcd_backup_script(design),
        "etcd-restore.sh": etcd_restore_script(design),
        "check-mtu.sh": check_mtu_script(design),
    }
    if design.spec.sandbox is not None and design.spec.sandbox.cni == "bridge":
        from nsxkube.render.bridge_cni import SCRIPT, bridge_cni_script

        scripts[SCRIPT] = bridge_cni_script(design)
    if design.spec.kubernetes.image_bundle is not None:
        from nsxkube.images import PRELOAD_SCRIPT, preload_script

        scripts[PRELOAD_SCRIPT.removeprefix("scripts/")] = preload_script(design.node_images)
    return [RenderedFile(f"scripts/{name}", text, mode=SCRIPT_MODE) for name, text in scripts.items()]
