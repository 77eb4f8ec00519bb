"""network.api_vip_provider: keepalived — the design, the rendered configuration and the scripts.

keepalived's own parser checks the configuration (``keepalived --config-test``); the bootstrap and
join scripts run with stand-in programs on PATH (tests/render/test_node_render.py's throwaway node),
with a real CA key made by openssl so the password derivation is the real one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from nsxkube.design import Design
from nsxkube.render.bundle import render_bundle
from nsxkube.render.cloud_init import NODE_NIC, render_node_cloud_init
from nsxkube.render.keepalived import (
    AUTH_PASS_PLACEHOLDER,
    FIRST_PRIORITY,
    PRIORITY_STEP,
    render_keepalived,
    virtual_router_id,
)
from nsxkube.render.nsx import desired_nsx_objects, infra_patch_body
from nsxkube.render.nsx_objects import port_address_bindings, service_entries
from tests.render.test_node_render import CA_HASH, CERT_KEY, TOKEN, Node, render_all, stub
from tests.render.test_nsx_render import check
from tests.support.specs import example_design
from tests.support.validators import cloud_init_schema, require_tool


@pytest.fixture(scope="module")
def design() -> Design:
    return example_design({"network.api_vip_provider": "keepalived"})


def test_kube_vip_stays_the_default():
    assert example_design().api_vip_provider == "kube-vip"


def parse(conf: str) -> dict[str, object]:
    """The few keys the tests look at, from keepalived.conf's text."""
    value = lambda key: re.search(rf"^\s*{key} (\S+)", conf, re.M).group(1)  # noqa: E731
    peers = re.search(r"unicast_peer \{\n(.*?)\n\s*\}", conf, re.S).group(1)
    return {"src": value("unicast_src_ip"), "priority": int(value("priority")), "vrid": int(value("virtual_router_id")),
            "interface": value("interface"), "advert_int": value("advert_int"),
            "peers": [line.split()[0] for line in peers.splitlines()],
            "vip": re.search(r"virtual_ipaddress \{\n\s*(\S+)", conf).group(1)}


def test_one_configuration_per_control_plane_with_unicast_peers_and_no_password(design):
    files = {f.path: f.content for f in render_keepalived(design)}
    planes = design.ip_plan.control_planes
    assert sorted(files) == sorted(f"keepalived/{n.name}.conf" for n in planes)
    parsed = [parse(files[f"keepalived/{n.name}.conf"]) for n in planes]
    for node, conf in zip(planes, parsed, strict=True):
        assert conf["src"] == str(node.address)
        assert sorted(conf["peers"]) == sorted(str(n.address) for n in planes if n is not node)
        assert conf["interface"] == NODE_NIC and conf["vip"] == f"{design.ip_plan.api_vip}/32"
    assert [c["priority"] for c in parsed] == [FIRST_PRIORITY - PRIORITY_STEP * i for i in range(len(planes))]
    assert {c["vrid"] for c in parsed} == {virtual_router_id(design)} and 1 <= virtual_router_id(design) <= 255
    for text in files.values():
        assert f"auth_pass {AUTH_PASS_PLACEHOLDER}" in text
        assert "nopreempt" in text and "state BACKUP" in text and "weight 0" in text
        assert "https://127.0.0.1:6443/readyz" in text


def keepalived_findings(path: Path) -> list[str]:
    """What ``keepalived --config-test`` says about the file, run in a fresh network namespace that has
    the NIC the configuration names (keepalived 2.2.7 ends a config test with SIGTERM whatever it found,
    so the findings are its output lines, each naming the file)."""
    require_tool("keepalived")
    require_tool("unshare")
    script = (f"ip link add {NODE_NIC} type veth peer name {NODE_NIC}p && ip link set {NODE_NIC} up "
              f"&& exec setsid -w keepalived --config-test -f {path} -l")
    result = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, text=True, timeout=60,
                            check=False)
    if "Operation not permitted" in result.stderr:
        pytest.skip("needs root for a network namespace: " + result.stderr.strip())
    return [line for line in (result.stdout + result.stderr).splitlines() if str(path) in line]


def test_keepalived_itself_accepts_the_configuration(design, tmp_path):
    conf = render_keepalived(design)[0].content.replace(AUTH_PASS_PLACEHOLDER, "Ab3dEf7h")
    good, bad = tmp_path / "keepalived.conf", tmp_path / "broken.conf"
    good.write_text(conf)
    bad.write_text(conf.replace("auth_type PASS", "auth_type PASSX").replace("nopreempt", "no_preempt_please"))
    assert keepalived_findings(good) == []
    assert len(keepalived_findings(bad)) == 2, "the config test must find the two broken lines"


def test_the_providers_render_only_their_own_files(design):
    kube_vip = example_design()
    keepalived_paths = {f.path for f in render_bundle(design)}
    kube_vip_paths = {f.path for f in render_bundle(kube_vip)}
    assert not [p for p in keepalived_paths if "kube-vip" in p]
    assert not [p for p in kube_vip_paths if p.startswith("keepalived/")]
    assert "kubeadm/kube-vip.yaml" in kube_vip_paths
    assert not [i for i in design.node_images if "kube-vip" in i]
    assert [i for i in kube_vip.node_images if "kube-vip" in i]


