"""Real Kubernetes nodes: the rendered kubeadm configs and scripts bring up a cluster.

Each milestone of issues 8 and 15 is a test. The nodes are network + mount + UTS + cgroup namespaces
with their own containerd, sshd and a systemd stand-in (tests/nodes/); the images are assembled from
the Go-built programs without a registry (nsxkube/lab/nodes/images.py). The bundle that `nsxkube render`
writes is copied to the nodes with scp and run over SSH as the runbook says, with the test-only
overrides of tests/nodes/cluster.py (printed by each test). Each test prints its time and memory
and ends with a check that nothing is left behind (processes, cgroups, mounts, namespaces, links).

Milestones b (the API VIP comes up) and d (it fails over) run once per VIP provider on one cluster
of three control planes: keepalived (Debian's package, as a unit of the node's supervisor) always;
kube-vip when a prebuilt kube-vip binary is there (``$NSXKUBE_KUBE_VIP`` or
``~/.cache/nsxkube/programs/kube-vip-<version>``; nothing in the repository builds it, the Go module
proxy does not serve it), otherwise that run skips and says where it looked.

What cannot run here, and so is not tested:
* Cilium: it needs BPF and kernel features this sandbox's nodes do not offer, and images that
  cannot be pulled; a bridge + host-local CNI from Debian's containernetworking-plugins stands in,
  with routes between the nodes;
* CoreDNS running: its image is built (programs/coredns), but its Pods cannot be scheduled: no
  vSphere CPI clears the node.cloudprovider.kubernetes.io/uninitialized taint (tests/nodes/
  test_node_images.py runs the image in a node instead).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ipaddress
import json
import os
import time
from pathlib import Path

import pytest

from nsxkube.design.images import kube_vip_image
from nsxkube.images import PRELOAD_SCRIPT, missing_images, preload_script
from nsxkube.lab.nodes.images import (
    UNAVAILABLE,
    ImageBundle,
    ImageError,
    image_bundle,
    kubeadm_image_list,
    repository_name,
)
from tests.nodes import cluster as C
from tests.nodes import vip as V
from tests.nodes.node import Node, NodeNetwork, leftovers, node_network
from tests.support.binaries import require_binaries

pytestmark = pytest.mark.slow

PROGRAMS = ("kubeadm", "kubelet", "kubectl", "etcdctl")


@pytest.fixture(scope="module")
def programs() -> dict[str, Path]:
    return require_binaries(*PROGRAMS, "kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")


def _bundle_and_images(design, workdir: Path, programs: dict[str, Path], *, vip: bool = False
                       ) -> tuple[Path, ImageBundle]:
    """The node bundle (render + overrides) and the images `kubeadm config images list` names (and
    kube-vip's with ``vip`` and kube-vip as the provider); with ``vip`` the rendered endpoint stays."""
    probe = C.write_node_bundle(design, workdir / "probe")
    references = kubeadm_image_list(programs["kubeadm"], probe / "kubeadm" / "init.yaml")
    if vip and design.api_vip_provider == "kube-vip":
        references.append(kube_vip_image(design.versions))
    try:
        images = image_bundle(references)
    except ImageError as error:  # e.g. no Go toolchain for pause
        if os.environ.get("NSXKUBE_REQUIRE_TEST_BIN") == "1":
            pytest.fail(f"images for the test nodes: {error} (NSXKUBE_REQUIRE_TEST_BIN=1)", pytrace=False)
        pytest.skip(f"images for the test nodes: {error}")
    unexpected = {r: why for r, why in images.missing.items() if repository_name(r) not in UNAVAILABLE}
    assert not unexpected, f"images that should have been built: {unexpected}"
    # kubeadm's ImagePull check fails for an image nobody can pull: ignored only when one is missing.
    bundle = C.write_node_bundle(design, workdir / "bundle", extra_ignored=("ImagePull",) if images.missing else (),
                                 vip=vip)
    return bundle, images


def _print_setup(images: ImageBundle, say, *, vip: bool = False) -> None:
    lines = ["", "declared in the test design's sandbox: section (rendered by the product, shown by check):"]
    lines += [f"  - {w.one_line()}" for w in C.test_design().warnings if w.key.startswith("sandbox.")]
    lines.append("test-only overrides of the rendered files:" if C.overrides(vip) or images.missing else
                 "no test-only override of the rendered files")
    for override in C.overrides(vip):
        lines.append(f"  - {override.file}: {override.change}\n      why: {override.why}")
    if images.missing:
        lines.append("  - nodeRegistration.ignorePreflightErrors += ImagePull, because these images do not exist here:")
        lines += [f"      {reference}: {why}" for reference, why in images.missing.items()]
    lines.append(f"  + {PRELOAD_SCRIPT}: nsxkube.images.preload_script for the images built here (render writes "
                 "it for the design's node_images, which include kube-vip), run over SSH with the image archive")
    lines.append(f"images ({'cached' if images.cached else f'assembled in {images.seconds:.1f} s'}): "
                 + ", ".join(images.references))
    say("\n".join(lines))


def _preload(nodes: list[Node], images: ImageBundle, bundle: Path) -> None:
    """The product's preload (nsxkube.images): the archive and scripts/preload-images.sh go to each
    node with scp (with the rest of the bundle); the script imports it into containerd's k8s.io
    namespace over SSH and checks every image is there."""
    script = bundle / PRELOAD_SCRIPT
    script.write_text(preload_script(images.references))
    script.chmod(0o755)
    assert not missing_images(images.archive, images.references)

    def load(node: Node) -> None:
        C.copy_bundle(node, bundle)
        copied = node.scp([images.archive], f"{C.NODE_WORKDIR}/images.tar", timeout=300)
        assert copied.returncode == 0, copied.stderr
        result = node.ssh(f"cd {C.NODE_WORKDIR} && bash {PRELOAD_SCRIPT} images.tar", timeout=600)
        assert result.returncode == 0, f"{node.name}: {result.stdout}{result.stderr[-2000:]}"
        listed = node.run("ctr", "-n", "k8s.io", "images", "ls", "-q", check=True).stdout.split()
        assert set(images.references) <= set(listed), f"{node.name}: {listed}"

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(load, nodes))


