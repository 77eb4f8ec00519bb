"""NSX benchmarks: `python benchmarks/bench_nsx.py` prints request counts and wall times of the
network phase against the emulator on loopback (realization delay 0, so the figures are nsxkube's
own cost, not NSX's).

Targets (issue 4): apply from empty = 1 PATCH and at most 10 requests; no-op re-apply = 0 PATCH
and at most 10 GETs; under 1 s. Requests are counted from the emulator's request log and include
the session log-in and log-out.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.providers.nsx.helpers import emulator_design, make_context  # noqa: E402

from nsxkube.lab.nsx import NsxEmulator  # noqa: E402
from nsxkube.phases.network import PHASE as NETWORK  # noqa: E402
from nsxkube.phases.network_bindings import PHASE as BINDINGS  # noqa: E402
from nsxkube.pipeline import runner  # noqa: E402

RUNS = 5
# Clear of the tanzu preset's 172.16.50.128/25, which the default node network overlaps.
FREE_CIDR = {"nsx.segment.cidr": "172.16.60.0/24", "nsx.segment.gateway": "172.16.60.1",
             "network.api_vip": "172.16.60.10", "nodes.address_range": "172.16.60.11-172.16.60.99",
             "network.loadbalancer_pools": [{"name": "default", "range": "172.16.60.200-172.16.60.250"}]}


def counted(nsx: NsxEmulator, action: Callable[[], Any]) -> tuple[float, dict[str, int]]:
    nsx.log.clear()
    start = time.perf_counter()
    action()
    seconds = time.perf_counter() - start
    counts: dict[str, int] = {"total": len(nsx.requests)}
    for entry in nsx.requests:
        counts[entry["method"]] = counts.get(entry["method"], 0) + 1
    return seconds, counts


def apply_phase(nsx: NsxEmulator, phase: Any, work: Path) -> None:
    ctx = make_context(emulator_design(nsx, FREE_CIDR), nsx, work, fast_client=False)
    try:
        result = runner.apply(ctx, [phase], "cluster.yaml")
    finally:
        ctx.close()
    if not result.ok:
        raise SystemExit(f"{phase.name} failed: {result.phases[0].error}")


def line(label: str, seconds: list[float], counts: dict[str, int], target: str) -> None:
    methods = ", ".join(f"{m} {n}" for m, n in sorted(counts.items()) if m != "total")
    print(f"{label:<34} {statistics.median(seconds) * 1000:7.1f} ms median of {len(seconds)}  "
          f"{counts['total']:2d} requests ({methods})  target: {target}")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-nsx-"))
    print("network phase against the NSX emulator (HTTPS on loopback, realization delay 0)")
    fresh, noop, bindings, rebind = [], [], [], []
    counts: dict[str, dict[str, int]] = {}
    for _ in range(RUNS):
        with NsxEmulator("tanzu", realization_delay=0) as nsx:
            network, bind = partial(apply_phase, nsx, NETWORK, work), partial(apply_phase, nsx, BINDINGS, work)
            seconds, counts["apply"] = counted(nsx, network)
            fresh.append(seconds)
            seconds, counts["noop"] = counted(nsx, network)
            noop.append(seconds)
            for node in emulator_design(nsx, FREE_CIDR).ip_plan.nodes:
                nsx.attach_vm(node.name, "k8s-nodes-segment")
            seconds, counts["bind"] = counted(nsx, bind)
            bindings.append(seconds)
            seconds, counts["rebind"] = counted(nsx, bind)
            rebind.append(seconds)
    line("network apply from empty (tanzu)", fresh, counts["apply"], "1 PATCH, <= 10 requests, < 1 s")
    line("network re-apply (no-op)", noop, counts["noop"], "0 PATCH, <= 10 GETs")
    line("network-bindings, 5 nodes", bindings, counts["bind"], "—")
    line("network-bindings re-apply", rebind, counts["rebind"], "no writes")
    ok = (counts["apply"].get("PATCH") == 1 and counts["apply"]["total"] <= 10 and "PATCH" not in counts["noop"]
          and counts["noop"].get("GET", 0) <= 10 and statistics.median(fresh) < 1.0)
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
