"""What `nsxkube lab up --nodes` prepares before the lab starts: the nodes' programs and images.

* The programs a node has installed, like the node template (kubeadm, kubelet, kubectl), and those
  its images are assembled from (kube-apiserver, etcd, kube-proxy, CoreDNS …): located in the Go
  build cache (nsxkube.lab.programs), built by ``programs/build.sh`` when missing — the first time
  that is a quarter of an hour on two cores, announced, with the build's progress lines.
* The image bundle: every image the lab's cluster.yaml needs (``Design.node_images``), assembled
  without a registry (nsxkube.lab.nodes.images), as ``DIR/images.tar`` — which the lab's
  cluster.yaml names as ``kubernetes.image_bundle``, the product's air-gap path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from nsxkube.errors import ProviderError, UsageError
from nsxkube.lab import programs

IMAGES_FILE = "images.tar"
FIRST_BUILD_MINUTES = "15–20"  # measured on 2 cores with a cold Go cache (docs/testing.md)


VIP_PROVIDERS = ("keepalived", "kube-vip")


def node_image_references(kubernetes_version: str, api_vip_provider: str = "keepalived") -> tuple[str, ...]:
    """The images of the lab's cluster: kubeadm's with kube-proxy (sandbox.cni bridge), and kube-vip's
    when it holds the API VIP (keepalived runs from the machine's package)."""
    from nsxkube.design.images import node_images
    from nsxkube.design.versions import resolve_versions

    pinned, problems = resolve_versions(kubernetes_version)
    if pinned is None:
        raise UsageError(f"programs/versions.env: Kubernetes {kubernetes_version} is not one nsxkube supports: "
                         + "; ".join(p.message for p in problems))
    return node_images(pinned, kube_proxy=True, kube_vip=api_vip_provider == "kube-vip")


def programs_needed() -> tuple[str, ...]:
    from nsxkube.lab.nodes.images import PROGRAMS_BY_REPOSITORY

    names = [*programs.NODE_PROGRAMS, *(p for group in PROGRAMS_BY_REPOSITORY.values() for p in group)]
    return tuple(dict.fromkeys(names))


def ensure_programs(progress: Callable[[str], None]) -> dict[str, Path]:
    """name → path of every program the nodes need; builds the missing ones (output streamed)."""
    programs.require_checkout()
    missing = [name for name in programs_needed() if not programs.locate(name).found]
    if missing:
        progress(f"building {', '.join(missing)} from Go modules into {programs.cache_dir()} "
                 f"(the first build takes about {FIRST_BUILD_MINUTES} minutes on 2 cores; later runs reuse it)")
        began = time.monotonic()
        _build(missing, progress)
        progress(f"built in {time.monotonic() - began:.0f} s")
    located = {name: programs.locate(name) for name in programs_needed()}
    failed = [p.reason or p.name for p in located.values() if not p.found]
    if failed:
        raise ProviderError("the lab's nodes lack programs: " + "; ".join(failed),
                            hint=f"see the build logs in {programs.cache_dir() / 'logs'}")
    progress(f"programs: {programs.cache_dir()} (Kubernetes {programs.kubernetes_version()}, "
             f"etcd {programs.versions()['ETCD_VERSION']})")
    return {name: p.path for name, p in located.items() if p.path is not None}


def link_tools(lab_dir: Path, located: dict[str, Path]) -> Path:
    """DIR/bin/kubectl: the Kubernetes client of the built version, for the operator."""
    bin_dir = lab_dir / "bin"
    bin_dir.mkdir(exist_ok=True)
    link = bin_dir / "kubectl"
    link.unlink(missing_ok=True)
    link.symlink_to(located["kubectl"])
    return link


def _build(names: list[str], progress: Callable[[str], None]) -> None:
    process = subprocess.Popen(["bash", str(programs.BUILD_SCRIPT), *names], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip():
            progress(f"  build: {line.rstrip()}")
    process.wait()


def ensure_images(lab_dir: Path, progress: Callable[[str], None], api_vip_provider: str = "keepalived") -> Path:
    """DIR/images.tar with every image of the lab's cluster; one clear error naming what cannot be built
    (kube-vip: nothing here builds it; its binary is looked for where the error says)."""
    from nsxkube.lab.nodes.images import ImageError, image_bundle

    references = node_image_references(programs.kubernetes_version(), api_vip_provider)
    try:
        bundle = image_bundle(references)
    except ImageError as err:
        raise ProviderError(f"the lab's images cannot be assembled: {err}") from None
    if bundle.missing:
        raise ProviderError("the lab's image bundle would lack " + "; ".join(
            f"{reference} ({why})" for reference, why in bundle.missing.items()),
            hint="build the missing programs with programs/build.sh")
    target = lab_dir / IMAGES_FILE
    target.unlink(missing_ok=True)
    try:
        os.link(bundle.archive, target)
    except OSError:
        shutil.copy2(bundle.archive, target)
    size = target.stat().st_size / 2**20
    how = "cached" if bundle.cached else f"assembled in {bundle.seconds:.1f} s"
    progress(f"images: {target} ({len(bundle.references)} images, {size:.0f} MiB, {how})")
    return target
