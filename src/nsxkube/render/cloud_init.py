"""What the VMs boot with: each node's cloud-init (meta-data with the network, user-data, and the
guestinfo keys the clone carries) and the template's cloud-config that runs prepare-vm.sh.

The machines phase calls `render_node_cloud_init` for every clone, so a VM receives exactly
what `nsxkube render` writes under nodes/<vm-name>/.
"""

from __future__ import annotations

import base64
import gzip
from dataclasses import dataclass
from typing import Any

from nsxkube.design import Design, Node
from nsxkube.render.files import to_yaml
from nsxkube.render.template_vm import PREPARE_VM_TARGET, TEMPLATE_READY_MARKER, prepare_vm_script

# netplan renames the first vmxnet3 NIC to this name, so kube-vip (vip_interface) and the
# offload unit can rely on it whatever PCI slot vSphere gave the NIC.
NODE_NIC = "ens192"
NIC_DRIVER = "vmxnet3"
GUESTINFO_ENCODING = "gzip+base64"


@dataclass(frozen=True)
class NodeCloudInit:
    """One node's cloud-init: the files as written, and the guestinfo keys set on its VM."""

    meta_data: str
    user_data: str
    guestinfo: dict[str, str]


def render_node_cloud_init(design: Design, node: Node) -> NodeCloudInit:
    meta_data = to_yaml(node_meta_data(design, node))
    user_data = cloud_config(node_user_data(design, node))
    return NodeCloudInit(meta_data, user_data, guestinfo(meta_data, user_data))


# ---- per node --------------------------------------------------------------------------------


def node_meta_data(design: Design, node: Node) -> dict[str, Any]:
    return {
        # Stable per VM: changing guestinfo of a running node must not make cloud-init start over.
        "instance-id": node.name,
        "local-hostname": node.name,
        # The VMware datasource waits for the static address before user-data runs.
        "wait-on-network": {"ipv4": True},
        "network": node_network_config(design, node),
    }


def node_network_config(design: Design, node: Node) -> dict[str, Any]:
    """Network config v2 (netplan): static address, default route, DNS and the node MTU."""
    plan, network = design.ip_plan, design.spec.network
    nic: dict[str, Any] = {
        "match": {"driver": NIC_DRIVER},
        "set-name": NODE_NIC,
        "dhcp4": False,
        "dhcp6": False,
        "addresses": [f"{node.address}/{plan.prefix_length}"],
        # 0.0.0.0/0 rather than "default": older cloud-init network parsers only know the CIDR form.
        "routes": [{"to": "0.0.0.0/0", "via": str(plan.gateway)}],
        "mtu": design.mtu.node_mtu,
    }
    nameservers: dict[str, Any] = {"addresses": [str(a) for a in network.dns_servers]}
    if network.search_domains:
        nameservers["search"] = list(network.search_domains)
    nic["nameservers"] = nameservers
    return {"version": 2, "ethernets": {NODE_NIC: nic}}


def node_user_data(design: Design, node: Node) -> dict[str, Any]:
    spec = design.spec
    data: dict[str, Any] = {
        "hostname": node.name,
        "preserve_hostname": False,
        # /etc/hosts gets our lines appended once; cloud-init must not rewrite it on every boot.
        "manage_etc_hosts": False,
        "users": [ssh_user(design)],
        "ssh_pwauth": False,
        "disable_root": True,
    }
    if spec.network.ntp_servers:
        data["ntp"] = {"enabled": True, "servers": list(spec.network.ntp_servers)}
    files = [{"path": "/etc/hosts", "append": True, "content": hosts_lines(design, node)}]
    commands: list[Any] = []
    if spec.ssh.port != 22:
        files.append({"path": "/etc/ssh/sshd_config.d/50-nsxkube-port.conf", "permissions": "0644",
                      "content": f"Port {spec.ssh.port}\n"})
        # Ubuntu 24.04 starts sshd through ssh.socket, whose port comes from sshd_config at daemon-reload.
        commands.append("systemctl daemon-reload && (systemctl restart ssh.socket || systemctl restart ssh.service)")
    if design.mtu.tunnel == "vxlan":
        files.append({"path": f"/etc/systemd/system/{OFFLOAD_UNIT}", "permissions": "0644",
                      "content": offload_unit()})
        commands.append(["systemctl", "enable", "--now", OFFLOAD_UNIT])
    data["write_files"] = files
    if node.is_control_plane and design.api_vip_provider == "keepalived":
        data["packages"] = ["keepalived"]  # holds the API VIP (render/keepalived.py); apt-get update first
    if commands:
        data["runcmd"] = commands
    return data


