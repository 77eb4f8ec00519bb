"""Node-side render: template and per-node cloud-init, kubeadm + kube-vip, node scripts.

Checked with the real tools (cloud-init schema and its network parser, shellcheck, bash -n,
the Kubernetes OpenAPI schemas, yamllint, kubeadm itself in the slow suite), and the scripts'
idempotency is exercised with stand-in programs on PATH.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from nsxkube.design import Design
from nsxkube.render import kubeadm as kubeadm_render
from nsxkube.render.cloud_init import NODE_NIC, render_node_cloud_init
from nsxkube.render.containerd import containerd_config_toml, registry_hosts_toml
from nsxkube.render.files import RenderedFile
from nsxkube.render.keepalived import render_keepalived
from nsxkube.render.kubeadm import kube_vip_init_kubeconfig, render_kubeadm
from nsxkube.render.scripts import render_scripts
from nsxkube.render.template_config import template_files
from nsxkube.render.template_vm import prepare_vm_script
from nsxkube.render.vm_files import render_machines
from tests.support.binaries import require_binary
from tests.support.specs import example_design
from tests.support.validators import cloud_init_schema, kubernetes_schema, require_tool, shellcheck, yamllint

PROXY_CHANGES: dict[str, Any] = {
    "network.proxy": {"url": "http://proxy.example.com:3128", "no_proxy": [".corp.example.com"]},
    "network.apt_mirror": "http://apt.example.com/ubuntu",
    "network.registry_mirrors": {
        "registry.k8s.io": "https://registry.example.com/registry.k8s.io",
        "docker.io": "https://registry.example.com/docker.io",
    },
}
VARIANTS: dict[str, dict[str, Any]] = {
    "example": {},
    "proxy-mirrors": PROXY_CHANGES,
    "dns-name-vxlan-port": {
        "kubernetes.api_dns_name": "k8s-api.example.com",
        "addons.cilium.tunnel": "vxlan",
        "ssh.port": 2222,
    },
    "one-cp-no-workers": {"nodes.control_planes.count": 1, "nodes.workers.count": 0,
                          "kubernetes.image_bundle": "/srv/k8s-images.tar"},
    "keepalived": {"network.api_vip_provider": "keepalived"},
}
TOKEN = "abcdef.0123456789abcdef"
CA_HASH = "sha256:" + "a1" * 32
CERT_KEY = "b2" * 32


def render_all(design: Design) -> dict[str, RenderedFile]:
    files = render_machines(design) + render_kubeadm(design) + render_keepalived(design) + render_scripts(design)
    return {f.path: f for f in files}


def write_files(files: dict[str, RenderedFile], root: Path) -> Path:
    for rendered in files.values():
        target = root / rendered.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(rendered.content, encoding="utf-8")
        target.chmod(rendered.mode)
    return root


@pytest.fixture(scope="module")
def design() -> Design:
    return example_design()


@pytest.fixture(scope="module")
def files(design: Design) -> dict[str, RenderedFile]:
    return render_all(design)


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant_bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Design, Path]:
    design = example_design(VARIANTS[request.param])
    return design, write_files(render_all(design), tmp_path_factory.mktemp(request.param))


def decode_guestinfo(value: str) -> str:
    return gzip.decompress(base64.b64decode(value, validate=True)).decode("utf-8")


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def kube_vip_env(pod: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in pod["spec"]["containers"][0]["env"]}


# ---- layout ------------------------------------------------------------------------------------


def test_the_promised_paths_are_rendered(design: Design, files: dict[str, RenderedFile]) -> None:
    expected = {"vm-template/user-data", "vm-template/prepare-vm.sh", "vm-template/packages.txt",
                "vm-template/vm-settings.md", "kubeadm/init.yaml", "kubeadm/join-control-plane.yaml",
                "kubeadm/join-worker.yaml", "kubeadm/kube-vip.yaml"}
    expected |= {f"scripts/{name}.sh" for name in ("bootstrap-control-plane", "join-control-plane", "join-worker",
                                                   "etcd-backup", "etcd-restore", "check-mtu")}
    for node in design.ip_plan.nodes:
        expected |= {f"nodes/{node.name}/{name}" for name in ("meta-data", "user-data", "guestinfo.env")}
    assert expected <= set(files)
    executables = {path for path, f in files.items() if f.executable}
    assert executables == {p for p in expected if p.endswith(".sh")}


def test_rendering_twice_is_byte_identical() -> None:
    first, second = render_all(example_design(PROXY_CHANGES)), render_all(example_design(PROXY_CHANGES))
    assert list(first) == list(second)
    for path, rendered in first.items():
        assert rendered == second[path], path


# ---- cloud-init --------------------------------------------------------------------------------


def test_every_user_data_passes_cloud_init_schema(variant_bundle: tuple[Design, Path]) -> None:
    design, root = variant_bundle
    user_data = [root / "vm-template/user-data", *sorted(root.glob("nodes/*/user-data"))]
    assert len(user_data) == 1 + len(design.ip_plan.nodes)
    findings = [finding for path in user_data for finding in cloud_init_schema(path)]
    assert findings == []
    for path in user_data:
        assert path.read_text().startswith("#cloud-config\n")


def test_meta_data_carries_the_static_network_v2(design: Design, files: dict[str, RenderedFile]) -> None:
    for node in design.ip_plan.nodes:
        meta = yaml.safe_load(files[f"nodes/{node.name}/meta-data"].content)
        assert meta["instance-id"] == node.name and meta["local-hostname"] == node.name
        network = meta["network"]
        assert network["version"] == 2 and list(network) == ["version", "ethernets"]
        (name, nic), = network["ethernets"].items()
        assert name == NODE_NIC and nic["set-name"] == NODE_NIC and nic["match"] == {"driver": "vmxnet3"}
        assert nic["addresses"] == [f"{node.address}/24"]
        assert nic["routes"] == [{"to": "0.0.0.0/0", "via": "172.16.50.1"}]
        assert nic["nameservers"] == {"addresses": ["10.10.0.53", "10.10.0.54"], "search": ["example.com"]}
        assert nic["mtu"] == design.mtu.node_mtu == 1500
        assert nic["dhcp4"] is False


def test_the_node_mtu_follows_the_design() -> None:
    design = example_design({"network.node_mtu": 1400})
    node = design.ip_plan.nodes[0]
    meta = yaml.safe_load(render_node_cloud_init(design, node).meta_data)
    assert meta["network"]["ethernets"][NODE_NIC]["mtu"] == 1400


def test_cloud_init_reads_guestinfo_and_network_like_the_vmware_datasource(
        variant_bundle: tuple[Design, Path]) -> None:
    """cloud-init's own VMware datasource decodes guestinfo.env; its v2 parser takes the network."""
    python = "/usr/bin/python3"
    if subprocess.run([python, "-c", "import cloudinit.sources.DataSourceVMware"], capture_output=True).returncode:
        pytest.skip("cloud-init's Python package is not installed")
    design, root = variant_bundle
    program = r"""
import json, sys
from cloudinit.sources import DataSourceVMware as ds
from cloudinit.net import network_state
out = {}
for path in sys.argv[1:]:
    keys = dict(line.split("=", 1) for line in open(path).read().splitlines())
    meta = ds.process_metadata(ds.load_json_or_yaml(
        ds.decode("metadata", keys["guestinfo.metadata.encoding"], keys["guestinfo.metadata"])))
    user = ds.decode("userdata", keys["guestinfo.userdata.encoding"], keys["guestinfo.userdata"])
    state = network_state.parse_net_config_data(meta["network"]["config"], skip_broken=False)
    (nic,) = list(state.iter_interfaces())
    (subnet,) = nic["subnets"]
    out[meta["local-hostname"]] = {"name": nic["name"], "mtu": nic["mtu"], "address": subnet["address"],
        "prefix": subnet["prefix"], "gateway": subnet["routes"][0]["gateway"],
        "dns": state.dns_nameservers, "user": user if isinstance(user, str) else user.decode()}
print(json.dumps(out))
"""
    paths = [str(p) for p in sorted(root.glob("nodes/*/guestinfo.env"))]
    result = subprocess.run([python, "-c", program, *paths], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert set(seen) == {n.name for n in design.ip_plan.nodes}
    for node in design.ip_plan.nodes:
        got = seen[node.name]
        assert (got["name"], got["mtu"], got["address"], got["prefix"]) == (NODE_NIC, design.mtu.node_mtu,
                                                                          str(node.address), 24)
        assert got["gateway"] == str(design.ip_plan.gateway)
        assert got["dns"] == [str(a) for a in design.spec.network.dns_servers]
        assert got["user"] == (root / f"nodes/{node.name}/user-data").read_text()


def test_guestinfo_decodes_back_to_the_files(design: Design, files: dict[str, RenderedFile]) -> None:
    for node in design.ip_plan.nodes:
        env = files[f"nodes/{node.name}/guestinfo.env"].content
        keys = dict(line.split("=", 1) for line in env.splitlines())
        assert list(keys) == ["guestinfo.metadata", "guestinfo.metadata.encoding",
                              "guestinfo.userdata", "guestinfo.userdata.encoding"]
        assert keys["guestinfo.metadata.encoding"] == keys["guestinfo.userdata.encoding"] == "gzip+base64"
        assert decode_guestinfo(keys["guestinfo.metadata"]) == files[f"nodes/{node.name}/meta-data"].content
        assert decode_guestinfo(keys["guestinfo.userdata"]) == files[f"nodes/{node.name}/user-data"].content
        cloud_init = render_node_cloud_init(design, node)
        assert cloud_init.guestinfo == keys
        assert cloud_init.meta_data == files[f"nodes/{node.name}/meta-data"].content
        assert cloud_init.user_data == files[f"nodes/{node.name}/user-data"].content


def test_node_user_data_sets_identity_access_and_time(design: Design, files: dict[str, RenderedFile]) -> None:
    for node in design.ip_plan.nodes:
        data = yaml.safe_load(files[f"nodes/{node.name}/user-data"].content)
        assert data["hostname"] == node.name
        assert data["ssh_pwauth"] is False
        (user,) = data["users"]
        assert user["name"] == "ubuntu" and user["lock_passwd"] is True
        assert user["ssh_authorized_keys"] == design.spec.ssh.public_keys
        assert not {"passwd", "hashed_passwd", "plain_text_passwd"} & set(user)
        assert data["ntp"] == {"enabled": True, "servers": ["10.10.0.123"]}
        hosts = next(f for f in data["write_files"] if f["path"] == "/etc/hosts")
        assert hosts["append"] is True and hosts["content"] == f"{node.address} {node.name}\n"
        assert "runcmd" not in data


def test_api_dns_name_vxlan_and_ssh_port_reach_the_nodes() -> None:
    design = example_design(VARIANTS["dns-name-vxlan-port"])
    data = yaml.safe_load(render_node_cloud_init(design, design.ip_plan.nodes[0]).user_data)
    written = {f["path"]: f["content"] for f in data["write_files"]}
    assert "172.16.50.10 k8s-api.example.com\n" in written["/etc/hosts"]
    assert written["/etc/ssh/sshd_config.d/50-nsxkube-port.conf"] == "Port 2222\n"
    assert "tx-udp_tnl-segmentation off" in written["/etc/systemd/system/nsxkube-nic-offload.service"]
    assert ["systemctl", "enable", "--now", "nsxkube-nic-offload.service"] in data["runcmd"]


def test_template_user_data_runs_prepare_vm_and_powers_off_on_success(design: Design,
                                                                     files: dict[str, RenderedFile]) -> None:
    data = yaml.safe_load(files["vm-template/user-data"].content)
    (script,) = data["write_files"]
    assert script["content"] == files["vm-template/prepare-vm.sh"].content
    assert data["runcmd"] == [[script["path"], "--seal-at-shutdown"]]
    assert data["power_state"]["mode"] == "poweroff"
    assert data["power_state"]["condition"].startswith("test -f ")
    # Readable in the file, not escaped into one long line.
    assert "content: |" in files["vm-template/user-data"].content


# ---- the template ------------------------------------------------------------------------------


def test_prepare_vm_installs_pinned_held_packages_and_seals(design: Design, files: dict[str, RenderedFile]) -> None:
    text = files["vm-template/prepare-vm.sh"].content
    versions = design.versions
    assert f"KUBERNETES_VERSION={versions.kubernetes}\n" in text
    assert f"KUBERNETES_APT_REPO=${{NSXKUBE_KUBERNETES_APT_REPO:-{versions.package_repo}}}" in text
    assert 'pinned+=("${package}=${KUBERNETES_VERSION}-*")' in text
    assert 'apt-mark hold "${KUBERNETES_PACKAGES[@]}"' in text
    assert f"CONTAINERD_VERSION={versions.containerd}\n" in text
    for needle in ("modprobe br_netfilter", "br_netfilter\n", "net.ipv4.ip_forward = 1",
                   "net.bridge.bridge-nf-call-iptables = 1", "swapoff -a", "open-vm-tools",
                   "cloud-init clean --logs --machine-id", "truncate -s 0 /etc/machine-id"):
        assert needle in text, needle
    # The seal comes last: nothing may run after the identity is wiped.
    main = text[text.index("\nmain() {"):]
    assert main.index("install_kubernetes_packages") < main.rindex("seal_template")
    packages = files["vm-template/packages.txt"].content.splitlines()
    assert {f"{name}={versions.kubernetes}-*" for name in ("kubelet", "kubeadm", "kubectl")} <= set(packages)
    assert "open-vm-tools" in packages


def heredoc(script: str, path: str) -> str:
    """What the script writes to ``path`` (its quoted heredoc)."""
    match = re.search(rf"cat >{re.escape(path)} <<'NSXKUBE_EOF'\n(.*?)NSXKUBE_EOF\n", script, re.S)
    assert match, f"{path} is not written"
    return match.group(1)


def test_containerd_config_is_version_3_with_systemd_cgroups(files: dict[str, RenderedFile]) -> None:
    script = files["vm-template/prepare-vm.sh"].content
    written = heredoc(script, "/etc/containerd/config.toml")
    assert written == containerd_config_toml("registry.k8s.io/pause:3.10.1")
    config = tomllib.loads(written)
    assert config["version"] == 3
    cri = config["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"]
    assert cri["options"]["SystemdCgroup"] is True
    assert config["plugins"]["io.containerd.cri.v1.images"]["registry"]["config_path"] == "/etc/containerd/certs.d"


def containerd_proxy_drop_in(script: str, tmp_path: Path) -> str:
    """Runs the script's settings and its drop-in writer alone, into a temporary file."""
    prefix = script[:script.index("# This script's own downloads")]
    runner = tmp_path / "drop-in.sh"
    runner.write_text(prefix + 'CONTAINERD_PROXY_FILE=$1\nwrite_containerd_proxy\ncat "$1"\n')
    result = subprocess.run(["bash", runner, tmp_path / "d/http-proxy.conf"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_proxy_and_mirrors_change_prepare_vm(files: dict[str, RenderedFile], tmp_path: Path) -> None:
    plain = files["vm-template/prepare-vm.sh"].content
    design = example_design(PROXY_CHANGES)
    script = prepare_vm_script(design)
    assert script != plain
    # Without a proxy the proxy files are removed; with one they are written.
    assert "rm -f /etc/apt/apt.conf.d/90nsxkube-proxy" in plain and "certs.d/" not in plain.replace(
        "'/etc/containerd/certs.d'", "")
    assert "HTTP_PROXY_URL=''" in plain
    assert "HTTP_PROXY_URL=http://proxy.example.com:3128" in script
    assert "rm -f /etc/apt/apt.conf.d/90nsxkube-proxy" not in script
    apt_proxy = heredoc(script, "/etc/apt/apt.conf.d/90nsxkube-proxy")
    assert apt_proxy == ('Acquire::http::Proxy "http://proxy.example.com:3128";\n'
                         'Acquire::https::Proxy "http://proxy.example.com:3128";\n')
    assert "\n  write_containerd_proxy\n" in script and "\n  write_containerd_proxy\n" not in plain
    no_proxy = ",".join(design.no_proxy)
    assert ".corp.example.com" in no_proxy and "172.16.50.10" in no_proxy
    assert containerd_proxy_drop_in(script, tmp_path) == (
        "[Service]\nEnvironment=\"HTTP_PROXY=http://proxy.example.com:3128\" "
        f'"HTTPS_PROXY=http://proxy.example.com:3128" "NO_PROXY={no_proxy}"\n')
    assert "URIs: http://apt.example.com/ubuntu\n" in heredoc(script, "/etc/apt/sources.list.d/ubuntu.sources")
    for registry, mirror in PROXY_CHANGES["network.registry_mirrors"].items():
        hosts = tomllib.loads(heredoc(script, f"/etc/containerd/certs.d/{registry}/hosts.toml"))
        assert hosts["host"] == {mirror: {"capabilities": ["pull", "resolve"]}}
    assert tomllib.loads(registry_hosts_toml("docker.io", "https://m"))["server"] == "https://registry-1.docker.io"


def test_a_registry_key_that_is_not_a_host_is_refused() -> None:
    # The spec refuses it before render could write a path from it.
    from nsxkube.errors import SpecError

    with pytest.raises(SpecError, match="registry host"):
        example_design({"network.registry_mirrors": {"../../etc": "https://mirror"}})


def test_vm_settings_name_what_csi_needs(design: Design, files: dict[str, RenderedFile]) -> None:
    text = files["vm-template/vm-settings.md"].content
    for needle in ("disk.EnableUUID = TRUE", "hardware version ≥ 15", "Paravirtual", "k8s-nodes-segment", "CSI"):
        assert needle in text, needle


# ---- kubeadm and kube-vip ----------------------------------------------------------------------


def test_init_yaml_carries_the_design(design: Design, files: dict[str, RenderedFile]) -> None:
    init, cluster, kubelet = documents(files["kubeadm/init.yaml"].content)
    assert [d["kind"] for d in (init, cluster, kubelet)] == ["InitConfiguration", "ClusterConfiguration",
                                                            "KubeletConfiguration"]
    assert init["apiVersion"] == cluster["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert cluster["controlPlaneEndpoint"] == "172.16.50.10:6443"
    assert cluster["apiServer"]["certSANs"] == ["172.16.50.10"]
    assert cluster["networking"] == {"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/12",
                                     "dnsDomain": "cluster.local"}
    assert cluster["kubernetesVersion"] == f"v{design.versions.kubernetes}"
    assert init["skipPhases"] == ["addon/kube-proxy"]
    assert init["localAPIEndpoint"]["advertiseAddress"] == "172.16.50.11"
    registration = init["nodeRegistration"]
    assert registration["name"] == "k8s-prod-cp-1"
    assert {"name": "cloud-provider", "value": "external"} in registration["kubeletExtraArgs"]
    assert {"name": "node-ip", "value": "172.16.50.11"} in registration["kubeletExtraArgs"]
    assert kubelet["serverTLSBootstrap"] is True and kubelet["cgroupDriver"] == "systemd"
    assert cluster["controllerManager"]["extraArgs"] == [{"name": "bind-address", "value": "0.0.0.0"}]
    assert cluster["scheduler"]["extraArgs"] == [{"name": "bind-address", "value": "0.0.0.0"}]
    assert cluster["etcd"]["local"]["extraArgs"] == [{"name": "listen-metrics-urls", "value": "http://0.0.0.0:2381"}]


def test_api_dns_name_becomes_the_endpoint_and_a_san() -> None:
    design = example_design({"kubernetes.api_dns_name": "k8s-api.example.com"})
    files = render_all(design)
    _, cluster, _ = documents(files["kubeadm/init.yaml"].content)
    assert cluster["controlPlaneEndpoint"] == "k8s-api.example.com:6443"
    assert cluster["apiServer"]["certSANs"] == ["172.16.50.10", "k8s-api.example.com"]
    for path in ("kubeadm/join-worker.yaml", "kubeadm/join-control-plane.yaml"):
        (join,) = documents(files[path].content)
        assert join["discovery"]["bootstrapToken"]["apiServerEndpoint"] == "k8s-api.example.com:6443"


def test_kube_proxy_stays_when_cilium_does_not_replace_it() -> None:
    design = example_design({"addons.cilium.kube_proxy_replacement": False, "addons.ingress.controller": "none",
                             "addons.gateway_api.enabled": False})
    init, cluster, _ = documents(render_all(design)["kubeadm/init.yaml"].content)
    assert "skipPhases" not in init and "proxy" not in cluster


def test_join_files_carry_placeholders_not_secrets(files: dict[str, RenderedFile]) -> None:
    (control_plane,) = documents(files["kubeadm/join-control-plane.yaml"].content)
    (worker,) = documents(files["kubeadm/join-worker.yaml"].content)
    for join in (control_plane, worker):
        assert join["apiVersion"] == "kubeadm.k8s.io/v1beta4" and join["kind"] == "JoinConfiguration"
        token = join["discovery"]["bootstrapToken"]
        assert token == {"apiServerEndpoint": "172.16.50.10:6443", "token": "__JOIN_TOKEN__",
                         "caCertHashes": ["__CA_CERT_HASH__"]}
        assert join["nodeRegistration"]["name"] == "__NODE_NAME__"
        assert {"name": "cloud-provider", "value": "external"} in join["nodeRegistration"]["kubeletExtraArgs"]
        assert {"name": "node-ip", "value": "__NODE_IP__"} in join["nodeRegistration"]["kubeletExtraArgs"]
    assert control_plane["controlPlane"] == {"localAPIEndpoint": {"advertiseAddress": "__NODE_IP__", "bindPort": 6443},
                                             "certificateKey": "__CERTIFICATE_KEY__"}
    assert "controlPlane" not in worker


def test_kube_vip_pods_validate_against_the_target_openapi(design: Design, files: dict[str, RenderedFile]) -> None:
    target = f"{design.versions.kubernetes_minor}.0"
    for path in ("kubeadm/kube-vip.yaml", "kubeadm/kube-vip-init.yaml"):
        (pod,) = documents(files[path].content)
        assert kubernetes_schema(pod, target) == [], path
    broken = documents(files["kubeadm/kube-vip.yaml"].content)[0]
    broken["spec"]["hostAliases"][0]["hostnames"] = "kubernetes"
    assert kubernetes_schema(broken, target) != []


def test_kube_vip_holds_the_vip_by_arp_and_leaves_services_alone(design: Design,
                                                                 files: dict[str, RenderedFile]) -> None:
    (pod,) = documents(files["kubeadm/kube-vip.yaml"].content)
    env = kube_vip_env(pod)
    assert env["address"] == "172.16.50.10" and env["port"] == "6443"
    assert env["vip_arp"] == "true" and env["cp_enable"] == "true" and env["vip_leaderelection"] == "true"
    assert env["svc_enable"] == "false"
    assert env["vip_interface"] == NODE_NIC
    assert env["vip_nodename"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    spec = pod["spec"]
    assert spec["hostAliases"] == [{"ip": "127.0.0.1", "hostnames": ["kubernetes"]}]
    assert spec["hostNetwork"] is True
    assert spec["containers"][0]["image"] == f"ghcr.io/kube-vip/kube-vip:{design.versions.kube_vip}"
    assert spec["containers"][0]["volumeMounts"] == [{"name": "kubeconfig", "mountPath": "/etc/kubernetes/admin.conf"}]
    assert spec["volumes"][0]["hostPath"]["path"] == "/etc/kubernetes/admin.conf"
    (init_pod,) = documents(files["kubeadm/kube-vip-init.yaml"].content)
    assert init_pod["spec"]["volumes"][0]["hostPath"]["path"] == "/etc/kubernetes/super-admin.conf"
    assert init_pod["spec"]["containers"] == spec["containers"]


def test_super_admin_conf_only_from_kubernetes_1_29(design: Design) -> None:
    assert kube_vip_init_kubeconfig(design.versions) == "/etc/kubernetes/super-admin.conf"
    assert kube_vip_init_kubeconfig(replace(design.versions, kubernetes_minor="1.29")).endswith("/super-admin.conf")
    assert kube_vip_init_kubeconfig(replace(design.versions, kubernetes_minor="1.28")) == "/etc/kubernetes/admin.conf"


def fill_placeholders(text: str, node_name: str, node_ip: str) -> str:
    values = {kubeadm_render.JOIN_TOKEN: TOKEN, kubeadm_render.CA_CERT_HASH: CA_HASH,
              kubeadm_render.CERTIFICATE_KEY: CERT_KEY, kubeadm_render.NODE_NAME: node_name,
              kubeadm_render.NODE_IP: node_ip}
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


@pytest.mark.slow
def test_kubeadm_accepts_the_configurations(files: dict[str, RenderedFile], tmp_path: Path) -> None:
    kubeadm = require_binary("kubeadm")
    configs = {
        "init.yaml": files["kubeadm/init.yaml"].content,
        "join-control-plane.yaml": fill_placeholders(files["kubeadm/join-control-plane.yaml"].content,
                                                     "k8s-prod-cp-2", "172.16.50.12"),
        "join-worker.yaml": fill_placeholders(files["kubeadm/join-worker.yaml"].content,
                                              "k8s-prod-worker-1", "172.16.50.14"),
    }
    for name, content in configs.items():
        path = tmp_path / name
        path.write_text(content)
        result = subprocess.run([kubeadm, "config", "validate", "--config", path], capture_output=True, text=True)
        assert result.returncode == 0, f"{name}: {result.stderr}"
    # kubeadm decodes strictly: a misspelt field is an error, so the check above can fail.
    typo = tmp_path / "typo.yaml"
    typo.write_text(files["kubeadm/init.yaml"].content.replace("serverTLSBootstrap", "serverTlsBootstrap"))
    assert subprocess.run([kubeadm, "config", "validate", "--config", typo], capture_output=True).returncode != 0


@pytest.mark.slow
def test_the_node_images_are_what_the_real_kubeadm_lists_plus_kube_vip() -> None:
    """The pause, CoreDNS and etcd versions per minor are written down in design/versions.py: the
    kubeadm built for the tests (programs/versions.env) says which images its version runs."""
    from tests.support.binaries import kubernetes_version

    kubeadm = require_binary("kubeadm")
    version = kubernetes_version()
    listed = subprocess.run([kubeadm, "config", "images", "list", "--kubernetes-version", version],
                            capture_output=True, text=True, check=True).stdout.split()
    with_kube_proxy = example_design({"kubernetes.version": version.lstrip("v"),
                                      "addons.cilium.kube_proxy_replacement": False,
                                      "addons.ingress.controller": "none", "addons.gateway_api.enabled": False})
    assert sorted(with_kube_proxy.node_images) == sorted([*listed, f"ghcr.io/kube-vip/kube-vip:{with_kube_proxy.versions.kube_vip}"])
    without = example_design({"kubernetes.version": version.lstrip("v")})
    assert set(with_kube_proxy.node_images) - set(without.node_images) == {f"registry.k8s.io/kube-proxy:{version}"}


# ---- validators over every file ----------------------------------------------------------------


def test_all_yaml_passes_yamllint(variant_bundle: tuple[Design, Path]) -> None:
    _, root = variant_bundle
    paths = [*root.glob("kubeadm/*.yaml"), *root.glob("nodes/*/meta-data"), *root.glob("nodes/*/user-data"),
             root / "vm-template/user-data"]
    assert len(paths) > 6
    assert [finding for path in sorted(paths) for finding in yamllint(path)] == []


def test_every_script_passes_shellcheck_and_bash_n(variant_bundle: tuple[Design, Path]) -> None:
    require_tool("shellcheck")
    design, root = variant_bundle
    scripts = sorted([*root.glob("scripts/*.sh"), root / "vm-template/prepare-vm.sh"])
    assert len(scripts) == 7 + (design.spec.kubernetes.image_bundle is not None)  # + preload-images.sh
    assert [finding for path in scripts for finding in shellcheck(path)] == []


def test_no_token_key_or_hash_is_rendered(files: dict[str, RenderedFile]) -> None:
    secret_like = re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b|\b[a-f0-9]{64}\b")
    for path, rendered in files.items():
        texts = [rendered.content]
        if path.endswith("guestinfo.env"):
            texts += [decode_guestinfo(line.split("=", 1)[1]) for line in rendered.content.splitlines()
                      if not line.split("=", 1)[0].endswith(".encoding")]
        for text in texts:
            assert not secret_like.search(text), f"{path}: {secret_like.search(text)}"
    for path in ("scripts/join-worker.sh", "scripts/join-control-plane.sh"):
        assert "config=${config//__JOIN_TOKEN__/\"$token\"}" in files[path].content


def test_sentinel_secrets_in_the_environment_never_reach_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    sentinels = {name: f"Sentinel-{name}-7f3a" for name in (
        "VSPHERE_USER", "VSPHERE_PASSWORD", "NSX_USER", "NSX_PASSWORD", "VELERO_S3_ACCESS_KEY",
        "VELERO_S3_SECRET_KEY", "NSXKUBE_JOIN_TOKEN", "NSXKUBE_CERTIFICATE_KEY")}
    for name, value in sentinels.items():
        monkeypatch.setenv(name, value)
    for changes in VARIANTS.values():
        for path, rendered in render_all(example_design(changes)).items():
            texts = [rendered.content]
            if path.endswith("guestinfo.env"):
                texts += [decode_guestinfo(v) for k, v in (line.split("=", 1) for line in rendered.content.splitlines())
                          if not k.endswith(".encoding")]
            for text in texts:
                leaked = [v for v in sentinels.values() if v in text]
                assert not leaked, f"{path} holds {leaked}"


# ---- the scripts, run with stand-in programs ---------------------------------------------------


def stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/usr/bin/env bash\n" + body + "\n")
    path.chmod(0o755)


# ip: the host's addresses are lines "DEV ADDRESS/PREFIX" in $ADDRESSES. A kube-vip manifest in the
# manifests directory stands for a running kube-vip holding the VIP on the NIC (the kubelet's part),
# unless KUBE_VIP_RUNS=0 (no image: it never starts).
IP_STAND_IN = r"""
echo "ip $*" >>"$CALLS"
if [[ ${KUBE_VIP_RUNS:-1} == 1 && -f "$NSXKUBE_KUBERNETES_DIR/manifests/kube-vip.yaml" ]] \
  && ! grep -qx "NIC $API_VIP/32" "$ADDRESSES"; then
  echo "NIC $API_VIP/32" >>"$ADDRESSES"
fi
case "$*" in
  "-4 -o addr show"*)
    while read -r dev address; do
      if [[ -z ${6:-} || $dev == "$6" ]]; then echo "2: $dev    inet $address scope global $dev"; fi
    done <"$ADDRESSES" ;;
  "addr add "* | "addr replace "*) grep -qx "$5 $3" "$ADDRESSES" || echo "$5 $3" >>"$ADDRESSES" ;;
  "addr del "*) grep -vx "$5 $3" "$ADDRESSES" >"$ADDRESSES.new" || true; mv "$ADDRESSES.new" "$ADDRESSES" ;;
esac
"""
# ss: a kube-vip manifest stands for a kube-vip listening on its metrics port.
SS_STAND_IN = r"""
if [[ ${KUBE_VIP_RUNS:-1} == 1 && -f "$NSXKUBE_KUBERNETES_DIR/manifests/kube-vip.yaml" ]]; then
  echo "ss $* (a kube-vip runs)" >>"$CALLS"
  echo "LISTEN 0 4096 *:2112 *:*"
else
  echo "ss $* (no kube-vip)" >>"$CALLS"
fi
"""


class Node:
    """A throwaway 'node': the bundle, a Kubernetes directory and stand-in programs on PATH."""

    def __init__(self, root: Path, files: dict[str, RenderedFile], host: str, address: str) -> None:
        self.root = root
        self.bundle = write_files(files, root / "bundle")
        self.kubernetes = root / "kubernetes"
        self.kubernetes.mkdir()
        self.log = root / "calls.log"
        self.log.touch()
        self.bin = root / "bin"
        self.bin.mkdir()
        stub(self.bin, "id", "echo 0")
        stub(self.bin, "hostname", f"echo {host}")
        self.addresses = root / "addresses"
        self.addresses.write_text(f"{NODE_NIC} {address}/24\n")
        stub(self.bin, "ip", IP_STAND_IN.replace("NIC", NODE_NIC))
        stub(self.bin, "ss", SS_STAND_IN)
        self.env = {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}", "NSXKUBE_BUNDLE_DIR": str(self.bundle),
                    "NSXKUBE_KUBERNETES_DIR": str(self.kubernetes), "CALLS": str(self.log),
                    "ADDRESSES": str(self.addresses), "API_VIP": "172.16.50.10"}

    def run(self, script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.bundle / "scripts" / script), *args], capture_output=True, text=True,
                              env={**self.env, **env}, timeout=60)

    def calls(self, program: str) -> list[str]:
        return [line.split(" ", 1)[1] for line in self.log.read_text().splitlines() if line.startswith(program + " ")]


KUBEADM_FOR_BOOTSTRAP = r"""
echo "kubeadm $*" >>"$CALLS"
case "$1 $2" in
  "init --config")
    cp "$NSXKUBE_KUBERNETES_DIR/manifests/kube-vip.yaml" "$NSXKUBE_KUBERNETES_DIR/kube-vip-during-init.yaml"
    mkdir -p "$NSXKUBE_KUBERNETES_DIR/pki"
    cp "$CA_CERT" "$NSXKUBE_KUBERNETES_DIR/pki/ca.crt"
    echo "apiVersion: v1" >"$NSXKUBE_KUBERNETES_DIR/admin.conf" ;;
  "token create") echo "TOKEN_OUT" ;;
  "init phase") echo "[upload-certs] Using certificate key:"; echo "KEY_OUT" ;;
esac
"""


def first_control_plane(files: dict[str, RenderedFile], tmp_path: Path) -> tuple[Node, Path]:
    """The first control plane as a directory with the bundle, a cluster CA and the kubeadm stand-in."""
    require_tool("openssl")
    node = Node(tmp_path, files, "k8s-prod-cp-1", "172.16.50.11")
    ca = tmp_path / "ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", tmp_path / "ca.key",
                    "-out", ca, "-subj", "/CN=kubernetes", "-days", "1"], check=True, capture_output=True)
    stub(node.bin, "kubeadm", KUBEADM_FOR_BOOTSTRAP.replace("TOKEN_OUT", TOKEN).replace("KEY_OUT", CERT_KEY))
    return node, ca


