"""install-bridge-cni.sh, only with `sandbox.cni: bridge`: the CNI bridge plugin on the node's own
pod CIDR, in place of Cilium, for sandboxes where Cilium's agent cannot run (the nsxkube lab).

Each node reads its pod CIDR (allocated by the controller-manager from kubernetes.pod_cidr) from
its own Node object with the kubelet's credentials, and writes one conflist. Pods on other nodes
are reached through the routes that the lab's node network adds; nothing here is for production.
"""

from __future__ import annotations

from nsxkube.design import Design
from nsxkube.render.node_script import locations, script
from nsxkube.render.shell import shell_assign

SCRIPT = "install-bridge-cni.sh"
CONFLIST = "/etc/cni/net.d/10-nsxkube-bridge.conflist"


def bridge_cni_script(design: Design) -> str:
    settings = [
        *locations("KUBERNETES_DIR"),
        shell_assign("POD_MTU", design.mtu.node_mtu),  # no tunnel: pod packets are node packets
        shell_assign("CONFLIST", CONFLIST),
    ]
    description = f"""\
sandbox.cni bridge ({design.spec.sandbox.reason if design.spec.sandbox else ""}): the CNI bridge plugin on this
node's pod CIDR instead of Cilium. Not for production.

Usage: NSXKUBE_NODE_NAME=<node> install-bridge-cni.sh
  Waits (up to 60 s) for the node's spec.podCIDR, then writes {CONFLIST} (bridge cni0, host-local
  IPAM on that CIDR, the node MTU) and prints `bridge CNI on <cidr>`. Run again: same file."""
    return script(description, settings, BODY)


BODY = r"""
require_root
node=${NSXKUBE_NODE_NAME:?set NSXKUBE_NODE_NAME to the name of this node}
cidr=""
for _ in $(seq 1 60); do
  cidr=$(kubectl --kubeconfig "$KUBERNETES_DIR/kubelet.conf" get node "$node" \
    -o 'jsonpath={.spec.podCIDR}' 2>/dev/null || true)
  [[ -n $cidr ]] && break
  sleep 1
done
[[ -n $cidr ]] || die "node $node has no spec.podCIDR after 60 s (does the controller-manager allocate node CIDRs?)"
install -d -m 0755 "$(dirname "$CONFLIST")"
tmp=$(mktemp "$(dirname "$CONFLIST")/.bridge.XXXXXX")
cat >"$tmp" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "nsxkube-bridge",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "mtu": $POD_MTU, "ipam": {"type": "host-local", "ranges": [[{"subnet": "$cidr"}]],
                               "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
chmod 0644 "$tmp"
mv -f "$tmp" "$CONFLIST"
echo "bridge CNI on $cidr"
"""
