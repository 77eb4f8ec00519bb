"""etcd-backup.sh (a verified snapshot of the local member, with retention) and etcd-restore.sh
(every control plane restored from the same snapshot as a member of a new initial cluster)."""

from __future__ import annotations

from nsxkube.design import Design
from nsxkube.render.node_script import locations, node_table, script
from nsxkube.render.shell import shell_assign, shell_word

ETCD_DATA_DIR = "/var/lib/etcd"
ETCD_PEER_PORT = 2380
# Kubernetes' advice for restores: jump revisions past anything a watcher has seen and mark
# them compacted, so controllers relist instead of missing or replaying changes.
RESTORE_REVISION_BUMP = 1_000_000_000


def etcd_backup_script(design: Design) -> str:
    etcd = design.spec.addons.backups.etcd
    settings = [
        shell_assign("CLUSTER_NAME", design.name),
        "BACKUP_DIR=${NSXKUBE_ETCD_BACKUP_DIR:-" + shell_word(etcd.directory) + "}",
        shell_assign("KEEP", etcd.keep),
        *locations("KUBERNETES_DIR"),
    ]
    description = f"""\
Saves an etcd snapshot of cluster {design.name} on this control plane.

Usage: etcd-backup.sh
  Writes BACKUP_DIR/etcd-<host>-<UTC time>.db (0600) with a .sha256 beside it, checks the snapshot
  with etcdutl, keeps the newest {etcd.keep} of this host and prints the new snapshot's path on stdout.
  Schedule (cluster.yaml): {etcd.schedule}"""
    return script(description, settings, ETCD_BACKUP_BODY)


ETCD_BACKUP_BODY = r"""
PKI_DIR="$KUBERNETES_DIR/pki/etcd"
PARTIAL=""

# An interrupted save leaves no half snapshot that retention would count as one.
cleanup() {
  if [[ -n $PARTIAL ]]; then
    rm -f "$PARTIAL"
  fi
}

# Keeps the newest KEEP snapshots of this host; names sort by time.
prune() {
  local host=$1 snapshots=() excess i
  mapfile -t snapshots < <(find "$BACKUP_DIR" -maxdepth 1 -type f -name "etcd-$host-*.db" -printf '%f\n' | sort)
  excess=$((${#snapshots[@]} - KEEP))
  for ((i = 0; i < excess; i++)); do
    rm -f "$BACKUP_DIR/${snapshots[i]}" "$BACKUP_DIR/${snapshots[i]}.sha256"
    log "removed ${snapshots[i]} (keeping $KEEP)"
  done
}

main() {
  require_root
  command -v etcdctl >/dev/null || die "etcdctl is not installed (prepare-vm.sh installs it)"
  command -v etcdutl >/dev/null || die "etcdutl is not installed (prepare-vm.sh installs it)"
  umask 077
  install -d -m 0700 "$BACKUP_DIR"
  local host stamp name partial
  host=$(hostname -s)
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  name="etcd-$host-$stamp.db"
  partial="$BACKUP_DIR/.$name.partial"
  PARTIAL=$partial
  trap cleanup EXIT
  log "snapshot of the local etcd member of $CLUSTER_NAME to $BACKUP_DIR/$name"
  ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 \
    --cacert="$PKI_DIR/ca.crt" \
    --cert="$PKI_DIR/healthcheck-client.crt" \
    --key="$PKI_DIR/healthcheck-client.key" \
    snapshot save "$partial" >&2
  # Reads the whole file and checks its hash: a truncated snapshot fails here, not at restore time.
  etcdutl snapshot status "$partial" --write-out=table >&2
  mv "$partial" "$BACKUP_DIR/$name"
  (cd "$BACKUP_DIR" && sha256sum "$name" >"$name.sha256")
  prune "$host"
  printf '%s\n' "$BACKUP_DIR/$name"
}

main "$@"
"""


