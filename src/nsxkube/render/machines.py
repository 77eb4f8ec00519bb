"""What the VMs boot with: the template's cloud-config and prepare-vm.sh, and each node's
cloud-init (meta-data with the network, user-data, and the guestinfo keys the clone carries).

The machines phase calls `render_node_cloud_init` for every clone, so a VM receives exactly
what `nsxkube render` writes under nodes/<vm-name>/.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nsxkube.design import Design, Node
from nsxkube.design.images import pause_image
from nsxkube.render.files import RenderedFile, to_yaml

# netplan renames the first vmxnet3 NIC to this name, so kube-vip (vip_interface) and the
# offload unit can rely on it whatever PCI slot vSphere gave the NIC.
NODE_NIC = "ens192"
NIC_DRIVER = "vmxnet3"
GUESTINFO_ENCODING = "gzip+base64"
PREPARE_VM_TARGET = "/usr/local/sbin/nsxkube-prepare-vm.sh"
TEMPLATE_READY_MARKER = "/var/lib/nsxkube/template-ready"
# etcdctl/etcdutl for the backup and restore scripts: the etcd that kubeadm 1.35 deploys.
# Belongs in VersionSet (per Kubernetes minor); kept here until the design carries it.
CONTAINERD_RELEASES = "https://github.com/containerd/containerd/releases/download"
ETCD_RELEASES = "https://github.com/etcd-io/etcd/releases/download"
# Debian-style names; containerd, runc's companion and the etcd tools come as release tarballs.
BASE_PACKAGES = (
    "ca-certificates", "curl", "gpg", "open-vm-tools", "runc", "conntrack", "socat", "ethtool",
    "iptables",
)
KUBERNETES_PACKAGES = ("kubelet", "kubeadm", "kubectl")
_REGISTRY_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$")


@dataclass(frozen=True)
class NodeCloudInit:
    """One node's cloud-init: the files as written, and the guestinfo keys set on its VM."""

    meta_data: str
    user_data: str
    guestinfo: dict[str, str]


def render_machines(design: Design) -> list[RenderedFile]:
    """vm-template/ (user-data, prepare-vm.sh, packages.txt, vm-settings.md) and nodes/<vm-name>/."""
    files = [
        RenderedFile("vm-template/user-data", template_user_data(design)),
        RenderedFile("vm-template/prepare-vm.sh", prepare_vm_script(design), mode=0o755),
        RenderedFile("vm-template/packages.txt", packages_text(design)),
        RenderedFile("vm-template/vm-settings.md", vm_settings_markdown(design)),
    ]
    for node in design.ip_plan.nodes:
        cloud_init = render_node_cloud_init(design, node)
        files += [
            RenderedFile(f"nodes/{node.name}/meta-data", cloud_init.meta_data),
            RenderedFile(f"nodes/{node.name}/user-data", cloud_init.user_data),
            RenderedFile(f"nodes/{node.name}/guestinfo.env", guestinfo_env(cloud_init.guestinfo)),
        ]
    return files


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


def packages_text(design: Design) -> str:
    versions = design.versions
    lines = [
        "# apt packages prepare-vm.sh installs on the Ubuntu 24.04 template",
        *BASE_PACKAGES,
        *(f"{name}={versions.kubernetes}-*" for name in KUBERNETES_PACKAGES),
        f"# held with apt-mark hold; repository {versions.package_repo}",
        "# from release tarballs (checksums verified):",
        f"# containerd {versions.containerd} ({CONTAINERD_RELEASES})",
        f"# etcdctl and etcdutl {design.versions.etcd} ({ETCD_RELEASES})",
    ]
    return "".join(f"{line}\n" for line in lines)