def test_bootstrap_inits_once_with_super_admin_then_prints_join_values(files: dict[str, RenderedFile],
                                                                      tmp_path: Path) -> None:
    node, ca = first_control_plane(files, tmp_path)
    stub(node.bin, "kubectl", 'echo "kubectl $*" >>"$CALLS"; [[ -f "$NSXKUBE_KUBERNETES_DIR/admin.conf" ]]')

    first = node.run("bootstrap-control-plane.sh", CA_CERT=str(ca))
    assert first.returncode == 0, first.stderr
    values = dict(line.split("=", 1) for line in first.stdout.splitlines())
    assert values["NSXKUBE_API_ENDPOINT"] == "172.16.50.10:6443"
    assert values["NSXKUBE_JOIN_TOKEN"] == TOKEN and values["NSXKUBE_CERTIFICATE_KEY"] == CERT_KEY
    assert re.fullmatch(r"sha256:[a-f0-9]{64}", values["NSXKUBE_CA_CERT_HASH"])
    init_calls = [c for c in node.calls("kubeadm") if c.startswith("init --config")]
    assert init_calls == [f"init --config {node.bundle}/kubeadm/init.yaml --upload-certs --skip-token-print "
                          "--skip-certificate-key-print"]
    during = yaml.safe_load((node.kubernetes / "kube-vip-during-init.yaml").read_text())
    assert during["spec"]["volumes"][0]["hostPath"]["path"] == "/etc/kubernetes/super-admin.conf"
    installed = (node.kubernetes / "manifests/kube-vip.yaml").read_text()
    assert installed == files["kubeadm/kube-vip.yaml"].content
    # the switch: the VIP answered from lo, the init instance gone before the steady one comes, lo released
    calls = node.log.read_text().splitlines()
    bridged = calls.index("ip addr replace 172.16.50.10/32 dev lo")
    stopped = next(i for i, c in enumerate(calls) if c.startswith("ss ") and c.endswith("(no kube-vip)"))
    released = calls.index("ip addr del 172.16.50.10/32 dev lo")
    assert bridged < stopped < released
    assert node.addresses.read_text().splitlines() == [f"{NODE_NIC} 172.16.50.11/24", f"{NODE_NIC} 172.16.50.10/32"]

    calls_before = node.log.read_text().count("kubeadm ")
    again = node.run("bootstrap-control-plane.sh", CA_CERT=str(ca))
    assert again.returncode == 0 and again.stdout == ""
    assert "nothing to do" in again.stderr
    assert node.log.read_text().count("kubeadm ") == calls_before

    join = node.run("bootstrap-control-plane.sh", "--print-join", CA_CERT=str(ca))
    assert join.returncode == 0 and dict(line.split("=", 1) for line in join.stdout.splitlines()) == values
    assert not [c for c in node.calls("kubeadm") if c.startswith("init --config")][1:]


