"""keepalived, the second provider of the API VIP (``network.api_vip_provider: keepalived``).

kubeadm's own HA guide (docs/ha-considerations in kubeadm's repository) runs keepalived beside the
control planes; here it comes from the distribution's package (the control planes' cloud-init
installs it) and runs as its systemd service, outside Kubernetes: it keeps working while the
kubelet, containerd or the API server do not.

One configuration per control plane, ``keepalived/<node>.conf``:

* **VRRP in unicast** from the node's own address to the other control planes (``unicast_src_ip``,
  ``unicast_peer``): nothing depends on multicast reaching every port of the NSX segment, and the
  DFW rule ``vrrp`` (IP protocol 112, control planes only) is all the firewall needs.
* **Every instance starts as BACKUP with ``nopreempt``**: a control plane that comes back never
  takes the VIP back from a healthy holder. Moving it back would cut every API connection a second
  time for no gain (all control planes serve the same API).
* **The check** is the local API server's ``/readyz`` (anonymous, allowed by kubeadm's
  ``system:public-info-viewer``). A failing check has weight 0, so the instance goes to FAULT and
  gives the VIP up at once (it sends a priority-0 advertisement). A negative weight would only lower
  the priority, and with ``nopreempt`` a lower priority never moves the VIP.
* **Priorities** 150, 140, 130, … in the design's order. When the holder gives up, each backup waits
  its skew time, (256 − priority)/256 s, before it claims the VIP: 10 apart, the better one is ~40 ms
  ahead of the next and wins without a second election (1 apart, the race was a coin toss on the test
  nodes). With weight 0 and ``nopreempt`` the priorities matter only then.
* **Timers**: advertisements every second (``advert_int 1``, VRRP's default): a backup declares the
  master down after 3 missed advertisements plus its skew (≈ 3.4 s). The check runs every second,
  2 failures (``fall``) put the holder in FAULT, 2 successes (``rise``) make it eligible again.
  docs/testing.md has the failover times measured on the test nodes with these values.
* **Authentication**: VRRPv2 ``auth_type PASS`` (keepalived uses the first 8 characters of
  ``auth_pass``; its manual does not recommend IPsec-AH, and VRRPv3 has no authentication at all). The password
  travels in clear text in every advertisement: it keeps a keepalived of another cluster on the
  same segment (same ``virtual_router_id`` by chance) from joining this election, it does not stop
  an attacker on the segment. It is not in cluster.yaml nor in the bundle: the bootstrap and join
  scripts derive it on each control plane from the cluster CA's private key
  (:data:`VRRP_PASSWORD_DERIVATION`), which every control plane has once it is one, so there is
  no extra secret to hand around, and it changes when the CA does.
"""

from __future__ import annotations

import hashlib

from nsxkube.design import Design, Node
from nsxkube.render.cloud_init import NODE_NIC
from nsxkube.render.files import RenderedFile
from nsxkube.render.kubeadm import API_PORT

PACKAGE = "keepalived"
CONFIG_DIR = "keepalived"
NODE_CONFIG_TARGET = "/etc/keepalived/keepalived.conf"
AUTH_PASS_PLACEHOLDER = "__VRRP_AUTH_PASS__"
AUTH_PASS_LENGTH = 8  # keepalived ignores the characters after the eighth
INSTANCE = "api_vip"
CHECK = "api_server_ready"

ADVERT_INT_SECONDS = 1
CHECK_INTERVAL_SECONDS = 1
CHECK_TIMEOUT_SECONDS = 2
CHECK_FALL = 2
CHECK_RISE = 2
FIRST_PRIORITY = 150
PRIORITY_STEP = 10
# The check's user: it only needs curl and the loopback. keepalived refuses (enable_script_security)
# a script that a non-root user could change.
SCRIPT_USER = "nobody"
# What the scripts run to get the password (needs the CA key, so only on a control plane).
VRRP_PASSWORD_DERIVATION = ("HMAC-SHA256 keyed with 'nsxkube-vrrp:<cluster name>' over /etc/kubernetes/pki/ca.key, "
                            "base64, letters and digits only, first 8 characters")


def config_path(node: Node) -> str:
    return f"{CONFIG_DIR}/{node.name}.conf"


def virtual_router_id(design: Design) -> int:
    """1–255, derived from the cluster's name: two clusters on one segment rarely share it, and the
    auth password keeps them apart when they do."""
    return 1 + int.from_bytes(hashlib.sha256(design.name.encode()).digest()[:4], "big") % 255


def priority(index: int) -> int:
    return max(1, FIRST_PRIORITY - PRIORITY_STEP * index)


def check_command() -> str:
    # --insecure: the check asks whether the local API server is ready, not who it is; the address
    # is the loopback and the answer is only "ok" or not.
    return (f"/usr/bin/curl --silent --fail --insecure --max-time {CHECK_TIMEOUT_SECONDS} --output /dev/null "
            f"https://127.0.0.1:{API_PORT}/readyz")