def vm_settings_markdown(design: Design) -> str:
    spec = design.spec
    rows = [
        ("`disk.EnableUUID = TRUE` (advanced setting)",
         "the guest sees stable disk serials in /dev/disk/by-id; without it the vSphere CSI driver cannot "
         "find attached volumes (\"disk not attached to node\")"),
        ("hardware version ≥ 15 (vmx-15)", "the minimum the vSphere CSI driver supports"),
        ("SCSI controller: VMware Paravirtual", "CSI attaches volumes to a paravirtual SCSI controller"),
        (f"one vmxnet3 NIC on port group `{spec.vsphere.network}`",
         f"the node segment; netplan matches the first vmxnet3 NIC and names it `{NODE_NIC}`, the interface "
         "kube-vip announces the API VIP on"),
        ("open-vm-tools in the guest", "cloud-init's VMware datasource reads guestinfo through it"),
        ("no vSphere guest customization", "cloud-init through guestinfo configures each clone; both at once "
         "fight over the network configuration"),
        ("cloud-init cleaned, machine-id empty (prepare-vm.sh does it)",
         "every clone gets its own instance, machine-id, SSH host keys and DHCP identity"),
    ]
    table = "".join(f"| {setting} | {why} |\n" for setting, why in rows)
    nodes = "".join(
        f"| {n.name} | {n.role} | {n.address}/{design.ip_plan.prefix_length} | {n.cpus} | {n.memory_gib} GiB "
        f"| {n.disk_gib} GiB |\n" for n in design.ip_plan.nodes
    )
    return (
        f"# VM settings for cluster {design.name}\n\n"
        f"Template `{spec.vsphere.template}` (Ubuntu 24.04 cloud image), prepared by `prepare-vm.sh` "
        f"for Kubernetes {design.versions.kubernetes}.\n\n"
        "| setting | why |\n|---|---|\n" + table + "\n"
        "Set on the template before it is converted (clones inherit it), for example with govc:\n\n"
        "```\n"
        f"govc vm.change -vm {spec.vsphere.template} -e disk.enableUUID=TRUE\n"
        f"govc vm.upgrade -vm {spec.vsphere.template} -version 15\n"
        "```\n\n"
        "## Building the template\n\n"
        "Deploy the Ubuntu 24.04 cloud image (OVA) with `vm-template/user-data` as its guestinfo user-data "
        "(and a meta-data giving it an address that reaches the package sources). It runs prepare-vm.sh and "
        "powers off when preparation succeeded; then mark it as a template. By hand instead: copy "
        "prepare-vm.sh to the VM, run `sudo ./prepare-vm.sh`, power off.\n\n"
        "## Clones\n\n"
        "Each clone gets the keys in `nodes/<vm-name>/guestinfo.env` as advanced settings (extraConfig):\n"
        "`guestinfo.metadata` and `guestinfo.userdata`, gzip+base64 encoded.\n\n"
        "| VM | role | address | vCPU | memory | disk |\n|---|---|---|---|---|---|\n" + nodes
    )


def registry_hosts_toml(registry: str, mirror: str) -> str:
    """containerd hosts.toml: pull through the mirror, fall back to the registry itself."""
    server = "https://registry-1.docker.io" if registry == "docker.io" else f"https://{registry}"
    return (
        f"server = {toml_string(server)}\n\n"
        f"[host.{toml_string(mirror)}]\n"
        '  capabilities = ["pull", "resolve"]\n'
    )


def containerd_config_toml(sandbox_image: str) -> str:
    return (
        "version = 3\n\n"
        # kubeadm's pause image, pinned: containerd's built-in default differs by release, and a
        # site without a registry (image bundle) must not need one it cannot pull
        "[plugins.'io.containerd.cri.v1.images'.pinned_images]\n"
        f"  sandbox = '{sandbox_image}'\n\n"
        "[plugins.'io.containerd.cri.v1.images'.registry]\n"
        "  config_path = '/etc/containerd/certs.d'\n\n"
        "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]\n"
        "  runtime_type = 'io.containerd.runc.v2'\n\n"
        "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n"
        # The kubelet uses the systemd cgroup driver; both must agree (cgroup v2 on Ubuntu 24.04).
        "  SystemdCgroup = true\n"
    )


def toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string.
    return json.dumps(value)


def registry_mirrors(design: Design) -> list[tuple[str, str]]:
    mirrors = sorted(design.spec.network.registry_mirrors.items())
    for registry, _ in mirrors:
        if not _REGISTRY_HOST.match(registry):
            raise ValueError(f"network.registry_mirrors: {registry!r} is not a registry host[:port]")
    return mirrors


def template_files(design: Design) -> list[tuple[str, str]]:
    """The configuration files prepare-vm.sh writes, as (path, content)."""
    network = design.spec.network
    files = [
        ("/etc/modules-load.d/k8s.conf", "overlay\nbr_netfilter\n"),
        ("/etc/sysctl.d/99-kubernetes.conf",
         "net.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\n"),
        ("/etc/containerd/config.toml", containerd_config_toml(pause_image(design.versions))),
        ("/etc/systemd/system/containerd.service", CONTAINERD_UNIT),
        ("/etc/crictl.yaml", "runtime-endpoint: unix:///run/containerd/containerd.sock\n"
                             "image-endpoint: unix:///run/containerd/containerd.sock\n"),
    ]
    files += [(f"/etc/containerd/certs.d/{registry}/hosts.toml", registry_hosts_toml(registry, mirror))
              for registry, mirror in registry_mirrors(design)]
    if network.proxy is not None:
        url = network.proxy.url
        files.append((APT_PROXY_FILE, f'Acquire::http::Proxy "{url}";\nAcquire::https::Proxy "{url}";\n'))
    if network.apt_mirror:
        files.append(("/etc/apt/sources.list.d/ubuntu.sources", ubuntu_sources(network.apt_mirror)))
    return files


