"""The cluster lease against the NSX emulator: one run at a time, who holds it, stale take-over,
--force-unlock, renewal, and a race decided by NSX's revisions."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from nsxkube.errors import ClusterLocked, ConflictError
from nsxkube.lab.nsx import NsxEmulator
from nsxkube.phases.clients import nsx_client
from nsxkube.phases.lock import cluster_lock, holder_name
from nsxkube.phases.network import PHASE as NETWORK
from nsxkube.pipeline import runner
from nsxkube.providers.nsx.lease import create_lease, lease_path
from tests.providers.nsx.helpers import emulator_design, make_context

T0 = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def lease_of(nsx: NsxEmulator) -> dict[str, str] | None:
    body = nsx.get(lease_path("k8s-prod"))
    return None if body is None else {t["scope"]: t["tag"] for t in body["tags"]}


def test_a_second_run_is_refused_with_who_holds_the_cluster_and_since_when(nsx: NsxEmulator, tmp_path: Path) -> None:
    design = emulator_design(nsx)
    with cluster_lock(make_context(design, nsx, tmp_path), "apply", now=lambda: T0) as lease:
        holder = lease.holder
        assert holder == holder_name("apply") and "pid" in holder
        tags = lease_of(nsx)
        assert tags is not None and tags["nsxkube/lease"] == holder and tags["nsxkube/cluster"] == "k8s-prod"
        assert tags["nsxkube/lease-since"] == "2026-12-06T12:00:00+00:00"
        with pytest.raises(ClusterLocked) as refused, cluster_lock(make_context(design, nsx, tmp_path), "destroy",
                                                            now=lambda: T0 + dt.timedelta(minutes=5)):
            pytest.fail("a second holder got in")
        line = refused.value.one_line()
        assert line.startswith(f"cluster k8s-prod is locked by {holder} since 2026-12-06T12:00:00+00:00")
        assert "--force-unlock" in line and "\n" not in line
        assert isinstance(refused.value, ConflictError)  # exit code 5, as every refusal to touch
        assert lease_of(nsx) is not None and lease_of(nsx)["nsxkube/lease"] == holder  # the refused run left it
    assert lease_of(nsx) is None  # released at the end


def leave_dead_lease(nsx: NsxEmulator, tmp_path: Path, holder: str, since: dt.datetime, ttl: float) -> None:
    """What a run killed with -9 leaves behind: its lease, never released nor renewed again."""
    ctx = make_context(emulator_design(nsx), nsx, tmp_path)
    try:
        create_lease(nsx_client(ctx, "lock"), "k8s-prod", holder, since, ttl)
    finally:
        ctx.close()


def test_an_expired_lease_is_taken_over_and_a_live_one_only_with_force(nsx: NsxEmulator, tmp_path: Path) -> None:
    design = emulator_design(nsx)
    leave_dead_lease(nsx, tmp_path, "nsxkube apply by ops@jump-1 (pid 4242)", T0, 60)
    refused = pytest.raises(ClusterLocked, match=r"locked by nsxkube apply by ops@jump-1 \(pid 4242\) since 2026-12-06T12:00:00")
    with refused, cluster_lock(make_context(design, nsx, tmp_path), "apply", now=lambda: T0 + dt.timedelta(seconds=59)):
        pytest.fail("a live lease was taken over")
    forced = make_context(design, nsx, tmp_path)
    with cluster_lock(forced, "apply", force=True, now=lambda: T0 + dt.timedelta(seconds=30)) as lease:
        holder = lease.holder
        assert lease_of(nsx) == {**lease_of(nsx), "nsxkube/lease": holder,
                                 "nsxkube/lease-since": "2026-12-06T12:00:30+00:00"}
    assert [w for w in forced.reporter.texts("warning") if "took over" in w] == [
        "took over the cluster lease of nsxkube apply by ops@jump-1 (pid 4242) since 2026-12-06T12:00:00+00:00 "
        "(lease until 2026-12-06T12:01:00+00:00): forced (--force-unlock)"]
    assert lease_of(nsx) is None

    leave_dead_lease(nsx, tmp_path, "nsxkube destroy by ops@jump-2 (pid 7)", T0, 60)
    stale = make_context(design, nsx, tmp_path)
    with cluster_lock(stale, "apply", now=lambda: T0 + dt.timedelta(seconds=61)):
        pass
    assert any("took over" in w and "jump-2" in w and "its lease expired" in w for w in stale.reporter.texts("warning"))
    assert lease_of(nsx) is None


def test_the_holder_renews_its_lease_while_it_runs(nsx: NsxEmulator, tmp_path: Path) -> None:
    clock = [T0]
    ctx = make_context(emulator_design(nsx), nsx, tmp_path)
    with cluster_lock(ctx, "apply", ttl=60, renew_every=0.05, now=lambda: clock[0]):
        first = lease_of(nsx)["nsxkube/lease-expires"]
        clock[0] = T0 + dt.timedelta(seconds=45)
        deadline = threading.Event()
        for _ in range(100):
            if lease_of(nsx)["nsxkube/lease-expires"] != first:
                break
            deadline.wait(0.05)
        assert first == "2026-12-06T12:01:00+00:00"
        assert lease_of(nsx)["nsxkube/lease-expires"] == "2026-12-06T12:01:45+00:00"
        assert lease_of(nsx)["nsxkube/lease-since"] == "2026-12-06T12:00:00+00:00"  # renewing keeps "since"
    assert ctx.reporter.texts("warning") == []


def test_two_runs_starting_at_once_get_one_lease(nsx: NsxEmulator, tmp_path: Path) -> None:
    design = emulator_design(nsx)
    for attempt in range(5):
        start, results = threading.Barrier(2), []
        inside, release = threading.Event(), threading.Event()

        def contender(n: int, start: threading.Barrier = start, results: list[str] = results,
                      inside: threading.Event = inside, release: threading.Event = release,
                      workdir: Path = tmp_path / str(attempt)) -> None:
            start.wait()
            try:
                with cluster_lock(make_context(design, nsx, workdir / str(n)), "apply"):
                    results.append("held")
                    inside.set()
                    release.wait(5)
            except ClusterLocked:
                results.append("refused")
                release.set()

        threads = [threading.Thread(target=contender, args=(n,)) for n in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert sorted(results) == ["held", "refused"], results
        assert lease_of(nsx) is None


def test_destroy_does_not_delete_the_lease_it_holds(nsx: NsxEmulator, tmp_path: Path) -> None:
    design = emulator_design(nsx)
    assert runner.apply(make_context(design, nsx, tmp_path), [NETWORK], "cluster.yaml").ok
    ctx = make_context(design, nsx, tmp_path)
    with cluster_lock(ctx, "destroy"):
        result = runner.destroy(ctx, [NETWORK], confirm=lambda changes: True)
        assert result.ok, result.phases[0].error
        deleted = [c.name for c in result.phases[0].changes]
        assert "k8s-nodes-segment" in deleted and "nsxkube-lease-k8s-prod" not in deleted
        assert lease_of(nsx) is not None
    assert lease_of(nsx) is None


def test_a_lease_left_by_a_dead_process_of_this_machine_is_taken_at_once(nsx: NsxEmulator, tmp_path: Path) -> None:
    """`kill -9` of an apply, then apply again on the same machine: no wait, no --force-unlock."""
    dead = subprocess.Popen(["sleep", "0"])
    dead.wait()  # a pid that existed and has ended
    here = socket.gethostname()
    leave_dead_lease(nsx, tmp_path, f"nsxkube apply by ops@{here} (pid {dead.pid})", T0, 600)
    ctx = make_context(emulator_design(nsx), nsx, tmp_path)
    with cluster_lock(ctx, "apply", now=lambda: T0 + dt.timedelta(seconds=5)):
        pass
    assert any("its process on this machine is gone" in w for w in ctx.reporter.texts("warning"))

    # alive on this machine (this test's own process), or on another machine: refused, then forced
    for holder in (f"nsxkube apply by ops@{here} (pid {os.getpid()})", f"nsxkube apply by ops@elsewhere (pid {dead.pid})"):
        leave_dead_lease(nsx, tmp_path, holder, T0, 600)
        with pytest.raises(ClusterLocked), cluster_lock(make_context(emulator_design(nsx), nsx, tmp_path), "apply",
                                                 now=lambda: T0 + dt.timedelta(seconds=5)):
            pytest.fail("a live holder's lease was taken")
        with cluster_lock(make_context(emulator_design(nsx), nsx, tmp_path), "apply", force=True):
            pass


def test_a_lazy_lease_is_taken_only_before_a_write(nsx: NsxEmulator, tmp_path: Path) -> None:
    """apply takes the lease just before its first write: a no-op re-apply writes nothing to NSX."""
    from tests.providers.nsx.helpers import writes

    design = emulator_design(nsx)
    ctx = make_context(design, nsx, tmp_path)
    with cluster_lock(ctx, "apply", lazy=True) as lease:
        assert runner.apply(ctx, [NETWORK], "cluster.yaml", before_write=lease.take).ok
        assert lease.held and lease_of(nsx) is not None  # taken for the first apply's PATCH
    assert lease_of(nsx) is None
    nsx.log.clear()
    again = make_context(design, nsx, tmp_path)
    with cluster_lock(again, "apply", lazy=True) as lease:
        assert runner.apply(again, [NETWORK], "cluster.yaml", before_write=lease.take).ok
        assert not lease.held
    assert writes(nsx) == []  # not even the lease

    leave_dead_lease(nsx, tmp_path, "nsxkube apply by ops@elsewhere (pid 1)", T0 + dt.timedelta(days=999), 600)
    blocked = make_context(emulator_design(nsx, {"network.loadbalancer_ports": [80, 443, 8443]}), nsx, tmp_path)
    with pytest.raises(ClusterLocked), cluster_lock(blocked, "apply", lazy=True) as lease:
        runner.apply(blocked, [NETWORK], "cluster.yaml", before_write=lease.take)  # the whole run stops
    assert not [w for w in writes(nsx) if "lease" not in w["path"]]  # nothing was written
