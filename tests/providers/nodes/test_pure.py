"""The node provider's pure parts, from tables: command text, probes, CSR judgement, kubeconfig, logs."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from nsxkube.errors import ProviderError
from nsxkube.providers.nodes import commands, kube, kubeconfig, probes
from nsxkube.providers.nodes.client import parse_bastion
from nsxkube.providers.nodes.log import REDACTED, NodeLog, redact
from nsxkube.providers.nodes.model import Result, Target
from tests.providers.nodes.standins import serving_csr

# ---- commands ---------------------------------------------------------------------------------


def test_root_runs_bash_directly_and_others_through_sudo_without_prompt() -> None:
    assert commands.as_root("echo 'hi'", "root") == "bash -c 'echo '\"'\"'hi'\"'\"''"
    assert commands.as_root("id -u", "ubuntu") == "sudo -n -- bash -c 'id -u'"


def test_secrets_come_from_stdin_and_only_their_names_are_in_the_command(tmp_path: Path) -> None:
    script = commands.with_secret_env(["NSXKUBE_JOIN_TOKEN", "NSXKUBE_CA_CERT_HASH"],
                                      commands.env_prefix({"NSXKUBE_NODE_NAME": "w 1"}) + "env")
    stdin = commands.secret_stdin(["tok$en'`x", "sha256:ab"])
    assert "tok" not in script
    result = subprocess.run(["bash", "-c", script], input=stdin, capture_output=True, check=True)
    env = dict(line.split("=", 1) for line in result.stdout.decode().splitlines() if "=" in line)
    assert env["NSXKUBE_JOIN_TOKEN"] == "tok$en'`x" and env["NSXKUBE_CA_CERT_HASH"] == "sha256:ab"
    assert env["NSXKUBE_NODE_NAME"] == "w 1"


@pytest.mark.parametrize("names", [["lower"], ["A;rm"], ["1X"]])
def test_only_environment_names_are_accepted(names: list[str]) -> None:
    with pytest.raises(ValueError):
        commands.with_secret_env(names, "true")


def test_a_secret_with_a_newline_is_refused() -> None:
    with pytest.raises(ValueError):
        commands.secret_stdin(["a\nb"])


def test_uploads_unpack_private_and_executable_where_they_should(tmp_path: Path) -> None:
    archive = commands.tar_archive({"scripts/x.sh": ("#!/bin/sh\necho x\n", 0o755), "kubeadm/a.yaml": ("a: 1\n", 0o644)})
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert {m.name: (m.uid, m.mode) for m in tar.getmembers()} == {"kubeadm/a.yaml": (0, 0o644),
                                                                       "scripts/x.sh": (0, 0o755)}
    target = tmp_path / "bundle dir"
    subprocess.run(["bash", "-c", commands.extract_into(str(target))], input=archive, check=True)
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert stat.S_IMODE((target / "scripts/x.sh").stat().st_mode) == 0o700
    assert stat.S_IMODE((target / "kubeadm/a.yaml").stat().st_mode) == 0o600
    assert subprocess.run([target / "scripts/x.sh"], capture_output=True, text=True).stdout == "x\n"


@pytest.mark.parametrize(("text", "expected"), [
    ("ops@jump.example.com", Target("bastion", "jump.example.com", 22, "ops")),
    ("ops@10.0.0.5:2222", Target("bastion", "10.0.0.5", 2222, "ops")),
    ("jump", Target("bastion", "jump", 22, "root")),
    ("ops@[fd00::1]:22", Target("bastion", "fd00::1", 22, "ops")),
])
def test_bastion_is_user_at_host_port(text: str, expected: Target) -> None:
    assert parse_bastion(text, "root") == expected


def test_a_bad_bastion_is_refused() -> None:
    with pytest.raises(ProviderError):
        parse_bastion("ops@host:ssh", "root")


def test_targets_name_themselves_with_their_address() -> None:
    assert Target("w1", "10.0.0.1").where == "w1 (10.0.0.1)"
    assert Target("w1", "10.0.0.1", 2222).known_hosts_name == "[10.0.0.1]:2222"
    assert Result("x", 1, "out\n", "a\nlast words\n\n", 0.1).last_line() == "last words"
    assert Result("x", 1, "only out\n", "", 0.1).last_line() == "only out"
    assert Result("x", 3, "", "", 0.1).last_line() == "exit status 3"


# ---- probes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("output", "initialized", "joined", "cni"), [
    ("admin.conf=yes\nkubelet.conf=yes\ncni=yes\n", True, True, True),
    ("admin.conf=no\nkubelet.conf=yes\ncni=no\n", False, True, False),
    ("admin.conf=no\nkubelet.conf=no\n", False, False, False),
    ("", False, False, False),
])
def test_node_state(output: str, initialized: bool, joined: bool, cni: bool) -> None:
    assert probes.parse_state("n", output) == probes.LiveNode("n", initialized, joined, cni)


@pytest.mark.parametrize("files", [[], ["10-nsxkube-bridge.conflist"], ["99-other.conf"], ["README"]])
def test_the_state_script_reports_a_cni_configuration(tmp_path: Path, files: list[str]) -> None:
    cni_dir = tmp_path / "net.d"
    cni_dir.mkdir()
    for name in files:
        (cni_dir / name).write_text("{}")
    script = probes.STATE_SCRIPT.replace(probes.CNI_DIR, str(cni_dir))
    output = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=10, check=True).stdout
    assert probes.parse_state("n", output).cni == any(n.endswith((".conf", ".conflist")) for n in files)


def test_the_state_script_sees_a_running_kubeadm_and_what_kubeadm_left(tmp_path: Path) -> None:
    """A kubeadm at work (one the killed run started, which outlived its SSH session) and the files of
    an init or join that stopped half-way (certificates, static Pods, but no kubelet.conf)."""
    kube_dir = tmp_path / "kubernetes"
    (kube_dir / "pki").mkdir(parents=True)
    script = probes.STATE_SCRIPT.replace(probes.KUBERNETES_DIR, str(kube_dir))
    fake = tmp_path / "bin" / "kubeadm"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nsleep 30\n")
    fake.chmod(0o755)

    def state() -> probes.LiveNode:
        output = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=10, check=True).stdout
        return probes.parse_state("n", output)

    assert not state().kubeadm_running and not state().needs_reset
    (kube_dir / "pki" / "ca.crt").write_text("x")
    assert state().started and state().needs_reset  # kubeadm began here and did not finish
    (kube_dir / "kubelet.conf").write_text("x")
    assert not state().needs_reset  # a joined node
    running = subprocess.Popen([str(fake)])
    try:
        for _ in range(50):
            if state().kubeadm_running:
                break
        assert state().kubeadm_running
    finally:
        running.kill()
        running.wait()


@pytest.mark.parametrize(("output", "finished"), [
    ("api=yes\nkubeadm-config=yes\n", True), ("api=yes\nkubeadm-config=no\n", False), ("api=no\n", None), ("", None)])
def test_an_init_is_finished_when_the_api_holds_kubeadms_configuration(output: str, finished: bool | None) -> None:
    assert probes.init_finished(output) is finished


def test_a_half_done_init_needs_a_reset_even_with_admin_conf() -> None:
    assert probes.LiveNode("n", initialized=False, joined=False, half_done=True).needs_reset
    assert not probes.LiveNode("n", initialized=True, joined=False, started=True).needs_reset


@pytest.mark.parametrize(("output", "status"), [
    ("....\nstatus: done\n", "done"), ("status: error\n", "error"), ("\n", "unknown"),
    ("status: degraded done\n", "degraded done"),
])
def test_cloud_init_status(output: str, status: str) -> None:
    assert probes.cloud_init_status(output) == status


READY = ("swap=\noverlay=yes\nbridge-nf-call-iptables=1\nip_forward=1\ncontainerd=active\nntp-synchronized=yes\n"
         "listening=22 53 \n")


@pytest.mark.parametrize(("change", "problem"), [
    ({}, None),
    ({"swap": "/swap.img "}, "swap is on (/swap.img)"),
    ({"overlay": "no"}, "overlay filesystem is missing"),
    ({"bridge-nf-call-iptables": "missing"}, "br_netfilter is not loaded"),
    ({"bridge-nf-call-iptables": "0"}, "bridge-nf-call-iptables is not 1"),
    ({"ip_forward": "0"}, "ip_forward is not 1"),
    ({"containerd": "inactive"}, "containerd is not running (inactive)"),
    ({"ntp-synchronized": "no"}, "clock is not synchronized"),
    ({"listening": "22 6443 10250"}, "port(s) 6443, 10250 already in use"),
])
def test_preflight_problems(change: dict[str, str], problem: str | None) -> None:
    values = probes.key_values(READY) | change
    output = "".join(f"{k}={v}\n" for k, v in values.items())
    found = probes.preflight_problems(output, (6443, 10250))
    assert found == [] if problem is None else (len(found) == 1 and problem in found[0]), found


def test_preflight_script_reads_this_machine(tmp_path: Path) -> None:
    result = subprocess.run(["bash", "-c", probes.PREFLIGHT_SCRIPT], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert set(probes.key_values(result.stdout)) == {"swap", "overlay", "bridge-nf-call-iptables", "ip_forward",
                                                     "containerd", "ntp-synchronized", "listening"}


# ---- kubelet-serving CSRs and nodes ----------------------------------------------------------------

NODES = {"w1": "10.0.0.14", "cp1": "10.0.0.11"}


def csr_item(name: str, username: str, pem: bytes, *, groups: tuple[str, ...] = ("system:nodes",),
             usages: tuple[str, ...] = ("digital signature", "server auth"), approved: bool = False,
             signer: str = kube.SERVING_SIGNER) -> dict:
    import base64

    status = {"conditions": [{"type": "Approved"}]} if approved else {}
    return {"metadata": {"name": name}, "status": status,
            "spec": {"signerName": signer, "username": username, "groups": list(groups), "usages": list(usages),
                     "request": base64.b64encode(pem).decode()}}


def judge(item: dict) -> str | None:
    import json

    (csr,) = kube.parse_csrs(json.dumps({"items": [item]}))
    return kube.serving_csr_refusal(csr, NODES)


def test_a_nodes_own_serving_request_is_approved() -> None:
    assert judge(csr_item("a", "system:node:w1", serving_csr("w1", ["w1"], ["10.0.0.14"]))) is None


@pytest.mark.parametrize(("item", "reason"), [
    (csr_item("b", "system:node:intruder", serving_csr("intruder", ["intruder"], ["10.0.0.99"])),
     "not by a node of this cluster"),
    (csr_item("c", "alice", serving_csr("w1", ["w1"], ["10.0.0.14"])), "not by a node of this cluster"),
    (csr_item("d", "system:node:w1", serving_csr("w1", ["w1"], ["10.0.0.11"])), "10.0.0.11"),
    (csr_item("e", "system:node:w1", serving_csr("w1", ["cp1"], ["10.0.0.14"])), "names cp1"),
    (csr_item("f", "system:node:w1", serving_csr("w1", ["w1"], ["10.0.0.14"]), groups=("system:authenticated",)),
     "not in the group system:nodes"),
    (csr_item("g", "system:node:w1", serving_csr("w1", ["w1"], ["10.0.0.14"]), usages=("client auth",)),
     "usages client auth"),
])
def test_requests_that_are_not_exactly_a_nodes_own_are_refused(item: dict, reason: str) -> None:
    refusal = judge(item)
    assert refusal is not None and reason in refusal


def test_csr_conditions_and_nodes_parse() -> None:
    import json

    items = [csr_item("x", "system:node:w1", b"not a csr", approved=True)]
    (csr,) = kube.parse_csrs(json.dumps({"items": items}))
    assert csr.condition == "Approved" and not csr.pending and csr.other_names == ("<unreadable request>",)
    nodes = kube.parse_nodes(json.dumps({"items": [{"metadata": {"name": "w1", "labels": {"a": "b"}}}]}))
    assert nodes == [kube.LiveKubeNode("w1", {"a": "b"})]
    with pytest.raises(ProviderError):
        kube.parse_nodes("error: the server doesn't have a resource type")
    assert kube.label_nodes_script(["w1", "w2"], {"b": "", "a": "x y"}).endswith(
        "label node w1 w2 --overwrite 'a=x y' b=")
    assert kube.approve_csrs_script(["csr-1", "csr-2"]).endswith("certificate approve csr-1 csr-2")


# ---- kubeconfig, logs ---------------------------------------------------------------------------

ADMIN_CONF = """apiVersion: v1
kind: Config
clusters:
- name: k8s-prod
  cluster: {certificate-authority-data: Q0E=, server: 'https://10.0.0.11:6443'}