APT_PROXY_FILE = "/etc/apt/apt.conf.d/90nsxkube-proxy"
CONTAINERD_PROXY_FILE = "/etc/systemd/system/containerd.service.d/http-proxy.conf"


def ubuntu_sources(mirror: str) -> str:
    stanza = ("Types: deb\nURIs: {uri}\nSuites: {suites}\nComponents: main restricted universe multiverse\n"
              "Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n")
    return (stanza.format(uri=mirror, suites="noble noble-updates noble-backports") + "\n"
            + stanza.format(uri=mirror, suites="noble-security"))


CONTAINERD_UNIT = """\
[Unit]
Description=containerd container runtime (installed by nsxkube)
Documentation=https://containerd.io
After=network.target local-fs.target dbus.service

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
"""


# ---- shell helpers (also used by scripts.py) --------------------------------------------------


def shell_word(value: object) -> str:
    """One shell word, quoted so that the shell reads exactly ``value``."""
    return shlex.quote(str(value))


def shell_assign(name: str, value: object) -> str:
    return f"{name}={shell_word(value)}"


def shell_array(name: str, values: Iterable[object]) -> str:
    """A bash array; one element per line once it would make a long line (200 nodes, long lists)."""
    return shell_list(f"{name}=(", [shell_word(v) for v in values], ")")


def shell_list(opening: str, words: list[str], closing: str) -> str:
    line = f"{opening}{' '.join(words)}{closing}"
    if len(line) <= 100:
        return line
    return opening + "\n" + "".join(f"  {word}\n" for word in words) + closing


def shell_write_file(path: str, content: str, mode: str = "0644") -> str:
    """Lines that write ``content`` to ``path`` verbatim (a quoted heredoc: nothing is expanded)."""
    delimiter = "NSXKUBE_EOF"
    if f"\n{delimiter}\n" in f"\n{content}":
        raise ValueError(f"{path}: content contains the heredoc delimiter")
    directory = path.rsplit("/", 1)[0]
    return (
        f"  install -d -m 0755 {shell_word(directory)}\n"
        f"  cat >{shell_word(path)} <<'{delimiter}'\n{content}{delimiter}\n"
        f"  chmod {mode} {shell_word(path)}\n"
    )


def prepare_vm_script(design: Design) -> str:
    versions, network = design.versions, design.spec.network
    settings = "\n".join([
        shell_assign("KUBERNETES_VERSION", versions.kubernetes),
        "KUBERNETES_APT_REPO=${NSXKUBE_KUBERNETES_APT_REPO:-" + shell_word(versions.package_repo) + "}",
        shell_assign("CONTAINERD_VERSION", versions.containerd),
        "CONTAINERD_BASE_URL=${NSXKUBE_CONTAINERD_BASE_URL:-" + shell_word(CONTAINERD_RELEASES) + "}",
        shell_assign("ETCD_VERSION", design.versions.etcd),
        "ETCD_BASE_URL=${NSXKUBE_ETCD_BASE_URL:-" + shell_word(ETCD_RELEASES) + "}",
        shell_assign("HTTP_PROXY_URL", network.proxy.url if network.proxy else ""),
        # One entry a line: the joined list is too long to read (and for yamllint in user-data).
        shell_array("NO_PROXY_ENTRIES", design.no_proxy),
        shell_array("APT_PACKAGES", BASE_PACKAGES),
        shell_array("KUBERNETES_PACKAGES", KUBERNETES_PACKAGES),
        shell_assign("READY_MARKER", TEMPLATE_READY_MARKER),
    ])
    writes = "".join(shell_write_file(path, content) for path, content in template_files(design))
    removals = "".join(f"  rm -f {shell_word(path)}\n" for path in unset_files(design))
    if network.proxy is not None:
        writes += "  write_containerd_proxy\n"
    return (
        "#!/usr/bin/env bash\n"
        f"# Prepares the Ubuntu 24.04 template VM for cluster {design.name}: containerd {versions.containerd} "
        f"(systemd cgroups),\n# kubeadm/kubelet/kubectl {versions.kubernetes} (held), kernel modules, sysctls, "
        "swap off, open-vm-tools,\n# then seals the VM so every clone gets its own identity.\n"
        "# Rendered by nsxkube from cluster.yaml. Run as root on the template VM; safe to run again.\n"
        + PREPARE_VM_USAGE
        + "set -euo pipefail\n\n# ---- from the design ----\n" + settings + "\n\n"
        "# Configuration files; files of options that are off in the design are removed.\n"
        "write_config_files() {\n" + writes + removals + "}\n"
        + PREPARE_VM_BODY.replace("@CONTAINERD_PROXY_FILE@", shell_word(CONTAINERD_PROXY_FILE))
    )


