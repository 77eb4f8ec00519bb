"""The parts of the test nodes that need neither root nor a running node (fast suite)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import tomllib

import pytest
import yaml

from nsxkube.lab.nodes.images import ImageFile, ImageSpec, plan_images, repository_name, write_layout
from nsxkube.lab.nodes.init import Supervisor, expand_command, read_environment_file
from nsxkube.render.bundle import render_bundle
from tests.nodes import cluster as C
from tests.nodes.node import KUBELET_UNIT, containerd_config


def test_kubelet_command_line_is_built_like_kubeadms_systemd_drop_in(tmp_path):
    flags = tmp_path / "kubeadm-flags.env"
    flags.write_text('KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/containerd/containerd.sock '
                     '--node-ip=10.213.20.11 --cloud-provider=external"\n')
    extra = tmp_path / "kubelet"
    extra.write_text("# comment\nKUBELET_EXTRA_ARGS=--v=2\n")
    env = dict(KUBELET_UNIT["environment"])
    env.update(read_environment_file(str(flags)))
    env.update(read_environment_file(str(extra)))
    argv = expand_command(KUBELET_UNIT["exec"], env)
    assert argv == [
        "/usr/local/bin/kubelet",
        "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf", "--kubeconfig=/etc/kubernetes/kubelet.conf",
        "--config=/var/lib/kubelet/config.yaml",
        "--container-runtime-endpoint=unix:///run/containerd/containerd.sock", "--node-ip=10.213.20.11",
        "--cloud-provider=external",
        "--v=2",
    ]
    # ${VAR} stays one word, an unset $VAR disappears
    assert expand_command(["a${X}b", "$UNSET", "c"], {"X": "1 2"}) == ["a1 2b", "c"]


@pytest.fixture
def supervisor(tmp_path):
    return Supervisor({"units": {"kubelet": {"exec": ["/bin/true"], "enabled": True}}, "log_dir": str(tmp_path)})


def test_systemctl_answers_what_kubeadm_reads(supervisor):
    # kubeadm's ServiceExists: "Loaded: not-found" / "could not be found" mean no such unit
    code, out, err = supervisor.handle(["status", "nosuch"])
    assert code == 4 and "could not be found" in out + err
    code, out, _ = supervisor.handle(["status", "kubelet.service"])
    assert code == 3 and "Loaded: loaded" in out and "inactive (dead)" in out
    assert supervisor.handle(["is-enabled", "kubelet"]) == (0, "enabled\n", "")
    assert supervisor.handle(["is-active", "kubelet"]) == (3, "inactive\n", "")
    assert supervisor.handle(["daemon-reload"]) == (0, "", "")
    assert supervisor.handle(["disable", "kubelet"])[0] == 0
    assert supervisor.handle(["is-enabled", "kubelet"])[0] == 1
    assert "unsupported" in supervisor.handle(["isolate", "kubelet"])[2]
    assert supervisor.handle(["show", "-p", "ActiveState", "kubelet"]) == (0, "ActiveState=inactive\n", "")


def test_overrides_change_only_what_is_listed():
    design = C.test_design(control_planes=3, workers=2)
    rendered = {f.path: f.content for f in render_bundle(design)}
    endpoint = "10.213.20.11:6443"
    init = list(yaml.safe_load_all(C.apply_overrides("kubeadm/init.yaml", rendered["kubeadm/init.yaml"], endpoint,
                                                     ("ImagePull",))))
    original = list(yaml.safe_load_all(rendered["kubeadm/init.yaml"]))
    by_kind = {d["kind"]: d for d in init if d}
    before = {d["kind"]: d for d in original if d}
    # the machine's constraints come from the design's sandbox: section, rendered by the product
    assert before["KubeletConfiguration"]["cgroupDriver"] == "cgroupfs"
    assert before["KubeletConfiguration"]["failCgroupV1"] is False
    assert before["InitConfiguration"]["nodeRegistration"]["ignorePreflightErrors"] == ["SystemVerification"]
    assert by_kind["KubeletConfiguration"] == before["KubeletConfiguration"]
    assert by_kind["ClusterConfiguration"] == {**before["ClusterConfiguration"], "controlPlaneEndpoint": endpoint}
    assert by_kind["InitConfiguration"]["nodeRegistration"]["ignorePreflightErrors"] == ["SystemVerification",
                                                                                          "ImagePull"]
    before["InitConfiguration"]["nodeRegistration"]["ignorePreflightErrors"] = ["SystemVerification", "ImagePull"]
    assert by_kind["InitConfiguration"] == before["InitConfiguration"]
    assert before["ClusterConfiguration"]["controlPlaneEndpoint"] == f"{C.API_VIP}:6443"  # the design keeps the VIP
    for path in ("kubeadm/join-control-plane.yaml", "kubeadm/join-worker.yaml"):
        (join,) = [d for d in yaml.safe_load_all(C.apply_overrides(path, rendered[path], endpoint)) if d]
        assert join["discovery"]["bootstrapToken"]["apiServerEndpoint"] == endpoint
        assert join["nodeRegistration"]["ignorePreflightErrors"] == ["SystemVerification"]


def test_the_node_bundle_keeps_the_rendered_scripts(tmp_path):
    design = C.test_design(control_planes=1, workers=0)
    bundle = C.write_node_bundle(design, tmp_path)
    scripts = [rendered for rendered in render_bundle(design) if rendered.path.startswith("scripts/")]
    assert len(scripts) >= 6
    for rendered in scripts:
        assert (bundle / rendered.path).read_text() == rendered.content
        assert (bundle / rendered.path).stat().st_mode & 0o777 == rendered.mode
    assert {p.name for p in (bundle / "kubeadm").iterdir()} >= {"init.yaml", "join-control-plane.yaml",
                                                                  "join-worker.yaml", "kube-vip.yaml"}


def test_an_image_layout_is_valid_oci_with_the_kubeadm_names(tmp_path):
    program = tmp_path / "kube-apiserver"
    program.write_bytes(b"\x7fELF fake program")
    layout = tmp_path / "layout"
    (descriptor,) = write_layout([ImageSpec("registry.k8s.io/kube-apiserver:v1.35.8",
                                            (ImageFile("/usr/local/bin/kube-apiserver", program),))], layout)
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"] == [descriptor]
    assert descriptor["annotations"] == {"io.containerd.image.name": "registry.k8s.io/kube-apiserver:v1.35.8",
                                         "org.opencontainers.image.ref.name": "v1.35.8"}

    def blob(desc):
        data = (layout / "blobs" / "sha256" / desc["digest"].split(":")[1]).read_bytes()
        assert len(data) == desc["size"] and "sha256:" + hashlib.sha256(data).hexdigest() == desc["digest"]
        return data

    manifest = json.loads(blob(descriptor))
    config = json.loads(blob(manifest["config"]))
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert any(e.startswith("PATH=") and "/usr/local/bin" in e for e in config["config"]["Env"])
    (layer,) = manifest["layers"]
    uncompressed = gzip.decompress(blob(layer))
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(uncompressed).hexdigest()]
    with tarfile.open(fileobj=io.BytesIO(uncompressed)) as tar:
        member = tar.getmember("usr/local/bin/kube-apiserver")
        assert member.mode == 0o755 and tar.extractfile(member).read() == program.read_bytes()
        assert tar.getmember("tmp").mode == 0o1777


def test_references_without_a_program_are_reported_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("NSXKUBE_TEST_BIN", str(tmp_path / "nothing-built"))
    plan = plan_images(["registry.k8s.io/coredns/coredns:v1.13.1", "ghcr.io/kube-vip/kube-vip:v1.2.0",
                        "example.com/something:1"], pause=None)
    assert plan.specs == ()
    assert "run programs/build.sh coredns" in plan.missing["registry.k8s.io/coredns/coredns:v1.13.1"]
    assert "Go module proxy does not serve" in plan.missing["ghcr.io/kube-vip/kube-vip:v1.2.0"]
    assert plan.missing["example.com/something:1"] == "no program to build something from"
    assert repository_name("registry.k8s.io/coredns/coredns:v1.13.1") == "coredns"
    assert repository_name("localhost:5000/pause") == "pause"


def test_the_kube_vip_image_is_the_prebuilt_binary_or_says_where_it_looked(tmp_path, monkeypatch):
    reference = "ghcr.io/kube-vip/kube-vip:v1.2.3"
    monkeypatch.setenv("NSXKUBE_KUBE_VIP", str(tmp_path / "absent"))
    plan = plan_images([reference], pause=None)
    assert plan.specs == () and str(tmp_path / "absent") in plan.missing[reference]
    binary = tmp_path / "kube-vip"
    binary.write_bytes(b"\x7fELF fake kube-vip")
    binary.chmod(0o755)
    monkeypatch.setenv("NSXKUBE_KUBE_VIP", str(binary))
    (spec,) = plan_images([reference], pause=None).specs
    assert spec.files == (ImageFile("/kube-vip", binary),) and spec.entrypoint == ("/kube-vip",)


@pytest.mark.parametrize("provider", ["keepalived", "kube-vip"])
def test_a_vip_bundle_keeps_the_rendered_endpoint_and_the_providers_files(tmp_path, provider):
    design = C.test_design(control_planes=3, workers=0, provider=provider)
    bundle = C.write_node_bundle(design, tmp_path, vip=True)
    (cluster,) = [d for d in yaml.safe_load_all((bundle / "kubeadm/init.yaml").read_text())
                  if d and d["kind"] == "ClusterConfiguration"]
    assert cluster["controlPlaneEndpoint"] == f"{C.API_VIP}:6443"
    configs = sorted(p.name for p in (bundle / "keepalived").glob("*.conf")) if (bundle / "keepalived").exists() else []
    assert configs == (sorted(f"{n.name}.conf" for n in design.ip_plan.control_planes)
                       if provider == "keepalived" else [])
    assert (bundle / "kubeadm/kube-vip.yaml").exists() is (provider == "kube-vip")
    assert not [o for o in C.overrides(vip=True) if "Endpoint" in o.change]
    assert [o for o in C.overrides(vip=False) if "Endpoint" in o.change]


@pytest.mark.parametrize("restrict", [True, False])
def test_containerd_config_is_toml_for_cri_with_cgroupfs(restrict):
    config = tomllib.loads(containerd_config("registry.k8s.io/pause:3.10.1", restrict_oom_score_adj=restrict))
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert config["version"] == 2
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.10.1"
    assert cri["restrict_oom_score_adj"] is restrict
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    assert cri["cni"] == {"bin_dir": "/usr/lib/cni", "conf_dir": "/etc/cni/net.d"}


def test_test_cni_is_bridge_with_host_local_and_no_masquerade():
    config = json.loads(C.cni_config("10.244.1.0/24", 1500))
    bridge = config["plugins"][0]
    assert (bridge["type"], bridge["ipMasq"], bridge["ipam"]["type"]) == ("bridge", False, "host-local")
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.1.0/24"}]]