@pytest.fixture
def say(capsys):
    """Prints past pytest's output capture: the timings and overrides show in every CI log."""
    def say(text: str) -> None:
        with capsys.disabled():
            print(text, flush=True)
    return say


@pytest.fixture
def nodes(tmp_path, say):
    """``nodes(names, addresses, programs)`` starts test nodes for the test; after the test (passed
    or not) every one is torn down and the teardown fails if anything was left behind."""
    networks: list[NodeNetwork] = []
    stack = contextlib.ExitStack()

    def start(names: list[str], addresses: list[str], programs: dict[str, Path]) -> NodeNetwork:
        net = stack.enter_context(node_network(tmp_path / f"nodes{len(networks)}", names, addresses=addresses,
                                               subnet=C.NODE_SUBNET, programs=programs))
        networks.append(net)
        return net

    try:
        yield start
    finally:
        stack.close()
        left = [item for net in networks for item in leftovers(net)]
        if left:
            pytest.fail("left behind after the nodes were torn down:\n" + "\n".join(left), pytrace=False)
        say(f"teardown check: no process, cgroup, mount, namespace, link or kubelet sysctl left "
            f"({sum(len(n.nodes) for n in networks)} node(s))")


def _control_plane_pods_running(kubectl: C.Kubectl, node_names: list[str]) -> bool:
    pods = kubectl.json("-n", "kube-system", "get", "pods")["items"]
    running = {p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"
               and all(c.get("ready") for c in p["status"].get("containerStatuses", []))}
    wanted = {f"{component}-{name}" for name in node_names
              for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")}
    return wanted <= running


def _kube_vip_pod_reason(kubectl: C.Kubectl, name: str) -> str:
    pod = kubectl.json("-n", "kube-system", "get", "pod", f"kube-vip-{name}")
    statuses = pod["status"].get("containerStatuses", [])
    waiting = statuses[0].get("state", {}).get("waiting", {}) if statuses else {}
    return waiting.get("reason", pod["status"].get("phase", "?"))


# ---- a. one node ---------------------------------------------------------------------------------


@pytest.mark.timeout(900)
def test_a_one_node_kubeadm_init_api_healthy_node_ready(tmp_path, programs, nodes, say):
    design = C.test_design(control_planes=1, workers=0)
    bundle, images = _bundle_and_images(design, tmp_path, programs)
    _print_setup(images, say)
    cp = design.ip_plan.control_planes[0]
    node_programs = {name: programs[name] for name in PROGRAMS}
    net = nodes([cp.name], [str(cp.address)], node_programs)
    node = net.nodes[0]
    with C.measured("milestone a: one node, kubeadm init → API healthy, node Ready", net, say=say) as m:
        start = time.monotonic()
        _preload(net.nodes, images, bundle)
        m.step("bundle + images (scp, preload-images.sh)", start)

        start = time.monotonic()
        join_values, log = C.bootstrap(node)
        m.step("bootstrap-control-plane.sh (kubeadm init)", start)
        assert "Your Kubernetes control-plane has initialized successfully!" in log
        assert set(join_values) == {"NSXKUBE_API_ENDPOINT", "NSXKUBE_JOIN_TOKEN", "NSXKUBE_CA_CERT_HASH",
                                    "NSXKUBE_CERTIFICATE_KEY"}

        kubectl = C.Kubectl(programs["kubectl"], C.fetch_admin_kubeconfig(node, tmp_path / "kubeconfig"))
        readyz = kubectl("get", "--raw=/readyz?verbose").stdout
        assert "readyz check passed" in readyz
        version = json.loads(kubectl("get", "--raw=/version").stdout)
        assert version["gitVersion"] == f"v{design.versions.kubernetes}"

        start = time.monotonic()
        cidrs = C.install_test_cni(net, kubectl)
        C.wait_for("node Ready", lambda: C.node_ready(kubectl.nodes()[cp.name]), timeout=300)
        C.wait_for("control-plane Pods running", lambda: _control_plane_pods_running(kubectl, [cp.name]), 300)
        m.step("test CNI + node Ready", start)

        node_object = kubectl.nodes()[cp.name]
        assert cidrs[cp.name] == node_object["spec"]["podCIDR"]
        taints = {t["key"] for t in node_object["spec"].get("taints", [])}
        # rendered: cloud-provider=external → the CPI would clear this taint; none runs here
        assert "node.cloudprovider.kubernetes.io/uninitialized" in taints
        assert node_object["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://1.6")
        # the rendered kube-vip static Pod is there, and waits for an image that cannot exist here
        assert _kube_vip_pod_reason(kubectl, cp.name) in ("ErrImagePull", "ImagePullBackOff", "Pending",
                                                          "ContainerCreating")
        kubelet_flags = node.path("/var/lib/kubelet/kubeadm-flags.env").read_text()
        assert "--node-ip=" + str(cp.address) in kubelet_flags and "--cloud-provider=external" in kubelet_flags
        code, out, _ = node.systemctl("is-active", "kubelet")
        assert (code, out.strip()) == (0, "active")


# ---- c. three control planes, two workers --------------------------------------------------------


def _etcd_members(node: Node) -> list[dict]:
    result = node.ssh("etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt "
                      "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt "
                      "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key member list -w json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["members"]


PAUSE_DAEMONSET = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "net-probe", "namespace": "default"},
    "spec": {
        "selector": {"matchLabels": {"app": "net-probe"}},
        "template": {
            "metadata": {"labels": {"app": "net-probe"}},
            "spec": {
                # every node carries the uninitialized taint (no CPI) and control planes their own
                "tolerations": [{"operator": "Exists"}],
                "automountServiceAccountToken": False,
                "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10.1",
                                "imagePullPolicy": "Never"}],
            },
        },
    },
}


