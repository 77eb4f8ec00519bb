"""The lab's nodes without starting one: cloud-init's subset on a node's files (and the real
`cloud-init status` reading what it leaves), the lab cluster file with nodes, pod routes, guestinfo
limits, the node's timedatectl."""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from nsxkube.lab.cluster_file import Endpoint, lab_cluster_yaml, with_nodes
from nsxkube.lab.guest import GUESTINFO_LIMIT, decode_guestinfo
from nsxkube.lab.nodes import cloud_init, init
from nsxkube.lab.nodes.fleet import pod_cidr_of
from nsxkube.render.cloud_init import render_node_cloud_init
from nsxkube.spec.example import example_text
from nsxkube.spec.model import ClusterSpec
from tests.support.specs import example_design


def node_files(tmp_path: Path):
    """A node's private directories under tmp_path, as runtime.Node.path maps them."""
    root = tmp_path / "fs"
    (root / "etc" / "sudoers.d").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\nada:x:1000:1000::/home/ada:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nsudo:x:27:\nada:x:1000:\n")
    (root / "etc" / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n")

    def path_of(inside: str) -> Path:
        for private in ("/etc", "/home", "/var/log", "/var/lib"):
            if inside == private or inside.startswith(private + "/"):
                return root / private.strip("/").replace("/", "_") / inside[len(private):].lstrip("/")
        raise ValueError(f"{inside} is not private to the node")

    return path_of


def test_the_users_keys_sudo_and_files_of_nsxkubes_own_user_data_land_in_the_node(tmp_path: Path) -> None:
    design = example_design()
    node = design.ip_plan.workers[0]
    rendered = render_node_cloud_init(design, node)
    path_of = node_files(tmp_path)
    applied = cloud_init.apply_files(cloud_init.user_data_of(rendered.user_data), path_of)
    assert applied.errors == []
    passwd = path_of("/etc/passwd").read_text().splitlines()
    assert "ubuntu:x:1001:1001::/home/ubuntu:/bin/bash" in passwd  # the next free uid: 1000 is taken
    assert "sudo:x:27:ubuntu" in path_of("/etc/group").read_text().splitlines()
    assert "ubuntu:*:" in path_of("/etc/shadow").read_text()  # no password, and not "!" (sshd without PAM)
    keys = path_of("/home/ubuntu/.ssh/authorized_keys")
    assert keys.read_text().splitlines() == list(design.spec.ssh.public_keys)
    assert (keys.stat().st_mode & 0o777, keys.stat().st_uid) == (0o600, 1001)
    sudoers = path_of("/etc/sudoers.d/90-cloud-init-users")
    assert sudoers.read_text() == "ubuntu ALL=(ALL) NOPASSWD:ALL\n" and sudoers.stat().st_mode & 0o777 == 0o440
    assert path_of("/etc/hosts").read_text() == f"127.0.0.1 localhost\n{node.address} {node.name}\n"  # appended
    assert any(line.startswith("ntp: ignored") for line in applied.log)


def test_what_a_lab_node_cannot_do_is_a_cloud_init_error_not_a_silent_skip(tmp_path: Path) -> None:
    path_of = node_files(tmp_path)
    data = {"write_files": [{"path": "/usr/lib/x.conf", "content": "x"}, {"content": "no path"}],
            "packages": ["nginx"], "users": [{"groups": "x"}], "runcmd": [["echo", "a b"], "true"]}
    applied = cloud_init.apply_files(data, path_of)
    assert len(applied.errors) == 4
    assert any("/usr/lib/x.conf is outside" in e for e in applied.errors)
    assert any("nginx cannot be installed" in e for e in applied.errors)
    assert applied.runcmd == ["echo 'a b'", "true"]
    with pytest.raises(ValueError, match="not #cloud-config"):
        cloud_init.user_data_of("#!/bin/sh\necho hi\n")


def test_the_network_config_of_the_meta_data_is_read_as_cloud_init_would() -> None:
    design = example_design()
    node = design.ip_plan.control_planes[0]
    config = cloud_init.network_config(render_node_cloud_init(design, node).meta_data)
    assert config.address == f"{node.address}/{design.ip_plan.prefix_length}"
    assert config.gateway == str(design.ip_plan.gateway) and config.mtu == design.mtu.node_mtu
    assert config.nameservers == [str(a) for a in design.spec.network.dns_servers]
    resolv = cloud_init.resolv_conf(config)
    assert resolv.startswith(f"nameserver {design.spec.network.dns_servers[0]}\n") and "timeout:1" in resolv
    with pytest.raises(ValueError, match="no NIC"):
        cloud_init.network_config("instance-id: x\n")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("cloud-init") or not shutil.which("unshare"),
                    reason="needs root, unshare and Debian's cloud-init")
