"""check-mtu.sh: proves the node MTU between this node and every other node with
don't-fragment pings."""

from __future__ import annotations

from nsxkube.design import Design
from nsxkube.render.node_script import script
from nsxkube.render.shell import shell_array, shell_assign


def check_mtu_script(design: Design) -> str:
    mtu = design.mtu
    entries = [f"{n.name} {n.address}" for n in design.ip_plan.nodes]
    settings = [
        shell_assign("NODE_MTU", mtu.node_mtu),
        shell_assign("PROBE_PAYLOAD", mtu.probe_payload),
        shell_assign("PROBE_PAYLOAD_OVER", mtu.probe_payload_over),
        shell_array("NODES", entries),
    ]
    description = f"""\
Proves the node MTU ({mtu.node_mtu}) between this node and every other node of {design.name}.

Usage: check-mtu.sh
  With the don't-fragment bit set, `ping -M do -s {mtu.probe_payload}` (a {mtu.node_mtu}-byte packet) must pass
  to every other node and `ping -M do -s {mtu.probe_payload_over}` must fail. A big packet that does not pass
  means a smaller MTU on the path (NSX TEP MTU below node MTU + 100): TLS handshakes and large
  responses hang. One line per probe, a verdict line, exit 0 when everything holds, 1 otherwise."""
    return script(description, settings, CHECK_MTU_BODY)


CHECK_MTU_BODY = r"""
probe() {
  ping -M 'do' -c 2 -i 0.2 -W 2 -s "$1" "$2" >/dev/null 2>&1
}

# Both probes to one node; prints its two result lines.
probe_node() {
  local name=$1 address=$2
  if probe "$PROBE_PAYLOAD" "$address"; then
    printf 'ok    %s (%s): %s-byte packets pass with DF set\n' "$name" "$address" "$NODE_MTU"
  else
    printf 'FAIL  %s (%s): %s-byte packets with DF set do not pass: the path MTU is smaller than the node MTU\n' \
      "$name" "$address" "$NODE_MTU"
  fi
  if probe "$PROBE_PAYLOAD_OVER" "$address"; then
    printf 'FAIL  %s (%s): %s-byte packets pass with DF set: a NIC MTU is above the node MTU %s of the design\n' \
      "$name" "$address" "$((NODE_MTU + 1))" "$NODE_MTU"
  else
    printf 'ok    %s (%s): %s-byte packets are refused\n' "$name" "$address" "$((NODE_MTU + 1))"
  fi
}

main() {
  local entry name address problems probed=0
  RESULTS=$(mktemp -d)
  trap 'rm -rf "$RESULTS"' EXIT
  # every node at once: a probe that must fail waits for its timeout, and nodes are many
  for entry in "${NODES[@]}"; do
    read -r name address <<<"$entry"
    if has_address "$address"; then
      continue
    fi
    probed=$((probed + 1))
    probe_node "$name" "$address" >"$RESULTS/$probed" &
  done
  wait
  for ((i = 1; i <= probed; i++)); do
    cat "$RESULTS/$i"
  done
  problems=$(cat "$RESULTS"/* /dev/null | grep -c '^FAIL' || true)
  if ((problems > 0)); then
    printf 'verdict: FAIL: %d problem(s) probing %d node(s) at MTU %s\n' "$problems" "$probed" "$NODE_MTU"
    return 1
  fi
  printf 'verdict: PASS: MTU %s holds to all %d other node(s)\n' "$NODE_MTU" "$probed"
}

main "$@"
"""
