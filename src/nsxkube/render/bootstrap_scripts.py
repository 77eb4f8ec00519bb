"""bootstrap-control-plane.sh (kubeadm init with the API VIP's holder, kube-vip or keepalived, on the
first control plane) and join-control-plane.sh / join-worker.sh (kubeadm join, then the VIP's holder
on control planes)."""

from __future__ import annotations

from nsxkube.design import Design
from nsxkube.render import kubeadm
from nsxkube.render.cloud_init import NODE_NIC
from nsxkube.render.keepalived import INSTALL_KEEPALIVED
from nsxkube.render.node_script import locations, node_table, script
from nsxkube.render.shell import shell_assign

# ---- bootstrap ---------------------------------------------------------------------------------


def bootstrap_script(design: Design) -> str:
    first = kubeadm.first_control_plane(design)
    settings = [
        shell_assign("CLUSTER_NAME", design.name),
        shell_assign("FIRST_CONTROL_PLANE", first.name),
        shell_assign("FIRST_CONTROL_PLANE_IP", first.address),
        shell_assign("API_ENDPOINT", kubeadm.control_plane_endpoint(design)),
        *locations("BUNDLE_DIR", "KUBERNETES_DIR", *(["MANIFESTS_DIR"] if design.api_vip_provider == "kube-vip" else [])),
        'INIT_CONFIG="$BUNDLE_DIR/' + kubeadm.INIT_PATH + '"',
        *vip_settings(design, bootstrap=True),
    ]
    if design.api_vip_provider == "keepalived":
        vip_text = """\
  keepalived (the distribution's package) holds the API VIP: the cluster CA is created first
  (kubeadm init phase certs ca), the VRRP password is derived from its key, keepalived starts,
  then `kubeadm init` runs; keepalived claims the VIP once the local API server is ready."""
    else:
        vip_text = """\
  While `kubeadm init` runs, kube-vip mounts KUBE_VIP_INIT_KUBECONFIG (super-admin.conf on Kubernetes
  >= 1.29, whose admin.conf has no rights until init has finished); then it is switched to admin.conf,
  one instance at a time, with the VIP answered from lo while neither holds it (no gap)."""
    description = f"""\
Initializes the first control plane ({first.name}) of cluster {design.name} with kubeadm and {design.api_vip_provider}.

Usage: bootstrap-control-plane.sh [--print-join]
  Runs `kubeadm init` once.
{vip_text}
  When the cluster is already initialized and the API answers it changes nothing.
  Afterwards, and with --print-join on a later run, it mints a join token and a certificate key and
  prints the join values on stdout as KEY=VALUE lines (everything else goes to stderr):
    NSXKUBE_API_ENDPOINT, NSXKUBE_JOIN_TOKEN, NSXKUBE_CA_CERT_HASH, NSXKUBE_CERTIFICATE_KEY
  They are secrets for two hours: hand them to the join scripts through the environment, do not store them."""
    functions = KEEPALIVED_BOOTSTRAP if design.api_vip_provider == "keepalived" else KUBE_VIP_BOOTSTRAP
    return script(description, settings, BOOTSTRAP_BODY.replace("@VIP_FUNCTIONS@", functions))


def vip_settings(design: Design, *, bootstrap: bool) -> list[str]:
    """The settings the VIP provider's shell functions read."""
    if design.api_vip_provider == "keepalived":
        return ["KEEPALIVED_DIR=${NSXKUBE_KEEPALIVED_DIR:-/etc/keepalived}"]
    settings = ['KUBE_VIP_MANIFEST="$BUNDLE_DIR/' + kubeadm.KUBE_VIP_PATH + '"']
    if bootstrap:
        settings += [
            # kube-vip-init.yaml mounts the kubeconfig the rule in kubeadm.kube_vip_init_kubeconfig chose.
            'KUBE_VIP_INIT_MANIFEST="$BUNDLE_DIR/' + kubeadm.KUBE_VIP_INIT_PATH + '"',
            shell_assign("KUBE_VIP_INIT_KUBECONFIG", kubeadm.kube_vip_init_kubeconfig(design.versions)),
            shell_assign("API_VIP", design.ip_plan.api_vip),
            shell_assign("VIP_INTERFACE", NODE_NIC),
            shell_assign("KUBE_VIP_METRICS_PORT", kubeadm.KUBE_VIP_METRICS_PORT),
        ]
    return settings


