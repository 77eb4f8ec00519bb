"""bootstrap-control-plane.sh (kubeadm init with kube-vip on the first control plane) and
join-control-plane.sh / join-worker.sh (kubeadm join, then kube-vip on control planes)."""

from __future__ import annotations

from nsxkube.design import Design
from nsxkube.render import kubeadm
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
        *locations("BUNDLE_DIR", "KUBERNETES_DIR", "MANIFESTS_DIR"),
        'INIT_CONFIG="$BUNDLE_DIR/' + kubeadm.INIT_PATH + '"',
        'KUBE_VIP_MANIFEST="$BUNDLE_DIR/' + kubeadm.KUBE_VIP_PATH + '"',
        # kube-vip-init.yaml mounts the kubeconfig the rule in kubeadm.kube_vip_init_kubeconfig chose.
        'KUBE_VIP_INIT_MANIFEST="$BUNDLE_DIR/' + kubeadm.KUBE_VIP_INIT_PATH + '"',
        shell_assign("KUBE_VIP_INIT_KUBECONFIG", kubeadm.kube_vip_init_kubeconfig(design.versions)),
    ]
    description = f"""\
Initializes the first control plane ({first.name}) of cluster {design.name} with kubeadm and kube-vip.

Usage: bootstrap-control-plane.sh [--print-join]
  Runs `kubeadm init` once. While it runs, kube-vip mounts KUBE_VIP_INIT_KUBECONFIG (super-admin.conf on
  Kubernetes >= 1.29, whose admin.conf has no rights until init has finished), then admin.conf again.
  When the cluster is already initialized and the API answers it changes nothing.
  Afterwards, and with --print-join on a later run, it mints a join token and a certificate key and
  prints the join values on stdout as KEY=VALUE lines (everything else goes to stderr):
    NSXKUBE_API_ENDPOINT, NSXKUBE_JOIN_TOKEN, NSXKUBE_CA_CERT_HASH, NSXKUBE_CERTIFICATE_KEY
  They are secrets for two hours: hand them to the join scripts through the environment, do not store them."""
    return script(description, settings, BOOTSTRAP_BODY.replace("@INSTALL_KUBE_VIP@", INSTALL_KUBE_VIP))


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

@INSTALL_KUBE_VIP@
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
    # Completes a run interrupted between init and the switch back to admin.conf (a no-op otherwise).
    install_kube_vip "$KUBE_VIP_MANIFEST"
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
  log "kube-vip holds the API VIP during init with $KUBE_VIP_INIT_KUBECONFIG"
  install_kube_vip "$KUBE_VIP_INIT_MANIFEST"
  log "kubeadm init (endpoint $API_ENDPOINT)"
  kubeadm init --config "$INIT_CONFIG" --upload-certs --skip-token-print --skip-certificate-key-print >&2
  install_kube_vip "$KUBE_VIP_MANIFEST"
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
        *locations("BUNDLE_DIR", "KUBERNETES_DIR", "MANIFESTS_DIR"),
        'JOIN_CONFIG="$BUNDLE_DIR/' + config_path + '"',
        'KUBE_VIP_MANIFEST="$BUNDLE_DIR/' + kubeadm.KUBE_VIP_PATH + '"',
        "RUN_DIR=${NSXKUBE_RUN_DIR:-/run}",
    ]
    key_usage = " [--certificate-key KEY]" if control_plane else ""
    key_env = ", NSXKUBE_CERTIFICATE_KEY" if control_plane else ""
    then = "; then installs kube-vip (admin.conf)" if control_plane else ""
    description = f"""\
Joins this node to cluster {design.name} as a {role}{then}.

Usage: join-{role}.sh [--node-name NAME] [--token TOKEN] [--ca-cert-hash sha256:HASH]{key_usage}
  Values come from the arguments or from NSXKUBE_JOIN_TOKEN, NSXKUBE_CA_CERT_HASH{key_env}
  (printed by bootstrap-control-plane.sh), NSXKUBE_NODE_NAME (default: the short host name).
  The filled join configuration exists only in a private directory under RUN_DIR (tmpfs) while
  kubeadm runs. A node that already has kubelet.conf has joined: nothing is done."""
    body = JOIN_BODY.replace("@CONTROL_PLANE@", "true" if control_plane else "false").replace(
        "@INSTALL_KUBE_VIP@", INSTALL_KUBE_VIP)
    return script(description, settings, body)


JOIN_BODY = r"""
CONTROL_PLANE=@CONTROL_PLANE@

# The filled configuration holds the join secrets: remove it however the script ends.
cleanup() {
  if [[ -n ${WORK_DIR:-} ]]; then
    rm -rf "$WORK_DIR"
  fi
}

@INSTALL_KUBE_VIP@
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
  if [[ -f "$KUBERNETES_DIR/kubelet.conf" ]]; then
    if [[ $CONTROL_PLANE == true ]]; then
      install_kube_vip "$KUBE_VIP_MANIFEST"
    fi
    log "$KUBERNETES_DIR/kubelet.conf exists: this node has already joined, nothing to do"
    return 0
  fi
  node_name=${node_name:-$(hostname -s)}
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
    install_kube_vip "$KUBE_VIP_MANIFEST"
  fi
  log "$node_name joined $CLUSTER_NAME"
}

main "$@"
"""
