"""The cluster lease: one NSX object that says which nsxkube run may change this cluster now.

Two `apply` runs on one cluster — from one machine or two — must not interleave. The lease is an
empty Policy group `/infra/domains/default/groups/nsxkube-lease-<cluster>` (no members, referenced
by no rule, so it changes nothing in the data path), written with NSX's own compare-and-swap: a
PUT without `_revision` creates it and fails with 412 when it exists, a PUT with the read
`_revision` renews or takes it over and fails with 412 when someone else wrote first. Its tags say
who holds it, since when and until when; the holder renews it while it runs and deletes it at the
end. A lease past its expiry belongs to a run that died and may be taken over.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from nsxkube.design import OWNERSHIP_SCOPE
from nsxkube.providers.nsx.client import NsxClient
from nsxkube.providers.nsx.errors import NsxRequestError
from nsxkube.providers.nsx.ownership import LEASE_SCOPE

SINCE_SCOPE = "nsxkube/lease-since"
EXPIRES_SCOPE = "nsxkube/lease-expires"
STALE_STATUSES = (409, 412)


def lease_path(cluster: str) -> str:
    return f"/infra/domains/default/groups/nsxkube-lease-{cluster}"


@dataclass(frozen=True)
class Lease:
    holder: str
    since: dt.datetime
    expires: dt.datetime
    revision: int

    def stale(self, now: dt.datetime) -> bool:
        return now >= self.expires

    def describe(self) -> str:
        return f"{self.holder} since {_iso(self.since)} (lease until {_iso(self.expires)})"


class LeaseTaken(Exception):
    """Someone else wrote the lease between our read and our write (NSX answered 412)."""


def read_lease(client: NsxClient, cluster: str) -> Lease | None:
    body = client.get_object(lease_path(cluster))
    return None if body is None else _lease_of(body)


def create_lease(client: NsxClient, cluster: str, holder: str, now: dt.datetime, ttl: float) -> Lease:
    """Creates the lease; LeaseTaken when it exists already."""
    return _put(client, cluster, holder, now, now, ttl, revision=None)


def renew_lease(client: NsxClient, cluster: str, lease: Lease, holder: str, now: dt.datetime, ttl: float, *,
                take_over: bool = False) -> Lease:
    """Moves the expiry on (or, with ``take_over``, makes ``holder`` the new holder from ``now``);
    LeaseTaken when the lease changed since it was read."""
    since = now if take_over else lease.since
    return _put(client, cluster, holder, since, now, ttl, revision=lease.revision)


def delete_lease(client: NsxClient, cluster: str, holder: str) -> bool:
    """Deletes the lease if ``holder`` still holds it; False when someone else does (left alone)."""
    current = read_lease(client, cluster)
    if current is None:
        return True
    if current.holder != holder:
        return False
    try:
        client.request("DELETE", lease_path(cluster))
    except NsxRequestError as err:
        if err.status != 404:
            raise
    return True


def _put(client: NsxClient, cluster: str, holder: str, since: dt.datetime, now: dt.datetime, ttl: float, *,
         revision: int | None) -> Lease:
    expires = now + dt.timedelta(seconds=ttl)
    body: dict[str, Any] = {
        "resource_type": "Group",
        "display_name": f"nsxkube lease of {cluster}",
        "description": f"Held by {holder} until {_iso(expires)}. Deleted when that run ends; "
                       "`nsxkube apply --force-unlock` takes over a lease of a run that died.",
        "expression": [],
        "tags": [
            {"scope": OWNERSHIP_SCOPE, "tag": cluster},
            {"scope": LEASE_SCOPE, "tag": holder[:256]},
            {"scope": SINCE_SCOPE, "tag": _iso(since)},
            {"scope": EXPIRES_SCOPE, "tag": _iso(expires)},
        ],
    }
    if revision is not None:
        body["_revision"] = revision
    try:
        written = client.request("PUT", lease_path(cluster), json=body)
    except NsxRequestError as err:
        if err.status in STALE_STATUSES:
            raise LeaseTaken(str(err)) from None
        raise
    return _lease_of(written)


def _lease_of(body: dict[str, Any]) -> Lease:
    tags = {str(t.get("scope")): str(t.get("tag", "")) for t in body.get("tags") or []}
    epoch = dt.datetime.fromtimestamp(0, dt.UTC)
    return Lease(tags.get(LEASE_SCOPE, "an unknown run"), _parse(tags.get(SINCE_SCOPE), epoch),
                 _parse(tags.get(EXPIRES_SCOPE), epoch), int(body.get("_revision", 0)))


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat(timespec="seconds")


def _parse(text: str | None, default: dt.datetime) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text) if text else default
    except ValueError:
        return default  # a lease nobody can read is treated as expired