def test_bootstrap_switches_a_kube_vip_that_never_held_the_vip_without_waiting_for_it(
        files: dict[str, RenderedFile], tmp_path: Path) -> None:
    """No kube-vip image (the init instance never ran): nothing to carry over, lo is left alone."""
    node, ca = first_control_plane(files, tmp_path)
    stub(node.bin, "kubectl", '[[ -f "$NSXKUBE_KUBERNETES_DIR/admin.conf" ]]')
    result = node.run("bootstrap-control-plane.sh", CA_CERT=str(ca), KUBE_VIP_RUNS="0")
    assert result.returncode == 0, result.stderr
    assert (node.kubernetes / "manifests/kube-vip.yaml").read_text() == files["kubeadm/kube-vip.yaml"].content
    assert not [c for c in node.log.read_text().splitlines() if c.startswith("ip addr") and "dev lo" in c]


def test_bootstrap_stops_on_a_half_finished_init(files: dict[str, RenderedFile], tmp_path: Path) -> None:
    node = Node(tmp_path, files, "k8s-prod-cp-1", "172.16.50.11")
    (node.kubernetes / "admin.conf").write_text("apiVersion: v1\n")
    stub(node.bin, "kubeadm", 'echo "kubeadm $*" >>"$CALLS"')
    stub(node.bin, "kubectl", '[[ $* != *configmap* ]]')
    result = node.run("bootstrap-control-plane.sh")
    assert result.returncode != 0 and "kubeadm reset -f" in result.stderr
    assert node.calls("kubeadm") == []


