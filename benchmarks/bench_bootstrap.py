"""Bootstrap benchmark: `python benchmarks/bench_bootstrap.py` (as root) and read the figures.

Thirteen real SSH test hosts (3 control planes, 10 workers) in network namespaces, with the
stand-in kubeadm of the tests taking 2 s per init and per join. Expected: the workers join in
parallel (all ten within 5 s), the control planes one after the other (about 3 × 2 s).
The figures come from the stand-ins' own start/end records, so SSH and script overhead count.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.providers.nodes import standins  # noqa: E402
from tests.support.hosts import host_network  # noqa: E402
from tests.support.specs import example_design  # noqa: E402

from nsxkube.cli.reporting import show_timings  # noqa: E402
from nsxkube.phases.bootstrap import PHASE  # noqa: E402
from nsxkube.pipeline import runner  # noqa: E402
from nsxkube.pipeline.context import Context, Options  # noqa: E402
from nsxkube.pipeline.reporter import RecordingReporter  # noqa: E402

PREFIX = "10.213.68"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--control-planes", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="what the stand-in kubeadm takes per init/join")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="nsxkube-bench-bootstrap-") as tmp_dir:
        tmp = Path(tmp_dir)
        (tmp / "hosts").mkdir()
        design = example_design({
            "nsx.segment.cidr": f"{PREFIX}.0/24", "nsx.segment.gateway": f"{PREFIX}.1",
            "network.api_vip": f"{PREFIX}.10",
            "network.loadbalancer_pools": [{"name": "default", "range": f"{PREFIX}.200-{PREFIX}.250"}],
            "nodes.address_range": f"{PREFIX}.11-{PREFIX}.99",
            "nodes.control_planes.count": args.control_planes, "nodes.workers.count": args.workers,
            "ssh.user": "root", "ssh.private_key_file": str(tmp / "hosts" / "client_ed25519"),
        })
        names = [n.name for n in design.ip_plan.nodes]
        with standins.private_bundle_dir(), host_network(tmp / "hosts", len(names), subnet=f"{PREFIX}.0/24",
                                                         names=names, tag="nkbench") as net:
            cluster = standins.make_cluster(tmp / "cluster", design.name, {h.name: str(h.address) for h in net.hosts},
                                            init_seconds=args.seconds, join_seconds=args.seconds)
            for host in net.hosts:
                standins.install(host, cluster)
            workdir = tmp / "work"
            workdir.mkdir(mode=0o700)
            (workdir / "known_hosts").write_text("\n".join(net.known_hosts_lines()) + "\n")
            ctx = Context(design, Options(workdir=workdir, timeout_seconds=300, concurrency=args.concurrency),
                          RecordingReporter(), secret=lambda name, what: "")
            start = time.monotonic()
            try:
                result = runner.apply(ctx, [PHASE], "cluster.yaml")
            finally:
                ctx.close()
            total = time.monotonic() - start
            if not result.ok:
                print(f"bootstrap failed: {result.phases[-1].error}")
                return 1
            calls = [r for h in net.hosts for r in standins.records(h) if r["prog"] == "kubeadm"]
            init = next(r for r in calls if r["argv"][:1] == ["init"] and "--upload-certs" in r["argv"])
            joins = {r["host"]: r for r in calls if r["argv"][:1] == ["join"]}
            workers = [joins[n.name] for n in design.ip_plan.workers]
            control_planes = [init] + [joins[n.name] for n in design.ip_plan.control_planes[1:]]
            worker_window = max(r["end"] for r in workers) - min(r["start"] for r in workers)
            cp_window = max(r["end"] for r in control_planes) - init["start"]
            before_init = init["start"] - min(r["start"] for h in net.hosts for r in standins.records(h))

    serial = len(control_planes) * args.seconds
    print(f"stand-in kubeadm: {args.seconds:.1f} s per init and per join; concurrency {args.concurrency}")
    print(f"{len(workers)} workers joined within {worker_window:.2f} s "
          f"({'PASS' if worker_window < 5 else 'FAIL'}: under 5 s, in parallel)")
    print(f"{len(control_planes)} control planes (init + joins) took {cp_window:.2f} s "
          f"({'PASS' if serial <= cp_window < serial + 3 else 'FAIL'}: about {serial:.0f} s, one at a time)")
    print(f"before init (cloud-init wait, upload, preflight, MTU probe between {len(names)} nodes): "
          f"{before_init:.2f} s")
    print(f"whole phase: {total:.2f} s")
    show_timings(Console(highlight=False), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
