"""bootstrap: getting a node ready for kubeadm — cloud-init finished, the bundle uploaded (and the
image bundle loaded), the preflight and the MTU probe passed."""

from __future__ import annotations

from nsxkube.design import Design, Node
from nsxkube.design.ports import LISTENING_PORTS
from nsxkube.errors import ProviderError
from nsxkube.phases.bootstrap.remote import PHASE_NAME, REMOTE_BUNDLE, Nodes
from nsxkube.wording import and_more

IMAGES_ARCHIVE = "images.tar"  # kubernetes.image_bundle, as copied to each node it brings up
STEPS = 4


def mtu_hint(design: Design) -> str:
    mtu = design.mtu
    return (f"NSX: the host TEP / uplink MTU must be at least {mtu.node_mtu + mtu.nsx_overhead} (node MTU "
            f"{mtu.node_mtu} + Geneve {mtu.nsx_overhead}), or lower network.node_mtu; see 'Large packets hang' in "
            "docs/troubleshooting.md of the bundle (nsxkube render)")


def wait_for_cloud_init(nodes: Nodes, node: Node) -> None:
    from nsxkube.providers.nodes import probes

    report = nodes.ctx.reporter
    report.progress(PHASE_NAME, node.name, 0, STEPS, "waiting for cloud-init")
    result = nodes.run(node, "waiting for cloud-init", probes.CLOUD_INIT_WAIT, nodes.timeouts.long, check=False)
    status = probes.cloud_init_status(result.stdout)
    if result.exit_status == 2 or status == "degraded done":
        report.warning(PHASE_NAME, f"{node.name}: cloud-init finished with recoverable errors "
                              f"(cloud-init status --long on the node)")
    elif not result.ok:
        tail = nodes.run(node, "reading the cloud-init log", probes.CLOUD_INIT_TAIL, check=False).stdout
        lines = tail.rstrip().splitlines()
        for line in lines:
            report.step(PHASE_NAME, f"{node.name} | {line}")
        last = " | ".join(line.strip() for line in lines[-3:] if line.strip()) or "the log is empty"
        raise ProviderError(f"cloud-init failed on {node.name} ({node.address}), status {status}: {last}",
                            hint=f"the last {len(lines)} lines of {probes.CLOUD_INIT_LOG} are above and in "
                                 f"logs/{node.name}.log; fix the template or cluster.yaml and recreate the VM")
    report.progress(PHASE_NAME, node.name, 1, STEPS, "cloud-init done")


def upload_bundle(nodes: Nodes, node: Node) -> None:
    """kubeadm/, keepalived/ (with that VIP provider) and scripts/ exactly as `nsxkube render` writes them."""
    from nsxkube.render.keepalived import render_keepalived
    from nsxkube.render.kubeadm import render_kubeadm
    from nsxkube.render.scripts import render_scripts

    design = nodes.design
    files = {f.path: (f.content, f.mode)
             for f in [*render_kubeadm(design), *render_keepalived(design), *render_scripts(design)]}
    nodes.client.create_files(nodes.target(node), REMOTE_BUNDLE, files, nodes.timeouts.short)


def preload_images(nodes: Nodes, node: Node, sha256: str) -> None:
    """Copies the image bundle to the node unless the same file is there already, then loads it
    into containerd with the rendered script, which checks that every image is listed."""
    from nsxkube.images import PRELOAD_SCRIPT

    bundle = nodes.design.spec.kubernetes.image_bundle
    assert bundle is not None
    remote, report = f"{REMOTE_BUNDLE}/{IMAGES_ARCHIVE}", nodes.ctx.reporter
    present = nodes.run(node, "checking the image bundle on the node",
                        f"sha256sum {remote} 2>/dev/null || true").stdout.split()
    if present[:1] != [sha256]:
        size = bundle.expanduser().stat().st_size
        report.progress(PHASE_NAME, node.name, 1, STEPS, f"copying {bundle.name} ({size / 2**20:.0f} MiB)")
        nodes.client.upload_file(nodes.target(node), bundle.expanduser(), remote, nodes.timeouts.long)
    result = nodes.run(node, "preloading images", f"bash {REMOTE_BUNDLE}/{PRELOAD_SCRIPT} {remote}",
                       nodes.timeouts.long, check=False)
    if not result.ok:
        missing = [line.removeprefix("missing ") for line in result.stdout.splitlines() if line.startswith("missing ")]
        what = f"containerd lacks {', '.join(missing)} after the import" if missing else result.last_line()
        raise ProviderError(f"preloading images on {node.name} ({node.address}) failed: {what}",
                            hint=f"see logs/{node.name}.log; `nsxkube check` lists the images the bundle needs")
    report.progress(PHASE_NAME, node.name, 1, STEPS, f"{len(nodes.design.node_images)} images preloaded")


def preflight(nodes: Nodes, node: Node) -> None:
    from nsxkube.providers.nodes import probes

    result = nodes.run(node, "preflight", probes.PREFLIGHT_SCRIPT)
    sandbox = nodes.design.spec.sandbox
    problems = probes.preflight_problems(result.stdout, LISTENING_PORTS[node.role],
                                         skip=sandbox.skip_node_checks if sandbox else ())
    if problems:
        nodes.log(node, "preflight problems:\n" + "\n".join(problems))
        raise ProviderError(f"{node.name} ({node.address}) is not ready for kubeadm: "
                            f"{and_more(problems, where=f' in logs/{node.name}.log')}",
                            hint="the node template (prepare-vm.sh) and cloud-init set these up")
    nodes.ctx.reporter.progress(PHASE_NAME, node.name, 2, STEPS, "preflight passed")


def probe_mtu(nodes: Nodes, node: Node) -> None:
    result = nodes.run(node, "MTU probe", f"bash {REMOTE_BUNDLE}/scripts/check-mtu.sh", check=False)
    if not result.ok:
        lines = [line for line in result.stdout.splitlines() if line.startswith("FAIL")] or [result.last_line()]
        raise ProviderError(f"MTU probe from {node.name} ({node.address}) failed: "
                            f"{lines[0].removeprefix('FAIL').strip()}", hint=mtu_hint(nodes.design))
    nodes.ctx.reporter.progress(PHASE_NAME, node.name, 3, STEPS, f"MTU {nodes.design.mtu.node_mtu} holds")


def reset_kubeadm(nodes: Nodes, node: Node) -> None:
    """`kubeadm reset -f`: what an init or join that stopped half-way left (certificates, static Pods,
    the kubelet's files) goes, so that the next one starts clean."""
    nodes.ctx.reporter.progress(PHASE_NAME, node.name, 1, STEPS, "kubeadm reset -f (an earlier run stopped half-way)")
    nodes.run(node, "kubeadm reset", "kubeadm reset -f", nodes.timeouts.long)


def get_ready(nodes: Nodes, node: Node, image_bundle_sha256: str | None, *, reset: bool = False) -> None:
    """Everything before kubeadm, on one node."""
    wait_for_cloud_init(nodes, node)
    upload_bundle(nodes, node)
    if image_bundle_sha256:
        preload_images(nodes, node, image_bundle_sha256)
    if reset:
        reset_kubeadm(nodes, node)
    preflight(nodes, node)