OFFLOAD_UNIT = "nsxkube-nic-offload.service"


def offload_unit() -> str:
    """Some ESXi/NSX hosts drop VXLAN (UDP 8472) that the guest NIC segmented: segment in the guest."""
    device = f"sys-subsystem-net-devices-{NODE_NIC}.device"
    return (
        "[Unit]\n"
        "Description=nsxkube: UDP tunnel segmentation offload off on the node NIC (VXLAN over NSX)\n"
        f"BindsTo={device}\n"
        f"After={device}\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        "RemainAfterExit=yes\n"
        # '-': some vmxnet3 versions report the feature as fixed; that is not a failure.
        f"ExecStart=-/usr/sbin/ethtool -K {NODE_NIC} tx-udp_tnl-segmentation off tx-udp_tnl-csum-segmentation off\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def hosts_lines(design: Design, node: Node) -> str:
    """The node's own name, and the API DNS name at the VIP so bootstrap does not wait for DNS."""
    lines = [f"{node.address} {node.name}"]
    if design.spec.kubernetes.api_dns_name:
        lines.append(f"{design.ip_plan.api_vip} {design.spec.kubernetes.api_dns_name}")
    return "".join(f"{line}\n" for line in lines)


def ssh_user(design: Design) -> dict[str, Any]:
    ssh = design.spec.ssh
    return {
        "name": ssh.user,
        "groups": ["sudo"],
        "shell": "/bin/bash",
        # nsxkube runs kubeadm over SSH without a password prompt; there is no password at all.
        "sudo": "ALL=(ALL) NOPASSWD:ALL",
        "lock_passwd": True,
        "ssh_authorized_keys": list(ssh.public_keys),
    }


def cloud_config(data: dict[str, Any]) -> str:
    return "#cloud-config\n" + to_yaml(data)


def guestinfo(meta_data: str, user_data: str) -> dict[str, str]:
    """The extraConfig keys of the VM, in the order they are set."""
    return {
        "guestinfo.metadata": encode_guestinfo(meta_data),
        "guestinfo.metadata.encoding": GUESTINFO_ENCODING,
        "guestinfo.userdata": encode_guestinfo(user_data),
        "guestinfo.userdata.encoding": GUESTINFO_ENCODING,
    }


def encode_guestinfo(text: str) -> str:
    # mtime=0: the gzip header would otherwise carry the clock and break byte-identical renders.
    return base64.b64encode(gzip.compress(text.encode("utf-8"), mtime=0)).decode("ascii")


def guestinfo_env(keys: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in keys.items())


# ---- the template ----------------------------------------------------------------------------


def template_user_data(design: Design) -> str:
    """Builds the template hands-off: write and run prepare-vm.sh, power off when it succeeded."""
    data: dict[str, Any] = {
        "hostname": design.spec.vsphere.template,
        "users": [ssh_user(design)],
        "ssh_pwauth": False,
        "disable_root": True,
        "write_files": [
            {"path": PREPARE_VM_TARGET, "owner": "root:root", "permissions": "0755",
             "content": prepare_vm_script(design)},
        ],
        # Sealing waits for the power-off: cleaning cloud-init's state while it still runs would
        # leave half an instance directory in the template.
        "runcmd": [[PREPARE_VM_TARGET, "--seal-at-shutdown"]],
        "power_state": {
            "mode": "poweroff",
            "message": "template prepared: powering off to be marked as a template",
            "timeout": 60,
            # A failed preparation keeps the VM running so its log can be read.
            "condition": f"test -f {TEMPLATE_READY_MARKER}",
        },
    }
    return cloud_config(data)