def etcd_restore_script(design: Design) -> str:
    control_planes = design.ip_plan.control_planes
    initial_cluster = ",".join(f"{n.name}=https://{n.address}:{ETCD_PEER_PORT}" for n in control_planes)
    settings = [
        shell_assign("CLUSTER_NAME", design.name),
        node_table("CONTROL_PLANES", control_planes),
        shell_assign("INITIAL_CLUSTER", initial_cluster),
        shell_assign("INITIAL_CLUSTER_TOKEN", f"{design.name}-etcd-restore"),
        shell_assign("PEER_PORT", ETCD_PEER_PORT),
        shell_assign("REVISION_BUMP", RESTORE_REVISION_BUMP),
        "ETCD_DATA_DIR=${NSXKUBE_ETCD_DATA_DIR:-" + shell_word(ETCD_DATA_DIR) + "}",
        *locations("KUBERNETES_DIR", "MANIFESTS_DIR"),
    ]
    names = ", ".join(n.name for n in control_planes)
    description = f"""\
Restores etcd of cluster {design.name} on this control plane from a snapshot of etcd-backup.sh.

Usage: etcd-restore.sh --yes SNAPSHOT
  Without --yes it only explains and refuses: a restore rolls the whole cluster back to the snapshot.
  Run it with the same snapshot on every control plane ({names}), one after the
  other; the members form the restored cluster once all have run. Steps on each:
    1. check the snapshot against SNAPSHOT.sha256 and with etcdutl;
    2. stop the static Pods (etcd, API server, ...) by moving the manifests out of the kubelet's sight;
    3. move the current data directory aside (kept as ETCD_DATA_DIR.before-restore-<time>);
    4. etcdutl snapshot restore into a fresh data directory, as this member of the initial cluster;
    5. move the manifests back: the kubelet starts etcd and the control plane again."""
    return script(description, settings, ETCD_RESTORE_BODY)


ETCD_RESTORE_BODY = r"""
STOPPED_DIR="$KUBERNETES_DIR/manifests.stopped-by-restore"

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }

wait_for_stop() {
  local i
  for ((i = 0; i < 60; i++)); do
    if [[ -z $(crictl ps -q --name '^(etcd|kube-apiserver)$' 2>/dev/null) ]]; then
      return 0
    fi
    sleep 2
  done
  die "etcd and the API server did not stop within 2 minutes; the manifests are in $STOPPED_DIR"
}

main() {
  local yes=false snapshot=""
  while [[ $# -gt 0 ]]; do
    case $1 in
      --yes) yes=true; shift ;;
      -h | --help) usage; return 0 ;;
      -*) die "unknown option $1 (see --help)" ;;
      *) snapshot=$1; shift ;;
    esac
  done
  if [[ -z $snapshot || $yes != true ]]; then
    usage >&2
    die "refusing to restore without --yes and a snapshot file"
  fi
  require_root
  local node ip stamp dir file
  node=$(hostname -s)
  ip=${CONTROL_PLANES[$node]:-}
  [[ -n $ip ]] || die "$node is not a control plane of $CLUSTER_NAME (control planes: ${!CONTROL_PLANES[*]})"
  [[ ! -e $STOPPED_DIR ]] || die "$STOPPED_DIR exists: an earlier restore stopped here; move its manifests back to $MANIFESTS_DIR first"

  log "1/5 checking $snapshot against its checksum file and with etcdutl"
  dir=$(cd "$(dirname "$snapshot")" && pwd)
  file=${snapshot##*/}
  [[ -f "$dir/$file.sha256" ]] || die "$dir/$file.sha256 is missing: refusing an unverified snapshot"
  (cd "$dir" && sha256sum --check --status "$file.sha256") || die "$file does not match $file.sha256"
  etcdutl snapshot status "$dir/$file" --write-out=table >&2

  log "2/5 stopping the static Pods: $MANIFESTS_DIR -> $STOPPED_DIR"
  mv "$MANIFESTS_DIR" "$STOPPED_DIR"
  wait_for_stop

  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  log "3/5 keeping the current data directory as $ETCD_DATA_DIR.before-restore-$stamp"
  if [[ -e $ETCD_DATA_DIR ]]; then
    mv "$ETCD_DATA_DIR" "$ETCD_DATA_DIR.before-restore-$stamp"
  fi

  log "4/5 restoring as member $node (https://$ip:$PEER_PORT) of $INITIAL_CLUSTER"
  etcdutl snapshot restore "$dir/$file" \
    --data-dir "$ETCD_DATA_DIR" \
    --name "$node" \
    --initial-cluster "$INITIAL_CLUSTER" \
    --initial-cluster-token "$INITIAL_CLUSTER_TOKEN" \
    --initial-advertise-peer-urls "https://$ip:$PEER_PORT" \
    --bump-revision "$REVISION_BUMP" \
    --mark-compacted >&2
  chmod 0700 "$ETCD_DATA_DIR"

  log "5/5 starting the static Pods again: $STOPPED_DIR -> $MANIFESTS_DIR"
  mv "$STOPPED_DIR" "$MANIFESTS_DIR"
  log "restored on $node. Run this on the other control planes with the same snapshot, then check:"
  log "  kubectl get nodes; ETCDCTL_API=3 etcdctl endpoint health --cluster (with the healthcheck-client certs)"
}

main "$@"
"""
