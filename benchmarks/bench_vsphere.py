"""nsxkube benchmark, section `vsphere`: the machines phase against vcsim.

    python benchmarks/bench_vsphere.py [vsphere] [--latency-ms 25]

Measures, for 5 and 50 node VMs: wall time of `apply --phase machines` (clone, rules, power on,
wait for every guest's address), vCenter SOAP requests per VM (counted on the session's stub,
every request from every thread), the no-op re-apply of 50 VMs (goal < 3 s), and that clones
run concurrently: with a simulated network latency per request (vcsim answers in microseconds,
a remote vCenter does not) 50 VMs take far less than 50 × one VM.

Needs the vcsim of programs/build.sh. vcsim runs no guests: the guest stand-in of the tests
(nsxkube.lab.guest) reports each node's address as open-vm-tools would.
Figures are measured here, not asserted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.providers.vsphere.lab import VsphereLab, make_lab  # noqa: E402
from tests.support.vcsim import start_vcsim  # noqa: E402

from nsxkube.phases.clients import vsphere_session  # noqa: E402
from nsxkube.phases.machines import PHASE  # noqa: E402
from nsxkube.pipeline import runner  # noqa: E402


def cluster_keys(vms: int) -> dict[str, Any]:
    """3 control planes and vms - 3 workers on a /20 node segment."""
    return {
        "nsx.segment.cidr": "172.16.48.0/20",
        "nsx.segment.gateway": "172.16.48.1",
        "network.api_vip": "172.16.48.10",
        "network.loadbalancer_pools": [{"name": "default", "range": "172.16.63.200-172.16.63.250"}],
        "nodes.address_range": "172.16.48.11-172.16.55.254",
        "nodes.control_planes.count": min(3, vms),
        "nodes.workers.count": max(0, vms - 3),
    }


def with_latency(session: Any, seconds: float) -> None:
    if seconds <= 0:
        return
    invoke = session.stub.InvokeMethod

    def delayed(*args: Any) -> Any:
        time.sleep(seconds)
        return invoke(*args)

    session.stub.InvokeMethod = delayed


def run_apply(lab: VsphereLab, vms: int, *, concurrency: int = 8, latency: float = 0.0) -> dict[str, Any]:
    design = lab.design(cluster_keys(vms))
    ctx = lab.context(design, concurrency=concurrency, timeout_seconds=300)
    session = vsphere_session(ctx, "machines")  # logged in here: the timing below is the phase's own work
    with_latency(session, latency)
    before = session.requests
    with lab.guest(design) as guest:
        start = time.perf_counter()
        result = runner.apply(ctx, [PHASE], "cluster.yaml")
        seconds = time.perf_counter() - start
    if not result.ok or guest.errors:
        raise SystemExit(f"apply of {vms} VMs failed: {result.phases[0].error} {guest.errors}")
    requests = session.requests - before
    ctx.close()
    return {"seconds": seconds, "requests": requests, "per_vm": requests / vms,
            "by_method": dict(session.by_method), "design": design}


def run_noop(lab: VsphereLab, design: Any) -> dict[str, Any]:
    ctx = lab.context(design)
    start = time.perf_counter()
    result = runner.apply(ctx, [PHASE], "cluster.yaml")  # including the login
    seconds = time.perf_counter() - start
    assert result.ok and not result.changed, result.phases[0].error
    requests = vsphere_session(ctx, "machines").requests
    ctx.close()
    return {"seconds": seconds, "requests": requests}


def destroy(lab: VsphereLab, design: Any) -> float:
    ctx = lab.context(design, assume_yes=True)
    start = time.perf_counter()
    result = runner.destroy(ctx, [PHASE], confirm=lambda changes: True)
    assert result.ok, result.phases[0].error
    ctx.close()
    return time.perf_counter() - start


def bench_vsphere(work: Path, latency_ms: float) -> None:
    sim = start_vcsim(work, vms=1, hosts_per_cluster=8)
    try:
        lab = make_lab(sim, work)
        print(f"vsphere: machines phase against vcsim ({sim.origin}), 8 hosts, concurrency 8")
        for vms in (5, 50):
            applied = run_apply(lab, vms)
            noop = run_noop(lab, applied["design"])
            gone = destroy(lab, applied["design"])
            methods = ", ".join(f"{k} {v}" for k, v in sorted(applied["by_method"].items(), key=lambda kv: -kv[1]))
            print(f"  {vms:>2} VMs: apply {applied['seconds']:.2f} s, {applied['requests']} SOAP requests "
                  f"({applied['per_vm']:.1f} per VM); no-op re-apply {noop['seconds']:.2f} s with {noop['requests']} "
                  f"requests (login included); destroy {gone:.2f} s")
            print(f"          requests: {methods}")
        latency = latency_ms / 1000
        one = run_apply(lab, 1, latency=latency)
        destroy(lab, one["design"])
        serial = run_apply(lab, 10, concurrency=1, latency=latency)
        destroy(lab, serial["design"])
        fifty = run_apply(lab, 50, concurrency=8, latency=latency)
        destroy(lab, fifty["design"])
        print(f"  concurrency, with {latency_ms:g} ms latency per request (a remote vCenter):")
        print(f"    1 VM {one['seconds']:.2f} s; 10 VMs one at a time {serial['seconds']:.2f} s; "
              f"50 VMs 8 at a time {fifty['seconds']:.2f} s = {fifty['seconds'] / (50 * one['seconds']):.0%} of "
              f"50 × one VM ({50 * one['seconds']:.1f} s)")
        lab.session.close()
    finally:
        sim.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", default=["vsphere"], help="vsphere (the only section here)")
    parser.add_argument("--latency-ms", type=float, default=25.0, help="simulated latency per vCenter request")
    args = parser.parse_args()
    unknown = set(args.sections) - {"vsphere"}
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))} (sections: vsphere)")
    with tempfile.TemporaryDirectory(prefix="nsxkube-bench-") as tmp:
        if "vsphere" in args.sections:
            bench_vsphere(Path(tmp), args.latency_ms)


if __name__ == "__main__":
    main()
