"""The pure diff (desired vs live) and the choice of what to poll for realization, as tables."""

from __future__ import annotations

from typing import Any

import pytest

from nsxkube.providers.nsx.diff import diff_objects, differing_fields, same
from nsxkube.providers.nsx.model import LiveInventory, LiveObject
from nsxkube.providers.nsx.realization import realization_targets
from nsxkube.render.nsx import desired_nsx_objects
from tests.support.specs import example_design

DESIGN = example_design({"nsx.transport_zone": "overlay-tz", "nsx.tier1": "t1-gw"})
DESIRED = desired_nsx_objects(DESIGN)


@pytest.mark.parametrize(("desired", "live", "expected"), [
    ({"a": 1}, {"a": 1, "_revision": 3, "path": "/x"}, True),  # server-set fields do not count
    ({"subnets": [{"gateway_address": "10.0.0.1/24"}]},
     {"subnets": [{"gateway_address": "10.0.0.1/24", "network": "10.0.0.0/24"}]}, True),
    ({"subnets": [{"gateway_address": "10.0.0.1/24"}]}, {"subnets": []}, False),
    ({"rules": [{"id": "a", "x": 1}, {"id": "b", "x": 2}]},
     {"rules": [{"id": "b", "x": 2, "rule_id": 9}, {"id": "a", "x": 1}]}, True),  # matched by id
    ({"rules": [{"id": "a"}]}, {"rules": [{"id": "a"}, {"id": "stray"}]}, False),
    ({"expression": [{"ip_addresses": ["1.1.1.1"]}]}, {"expression": [{"ip_addresses": ["1.1.1.2"]}]}, False),
    ({"opts": {"arp": {"limit": 5}}}, {"opts": {"arp": {"limit": 5, "enabled": True}, "dhcp": True}}, True),
    ({"a": 1}, {}, False),
])
def test_only_the_fields_we_send_are_compared(desired: dict[str, Any], live: dict[str, Any], expected: bool) -> None:
    assert same(desired, live) is expected


def test_tags_compare_as_a_set_and_fields_are_named() -> None:
    tags = [{"scope": "a", "tag": "1"}, {"scope": "b", "tag": "2"}]
    assert differing_fields({"tags": tags, "x": 1}, {"tags": list(reversed(tags)), "x": 1}) == ()
    assert differing_fields({"tags": tags, "x": 1, "y": 2}, {"tags": tags[:1], "x": 2, "y": 2}) == ("tags", "x")


def as_live(body: dict[str, Any], path: str, **server: Any) -> LiveObject:
    return LiveObject.from_body({**body, "path": path, "parent_path": path.rsplit("/", 2)[0], "_revision": 2,
                                 "_create_user": "admin", **server})


def test_create_update_unchanged_and_conflict() -> None:
    segment, group, service, policy = (next(o for o in DESIRED if o.resource_type == t)
                                       for t in ("Segment", "Group", "Service", "SecurityPolicy"))
    changed_group = {**group.body, "expression": [{"resource_type": "IPAddressExpression", "ip_addresses": []}]}
    objects = {
        segment.path: as_live(segment.body, segment.path),
        group.path: as_live(changed_group, group.path),
        service.path: as_live({**service.body, "tags": [{"scope": "ncp/cluster", "tag": "c8"}]}, service.path),
        policy.path: as_live(policy.body, policy.path, _protection="REQUIRE_OVERRIDE"),
    }
    changes = {c.obj.path: c for c in diff_objects(DESIRED, LiveInventory(objects), DESIGN.name)}
    assert changes[segment.path].action == "unchanged"
    assert (changes[group.path].action, changes[group.path].fields) == ("update", ("expression",))
    assert changes[service.path].action == "conflict" and "Tanzu / NCP" in changes[service.path].detail
    assert changes[policy.path].action == "conflict" and "protected" in changes[policy.path].detail
    assert {c.action for p, c in changes.items() if p not in objects} == {"create"}


def test_realization_polls_policies_and_segments_and_what_they_do_not_cover() -> None:
    assert realization_targets(DESIRED) == [o.path for o in DESIRED if o.resource_type in ("Segment", "SecurityPolicy")]
    group = next(o for o in DESIRED if o.resource_type == "Group")
    profile = next(o for o in DESIRED if o.resource_type == "SpoofGuardProfile")
    assert realization_targets([group, profile]) == [group.path, profile.path]
    policy = next(o for o in DESIRED if o.resource_type == "SecurityPolicy")
    assert realization_targets([group, policy]) == [policy.path]