def test_bootstrap_refuses_on_another_host(files: dict[str, RenderedFile], tmp_path: Path) -> None:
    node = Node(tmp_path, files, "k8s-prod-cp-2", "172.16.50.12")
    stub(node.bin, "kubeadm", 'echo "kubeadm $*" >>"$CALLS"')
    result = node.run("bootstrap-control-plane.sh")
    assert result.returncode != 0 and "k8s-prod-cp-1 only" in result.stderr
    assert node.calls("kubeadm") == []


KUBEADM_FOR_JOIN = r"""
echo "kubeadm $*" >>"$CALLS"
if [[ $1 == join ]]; then
  cp "$3" "$NSXKUBE_KUBERNETES_DIR/join-as-seen.yaml"
  stat -c %a "$3" >"$NSXKUBE_KUBERNETES_DIR/join-mode"
  touch "$NSXKUBE_KUBERNETES_DIR/kubelet.conf"
fi
"""


@pytest.mark.parametrize(("script", "host", "address"), [
    ("join-control-plane.sh", "k8s-prod-cp-2", "172.16.50.12"),
    ("join-worker.sh", "k8s-prod-worker-1", "172.16.50.14"),
])
def test_join_fills_the_config_in_private_and_runs_once(files: dict[str, RenderedFile], tmp_path: Path,
                                                        script: str, host: str, address: str) -> None:
    node = Node(tmp_path, files, host, address)
    stub(node.bin, "kubeadm", KUBEADM_FOR_JOIN)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    secrets = {"NSXKUBE_JOIN_TOKEN": TOKEN, "NSXKUBE_CA_CERT_HASH": CA_HASH, "NSXKUBE_CERTIFICATE_KEY": CERT_KEY,
               "NSXKUBE_RUN_DIR": str(run_dir)}
    result = node.run(script, **secrets)
    assert result.returncode == 0, result.stderr
    seen = (node.kubernetes / "join-as-seen.yaml").read_text()
    (join,) = documents(seen)
    assert "__" not in seen
    assert join["discovery"]["bootstrapToken"]["token"] == TOKEN
    assert join["discovery"]["bootstrapToken"]["caCertHashes"] == [CA_HASH]
    assert join["nodeRegistration"]["name"] == host
    assert {"name": "node-ip", "value": address} in join["nodeRegistration"]["kubeletExtraArgs"]
    assert (node.kubernetes / "join-mode").read_text().strip() == "600"
    assert list(run_dir.iterdir()) == [], "the filled configuration must not outlive the join"
    control_plane = script == "join-control-plane.sh"
    assert (join.get("controlPlane", {}).get("certificateKey") == CERT_KEY) is control_plane
    assert (node.kubernetes / "manifests/kube-vip.yaml").exists() is control_plane

    again = node.run(script, **secrets)
    assert again.returncode == 0 and "already joined" in again.stderr
    assert len(node.calls("kubeadm")) == 1