@pytest.mark.timeout(1800)
def test_c_three_control_planes_and_two_workers_join_over_ssh(tmp_path, programs, nodes, say):
    design = C.test_design(control_planes=3, workers=2)
    bundle, images = _bundle_and_images(design, tmp_path, programs)
    _print_setup(images, say)
    plan = design.ip_plan
    names = [n.name for n in plan.nodes]
    node_programs = {name: programs[name] for name in PROGRAMS}
    net = nodes(names, [str(n.address) for n in plan.nodes], node_programs)
    first, *other_cps = (net.node(n.name) for n in plan.control_planes)
    workers = [net.node(n.name) for n in plan.workers]
    with C.measured("milestone c: 3 control planes + 2 workers joined over SSH", net, say=say) as m:
        start = time.monotonic()
        _preload(net.nodes, images, bundle)
        m.step("bundle + images on 5 nodes (scp, preload-images.sh)", start)

        start = time.monotonic()
        join_values, _ = C.bootstrap(first)
        kubectl = C.Kubectl(programs["kubectl"], C.fetch_admin_kubeconfig(first, tmp_path / "kubeconfig"))
        m.step(f"bootstrap {first.name}", start)

        for node in other_cps:  # one at a time: etcd adds one member at a time
            start = time.monotonic()
            log = C.join(node, "scripts/join-control-plane.sh", join_values)
            assert "This node has joined the cluster and a new control plane instance was created" in log
            # The runbook's `kubectl wait … pod/etcd-NODE` fails at once with NotFound while the
            # kubelet has not created the mirror Pod yet: wait for it to exist first.
            C.wait_for(f"mirror Pod etcd-{node.name}", lambda n=node: kubectl(
                "-n", "kube-system", "get", f"pod/etcd-{n.name}", check=False).returncode == 0, timeout=300)
            kubectl("-n", "kube-system", "wait", "--for=condition=Ready", f"pod/etcd-{node.name}",
                    "--timeout=10m", timeout=660)
            m.step(f"join {node.name}", start)

        start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(workers) or 1) as pool:
            logs = list(pool.map(lambda w: C.join(w, "scripts/join-worker.sh", join_values), workers))
        assert all("This node has joined the cluster" in log for log in logs)
        m.step("join workers (parallel)", start)

        start = time.monotonic()
        cidrs = C.install_test_cni(net, kubectl)
        C.wait_for("all nodes Ready", lambda: (lambda nodes: len(nodes) == len(names) and all(
            C.node_ready(n) for n in nodes.values()))(kubectl.nodes()), timeout=600)
        C.wait_for("control-plane Pods on 3 nodes", lambda: _control_plane_pods_running(
            kubectl, [n.name for n in plan.control_planes]), timeout=600)
        m.step("test CNI + all Ready", start)

        # roles, etcd quorum, every API server answers from the host
        nodes = kubectl.nodes()
        control_planes = {n for n, o in nodes.items() if "node-role.kubernetes.io/control-plane" in o["metadata"]["labels"]}
        assert control_planes == {n.name for n in plan.control_planes}
        assert len(set(cidrs.values())) == len(names)
        members = _etcd_members(first)
        assert sorted(m_["name"] for m_ in members) == sorted(n.name for n in plan.control_planes)
        assert all(m_.get("clientURLs") for m_ in members), members  # started, not just added
        for cp in plan.control_planes:
            answer = kubectl("--server", f"https://{cp.address}:6443", "get", "--raw=/readyz").stdout
            assert answer.strip() == "ok", (cp.name, answer)

        # pod network: a pause Pod on every node, each answering ping from the first control plane
        start = time.monotonic()
        manifest = tmp_path / "net-probe.json"
        manifest.write_text(json.dumps(PAUSE_DAEMONSET))
        kubectl("apply", "-f", str(manifest))

        def probe_pods():
            pods = kubectl.json("get", "pods", "-l", "app=net-probe")["items"]
            ready = [p for p in pods if p["status"].get("phase") == "Running" and p["status"].get("podIP")]
            return ready if len(ready) == len(names) else None

        pods = C.wait_for("a net-probe Pod running on every node", probe_pods, timeout=300)
        for pod in pods:
            ip, where = pod["status"]["podIP"], pod["spec"]["nodeName"]
            assert ipaddress.IPv4Address(ip) in ipaddress.IPv4Network(cidrs[where])
            ping = first.run("ping", "-c", "1", "-W", "2", ip)
            assert ping.returncode == 0, f"{first.name} cannot reach the Pod on {where} ({ip}): {ping.stdout}"
        m.step("pod network across nodes", start)