def test_the_real_cloud_init_status_reads_what_the_lab_leaves(tmp_path: Path) -> None:
    def status(applied: cloud_init.Applied) -> subprocess.CompletedProcess[str]:
        files = cloud_init.status_files(applied, 1000.0, 1004.0)
        for name, text in files.items():
            (tmp_path / name).write_text(text)
        script = (f"mount -t tmpfs tmpfs /run && mkdir -p {cloud_init.STATUS_DIR} && "
                  f"cp {tmp_path}/status.json {tmp_path}/result.json {cloud_init.STATUS_DIR}/ && "
                  "cloud-init status --wait --long")
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                              capture_output=True, text=True, timeout=60)

    done = status(cloud_init.Applied())
    assert done.returncode == 0 and "status: done" in done.stdout, done.stdout + done.stderr
    failed = status(cloud_init.Applied(errors=["packages: nginx cannot be installed on a lab node"]))
    assert failed.returncode != 0 and "status: error" in failed.stdout, failed.stdout


def test_the_lab_file_with_nodes_declares_what_the_sandbox_forces(tmp_path: Path) -> None:
    base = lab_cluster_yaml(example_text("k8s-lab"), vcenter=Endpoint("127.0.0.1", 1, "AB:" * 31 + "AB"),
                            nsx=Endpoint("127.0.0.1", 2, "CD:" * 31 + "CD"), public_key="ssh-ed25519 AAAA lab",
                            private_key_file=tmp_path / "key")
    for synced in (True, False):
        text = with_nodes(base, kubernetes_version="v1.35.8", image_bundle=tmp_path / "images.tar",
                          known_hosts=tmp_path / "known_hosts", clock_synchronized=synced)
        spec = ClusterSpec.model_validate(yaml.safe_load(text))
        assert spec.kubernetes.version == "1.35.8" and spec.kubernetes.image_bundle == tmp_path / "images.tar"
        assert spec.network.api_vip_provider == "keepalived" and spec.ssh.known_hosts_file == tmp_path / "known_hosts"
        assert not spec.addons.cilium.kube_proxy_replacement and spec.addons.ingress.controller == "none"
        assert "172.16.51.1/32" in [str(n) for n in spec.network.admin_networks]
        sandbox = spec.sandbox
        assert sandbox is not None and sandbox.cni == "bridge" and sandbox.kubelet_cgroup_driver == "cgroupfs"
        assert sandbox.kube_proxy_conntrack_max_per_core == 0
        assert sandbox.skip_node_checks == ([] if synced else ["clock"])  # only what this machine forces
    kube_vip = with_nodes(base, kubernetes_version="v1.35.8", image_bundle=tmp_path / "images.tar",
                          known_hosts=tmp_path / "known_hosts", clock_synchronized=True, api_vip_provider="kube-vip")
    assert ClusterSpec.model_validate(yaml.safe_load(kube_vip)).network.api_vip_provider == "kube-vip"


def test_the_lab_images_hold_kube_vip_only_when_it_holds_the_vip() -> None:
    from nsxkube.lab.nodes.setup import node_image_references

    keepalived = node_image_references("v1.35.8")
    kube_vip = node_image_references("v1.35.8", "kube-vip")
    assert not [r for r in keepalived if "kube-vip" in r] and [r for r in kube_vip if "kube-vip" in r]
    assert "registry.k8s.io/kube-proxy:v1.35.8" in keepalived  # the bridge CNI needs kube-proxy


def test_a_pod_cidr_is_read_from_the_bridge_conflist_and_nothing_else(tmp_path: Path) -> None:
    conflist = tmp_path / "10-nsxkube-bridge.conflist"
    assert pod_cidr_of(conflist) is None
    conflist.write_text(json.dumps({"plugins": [{"type": "bridge", "ipam": {"ranges": [[{"subnet": "10.245.3.0/24"}]]}},
                                                {"type": "portmap"}]}))
    assert pod_cidr_of(conflist) == "10.245.3.0/24"
    for broken in ("{", json.dumps({"plugins": [{"ipam": {"ranges": [[{"subnet": "10.245.3.7"}]]}}]}),
                   json.dumps({"plugins": [{"ipam": {"ranges": [[{"subnet": "not a network"}]]}}]})):
        conflist.write_text(broken)
        assert pod_cidr_of(conflist) is None


def test_guestinfo_beyond_the_limit_is_refused_without_inflating_it() -> None:
    small = base64.b64encode(gzip.compress(b"instance-id: x\n")).decode()
    assert decode_guestinfo(small, "gzip+base64") == "instance-id: x\n"
    bomb = base64.b64encode(gzip.compress(b"a" * (GUESTINFO_LIMIT * 8))).decode()
    with pytest.raises(ValueError, match="over 1 MiB"):
        decode_guestinfo(bomb, "gzip+base64")


def test_timedatectl_on_a_node_reports_the_kernels_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    expected = "yes" if init.clock_synchronized() else "no"
    assert init.timedatectl(["show", "-p", "NTPSynchronized", "--value"]) == 0
    assert capsys.readouterr().out == f"{expected}\n"
    assert init.timedatectl(["status"]) == 0
    assert f"System clock synchronized: {expected}" in capsys.readouterr().out
    assert init.timedatectl(["set-ntp", "true"]) == 1