def test_join_refuses_without_secrets_or_for_a_node_of_another_role(files: dict[str, RenderedFile],
                                                                    tmp_path: Path) -> None:
    node = Node(tmp_path, files, "k8s-prod-cp-2", "172.16.50.12")
    stub(node.bin, "kubeadm", KUBEADM_FOR_JOIN)
    no_token = node.run("join-control-plane.sh", NSXKUBE_CA_CERT_HASH=CA_HASH, NSXKUBE_CERTIFICATE_KEY=CERT_KEY)
    assert no_token.returncode != 0 and "join token" in no_token.stderr
    wrong_role = node.run("join-worker.sh", "--token", TOKEN, "--ca-cert-hash", CA_HASH)
    assert wrong_role.returncode != 0 and "is not a worker" in wrong_role.stderr
    first_cp = node.run("join-control-plane.sh", "--node-name", "k8s-prod-cp-1", "--token", TOKEN,
                        "--ca-cert-hash", CA_HASH, "--certificate-key", CERT_KEY)
    assert first_cp.returncode != 0, "the first control plane is initialized, never joined"
    assert node.calls("kubeadm") == []


BACKUP_STUBS = {
    "etcdctl": r"""echo "etcdctl $*" >>"$CALLS"; out=${*: -1}; echo "snapshot of $(cat "$STAMP_FILE")" >"$out" """,
    "etcdutl": r"""echo "etcdutl $*" >>"$CALLS" """,
    "date": r"""n=$(( $(cat "$STAMP_FILE") + 1 )); echo "$n" >"$STAMP_FILE"; printf '20261125T00000%sZ\n' "$n" """,
}