users:
- name: kubernetes-admin
  user: {client-key-data: S0VZ}
"""


def test_the_kubeconfig_points_at_the_endpoint_and_is_written_private(tmp_path: Path) -> None:
    text = kubeconfig.render_kubeconfig(ADMIN_CONF, "10.0.0.10:6443")
    assert kubeconfig.server_of(text) == "https://10.0.0.10:6443"
    assert yaml.safe_load(text)["users"][0]["user"]["client-key-data"] == "S0VZ"
    path = tmp_path / "work" / "kubeconfig"
    old = os.umask(0)
    try:
        kubeconfig.create_kubeconfig(path, text)
        kubeconfig.create_kubeconfig(path, text)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and kubeconfig.get_kubeconfig(path) == text
    assert [p.name for p in path.parent.iterdir()] == ["kubeconfig"]
    with pytest.raises(ProviderError):
        kubeconfig.render_kubeconfig("not: [a kubeconfig", "x:6443")


def test_logs_are_private_and_never_hold_a_secret(tmp_path: Path) -> None:
    secrets = {"s3cr3t"}
    log = NodeLog(tmp_path / "logs" / "n1.log", secrets)
    log.command("join", "run it", "exit 0", 1.0, "got s3cr3t and k3y", "stderr s3cr3t", secrets=("k3y",))
    log.command("init", "run", "exit 0", 1.0, None, "")
    text = log.path.read_text()
    assert "s3cr3t" not in text and "k3y" not in text and text.count(REDACTED) == 3
    assert "stdout withheld" in text
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.path.parent.stat().st_mode) == 0o700
    assert redact("abcabc", ["abc", "abcabc"]) == REDACTED


def test_a_node_is_ready_only_with_a_true_ready_condition() -> None:
    def listed(*conditions: dict[str, str]) -> str:
        return json.dumps({"items": [{"metadata": {"name": "n"}, "status": {"conditions": list(conditions)}}]})

    assert kube.parse_nodes(listed({"type": "Ready", "status": "True"}))[0].ready
    assert not kube.parse_nodes(listed({"type": "Ready", "status": "False"}))[0].ready
    assert not kube.parse_nodes(listed({"type": "MemoryPressure", "status": "True"}))[0].ready
    assert not kube.parse_nodes(json.dumps({"items": [{"metadata": {"name": "n"}}]}))[0].ready


def test_a_sandbox_may_skip_the_clock_check_and_nothing_else() -> None:
    output = "overlay=yes\nbridge-nf-call-iptables=1\nip_forward=1\ncontainerd=active\nntp-synchronized=no\n"
    assert [p for p in probes.preflight_problems(output, []) if "clock" in p]
    assert probes.preflight_problems(output, [], skip=["clock"]) == []
    assert probes.preflight_problems(output.replace("ip_forward=1", "ip_forward=0"), [], skip=["clock"])


def test_control_plane_components_count_only_when_their_static_pod_is_ready() -> None:
    def pod(component: str, node: str, ready: str) -> dict:
        return {"metadata": {"labels": {"component": component, "tier": "control-plane"}},
                "spec": {"nodeName": node}, "status": {"conditions": [{"type": "Ready", "status": ready}]}}

    output = json.dumps({"items": [pod("etcd", "cp-1", "True"), pod("kube-apiserver", "cp-1", "True"),
                                   pod("etcd", "cp-3", "False"), pod("kube-scheduler", "cp-3", "True")]})
    assert kube.ready_components(output) == {"cp-1": {"etcd", "kube-apiserver"}, "cp-3": {"kube-scheduler"}}