def render_keepalived(design: Design) -> list[RenderedFile]:
    """keepalived/<control plane>.conf with the password left as a placeholder; nothing for kube-vip."""
    if design.api_vip_provider != "keepalived":
        return []
    planes = design.ip_plan.control_planes
    return [RenderedFile(config_path(node), keepalived_conf(design, index)) for index, node in enumerate(planes)]


def keepalived_conf(design: Design, index: int) -> str:
    planes = design.ip_plan.control_planes
    node = planes[index]
    peers = [p for p in planes if p.name != node.name]
    peer_lines = "".join(f"    {p.address}  # {p.name}\n" for p in peers)
    return f"""\
# keepalived for the API VIP of cluster {design.name} on {node.name} ({node.address}).
# Rendered by nsxkube from cluster.yaml; the scripts install it as {NODE_CONFIG_TARGET} with the
# password filled in ({AUTH_PASS_PLACEHOLDER} is derived on the node from the cluster CA key).

global_defs {{
  router_id {node.name}
  # the check runs as {SCRIPT_USER}; keepalived refuses scripts that others could change
  enable_script_security
  script_user {SCRIPT_USER}
}}

# The local API server answers /readyz: this node may hold the VIP.
vrrp_script {CHECK} {{
  script "{check_command()}"
  interval {CHECK_INTERVAL_SECONDS}
  timeout {CHECK_TIMEOUT_SECONDS}
  fall {CHECK_FALL}
  rise {CHECK_RISE}
  # weight 0: a failing check puts this node in FAULT and the VIP moves at once; a negative
  # weight would only lower the priority, which nopreempt then ignores
  weight 0
}}

vrrp_instance {INSTANCE} {{
  # all BACKUP + nopreempt: the first to win keeps the VIP while it is healthy; a node that
  # comes back does not take it back (that would cut every API connection a second time)
  state BACKUP
  nopreempt
  interface {NODE_NIC}
  virtual_router_id {virtual_router_id(design)}
  priority {priority(index)}
  # VRRP's default: a backup declares the holder gone after 3 missed advertisements (+ skew)
  advert_int {ADVERT_INT_SECONDS}
  # unicast between the control planes: no multicast needed on the segment (DFW rule vrrp)
  unicast_src_ip {node.address}
  unicast_peer {{
{peer_lines}  }}
  # VRRPv2 PASS: in clear text on the wire; keeps another cluster's keepalived out of this election
  authentication {{
    auth_type PASS
    auth_pass {AUTH_PASS_PLACEHOLDER}
  }}
  virtual_ipaddress {{
    {design.ip_plan.api_vip}/32 dev {NODE_NIC}
  }}
  track_script {{
    {CHECK}
  }}
}}
"""


# Shared by the bootstrap and join scripts (each script stands alone on a node, so it carries a copy).
INSTALL_KEEPALIVED = r"""# The VRRP password: derived from the cluster CA's key (every control plane has it), never stored
# in the bundle. keepalived uses its first 8 characters.
vrrp_password() {
  local derived
  derived=$(openssl dgst -sha256 -hmac "nsxkube-vrrp:$CLUSTER_NAME" -binary "$KUBERNETES_DIR/pki/ca.key" \
    | base64 | tr -dc 'A-Za-z0-9')
  [[ ${#derived} -ge 8 ]] || die "could not derive the VRRP password from $KUBERNETES_DIR/pki/ca.key"
  printf '%s' "${derived:0:8}"
}

# Writes this control plane's keepalived configuration (password filled in, 0600) and (re)starts
# keepalived when it changed or does not run.
install_keepalived() {
  local node=$1 source="$BUNDLE_DIR/keepalived/$1.conf" target="$KEEPALIVED_DIR/keepalived.conf" config password
  [[ -f $source ]] || die "$source is missing: is $node a control plane of $CLUSTER_NAME?"
  command -v keepalived >/dev/null || die "keepalived is not installed: apt-get install keepalived (the control planes' cloud-init installs it)"
  [[ -f "$KUBERNETES_DIR/pki/ca.key" ]] || die "$KUBERNETES_DIR/pki/ca.key is missing: the VRRP password is derived from it"
  password=$(vrrp_password)
  config=$(<"$source")
  config=${config//__VRRP_AUTH_PASS__/"$password"}
  if [[ -f $target ]] && [[ $(<"$target") == "$config" ]] && systemctl is-active --quiet keepalived; then
    return 0
  fi
  install -d -m 0755 "$KEEPALIVED_DIR"
  (umask 077 && printf '%s\n' "$config" >"$target.partial")
  mv "$target.partial" "$target"
  systemctl enable keepalived >/dev/null 2>&1 || true
  systemctl restart keepalived
  log "keepalived announces the API VIP from $node (VRRP unicast, $target)"
}
"""
