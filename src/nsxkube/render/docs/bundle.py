"""Paths of the bundle files the runbook walks through, and per-cluster command fragments.

The files outside ``addons/`` are rendered by other parts of ``nsxkube.render``; the runbook
refers to them by these paths only.
"""

from __future__ import annotations

from nsxkube.design import Design, Node

NSX_INFRA_PATCH = "nsx/infra-patch.json"
NSX_APPLY = "nsx/apply.sh"
NSX_SEGMENT = "nsx/segment.md"
NSX_SPOOFGUARD = "nsx/spoofguard-allowlist.md"
NSX_DFW_RULES = "nsx/dfw-rules.md"

TEMPLATE_USER_DATA = "vm-template/user-data"
TEMPLATE_PREPARE = "vm-template/prepare-vm.sh"
TEMPLATE_PACKAGES = "vm-template/packages.txt"
TEMPLATE_SETTINGS = "vm-template/vm-settings.md"

KUBEADM_INIT = "kubeadm/init.yaml"
KUBEADM_JOIN_CONTROL_PLANE = "kubeadm/join-control-plane.yaml"
KUBEADM_JOIN_WORKER = "kubeadm/join-worker.yaml"
KUBE_VIP = "kubeadm/kube-vip.yaml"

BOOTSTRAP_CONTROL_PLANE = "scripts/bootstrap-control-plane.sh"
JOIN_CONTROL_PLANE = "scripts/join-control-plane.sh"
JOIN_WORKER = "scripts/join-worker.sh"
ETCD_BACKUP = "scripts/etcd-backup.sh"
ETCD_RESTORE = "scripts/etcd-restore.sh"
CHECK_MTU = "scripts/check-mtu.sh"

# Where the runbook copies kubeadm/ and scripts/ on a node before running a script there.
NODE_WORKDIR = "nsxkube"


def node_files(node: Node) -> tuple[str, str, str]:
    """nodes/<vm>/meta-data, user-data and guestinfo.env of one node."""
    base = f"nodes/{node.name}"
    return f"{base}/meta-data", f"{base}/user-data", f"{base}/guestinfo.env"


def ssh_options(design: Design, flag: str) -> str:
    """Port and bastion options for ssh (flag ``-p``) or scp (flag ``-P``)."""
    ssh = design.spec.ssh
    options = []
    if ssh.port != 22:
        options.append(f"{flag} {ssh.port}")
    if ssh.bastion:
        options.append(f"-J {ssh.bastion}")
    return "".join(f"{o} " for o in options)


def ssh_target(design: Design, node: Node) -> str:
    return f"{design.spec.ssh.user}@{node.address}"


def ssh(design: Design, node: Node, command: str) -> str:
    return f"ssh {ssh_options(design, '-p')}{ssh_target(design, node)} {command}"


def copy_to_node(design: Design, node: Node, sources: str) -> str:
    return f"scp {ssh_options(design, '-P')}-r {sources} {ssh_target(design, node)}:{NODE_WORKDIR}/"


def curl_tls_options(design: Design) -> str:
    """How curl trusts NSX Manager, as the spec says (verification stays on unless told otherwise)."""
    tls = design.spec.nsx.tls
    if tls.insecure:
        return "-k "
    if tls.ca_file:
        return f"--cacert {tls.ca_file} "
    return ""


def nsx_get(design: Design, path: str) -> str:
    """A read-only NSX Policy API call; the login goes through stdin, never the command line."""
    creds = design.spec.nsx.credentials
    return (f"curl -fsS {curl_tls_options(design)}-K - \"https://{design.spec.nsx.manager}/policy/api/v1{path}\" "
            f"<<< \"user = \\\"${creds.user_env}:${creds.password_env}\\\"\"")
