"""`nsx.segment.use_existing: true`: the segment is someone else's, so nsxkube only reads it and
prints what it lacks as manual steps — the profile binding maps nsxkube would have added to a
segment of its own. Pure."""

from __future__ import annotations

from nsxkube.design import Design
from nsxkube.pipeline.change import Change
from nsxkube.providers.nsx.diff import kind_of
from nsxkube.providers.nsx.model import LiveInventory
from nsxkube.render.nsx_objects import discovery_binding_map, security_binding_map, segment_path

PROFILE_FIELDS = {
    "SegmentDiscoveryProfileBindingMap": "ip_discovery_profile_path",
    "SegmentSecurityProfileBindingMap": "spoofguard_profile_path",
}


def missing_on_existing_segment(design: Design, inventory: LiveInventory) -> list[Change]:
    segment = segment_path(design)
    if inventory.get(segment) is None:
        return []  # the audit fails on it: there is nothing to bind to yet
    steps = []
    for wanted in (discovery_binding_map(design), security_binding_map(design)):
        field = PROFILE_FIELDS[wanted.resource_type]
        profile = wanted.body[field]
        bound = any(m.body.get(field) == profile for m in inventory.children_of(segment, wanted.resource_type))
        if not bound:
            steps.append(Change("manual", kind_of(wanted.resource_type), design.spec.nsx.segment.name,
                                f"its owner binds {profile} to segment {design.spec.nsx.segment.name} "
                                f"({field}); nsxkube only reads this segment"))
    return steps