# Shared by the bootstrap and join scripts (each script stands alone on a node, so it carries a copy).
INSTALL_KUBE_VIP = r"""# Installs a kube-vip manifest as the static Pod, unless that exact file is already there.
install_kube_vip() {
  local source=$1 target="$MANIFESTS_DIR/kube-vip.yaml"
  if [[ -f $target ]] && cmp -s "$source" "$target"; then
    return 0
  fi
  install -d -m 0755 "$MANIFESTS_DIR"
  install -m 0600 "$source" "$target"
  log "kube-vip static Pod installed from ${source##*/}"
}
"""


# kube-vip on the first control plane: the init manifest before `kubeadm init`, then the switch.
KUBE_VIP_BOOTSTRAP = INSTALL_KUBE_VIP + r"""
vip_on_interface() {
  ip -4 -o addr show dev "$VIP_INTERFACE" | grep -qF "inet $API_VIP/"
}

vip_on_loopback() {
  ip -4 -o addr show dev lo | grep -qF "inet $API_VIP/"
}

release_loopback_vip() {
  if vip_on_loopback; then
    ip addr del "$API_VIP/32" dev lo
    log "the API VIP is no longer answered from lo"
  fi
}

# True once no kube-vip listens on its metrics port here (host network: one at a time can).
kube_vip_stopped() {
  [[ -z $(ss -H -l -t -n "sport = :$KUBE_VIP_METRICS_PORT" 2>/dev/null) ]]
}

wait_until() {
  local seconds=$1 i
  shift
  for ((i = 0; i < seconds * 4; i++)); do
    "$@" && return 0
    sleep 0.25
  done
  return 1
}

# kube-vip from the init manifest (super-admin.conf) to the steady one (admin.conf). kubelet starts
# a changed static Pod while the old one still stops, and a kube-vip that starts removes the VIP
# (its own cleanup) while the one that stops removes it too: a gap, and two metrics servers on one
# port. So, one instance at a time, and no gap:
#   1. the VIP is added to lo, so this host keeps answering for it while no kube-vip holds it (this
#      is the only control plane yet: no other host can claim it meanwhile);
#   2. the init manifest goes; once that instance has stopped (its metrics port is free) any VIP it
#      left on the interface is removed;
#   3. the steady manifest comes; once its instance holds the VIP on the interface, lo lets it go.
# When the init instance did not hold the VIP (it never ran), there is nothing to carry over.
switch_kube_vip() {
  local target="$MANIFESTS_DIR/kube-vip.yaml" held=false
  if [[ -f $target ]] && cmp -s "$KUBE_VIP_MANIFEST" "$target"; then
    if vip_on_loopback && wait_until 60 vip_on_interface; then
      release_loopback_vip # an earlier run stopped in step 3
    fi
    return 0
  fi
  trap release_loopback_vip EXIT
  if [[ -f $target ]]; then
    if vip_on_interface; then
      held=true
      ip addr replace "$API_VIP/32" dev lo
      log "the API VIP is answered from lo while kube-vip is switched to admin.conf"
    fi
    rm -f "$target"
    wait_until 60 kube_vip_stopped || die "the init kube-vip did not stop within 60 s (crictl ps -a --name kube-vip)"
    if vip_on_interface; then
      ip addr del "$API_VIP/32" dev "$VIP_INTERFACE"
    fi
  fi
  install_kube_vip "$KUBE_VIP_MANIFEST"
  if [[ $held == true ]]; then
    wait_until 120 vip_on_interface \
      || die "kube-vip (admin.conf) did not take the API VIP on $VIP_INTERFACE within 120 s (crictl logs of kube-vip)"
  fi
  release_loopback_vip
  trap - EXIT
}

vip_before_init() {
  log "kube-vip holds the API VIP during init with $KUBE_VIP_INIT_KUBECONFIG"
  install_kube_vip "$KUBE_VIP_INIT_MANIFEST"
}

vip_after_init() {
  switch_kube_vip
}

# Completes a run interrupted between init and the switch back to admin.conf (a no-op otherwise).
vip_steady() {
  switch_kube_vip
}
"""

# keepalived on the first control plane: the CA first (the VRRP password is derived from its key),
# keepalived, then `kubeadm init`, which finds and keeps the CA. Nothing to switch afterwards.
KEEPALIVED_BOOTSTRAP = INSTALL_KEEPALIVED + r"""
vip_before_init() {
  log "the cluster CA first: keepalived's VRRP password is derived from its key"
  kubeadm init phase certs ca --config "$INIT_CONFIG" >&2
  install_keepalived "$FIRST_CONTROL_PLANE"
}

vip_after_init() {
  :
}

vip_steady() {
  install_keepalived "$FIRST_CONTROL_PLANE"
}
"""


