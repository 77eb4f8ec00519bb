"""prepare-vm.sh: turns an Ubuntu 24.04 VM into the node template (containerd, kubeadm, kubelet,
kubectl, etcd tools, kernel settings), then seals it so every clone gets its own identity.

A generated settings block (the design's values, shell-quoted) is followed by a fixed body.
"""

from __future__ import annotations

from nsxkube.design import Design
from nsxkube.render.shell import shell_array, shell_assign, shell_word, shell_write_file
from nsxkube.render.template_config import CONTAINERD_PROXY_FILE, template_files, unset_files

PREPARE_VM_TARGET = "/usr/local/sbin/nsxkube-prepare-vm.sh"
TEMPLATE_READY_MARKER = "/var/lib/nsxkube/template-ready"
# Release pages of the tarballs prepare-vm.sh downloads (NSXKUBE_*_BASE_URL point it at a mirror).
CONTAINERD_RELEASES = "https://github.com/containerd/containerd/releases/download"
ETCD_RELEASES = "https://github.com/etcd-io/etcd/releases/download"
# Debian-style names; containerd, runc's companion and the etcd tools come as release tarballs.
BASE_PACKAGES = (
    "ca-certificates", "curl", "gpg", "open-vm-tools", "runc", "conntrack", "socat", "ethtool",
    "iptables",
)
KUBERNETES_PACKAGES = ("kubelet", "kubeadm", "kubectl")


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