def test_etcd_backup_checksums_and_keeps_the_newest(tmp_path: Path) -> None:
    design = example_design({"addons.backups.etcd.keep": 2})
    node = Node(tmp_path, render_all(design), "k8s-prod-cp-1", "172.16.50.11")
    for name, body in BACKUP_STUBS.items():
        stub(node.bin, name, body)
    stamp = tmp_path / "stamp"
    stamp.write_text("0\n")
    backups = tmp_path / "backups"
    printed = []
    for _ in range(3):
        result = node.run("etcd-backup.sh", NSXKUBE_ETCD_BACKUP_DIR=str(backups), STAMP_FILE=str(stamp))
        assert result.returncode == 0, result.stderr
        printed.append(result.stdout.strip())
    names = sorted(p.name for p in backups.iterdir())
    assert names == ["etcd-k8s-prod-cp-1-20261125T000002Z.db", "etcd-k8s-prod-cp-1-20261125T000002Z.db.sha256",
                     "etcd-k8s-prod-cp-1-20261125T000003Z.db", "etcd-k8s-prod-cp-1-20261125T000003Z.db.sha256"]
    assert printed[-1] == str(backups / "etcd-k8s-prod-cp-1-20261125T000003Z.db")
    check = subprocess.run(["sha256sum", "--check", "--strict", *[n for n in names if n.endswith(".sha256")]],
                           cwd=backups, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    save = node.calls("etcdctl")[0]
    for flag in ("--endpoints=https://127.0.0.1:2379", "/pki/etcd/ca.crt", "/pki/etcd/healthcheck-client.crt",
                 "/pki/etcd/healthcheck-client.key", "snapshot save"):
        assert flag in save
    checks = node.calls("etcdutl")
    assert checks and all(c.startswith("snapshot status ") for c in checks)
    assert oct(backups.stat().st_mode & 0o777) == "0o700"


RESTORE_STUBS = {
    "etcdutl": r"""echo "etcdutl $*" >>"$CALLS"
if [[ $2 == restore ]]; then
  while [[ $# -gt 0 ]]; do [[ $1 == --data-dir ]] && mkdir -p "$2/member"; shift; done
fi""",
    "crictl": 'echo "crictl $*" >>"$CALLS"',
    "date": "echo 20261125T000000Z",
}


def restore_node(tmp_path: Path, files: dict[str, RenderedFile]) -> tuple[Node, Path, dict[str, str]]:
    node = Node(tmp_path, files, "k8s-prod-cp-1", "172.16.50.11")
    for name, body in RESTORE_STUBS.items():
        stub(node.bin, name, body)
    (node.kubernetes / "manifests").mkdir()
    (node.kubernetes / "manifests/etcd.yaml").write_text("kind: Pod\n")
    data = tmp_path / "etcd"
    (data / "member").mkdir(parents=True)
    snapshot = tmp_path / "snap.db"
    snapshot.write_bytes(b"snapshot")
    digest = hashlib.sha256(b"snapshot").hexdigest()
    (tmp_path / "snap.db.sha256").write_text(f"{digest}  snap.db\n")
    return node, snapshot, {"NSXKUBE_ETCD_DATA_DIR": str(data)}


def test_etcd_restore_refuses_without_yes_and_with_a_bad_checksum(files: dict[str, RenderedFile],
                                                                   tmp_path: Path) -> None:
    node, snapshot, env = restore_node(tmp_path, files)
    refused = node.run("etcd-restore.sh", str(snapshot), **env)
    assert refused.returncode != 0 and "without --yes" in refused.stderr
    snapshot.write_bytes(b"tampered")
    tampered = node.run("etcd-restore.sh", "--yes", str(snapshot), **env)
    assert tampered.returncode != 0 and "does not match" in tampered.stderr
    assert (node.kubernetes / "manifests/etcd.yaml").exists()
    assert node.calls("etcdutl") == []


def test_etcd_restore_stops_restores_as_a_member_and_starts_again(files: dict[str, RenderedFile],
                                                                  tmp_path: Path) -> None:
    node, snapshot, env = restore_node(tmp_path, files)
    result = node.run("etcd-restore.sh", "--yes", str(snapshot), **env)
    assert result.returncode == 0, result.stderr
    restore = next(c for c in node.calls("etcdutl") if c.startswith("snapshot restore"))
    members = "k8s-prod-cp-1=https://172.16.50.11:2380,k8s-prod-cp-2=https://172.16.50.12:2380," \
              "k8s-prod-cp-3=https://172.16.50.13:2380"
    for part in (f"--data-dir {tmp_path}/etcd", "--name k8s-prod-cp-1", f"--initial-cluster {members}",
                 "--initial-advertise-peer-urls https://172.16.50.11:2380", "--bump-revision", "--mark-compacted"):
        assert part in restore
    assert (node.kubernetes / "manifests/etcd.yaml").exists()
    assert not (node.kubernetes / "manifests.stopped-by-restore").exists()
    assert (tmp_path / "etcd.before-restore-20261125T000000Z/member").is_dir()
    assert all(f"{step}/5 " in result.stderr for step in range(1, 6)), "each step explains itself"


PING = r"""echo "ping $*" >>"$CALLS"
size=""; target=${*: -1}
while [[ $# -gt 0 ]]; do [[ $1 == -s ]] && size=$2; shift; done
[[ $target != "$BLOCKED" ]] && ((size <= LIMIT))"""


@pytest.mark.parametrize(("limit", "blocked", "verdict", "failures"), [
    (1472, "", "PASS", 0),
    (1473, "", "FAIL", 4),
    (1472, "172.16.50.14", "FAIL", 1),
])
def test_check_mtu_probes_every_other_node_at_the_design_sizes(files: dict[str, RenderedFile], tmp_path: Path,
                                                               limit: int, blocked: str, verdict: str,
                                                               failures: int) -> None:
    node = Node(tmp_path, files, "k8s-prod-cp-1", "172.16.50.11")
    stub(node.bin, "ping", PING)
    result = node.run("check-mtu.sh", LIMIT=str(limit), BLOCKED=blocked)
    assert result.returncode == (0 if verdict == "PASS" else 1)
    lines = result.stdout.splitlines()
    assert lines[-1].startswith(f"verdict: {verdict}")
    assert len([line for line in lines if line.startswith("FAIL")]) == failures
    pings = node.calls("ping")
    assert len(pings) == 8 and not any("172.16.50.11" in p for p in pings)
    assert all(p.startswith("-M do ") for p in pings)
    assert {re.search(r"-s (\d+)", p).group(1) for p in pings} == {"1472", "1473"}  # type: ignore[union-attr]


SLOW_PING = r"""echo "start $(date +%s.%N) ${*: -1}" >>"$CALLS"
sleep 0.5
echo "end $(date +%s.%N) ${*: -1}" >>"$CALLS"
true"""


def test_check_mtu_probes_the_nodes_at_once_and_reports_them_in_node_order(
        files: dict[str, RenderedFile], tmp_path: Path) -> None:
    """A must-fail probe waits for ping's timeout: with many nodes, one after the other would add
    up. Every other node's probes must be in flight together; the output stays in node order."""
    node = Node(tmp_path, files, "k8s-prod-cp-1", "172.16.50.11")
    stub(node.bin, "ping", SLOW_PING)
    result = node.run("check-mtu.sh")
    events = [line.split() for line in node.log.read_text().splitlines() if line.startswith(("start ", "end "))]
    assert result.returncode == 1 and events, result.stderr  # the stand-in passes every size: 4 FAIL lines
    first_end = min(float(t) for kind, t, _ in events if kind == "end")
    started_before = {address for kind, t, address in events if kind == "start" and float(t) < first_end}
    assert len(started_before) == 4  # all four other nodes were probed before any probe finished
    names = [line.split()[1] for line in result.stdout.splitlines() if line.startswith(("ok", "FAIL"))]
    assert names == [n for n in ("k8s-prod-cp-2", "k8s-prod-cp-3", "k8s-prod-worker-1", "k8s-prod-worker-2")
                     for _ in range(2)]


def test_an_image_bundle_brings_the_preload_script_for_exactly_the_design_images() -> None:
    from nsxkube.images import PRELOAD_SCRIPT

    assert PRELOAD_SCRIPT not in render_all(example_design())
    design = example_design({"kubernetes.image_bundle": "/srv/k8s-images.tar", "kubernetes.version": "1.36"})
    script = render_all(design)[PRELOAD_SCRIPT]
    required = re.search(r"REQUIRED=\(\n(.*?)\)", script.content, re.S).group(1).split()  # type: ignore[union-attr]
    assert required == list(design.node_images) and script.executable
    assert "registry.k8s.io/pause:3.10.2" in required and "registry.k8s.io/etcd:3.6.8-0" in required
    assert "registry.k8s.io/kube-proxy:v1.36.5" not in required  # Cilium replaces kube-proxy in the example
    toml = next(c for p, c in template_files(design) if p == "/etc/containerd/config.toml")
    assert "sandbox = 'registry.k8s.io/pause:3.10.2'" in toml  # containerd never asks for another pause


def test_check_mtu_carries_the_design_probe_sizes() -> None:
    design = example_design({"network.node_mtu": 1400})
    text = {f.path: f for f in render_scripts(design)}["scripts/check-mtu.sh"].content
    assert design.mtu.probe_payload == 1372
    assert "PROBE_PAYLOAD=1372\n" in text and "PROBE_PAYLOAD_OVER=1373\n" in text and "NODE_MTU=1400\n" in text
    assert "ping -M 'do'" in text and '-s "$1"' in text
    assert "'k8s-prod-worker-2 172.16.50.15'" in text


def test_scripts_quote_design_values(tmp_path: Path) -> None:
    """A directory with a space and a quote reaches the script as one word, never as code."""
    design = example_design({"addons.backups.etcd.directory": "/var/backups/etcd $(touch /tmp/pwned) it's"})
    text = {f.path: f for f in render_scripts(design)}["scripts/etcd-backup.sh"].content
    script = tmp_path / "backup.sh"
    script.write_text(text.split("\nlog() {")[0] + '\nprintf "%s" "$BACKUP_DIR"\n')
    env = {k: v for k, v in os.environ.items() if k != "NSXKUBE_ETCD_BACKUP_DIR"}
    result = subprocess.run(["bash", script], capture_output=True, text=True, env=env)
    assert result.stdout == "/var/backups/etcd $(touch /tmp/pwned) it's"


def test_shell_is_available_for_the_harmless_runs() -> None:
    # The stand-in runs above rely on these; without them the suite would skip, not pass, silently.
    for tool in ("bash", "sha256sum", "stat", "mktemp", "cmp"):
        assert shutil.which(tool), tool