BOOTSTRAP_BODY = r"""
ADMIN_CONF="$KUBERNETES_DIR/admin.conf"

api_answers() {
  kubectl --kubeconfig "$ADMIN_CONF" get --raw=/readyz --request-timeout=5s >/dev/null 2>&1
}

wait_for_api() {
  local i
  for ((i = 0; i < 60; i++)); do
    api_answers && return 0
    sleep 5
  done
  die "the API did not answer within 5 minutes (journalctl -u kubelet; crictl ps -a)"
}

@VIP_FUNCTIONS@
print_join() {
  local token hash key
  token=$(kubeadm token create --ttl 2h0m0s --description "nsxkube: join nodes to $CLUSTER_NAME")
  hash=$(openssl x509 -pubkey -noout -in "$KUBERNETES_DIR/pki/ca.crt" \
    | openssl pkey -pubin -outform der | sha256sum | cut -d ' ' -f 1)
  # Re-uploads the control-plane certificates encrypted with a new key; the key is the last line.
  key=$(kubeadm init phase upload-certs --upload-certs --config "$INIT_CONFIG" | tail -n 1)
  [[ $token =~ ^[a-z0-9]{6}\.[a-z0-9]{16}$ ]] || die "kubeadm token create did not print a token"
  [[ $hash =~ ^[a-f0-9]{64}$ ]] || die "could not hash the cluster CA's public key"
  [[ $key =~ ^[a-f0-9]{64}$ ]] || die "kubeadm init phase upload-certs did not print a certificate key"
  printf 'NSXKUBE_API_ENDPOINT=%s\n' "$API_ENDPOINT"
  printf 'NSXKUBE_JOIN_TOKEN=%s\n' "$token"
  printf 'NSXKUBE_CA_CERT_HASH=sha256:%s\n' "$hash"
  printf 'NSXKUBE_CERTIFICATE_KEY=%s\n' "$key"
}

main() {
  local want_join=false
  case "${1:-}" in
    "") ;;
    --print-join) want_join=true ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; return 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  require_root
  if [[ -f $ADMIN_CONF ]]; then
    vip_steady
    api_answers || die "$ADMIN_CONF exists but the API does not answer: look at journalctl -u kubelet and crictl ps -a, or start over with kubeadm reset -f"
    kubectl --kubeconfig "$ADMIN_CONF" -n kube-system get configmap kubeadm-config >/dev/null 2>&1 \
      || die "an earlier kubeadm init stopped before it finished: run kubeadm reset -f, then this script again"
    log "$CLUSTER_NAME is already initialized and its API answers: nothing to do"
    if [[ $want_join == true ]]; then
      print_join
    fi
    return 0
  fi
  has_address "$FIRST_CONTROL_PLANE_IP" \
    || die "this host does not have $FIRST_CONTROL_PLANE_IP: run this on $FIRST_CONTROL_PLANE only"
  vip_before_init
  log "kubeadm init (endpoint $API_ENDPOINT)"
  kubeadm init --config "$INIT_CONFIG" --upload-certs --skip-token-print --skip-certificate-key-print >&2
  vip_after_init
  wait_for_api
  log "initialized; join values follow on stdout"
  print_join
}

main "$@"
"""


# ---- joins -------------------------------------------------------------------------------------


def join_script(design: Design, *, control_plane: bool) -> str:
    plan = design.ip_plan
    role = "control-plane" if control_plane else "worker"
    nodes = plan.control_planes[1:] if control_plane else plan.workers
    config_path = kubeadm.JOIN_CONTROL_PLANE_PATH if control_plane else kubeadm.JOIN_WORKER_PATH
    settings = [
        shell_assign("CLUSTER_NAME", design.name),
        shell_assign("ROLE", role),
        shell_assign("API_ENDPOINT", kubeadm.control_plane_endpoint(design)),
        node_table("NODE_ADDRESSES", nodes),
        *locations("BUNDLE_DIR", "KUBERNETES_DIR",
                   *(["MANIFESTS_DIR"] if control_plane and design.api_vip_provider == "kube-vip" else [])),
        'JOIN_CONFIG="$BUNDLE_DIR/' + config_path + '"',
        *(vip_settings(design, bootstrap=False) if control_plane else []),
        "RUN_DIR=${NSXKUBE_RUN_DIR:-/run}",
    ]
    key_usage = " [--certificate-key KEY]" if control_plane else ""
    key_env = ", NSXKUBE_CERTIFICATE_KEY" if control_plane else ""
    then = ""
    if control_plane:
        then = ("; then configures and starts keepalived for the API VIP" if design.api_vip_provider == "keepalived"
                else "; then installs kube-vip (admin.conf)")
    description = f"""\
Joins this node to cluster {design.name} as a {role}{then}.

Usage: join-{role}.sh [--node-name NAME] [--token TOKEN] [--ca-cert-hash sha256:HASH]{key_usage}
  Values come from the arguments or from NSXKUBE_JOIN_TOKEN, NSXKUBE_CA_CERT_HASH{key_env}
  (printed by bootstrap-control-plane.sh), NSXKUBE_NODE_NAME (default: the short host name).
  The filled join configuration exists only in a private directory under RUN_DIR (tmpfs) while
  kubeadm runs. A node that already has kubelet.conf has joined: nothing is done."""
    if not control_plane:
        functions = "join_vip() {\n  :\n}\n"
    elif design.api_vip_provider == "keepalived":
        functions = INSTALL_KEEPALIVED + '\njoin_vip() {\n  install_keepalived "$1"\n}\n'
    else:
        functions = INSTALL_KUBE_VIP + '\njoin_vip() {\n  install_kube_vip "$KUBE_VIP_MANIFEST"\n}\n'
    body = JOIN_BODY.replace("@CONTROL_PLANE@", "true" if control_plane else "false").replace(
        "@VIP_FUNCTIONS@", functions)
    return script(description, settings, body)