def test_vrrp_passes_the_dfw_between_control_planes_only_with_keepalived(design):
    flows = {f.id: f for f in design.ports}
    assert "vrrp" not in {f.id for f in example_design().ports}
    vrrp = flows["vrrp"]
    assert (vrrp.source, vrrp.destination, vrrp.protocol) == ("control-planes", "control-planes", "VRRP")
    assert service_entries(vrrp) == [{"resource_type": "IPProtocolServiceEntry", "id": "vrrp", "display_name": "vrrp",
                                      "protocol_number": 112}]
    assert check(infra_patch_body(desired_nsx_objects(design)), design) == []


def test_the_vip_bindings_do_not_depend_on_the_provider(design):
    # keepalived answers ARP with the NIC's own MAC (no use_vmac), as kube-vip does: the same bindings
    assert port_address_bindings(design) == port_address_bindings(example_design())
    assert all(str(design.ip_plan.api_vip) in port_address_bindings(design)[n.name]
               for n in design.ip_plan.control_planes)


def test_control_planes_install_the_package_from_cloud_init(design, tmp_path):
    for node in design.ip_plan.nodes:
        user_data = render_node_cloud_init(design, node).user_data
        data = yaml.safe_load(user_data)
        assert data.get("packages") == (["keepalived"] if node.is_control_plane else None), node.name
        path = tmp_path / f"{node.name}.yaml"
        path.write_text(user_data)
        assert cloud_init_schema(path) == []
    kube_vip = example_design()
    assert all("packages" not in yaml.safe_load(render_node_cloud_init(kube_vip, n).user_data)
               for n in kube_vip.ip_plan.nodes)


