"""One run at a time per cluster: `apply` and `destroy` hold the cluster lease in NSX
(`providers.nsx.lease`) from their first write to the end of the run, renewing it meanwhile. A run
whose plans change nothing writes nothing, the lease included: it is taken just before the first
phase that acts (the runner's ``before_write``), so a re-apply of a built cluster stays read-only.

A second run, from this machine or another, is refused with who holds the lease and since when.
A lease past its expiry is taken over (its holder died without releasing it), and so is one whose
holder ran on this machine and whose process is gone (an apply killed here is resumed at once);
`--force-unlock` takes over any other, for when the operator knows its holder is gone.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from nsxkube.errors import ClusterLocked, ProviderError
from nsxkube.pipeline.context import Context

LEASE_SECONDS = 600.0  # a run that died holds the cluster this long at most
RENEW_EVERY = LEASE_SECONDS / 5



def holder_name(verb: str) -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"nsxkube {verb} by {user}@{socket.gethostname()} (pid {os.getpid()})"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ClusterLease:
    """The lease of one run: taken on the first ``take()``, renewed in the background, released once."""

    def __init__(self, ctx: Context, verb: str, *, force: bool = False, ttl: float = LEASE_SECONDS,
                 renew_every: float = RENEW_EVERY, now: Callable[[], dt.datetime] = _now) -> None:
        self.ctx, self.verb, self.force, self.ttl, self.renew_every, self.now = ctx, verb, force, ttl, renew_every, now
        self.holder = holder_name(verb)
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self._renewer is not None

    def take(self) -> None:
        """Takes the lease (once; later calls do nothing). The lease travels on the run's one NSX
        session, so it costs a PUT here and a read and DELETE at release, not a log-in of its own."""
        if self._renewer is not None:
            return
        from nsxkube.phases.clients import nsx_client
        from nsxkube.providers.nsx import lease as leases

        client = nsx_client(self.ctx, "lock")
        held = _take(self.ctx, client, leases, self.ctx.design.name, self.holder, self.force, self.ttl, self.now)
        self._renewer = threading.Thread(target=_renew, args=(
            self.ctx, client, leases, self.ctx.design.name, self.holder, held, self.ttl, self.renew_every,
            self._stop, self.now), name="nsxkube-lease", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        if self._renewer is None:
            return
        from nsxkube.phases.clients import nsx_client
        from nsxkube.providers.nsx import lease as leases

        self._stop.set()
        self._renewer.join()
        self._renewer = None
        try:
            if not leases.delete_lease(nsx_client(self.ctx, "lock"), self.ctx.design.name, self.holder):
                self.ctx.reporter.warning("lock", "the cluster lease was taken over by someone else during this "
                                                  f"{self.verb}")
        except ProviderError as err:  # never hide the run's own outcome behind the release
            self.ctx.reporter.warning("lock", f"could not release the cluster lease ({err.one_line()}); it expires "
                                              f"{self.ttl / 60:.0f} min after its last renewal, or run again from "
                                              "this machine")


@contextmanager
def cluster_lock(ctx: Context, verb: str, *, force: bool = False, lazy: bool = False, ttl: float = LEASE_SECONDS,
                 renew_every: float = RENEW_EVERY, now: Callable[[], dt.datetime] = _now) -> Iterator[ClusterLease]:
    """The run's lease for the block, released at its end; taken at once, or with ``lazy`` on the
    lease's first ``take()`` (apply and destroy: just before their first write)."""
    lease = ClusterLease(ctx, verb, force=force, ttl=ttl, renew_every=renew_every, now=now)
    if not lazy:
        lease.take()
    try:
        yield lease
    finally:
        lease.release()


def _take(ctx: Context, client: Any, leases: Any, cluster: str, holder: str, force: bool, ttl: float,
          now: Callable[[], dt.datetime]) -> Any:
    for _ in range(3):  # each turn follows a write that raced ours
        try:
            return leases.create_lease(client, cluster, holder, now(), ttl)
        except leases.LeaseTaken:
            pass
        current = leases.read_lease(client, cluster)
        if current is None:
            continue
        if current.stale(now()):
            why = "its lease expired"
        elif _gone_from_this_machine(current.holder):
            why = "its process on this machine is gone"
        elif force:
            why = "forced (--force-unlock)"
        else:
            raise ClusterLocked(f"cluster {cluster} is locked by {current.describe()}: nothing was changed",
                         hint="wait for that run to end; if it died, run again after the lease expires or with "
                              "--force-unlock")
        try:
            taken = leases.renew_lease(client, cluster, current, holder, now(), ttl, take_over=True)
        except leases.LeaseTaken:
            continue
        ctx.reporter.warning("lock", f"took over the cluster lease of {current.describe()}: {why}")
        return taken
    raise ProviderError(f"the cluster lease of {cluster} kept changing under nsxkube; nothing was changed",
                        hint="another run is starting at the same moment: try again")


def _gone_from_this_machine(holder: str) -> bool:
    """Whether ``holder`` (see holder_name) ran on this machine and its process no longer exists.
    A pid taken again by another process counts as alive: the safe side."""
    found = re.search(r"@(\S+) \(pid (\d+)\)$", holder)
    if found is None or found.group(1) != socket.gethostname():
        return False
    try:
        os.kill(int(found.group(2)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


def _renew(ctx: Context, client: Any, leases: Any, cluster: str, holder: str, held: Any, ttl: float,
           every: float, stop: threading.Event, now: Callable[[], dt.datetime]) -> None:
    while not stop.wait(every):
        try:
            held = leases.renew_lease(client, cluster, held, holder, now(), ttl)
        except leases.LeaseTaken:
            ctx.reporter.warning("lock", f"the cluster lease of {cluster} was taken over by another run")
            return
        except Exception as err:  # a failed renewal is retried at the next turn; the run goes on
            ctx.reporter.warning("lock", f"could not renew the cluster lease: {err}")
