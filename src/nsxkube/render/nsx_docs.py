"""The human-readable side of the NSX artifacts: segment.md, spoofguard-allowlist.md, dfw-rules.md.

Every value comes from the same objects `infra-patch.json` is built from, so the documents
cannot drift from what is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nsxkube.design import Design, Flow
from nsxkube.render.nsx_objects import (
    ANY,
    DEFAULT_MAC_DISCOVERY_PROFILE,
    DEFAULT_SEGMENT_SECURITY_PROFILE,
    Endpoint,
    arp_binding_limit,
    discovery_binding_map,
    endpoint,
    group_endpoints,
    ip_discovery_profile,
    policy_path,
    port_address_bindings,
    security_binding_map,
    security_policy,
    segment_path,
    spoofguard_profile,
    tier1_path,
    transport_zone_path,
)


def _cell(value: Any) -> str:
    # A pipe inside a cell would end it (the ownership condition reads "scope|tag").
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _doc(*parts: str) -> str:
    return "\n".join(p.rstrip("\n") + "\n" for p in parts if p)


# ── segment.md ───────────────────────────────────────────────────────────────────────────────


def segment_doc(design: Design) -> str:
    spec, plan = design.spec, design.ip_plan
    seg = spec.nsx.segment
    owner = ("**Existing segment** (`use_existing: true`): it belongs to someone else. nsxkube only reads it "
             "and never changes it; `infra-patch.json` holds no segment. Check that its values match the table "
             "below before going on." if seg.use_existing
             else "nsxkube creates this segment (`infra-patch.json`) and tags it "
                  f"`{design.ownership.scope}={design.ownership.tag}`.")
    dhcp = ", ".join(f"{r.first}-{r.last}" for r in plan.dhcp_ranges) or "none (nodes use the static addresses below)"
    settings = table(("setting", "value"), [
        ("segment", f"`{seg.name}` (`{segment_path(design)}`)"),
        ("subnet", f"{plan.segment}"),
        ("gateway", f"`{plan.gateway}/{plan.prefix_length}` on tier-1 `{spec.nsx.tier1}` (`{tier1_path(design)}`)"),
        ("transport zone", f"`{spec.nsx.transport_zone}` (`{transport_zone_path(design)}`)"),
        ("DHCP ranges", dhcp),
        ("vSphere port group", f"`{spec.vsphere.network}`"),
        ("node MTU", f"{design.mtu.node_mtu} (NSX TEP MTU {design.mtu.tep_mtu}; segments have no MTU field)"),
    ])
    plan_rows = [(str(r.range), r.range.size, r.purpose) for r in plan.reservations()]
    dhcp_note = ("The segment's DHCP ranges need a DHCP server or relay: either the tier-1's DHCP config or a "
                 "segment DHCP config — set one in NSX before nodes ask for leases." if plan.dhcp_ranges else "")
    return _doc(
        f"# Node segment of cluster {design.name}\n",
        owner + "\n",
        settings,
        dhcp_note,
        "## IP plan\n\nReserve these in the site's IPAM; nothing else may use them.\n",
        table(("addresses", "count", "use"), plan_rows),
        "## Check after applying\n",
        f"- `GET /policy/api/v1{segment_path(design)}` shows the gateway and tier-1 above.\n"
        f"- From a node: `ping -M do -s {design.mtu.probe_payload} {plan.gateway}` passes.\n",
    )


# ── spoofguard-allowlist.md ─────────────────────────────────────────────────────────────────


def _announced_rows(design: Design) -> list[tuple[str, int, str]]:
    plan = design.ip_plan
    holder = ("kube-vip answers ARP for it on the control plane that holds the Lease"
              if design.api_vip_provider == "kube-vip" else "keepalived answers ARP for it on the VRRP master")
    rows = [(str(plan.api_vip), 1, f"API VIP: {holder}")]
    rows += [(str(p.range), p.range.size, f"LoadBalancer pool {p.name}: the L2 speaker answers ARP on one node")
             for p in plan.pools]
    return rows


def spoofguard_doc(design: Design) -> str:
    spec = design.spec
    mode = spec.nsx.vip_mode
    discovery, spoofguard = ip_discovery_profile(design), spoofguard_profile(design)
    why = (
        "Nodes answer ARP for addresses that are not their own — the API VIP and the LoadBalancer pools — "
        "and those addresses move between nodes on failover. By default NSX IP discovery trusts the first "
        "address it sees on a port and keeps one, and SpoofGuard drops traffic from any address that is not a "
        "binding of the port: a VIP that moves is dropped or goes stale. (Inference from the NSX documents; "
        "verify in a lab.)\n"
    )
    profiles = table(("profile", "setting", "why"), [
        (f"`{discovery.path}`", "ARP snooping on, `tofu_enabled: false`",
         "every ARP is learned again, so a moved VIP is re-bound to its new node"),
        (f"`{discovery.path}`", f"`arp_binding_limit: {arp_binding_limit(design)}`",
         "1 for the node's own address + every address it may announce (VIP and pools), at most 256"),
        (f"`{spoofguard.path}`", f"`address_binding_allowlist: {str(mode == 'allowlist').lower()}`",
         "SpoofGuard stays on; the VIP and pools are manual bindings on the node ports" if mode == "allowlist"
         else "SpoofGuard's allowlist is off on this segment, so moving VIPs are not dropped"),
    ])
    parts = [
        f"# SpoofGuard and IP discovery for cluster {design.name}\n",
        f"Mode: `nsx.vip_mode: {mode}`.\n",
        "## Why\n",
        why,
        "## Addresses the nodes announce besides their own\n",
        table(("addresses", "count", "why"), _announced_rows(design)),
        "## Profiles\n",
        profiles,
        _binding_section(design),
        _per_node_section(design),
        "## Check after applying\n",
        f"- From a machine outside the segment: `ping {design.ip_plan.api_vip}` answers, and keeps answering "
        "after the leading control plane is shut down.\n"
        f"- `GET /policy/api/v1{segment_path(design)}/segment-discovery-profile-binding-maps` lists "
        f"`{discovery.path}`.\n",
    ]
    return _doc(*parts)


def _binding_section(design: Design) -> str:
    seg = design.spec.nsx.segment
    discovery, security = discovery_binding_map(design), security_binding_map(design)
    rows = [
        (f"`{discovery.path}`", f"`ip_discovery_profile_path: {discovery.body['ip_discovery_profile_path']}`, "
                                f"`mac_discovery_profile_path: {DEFAULT_MAC_DISCOVERY_PROFILE}`"),
        (f"`{security.path}`", f"`spoofguard_profile_path: {security.body['spoofguard_profile_path']}`, "
                               f"`segment_security_profile_path: {DEFAULT_SEGMENT_SECURITY_PROFILE}`"),
    ]
    if seg.use_existing:
        intro = (f"## Manual steps for the owner of segment `{seg.name}`\n\n"
                 "The segment belongs to someone else, so nsxkube does not bind the profiles (it creates them). "
                 "Its owner binds them — in the UI under the segment's *Segment Profiles*, or with these "
                 "binding maps (PATCH each path with the fields shown):\n")
    else:
        intro = "## Bindings to the node segment (in infra-patch.json)\n"
    return _doc(intro, table(("binding map", "fields"), rows))


def _per_node_section(design: Design) -> str:
    if design.spec.nsx.vip_mode != "allowlist":
        return _doc("## Per node\n",
                    "Nothing per node: with the allowlist off on the segment, no manual address binding is needed.\n")
    bindings = port_address_bindings(design)
    plan = design.ip_plan
    rows = []
    for node in plan.nodes:
        # The table shows ranges; port_address_bindings lists every single address.
        also = ([str(plan.api_vip)] if node.is_control_plane else []) + [str(p.range) for p in plan.pools]
        rows.append((node.name, str(node.address), ", ".join(also), len(bindings[node.name])))
    return _doc(
        "## Per node: manual address bindings (added by the network phase once the VMs exist)\n",
        "Each node's segment port gets these `address_bindings` (same MAC as the node's NIC). The node's own "
        "address is listed too: a port's manual bindings take precedence over what IP discovery learned. "
        "Bindings cannot be removed once realized, so they are added only for addresses this design owns. "
        "By hand: `PATCH /policy/api/v1/infra/segments/<segment>/ports/<port>` with "
        '`{"address_bindings": [{"ip_address": "…", "mac_address": "…"}, …]}`.\n',
        table(("node", "own address", "may also announce", "bindings"), rows),
    )


# ── dfw-rules.md ─────────────────────────────────────────────────────────────────────────────


def _endpoint_text(ep: Endpoint) -> str:
    return f"`{ep.group_id}`" if ep.group_id else f"{ANY} ({ep.name})"


def _service_text(flow: Flow) -> str:
    if flow.protocol == "ICMP":
        return "ICMP echo request (8), destination unreachable (3)"
    if flow.protocol == "VRRP":
        return f"VRRP ({flow.ports_text})"
    return f"{flow.protocol} {', '.join(flow.ports)}"


def dfw_doc(design: Design) -> str:
    dfw = design.spec.nsx.dfw
    header = f"# Distributed firewall for cluster {design.name}\n"
    if not dfw.enabled:
        return _doc(header, "The DFW is off in cluster.yaml (`nsx.dfw.enabled: false`): nsxkube creates no policy "
                    "and no services. If another firewall guards the nodes, it must allow this port matrix:\n",
                    _flow_table(design), _groups_section(design))
    policy = security_policy(design)
    flows = {f.id: f for f in design.ports}
    rows = [_rule_row(design, rule, flows.get(rule["id"])) for rule in policy.body["rules"]]
    intro = (f"Security policy `{policy_path(design)}`: category **{dfw.category}**, sequence number "
             f"{dfw.sequence_number}, applied to `{design.name}-nodes`, stateful (replies pass without a rule). "
             "One ALLOW rule per flow of the port matrix, then "
             + ("a DROP rule for anything else in and one for anything else out." if dfw.default_deny
                else "no default deny (`default_deny: false`): what the rules do not allow meets the site's "
                     "later policies."))
    return _doc(
        header, intro + "\n",
        table(("seq", "rule", "from", "to", "service / ports", "action", "direction", "logged", "reason"), rows),
        "Direction: IN where traffic arrives at the node ports from outside, OUT where it leaves them, IN_OUT "
        "where both ends are on nodes (the VIP and pools live on node ports).\n\n"
        "ICMP destination unreachable is allowed with echo: it carries *fragmentation needed*, without which "
        "path-MTU discovery fails and large packets hang.\n",
        _groups_section(design),
        "## Check after applying\n",
        f"- `GET /policy/api/v1{policy_path(design)}` lists {len(rows)} rules.\n"
        f"- From an admin network: `nc -zv {design.ip_plan.api_vip} 6443` connects; a port not in the table "
        "times out"
        + (" and shows in the DFW log." if dfw.log_denied else ".") + "\n",
    )


def _rule_row(design: Design, rule: dict[str, Any], flow: Flow | None) -> tuple[Any, ...]:
    if flow is None:  # a default-deny rule
        ours = "the nodes, VIP and pools"
        source, destination = (ANY, ours) if rule["direction"] == "IN" else (ours, ANY)
        return (rule["sequence_number"], rule["display_name"], source, destination, ANY, rule["action"],
                rule["direction"], _yes(rule["logged"]), rule["description"])
    return (rule["sequence_number"], rule["display_name"], _endpoint_text(endpoint(design, flow.source)),
            _endpoint_text(endpoint(design, flow.destination)), _service_text(flow), rule["action"],
            rule["direction"], _yes(rule["logged"]), flow.reason)


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _flow_table(design: Design) -> str:
    rows = [(f.id, f.source, f.destination, _service_text(f), f.reason) for f in design.ports]
    return table(("flow", "from", "to", "service / ports", "reason"), rows)


def _groups_section(design: Design) -> str:
    rows = []
    for ep in group_endpoints(design):
        members = ", ".join(ep.addresses)
        if ep.name == "nodes":
            tag = design.ownership
            members = f"VMs tagged {tag.scope}|{tag.tag}, or {members}"
        rows.append((f"`{ep.group_id}`", ep.name, members))
    names = sorted({n for f in design.ports for n in (f.source, f.destination)}) if design.spec.nsx.dfw.enabled else []
    anys = [endpoint(design, n) for n in names]
    notes = "".join(f"- **{ep.name}** → {ANY}: {ep.note}\n" for ep in anys if not ep.group_id)
    return _doc("## Groups\n", table(("group", "endpoint", "members"), rows),
                "## Endpoints written as ANY\n\n" + notes if notes else "")