# ---- b and d: the API VIP, held by keepalived or kube-vip ---------------------------------------
# One cluster of three control planes per provider: b on the first, then d. See tests/nodes/vip.py.


@pytest.mark.timeout(2400)
@pytest.mark.parametrize("provider", ["keepalived", "kube-vip"])
def test_b_and_d_the_api_vip_comes_up_and_fails_over(provider, tmp_path, programs, nodes, say):
    design = C.test_design(control_planes=3, workers=0, provider=provider)
    V.require_provider(design)
    bundle, images = _bundle_and_images(design, tmp_path, programs, vip=True)
    _print_setup(images, say, vip=True)
    assert not [r for r in images.missing if "kube-vip" in r], images.missing
    plan = design.ip_plan
    node_programs = {name: programs[name] for name in PROGRAMS}
    net = nodes([n.name for n in plan.control_planes], [str(n.address) for n in plan.control_planes], node_programs)
    first, *others = (net.node(n.name) for n in plan.control_planes)
    with C.measured(f"milestones b and d with {provider}: the API VIP comes up, then fails over", net, say=say) as m:
        start = time.monotonic()
        _preload(net.nodes, images, bundle)
        m.step("bundle + images on 3 nodes", start)

        # b: kubeadm init with the rendered endpoint (the VIP), watched from the host all along
        start = time.monotonic()
        with V.VipWatch(net, C.API_VIP) as watch:
            join_values, log = C.bootstrap(first)
            watch.until_settled()
        m.step(f"bootstrap {first.name} (kubeadm init, {provider})", start)
        kubeconfig = C.fetch_admin_kubeconfig(first, tmp_path / "kubeconfig")
        kubectl = C.Kubectl(programs["kubectl"], kubeconfig)
        ca = V.cluster_ca(kubeconfig, tmp_path / "ca.crt")
        V.check_milestone_b(design, net, first, kubectl, ca, watch, join_values, say)
        if provider == "kube-vip":
            V.check_kube_vip_switch(first, watch, say)

        start = time.monotonic()
        first.systemctl("restart", "kubelet")
        V.check_vip_stays(net, first, ca, seconds=15)
        m.step("kubelet restarted: the VIP stayed", start)

        for node in others:  # one at a time: etcd adds one member at a time
            start = time.monotonic()
            log = C.join(node, "scripts/join-control-plane.sh", join_values)
            assert "This node has joined the cluster and a new control plane instance was created" in log
            C.wait_for(f"etcd-{node.name} Ready", lambda n=node: V.etcd_healthy(first) >= 2 + others.index(n),
                       timeout=300)
            m.step(f"join {node.name}", start)
        V.wait_all_ready(design, net, ca, kubectl, timeout=300)

        # d: the faults, three trials each
        figures: dict[str, list[float]] = {}
        for fault in V.FAULTS:
            for trial in range(V.TRIALS):
                start = time.monotonic()
                seconds = V.failover_trial(design, net, kubectl, ca, fault, say)
                figures.setdefault(fault.name, []).append(seconds)
                m.step(f"{fault.name} #{trial + 1}: failover {seconds:.1f} s, recovery", start)
        say(V.figures_report(provider, figures))
