"""The report of `nsxkube nsx discover`: the seed plan's "investigation results" and "decision"
documents (stage 0.1), made from what NSX answered instead of filled in by hand. Pure and
deterministic: (design, inventory, findings) → Markdown, and the same data as a JSON-ready dict.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from nsxkube.checks.nsx_audit import Finding, failures
from nsxkube.design import Design
from nsxkube.providers.nsx.model import LiveInventory, LiveObject
from nsxkube.providers.nsx.ownership import ownership_of
from nsxkube.render.nsx_objects import desired_nsx_objects

MARK = {"ok": "ok", "warn": "WARN", "fail": "FAIL"}
BINDING_PROFILE_FIELDS = ("ip_discovery_profile_path", "spoofguard_profile_path")


def _last(path: Any) -> str:
    return str(path).rsplit("/", 1)[-1] if path else "—"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    if not rows:
        return ["(none)", ""]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


# ---- the inventory as rows ------------------------------------------------------------------------


def transport_zone_rows(inventory: LiveInventory) -> list[tuple[str, ...]]:
    return [(z.id, str(z.body.get("tz_type", "?")), ownership_of(z).label)
            for z in sorted(inventory.transport_zones.values(), key=lambda z: z.path)]


def gateway_rows(inventory: LiveInventory) -> list[tuple[str, ...]]:
    return [(g.id, "tier-0" if g.resource_type == "Tier0" else "tier-1", _last(g.body.get("tier0_path")) if
             g.resource_type == "Tier1" else "—", ownership_of(g).label) for g in inventory.of_type("Tier0", "Tier1")]


def segment_rows(inventory: LiveInventory) -> list[tuple[str, ...]]:
    return [(s.id, s.display_name, ", ".join(str(n) for n in s.networks()) or "—",
             _last(s.body.get("connectivity_path")), _last(s.body.get("transport_zone_path")), ownership_of(s).label)
            for s in inventory.of_type("Segment")]


def _rule_count(policy: LiveObject) -> int:
    rules = policy.body.get("rules")
    return len(rules) if isinstance(rules, list) else int(policy.body.get("rule_count") or 0)


def policy_rows(inventory: LiveInventory) -> list[tuple[str, ...]]:
    policies = sorted(inventory.of_type("SecurityPolicy"),
                      key=lambda p: (str(p.body.get("category")), int(p.body.get("sequence_number") or 0), p.id))
    return [(str(p.body.get("category", "?")), p.id, str(p.body.get("sequence_number", "?")), str(_rule_count(p)),
             ownership_of(p).label) for p in policies]


def rules_per_category(inventory: LiveInventory) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for policy in inventory.of_type("SecurityPolicy"):
        counts[str(policy.body.get("category", "?"))] += _rule_count(policy)
    return dict(sorted(counts.items()))


def _bound_segments(inventory: LiveInventory, profile_path: str) -> list[str]:
    maps = inventory.of_type("SegmentDiscoveryProfileBindingMap", "SegmentSecurityProfileBindingMap")
    return sorted({_last(m.parent_path) for m in maps if profile_path in (m.body.get(f) for f in BINDING_PROFILE_FIELDS)})


def _profile_settings(profile: LiveObject) -> str:
    if profile.resource_type == "SpoofGuardProfile":
        return f"address_binding_allowlist={str(bool(profile.body.get('address_binding_allowlist'))).lower()}"
    arp = (profile.body.get("ip_v4_discovery_options") or {}).get("arp_snooping_config") or {}
    return (f"tofu_enabled={str(bool(profile.body.get('tofu_enabled'))).lower()}, "
            f"arp_binding_limit={arp.get('arp_binding_limit', '?')}")


def profile_rows(inventory: LiveInventory) -> list[tuple[str, ...]]:
    return [(p.id, "SpoofGuard" if p.resource_type == "SpoofGuardProfile" else "IP discovery", _profile_settings(p),
             ", ".join(_bound_segments(inventory, p.path)) or "—", ownership_of(p).label)
            for p in inventory.of_type("IPDiscoveryProfile", "SpoofGuardProfile")]


def owner_counts(inventory: LiveInventory) -> dict[str, int]:
    counts = Counter(ownership_of(o).label for o in [*inventory.objects.values(), *inventory.transport_zones.values()])
    return dict(sorted(counts.items()))


# ---- the decision -----------------------------------------------------------------------------------


def decision_lines(design: Design, inventory: LiveInventory, findings: list[Finding]) -> list[str]:
    spec, plan, mtu = design.spec.nsx, design.ip_plan, design.mtu
    blocking = failures(findings)
    lines = [f"**Status: {'blocked' if blocking else 'ready'}** — "
             + (f"{len(blocking)} check(s) fail; fix them before `nsxkube apply --phase network`." if blocking else
                "nothing in NSX stands in the way of `nsxkube apply --phase network`."), ""]
    foreign = [s for s in inventory.of_type("Segment") if ownership_of(s).owner in ("tanzu-ncp", "nsx-operator")]
    if spec.segment.use_existing:
        lines.append(f"- **Segment**: use the existing segment `{spec.segment.name}` ({spec.segment.cidr}); nsxkube "
                     "only reads it, and prints what it lacks as manual steps.")
    else:
        lines.append(f"- **Segment**: create `{spec.segment.name}` ({spec.segment.cidr}, gateway {plan.gateway}) on "
                     f"tier-1 `{spec.tier1}` in transport zone `{spec.transport_zone}`, tagged "
                     f"`nsxkube/cluster={design.name}`.")
    if foreign:
        names = ", ".join(f"`{s.display_name}`" for s in foreign[:4]) + (" …" if len(foreign) > 4 else "")
        lines.append(f"- **Not reused**: {len(foreign)} segment(s) belong to vSphere with Tanzu (e.g. {names}); NCP and "
                     "nsx-operator reconcile them, so nsxkube leaves them alone.")
    pools = ", ".join(f"{p.name} {p.range}" for p in plan.pools) or "none"
    lines.append(f"- **IP plan**: API VIP {plan.api_vip}; LoadBalancer pools {pools}; {len(plan.nodes)} nodes "
                 f"{plan.nodes[0].address}–{plan.nodes[-1].address}." if plan.nodes else
                 f"- **IP plan**: API VIP {plan.api_vip}; LoadBalancer pools {pools}.")
    if spec.vip_mode == "allowlist":
        lines.append("- **VIP and pools**: SpoofGuard stays on; the VIP and pools become manual address bindings on "
                     "the node ports once the VMs exist; IP discovery without trust-on-first-use.")
    else:
        lines.append("- **VIP and pools**: a SpoofGuard profile without the binding allowlist is bound to the node "
                     "segment; IP discovery without trust-on-first-use.")
    if spec.dfw.enabled:
        policy = next(o for o in desired_nsx_objects(design) if o.resource_type == "SecurityPolicy")
        lines.append(f"- **DFW**: policy `{policy.id}` in category {spec.dfw.category}, sequence "
                     f"{spec.dfw.sequence_number}, {len(policy.body['rules'])} rules from the port matrix"
                     + (", default deny." if spec.dfw.default_deny else "."))
    lines.append(f"- **MTU**: TEP {inventory.tep_mtu if inventory.tep_mtu is not None else 'unknown'} → node "
                 f"{mtu.node_mtu} → pod {mtu.pod_mtu}; prove it with `ping -M do -s {mtu.probe_payload}` between nodes.")
    lines += ["", "Next steps:"]
    steps = [f"fix: {f.one_line()}" for f in blocking] + [
        "`nsxkube plan cluster.yaml --phase network` and read what it would create",
        "`nsxkube apply cluster.yaml --phase network`",
    ]
    return [*lines, *(f"{i}. {s}" for i, s in enumerate(steps, start=1)), ""]


# ---- the documents ----------------------------------------------------------------------------------


def render_nsx_report(design: Design, inventory: LiveInventory, findings: list[Finding]) -> str:
    """Markdown: investigation results, conflicts with cluster.yaml, decision."""
    counts = rules_per_category(inventory)
    lines = [
        f"# NSX investigation for cluster {design.name}", "",
        f"NSX Manager `{inventory.manager}`" + (f" (NSX {inventory.nsx_version})" if inventory.nsx_version else "")
        + ", read by `nsxkube nsx discover` with GET requests only. Owners come "
        "from tags and protection: `nsxkube/cluster`, `ncp/*` / `pks/*` / `owner=NCP` (Tanzu / NCP), `nsx-op/*` "
        "(nsx-operator), `_protection: REQUIRE_OVERRIDE` (a principal identity), `_system_owned`.", "",
        "## 1. Investigation results", "",
        "### Transport zones", "", *_table(("zone", "type", "owner"), transport_zone_rows(inventory)),
        "### Gateways", "", *_table(("gateway", "tier", "tier-0", "owner"), gateway_rows(inventory)),
        "### Segments", "", *_table(("segment", "display name", "subnets", "gateway", "transport zone", "owner"),
                                    segment_rows(inventory)),
        "### DFW policies", "",
        "Rules per category: " + (", ".join(f"{c} {n}" for c, n in counts.items()) or "none") + ".", "",
        *_table(("category", "policy", "sequence", "rules", "owner"), policy_rows(inventory)),
        "### IP discovery and SpoofGuard profiles", "",
        *_table(("profile", "kind", "settings", "bound to segments", "owner"), profile_rows(inventory)),
        "### MTU", "",
        f"- TEP / uplink MTU: {inventory.tep_mtu if inventory.tep_mtu is not None else 'could not be read'}"
        + (f" ({inventory.tep_mtu_source})" if inventory.tep_mtu_source else ""),
        f"- Gateway interface MTU (global config `mtu`): "
        f"{inventory.gateway_mtu if inventory.gateway_mtu is not None else 'could not be read'}",
        f"- Needed for node MTU {design.mtu.node_mtu}: {design.mtu.node_mtu + design.mtu.nsx_overhead}", "",
        "### Who owns what", "", *_table(("owner", "objects"), [(k, str(v)) for k, v in owner_counts(inventory).items()]),
        "## 2. Conflicts with cluster.yaml", "",
        *_table(("check", "result", "detail", "what to do"),
                [(f.check, MARK[f.status], f.detail, f.hint or "—") for f in findings]),
        "## 3. Decision", "", *decision_lines(design, inventory, findings),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def discover_dict(design: Design, inventory: LiveInventory, findings: list[Finding]) -> dict[str, Any]:
    """The same data for scripts (`--output json`)."""
    def obj(o: LiveObject) -> dict[str, Any]:
        owner = ownership_of(o)
        return {"path": o.path, "type": o.resource_type, "display_name": o.display_name, "owner": owner.owner,
                "owner_detail": owner.detail}

    return {
        "cluster": design.name,
        "manager": inventory.manager,
        "ok": not failures(findings),
        "transport_zones": [{**obj(z), "tz_type": z.body.get("tz_type")} for z in
                            sorted(inventory.transport_zones.values(), key=lambda z: z.path)],
        "gateways": [obj(g) for g in inventory.of_type("Tier0", "Tier1")],
        "segments": [{**obj(s), "subnets": [str(n) for n in s.networks()],
                      "connectivity_path": s.body.get("connectivity_path")} for s in inventory.of_type("Segment")],
        "security_policies": [{**obj(p), "category": p.body.get("category"), "sequence_number":
                               p.body.get("sequence_number"), "rule_count": _rule_count(p)}
                              for p in inventory.of_type("SecurityPolicy")],
        "rules_per_category": rules_per_category(inventory),
        "profiles": [{**obj(p), "settings": _profile_settings(p), "bound_to": _bound_segments(inventory, p.path)}
                     for p in inventory.of_type("IPDiscoveryProfile", "SpoofGuardProfile")],
        "mtu": {"tep": inventory.tep_mtu, "gateway": inventory.gateway_mtu,
                "needed": design.mtu.node_mtu + design.mtu.nsx_overhead},
        "owners": owner_counts(inventory),
        "findings": [{"check": f.check, "status": f.status, "detail": f.detail, "hint": f.hint} for f in findings],
    }
