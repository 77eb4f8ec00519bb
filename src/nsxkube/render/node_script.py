"""The frame every node script shares: a header with its usage, the design's values as a block of
shell-quoted settings, common shell functions, then a fixed body that reads only those settings —
so no design value is ever parsed as shell code. Join secrets never appear in a script: they reach
it at run time through the environment.
"""

from __future__ import annotations

from collections.abc import Iterable

from nsxkube.design import Node
from nsxkube.render.shell import shell_list, shell_word


def script(description: str, settings: Iterable[str], body: str) -> str:
    return (
        "#!/usr/bin/env bash\n"
        + "".join(f"# {line}\n" if line else "#\n" for line in description.strip("\n").split("\n"))
        + "# Rendered by nsxkube from cluster.yaml.\n"
        "set -euo pipefail\n\n"
        "# ---- from the design ----\n"
        + "".join(f"{line}\n" for line in settings)
        + COMMON
        + body
    )


# Paths can be moved for a dry run on a workstation; on a node the defaults apply.
_LOCATIONS = {
    # The bundle's kubeadm/ and scripts/ are copied side by side onto the node.
    "BUNDLE_DIR": 'BUNDLE_DIR=${NSXKUBE_BUNDLE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}',
    "KUBERNETES_DIR": "KUBERNETES_DIR=${NSXKUBE_KUBERNETES_DIR:-/etc/kubernetes}",
    "MANIFESTS_DIR": 'MANIFESTS_DIR="$KUBERNETES_DIR/manifests"',
}


def locations(*names: str) -> list[str]:
    return [_LOCATIONS[name] for name in names]

COMMON = r"""
log() { printf '[%s] %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }
require_root() {
  [[ $(id -u) -eq 0 ]] || die "run as root: sudo $0"
}
# True when ADDRESS is configured on this host.
has_address() {
  ip -4 -o addr show | grep -qF "inet $1/"
}
"""


def node_table(name: str, nodes: Iterable[Node]) -> str:
    """A bash associative array node name → address."""
    entries = [f"[{shell_word(n.name)}]={shell_word(n.address)}" for n in nodes]
    return shell_list(f"declare -A {name}=(", entries, ")")