JOIN_BODY = r"""
CONTROL_PLANE=@CONTROL_PLANE@

# The filled configuration holds the join secrets: remove it however the script ends.
cleanup() {
  if [[ -n ${WORK_DIR:-} ]]; then
    rm -rf "$WORK_DIR"
  fi
}

@VIP_FUNCTIONS@
main() {
  local token=${NSXKUBE_JOIN_TOKEN:-} hash=${NSXKUBE_CA_CERT_HASH:-} key=${NSXKUBE_CERTIFICATE_KEY:-}
  local node_name=${NSXKUBE_NODE_NAME:-}
  while [[ $# -gt 0 ]]; do
    case $1 in
      --token) token=${2:?--token needs a value}; shift 2 ;;
      --ca-cert-hash) hash=${2:?--ca-cert-hash needs a value}; shift 2 ;;
      --certificate-key) key=${2:?--certificate-key needs a value}; shift 2 ;;
      --node-name) node_name=${2:?--node-name needs a value}; shift 2 ;;
      -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; return 0 ;;
      *) die "unknown argument $1 (see --help)" ;;
    esac
  done
  require_root
  node_name=${node_name:-$(hostname -s)}
  if [[ -f "$KUBERNETES_DIR/kubelet.conf" ]]; then
    if [[ $CONTROL_PLANE == true ]]; then
      join_vip "$node_name"
    fi
    log "$KUBERNETES_DIR/kubelet.conf exists: this node has already joined, nothing to do"
    return 0
  fi
  local node_ip=${NODE_ADDRESSES[$node_name]:-}
  [[ -n $node_ip ]] || die "$node_name is not a $ROLE of $CLUSTER_NAME to join (known: ${!NODE_ADDRESSES[*]})"
  has_address "$node_ip" || die "this host does not have $node_ip, the address of $node_name"
  [[ $token =~ ^[a-z0-9]{6}\.[a-z0-9]{16}$ ]] || die "a join token (<6 characters>.<16 characters>) is needed: --token or NSXKUBE_JOIN_TOKEN"
  [[ $hash =~ ^sha256:[a-f0-9]{64}$ ]] || die "the CA hash (sha256:<64 hex>) is needed: --ca-cert-hash or NSXKUBE_CA_CERT_HASH"
  if [[ $CONTROL_PLANE == true ]]; then
    [[ $key =~ ^[a-f0-9]{64}$ ]] || die "the certificate key (64 hex) is needed: --certificate-key or NSXKUBE_CERTIFICATE_KEY"
  fi

  # Filled in memory; the quoted replacements keep '&' and '\' literal.
  local config
  config=$(<"$JOIN_CONFIG")
  config=${config//__JOIN_TOKEN__/"$token"}
  config=${config//__CA_CERT_HASH__/"$hash"}
  config=${config//__CERTIFICATE_KEY__/"$key"}
  config=${config//__NODE_NAME__/"$node_name"}
  config=${config//__NODE_IP__/"$node_ip"}

  trap cleanup EXIT
  WORK_DIR=$(umask 077 && mktemp -d "$RUN_DIR/nsxkube-join.XXXXXX")
  (umask 077 && printf '%s\n' "$config" >"$WORK_DIR/join.yaml")
  log "kubeadm join $API_ENDPOINT as $ROLE $node_name ($node_ip)"
  kubeadm join --config "$WORK_DIR/join.yaml" >&2
  if [[ $CONTROL_PLANE == true ]]; then
    join_vip "$node_name"
  fi
  log "$node_name joined $CLUSTER_NAME"
}

main "$@"
"""