def unset_files(design: Design) -> list[str]:
    return [APT_PROXY_FILE, CONTAINERD_PROXY_FILE] if design.spec.network.proxy is None else []


PREPARE_VM_USAGE = """\
#
# Usage: prepare-vm.sh [--seal-at-shutdown | --no-seal | --seal-now]
#   (none)              prepare, then seal at once; power the VM off and mark it as a template
#   --seal-at-shutdown  prepare, seal at the next power-off (the template's cloud-init uses this)
#   --no-seal           prepare only
#   --seal-now          seal only
# Downloads honour NSXKUBE_CONTAINERD_BASE_URL, NSXKUBE_ETCD_BASE_URL and NSXKUBE_KUBERNETES_APT_REPO
# (internal mirrors of the release pages and of pkgs.k8s.io).
"""

PREPARE_VM_BODY = r"""
SEAL_UNIT=nsxkube-seal-template.service

log() { printf '[prepare-vm] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

require_root() {
  [[ $(id -u) -eq 0 ]] || die "run as root: sudo $0"
}

NO_PROXY_LIST=$(IFS=,; printf '%s' "${NO_PROXY_ENTRIES[*]}")
CONTAINERD_PROXY_FILE=@CONTAINERD_PROXY_FILE@

# containerd pulls images through the proxy; the cluster's own addresses go direct.
write_containerd_proxy() {
  install -d -m 0755 "${CONTAINERD_PROXY_FILE%/*}"
  printf '%s\n' "[Service]" \
    "Environment=\"HTTP_PROXY=$HTTP_PROXY_URL\" \"HTTPS_PROXY=$HTTP_PROXY_URL\" \"NO_PROXY=$NO_PROXY_LIST\"" \
    >"$CONTAINERD_PROXY_FILE"
  chmod 0644 "$CONTAINERD_PROXY_FILE"
}

# This script's own downloads go through the proxy too.
use_proxy() {
  if [[ -n $HTTP_PROXY_URL ]]; then
    export http_proxy=$HTTP_PROXY_URL https_proxy=$HTTP_PROXY_URL no_proxy=$NO_PROXY_LIST
    export HTTP_PROXY=$HTTP_PROXY_URL HTTPS_PROXY=$HTTP_PROXY_URL NO_PROXY=$NO_PROXY_LIST
  fi
}

load_kernel_settings() {
  log "kernel modules overlay, br_netfilter; sysctls"
  modprobe overlay
  modprobe br_netfilter
  sysctl --system >/dev/null
}

disable_swap() {
  log "swap off, and out of /etc/fstab (the kubelet refuses to start with swap)"
  swapoff -a
  sed -i -E 's@^([^#[:space:]]+[[:space:]]+[^[:space:]]+[[:space:]]+swap[[:space:]].*)$@# \1@' /etc/fstab
}

install_apt_packages() {
  log "apt packages: ${APT_PACKAGES[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}"
  systemctl enable --now open-vm-tools.service
}

# Downloads URL to DIR, verified against the checksum line for the file in SUMS_URL.
fetch_verified() {
  local url=$1 sums_url=$2 dir=$3 file
  file=${url##*/}
  curl -fsSL --retry 3 -o "$dir/$file" "$url"
  curl -fsSL --retry 3 -o "$dir/sums" "$sums_url"
  (cd "$dir" && grep -E "[[:space:]]\*?${file}\$" sums | sha256sum -c --status -) \
    || die "$file does not match its published checksum"
}

install_containerd() {
  if /usr/local/bin/containerd --version 2>/dev/null | grep -q " v${CONTAINERD_VERSION} "; then
    log "containerd ${CONTAINERD_VERSION} is already installed"
  else
    log "containerd ${CONTAINERD_VERSION}"
    local arch work tarball
    arch=$(dpkg --print-architecture)
    work=$(mktemp -d)
    tarball="containerd-${CONTAINERD_VERSION}-linux-${arch}.tar.gz"
    fetch_verified "$CONTAINERD_BASE_URL/v${CONTAINERD_VERSION}/$tarball" \
      "$CONTAINERD_BASE_URL/v${CONTAINERD_VERSION}/$tarball.sha256sum" "$work"
    tar -C /usr/local -xzf "$work/$tarball"
    rm -rf "$work"
  fi
  systemctl daemon-reload
  systemctl enable containerd.service
  systemctl restart containerd.service
}

install_etcd_tools() {
  if etcdutl version 2>/dev/null | grep -q "^etcdutl version: ${ETCD_VERSION#v}\$"; then
    log "etcdctl and etcdutl ${ETCD_VERSION} are already installed"
    return
  fi
  log "etcdctl and etcdutl ${ETCD_VERSION} (etcd backup and restore)"
  local arch work name
  arch=$(dpkg --print-architecture)
  work=$(mktemp -d)
  name="etcd-${ETCD_VERSION}-linux-${arch}"
  fetch_verified "$ETCD_BASE_URL/${ETCD_VERSION}/$name.tar.gz" "$ETCD_BASE_URL/${ETCD_VERSION}/SHA256SUMS" "$work"
  tar -C "$work" -xzf "$work/$name.tar.gz"
  install -m 0755 "$work/$name/etcdctl" "$work/$name/etcdutl" /usr/local/bin/
  rm -rf "$work"
}

install_kubernetes_packages() {
  log "kubelet, kubeadm, kubectl ${KUBERNETES_VERSION} from ${KUBERNETES_APT_REPO}, held"
  install -d -m 0755 /etc/apt/keyrings
  curl -fsSL --retry 3 "${KUBERNETES_APT_REPO}Release.key" \
    | gpg --batch --yes --dearmor -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
  printf 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] %s /\n' "$KUBERNETES_APT_REPO" \
    >/etc/apt/sources.list.d/kubernetes.list
  apt-get update -q
  local package pinned=()
  for package in "${KUBERNETES_PACKAGES[@]}"; do
    pinned+=("${package}=${KUBERNETES_VERSION}-*")
  done
  apt-get install -y -q --allow-change-held-packages --allow-downgrades "${pinned[@]}"
  apt-mark hold "${KUBERNETES_PACKAGES[@]}" >/dev/null
  # kubeadm starts it; until then it restarts in a loop, which is expected.
  systemctl enable kubelet.service
}

# Clones must not share cloud-init state, machine-id (DHCP client id, journald) or SSH host keys.
seal_template() {
  log "sealing: cloud-init state and logs, machine-id, SSH host keys, generated netplan"
  cloud-init clean --logs --machine-id
  truncate -s 0 /etc/machine-id
  if [[ -d /var/lib/dbus ]]; then
    ln -sf /etc/machine-id /var/lib/dbus/machine-id
  fi
  rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub /etc/netplan/50-cloud-init.yaml
  rm -f "/etc/systemd/system/$SEAL_UNIT"
  apt-get clean
}

# Runs seal_template when systemd stops this unit at power-off, after cloud-init has finished.
seal_at_shutdown() {
  local self
  self=$(readlink -f "$0")
  log "the template is sealed at the next power-off ($SEAL_UNIT)"
  printf '%s\n' "[Unit]" "Description=nsxkube: seal the template at power-off" "" "[Service]" \
    "Type=oneshot" "RemainAfterExit=yes" "ExecStart=/bin/true" "ExecStop=$self --seal-now" \
    "TimeoutStopSec=300" >"/etc/systemd/system/$SEAL_UNIT"
  systemctl daemon-reload
  systemctl start "$SEAL_UNIT"
}

main() {
  local seal=now
  case "${1:-}" in
    "") ;;
    --seal-at-shutdown) seal=at-shutdown ;;
    --no-seal) seal=no ;;
    --seal-now) require_root; seal_template; return ;;
    -h | --help) usage; return ;;
    *) usage >&2; exit 2 ;;
  esac
  require_root
  rm -f "$READY_MARKER"
  use_proxy
  write_config_files
  load_kernel_settings
  disable_swap
  install_apt_packages
  install_containerd
  install_etcd_tools
  install_kubernetes_packages
  install -d -m 0755 "${READY_MARKER%/*}"
  printf 'kubernetes=%s containerd=%s etcd-tools=%s\n' "$KUBERNETES_VERSION" "$CONTAINERD_VERSION" "$ETCD_VERSION" \
    >"$READY_MARKER"
  log "prepared"
  case $seal in
    now) seal_template; log "sealed: power the VM off now and mark it as a template" ;;
    at-shutdown) seal_at_shutdown ;;
    no) log "not sealed (--no-seal)" ;;
  esac
}

main "$@"
"""