def test_check_names_the_provider(tmp_path):
    from tests.cli.test_init_check import nsxkube

    target = tmp_path / "cluster.yaml"
    assert nsxkube("init", str(target)).returncode == 0
    target.write_text(target.read_text().replace("api_vip: 172.16.50.10", "api_vip: 172.16.50.10\n"
                                                 "  api_vip_provider: keepalived"))
    result = nsxkube("check", str(target))
    assert result.returncode == 0, result.stderr
    assert "VIP held by keepalived" in result.stdout and "vrrp" in result.stdout
    as_json = nsxkube("check", str(target), "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["design"]["api_vip_provider"] == "keepalived"


# ---- the scripts on a throwaway node ------------------------------------------------------------


def expected_password(ca_key: Path, cluster: str) -> str:
    digest = hmac.new(f"nsxkube-vrrp:{cluster}".encode(), ca_key.read_bytes(), hashlib.sha256).digest()
    return re.sub(r"[^A-Za-z0-9]", "", base64.b64encode(digest).decode())[:8]


KUBEADM = r"""
echo "kubeadm $*" >>"$CALLS"
case "$1 $2 $3" in
  "init phase certs")
    mkdir -p "$NSXKUBE_KUBERNETES_DIR/pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$NSXKUBE_KUBERNETES_DIR/pki/ca.key" \
      -out "$NSXKUBE_KUBERNETES_DIR/pki/ca.crt" -subj /CN=kubernetes -days 1 2>/dev/null ;;
  "init --config "*) echo "apiVersion: v1" >"$NSXKUBE_KUBERNETES_DIR/admin.conf" ;;
  "token create "*) echo "@TOKEN@" ;;
  "init phase upload-certs") echo "@CERT_KEY@" ;;
  "join --config "*) touch "$NSXKUBE_KUBERNETES_DIR/kubelet.conf"
    if [[ -f ${JOIN_CA_KEY:-} ]]; then
      mkdir -p "$NSXKUBE_KUBERNETES_DIR/pki" && cp "$JOIN_CA_KEY" "$NSXKUBE_KUBERNETES_DIR/pki/ca.key"
    fi ;;
esac
"""
# systemctl: keepalived is active once restarted
SYSTEMCTL = r"""
echo "systemctl $*" >>"$CALLS"
case "$*" in
  "restart keepalived") touch "$NSXKUBE_KUBERNETES_DIR/.keepalived-active" ;;
  "is-active --quiet keepalived") [[ -f "$NSXKUBE_KUBERNETES_DIR/.keepalived-active" ]] ;;
esac
"""


def keepalived_node(tmp_path: Path, design: Design, host: str, address: str) -> Node:
    require_tool("openssl")
    node = Node(tmp_path, render_all(design), host, address)
    stub(node.bin, "kubeadm", KUBEADM.replace("@TOKEN@", TOKEN).replace("@CERT_KEY@", CERT_KEY))
    stub(node.bin, "kubectl", '[[ -f "$NSXKUBE_KUBERNETES_DIR/admin.conf" ]]')
    stub(node.bin, "systemctl", SYSTEMCTL)
    stub(node.bin, "keepalived", "exit 0")
    node.env["NSXKUBE_KEEPALIVED_DIR"] = str(tmp_path / "etc-keepalived")
    return node


def test_bootstrap_makes_the_ca_starts_keepalived_then_inits(design, tmp_path):
    node = keepalived_node(tmp_path, design, "k8s-prod-cp-1", "172.16.50.11")
    result = node.run("bootstrap-control-plane.sh")
    assert result.returncode == 0, result.stderr
    calls = node.log.read_text().splitlines()
    certs = calls.index(f"kubeadm init phase certs ca --config {node.bundle}/kubeadm/init.yaml")
    started = calls.index("systemctl restart keepalived")
    init = next(i for i, c in enumerate(calls) if c.startswith("kubeadm init --config"))
    assert certs < started < init, "the VIP holder must run before kubeadm init needs the VIP"
    installed = tmp_path / "etc-keepalived" / "keepalived.conf"
    assert stat.S_IMODE(installed.stat().st_mode) == 0o600
    text = installed.read_text()
    password = expected_password(node.kubernetes / "pki/ca.key", design.name)
    assert len(password) == 8 and f"auth_pass {password}\n" in text
    assert AUTH_PASS_PLACEHOLDER not in text
    assert text == render_keepalived(design)[0].content.replace(AUTH_PASS_PLACEHOLDER, password)
    assert password not in result.stdout + result.stderr, "the password must not be logged"
    assert not [c for c in calls if password in c]

    again = node.run("bootstrap-control-plane.sh")
    assert again.returncode == 0 and "nothing to do" in again.stderr
    assert node.log.read_text().splitlines().count("systemctl restart keepalived") == 1, "unchanged: no restart"


@pytest.mark.parametrize("same_ca", [True, False])
def test_a_joining_control_plane_derives_the_same_password_from_the_same_ca(design, tmp_path, same_ca):
    first = keepalived_node(tmp_path / "first", design, "k8s-prod-cp-1", "172.16.50.11")
    assert first.run("bootstrap-control-plane.sh").returncode == 0
    ca_key = first.kubernetes / "pki/ca.key"
    if not same_ca:
        ca_key = tmp_path / "other-ca.key"
        subprocess.run(["openssl", "genrsa", "-out", str(ca_key), "2048"], check=True, capture_output=True)
    second = keepalived_node(tmp_path / "second", design, "k8s-prod-cp-2", "172.16.50.12")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    joined = second.run("join-control-plane.sh", NSXKUBE_JOIN_TOKEN=TOKEN, NSXKUBE_CA_CERT_HASH=CA_HASH,
                        NSXKUBE_CERTIFICATE_KEY=CERT_KEY, NSXKUBE_RUN_DIR=str(run_dir), JOIN_CA_KEY=str(ca_key))
    assert joined.returncode == 0, joined.stderr
    mine = re.search(r"auth_pass (\S+)", (tmp_path / "second/etc-keepalived/keepalived.conf").read_text()).group(1)
    theirs = re.search(r"auth_pass (\S+)", (tmp_path / "first/etc-keepalived/keepalived.conf").read_text()).group(1)
    assert (mine == theirs) is same_ca
    assert "unicast_src_ip 172.16.50.12" in (tmp_path / "second/etc-keepalived/keepalived.conf").read_text()


def test_a_worker_join_leaves_keepalived_alone(design, tmp_path):
    node = keepalived_node(tmp_path, design, "k8s-prod-worker-1", "172.16.50.14")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = node.run("join-worker.sh", NSXKUBE_JOIN_TOKEN=TOKEN, NSXKUBE_CA_CERT_HASH=CA_HASH,
                      NSXKUBE_RUN_DIR=str(run_dir), JOIN_CA_KEY="/nonexistent")
    assert result.returncode == 0, result.stderr
    assert not [c for c in node.log.read_text().splitlines() if "keepalived" in c]


def test_the_runbook_explains_keepalived_and_copies_its_files_to_the_control_planes(design, tmp_path):
    from nsxkube.render.docs import render_docs
    from tests.render.test_docs_render import bash_blocks

    pages = {f.path: f.content for f in render_docs(design)}
    stage1 = pages["docs/stage-1-cluster-and-addons.md"]
    produced = {f.path for f in render_bundle(design)}
    mentioned = set(re.findall(r"keepalived/[\w.-]+\.conf", "".join(pages.values())))
    assert mentioned and mentioned <= produced
    assert "nopreempt" in stage1 and "never in cluster.yaml or this bundle" in stage1
    for node in design.ip_plan.nodes:
        (copy,) = [line for line in stage1.splitlines() if line.startswith("ssh ") and f"@{node.address} " in line
                   and " scp " in line]
        assert (" keepalived " in copy) is node.is_control_plane, copy
    troubleshooting = pages["docs/troubleshooting.md"]
    assert "(keepalived)" in troubleshooting and "super-admin" not in troubleshooting
    for index, block in enumerate(bash_blocks("".join(pages.values()))):
        script = tmp_path / f"block{index}.sh"
        script.write_text(block)
        assert subprocess.run(["bash", "-n", str(script)], capture_output=True, check=False).returncode == 0, block
