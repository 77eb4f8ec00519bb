"""Waiting until NSX has realized what was just written, with as few calls as honesty allows.

NSX reports realization per intent path only (`/infra/realized-state/realized-entities`), so
polling each of ~40 objects would cost ~40 calls a round. Instead nsxkube polls the objects the
others are realized with (inference, see the reference's note on realization): a security policy
becomes a firewall section only together with its rules and the groups and services they name,
and a segment becomes a logical switch with its binding maps and the profiles they bind. So the
paths polled are the changed policies and segments, plus any changed object neither covers (a
group edited alone, a profile whose segment did not change). An intent that reports no realized
entity for `QUIET_ROUNDS` rounds is taken as applied, as the rendered apply.sh does.

A round asks about every pending path at once (one round trip, not one per path); the first round
goes out right after the write and the pause between rounds starts short and grows, so a manager
that realizes quickly is not waited on and a slow one is not flooded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from nsxkube.errors import ProviderError
from nsxkube.providers.nsx.client import NsxClient
from nsxkube.render.nsx_objects import NsxObject

REALIZED_ENTITIES = "/infra/realized-state/realized-entities"
QUIET_ROUNDS = 3
MAX_PARALLEL = 6  # realized-state reads in flight at once
POLL_INTERVALS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)  # then 2 s until the timeout


def _policy_references(policy: NsxObject) -> set[str]:
    paths = set(policy.body.get("scope") or ())
    for rule in policy.body.get("rules") or ():
        for key in ("source_groups", "destination_groups", "services", "scope"):
            paths.update(rule.get(key) or ())
    return {p for p in paths if p.startswith("/")}


def _segment_references(segment: NsxObject, changed: Sequence[NsxObject]) -> set[str]:
    maps = [o for o in changed if o.parent_path == segment.path]
    covered = {m.path for m in maps}
    for binding in maps:
        covered.update(v for k, v in binding.body.items() if k.endswith("_profile_path") and isinstance(v, str))
    return covered


def realization_targets(changed: Sequence[NsxObject]) -> list[str]:
    """The paths to poll so that every changed object is known realized (see the module doc)."""
    roots = [o for o in changed if o.resource_type in ("SecurityPolicy", "Segment")]
    covered: set[str] = set()
    for root in roots:
        covered |= _policy_references(root) if root.resource_type == "SecurityPolicy" else \
            _segment_references(root, changed)
    return [o.path for o in roots] + [o.path for o in changed if o not in roots and o.path not in covered]


@dataclass
class _Pending:
    path: str
    state: str = "UNKNOWN"
    quiet_rounds: int = 0


def wait_until_realized(
    client: NsxClient,
    paths: Sequence[str],
    *,
    timeout: float,
    progress: Callable[[int, int, str], None] = lambda done, total, status: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll until every path is REALIZED; ERROR or the timeout raise ProviderError with NSX's detail."""
    pending = [_Pending(p) for p in paths]
    total, deadline, round_no = len(pending), clock() + timeout, 0
    while pending:
        still: list[_Pending] = []
        for item, entities in zip(pending, _read_round(client, [p.path for p in pending]), strict=True):
            results = entities.get("results") or []
            states = {str(e.get("state")) for e in results}
            if "ERROR" in states:
                raise ProviderError(f"NSX could not realize {item.path}: {_alarms(results)}",
                                    hint="fix the cause in NSX, then run apply again (what is done stays done)")
            if not results:
                item.quiet_rounds += 1
                item.state = "no realized entity yet"
                if item.quiet_rounds >= QUIET_ROUNDS:
                    continue  # this intent reports no realized entity of its own
            elif states == {"REALIZED"}:
                continue
            else:
                item.state = "/".join(sorted(states))
            still.append(item)
        pending = still
        progress(total - len(pending), total, ", ".join(f"{p.path} {p.state}" for p in pending[:3]))
        if not pending:
            return
        if clock() >= deadline:
            listed = "; ".join(f"{p.path} ({p.state})" for p in pending)
            raise ProviderError(f"{len(pending)} NSX object(s) not realized after {timeout:.0f} s: {listed}",
                                hint="NSX may be busy: run apply again later, or raise the realization timeout")
        sleep(min(POLL_INTERVALS[min(round_no, len(POLL_INTERVALS) - 1)], max(0.0, deadline - clock())))
        round_no += 1


def _read_round(client: NsxClient, paths: list[str]) -> list[dict[str, Any]]:
    def read(path: str) -> dict[str, Any]:
        return client.request("GET", REALIZED_ENTITIES, params={"intent_path": path}) or {}

    if len(paths) == 1:
        return [read(paths[0])]
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(paths)), thread_name_prefix="nsx-realized") as pool:
        return list(pool.map(read, paths))


def _alarms(entities: list[dict]) -> str:
    messages = []
    for entity in entities:
        for alarm in entity.get("alarms") or ():
            text = alarm.get("message") or (alarm.get("error_details") or {}).get("error_message")
            if text:
                messages.append(" ".join(str(text).split()))
    return "; ".join(dict.fromkeys(messages)) or "state ERROR (NSX gave no alarm message)"
