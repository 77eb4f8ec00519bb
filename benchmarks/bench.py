"""nsxkube benchmarks: run `python benchmarks/bench.py [section ...]` and read the figures.

Timings are wall-clock medians of several runs on this machine; they are measured here, not
asserted in tests, so a slow CI machine never fails the suite.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.specs import example_data, with_changes  # noqa: E402


def median_seconds(action: Callable[[], object], runs: int = 5) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def run_cli(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "nsxkube", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"nsxkube {' '.join(args)} failed: {result.stderr.strip()}")


def big_cluster(workers: int) -> dict:
    """The example cluster on a /20 segment with many workers."""
    return with_changes(example_data(), {
        "nsx.segment.cidr": "172.16.48.0/20",
        "nsx.segment.gateway": "172.16.48.1",
        "network.api_vip": "172.16.48.10",
        "network.loadbalancer_pools": [{"name": "default", "range": "172.16.63.200-172.16.63.250"}],
        "nodes.address_range": "172.16.48.11-172.16.55.254",
        "nodes.workers.count": workers,
    })


def write_spec(directory: Path, data: dict, name: str) -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def bench_cli(work: Path) -> None:
    help_time = median_seconds(lambda: run_cli("--help"), runs=7)
    print(f"cli: `nsxkube --help`                         {help_time * 1000:7.0f} ms   (goal < 300 ms)")
    seed = write_spec(work, example_data(), "seed.yaml")
    big = write_spec(work, big_cluster(200), "big.yaml")
    print(f"cli: `nsxkube check` seed (3+2 nodes)          {median_seconds(lambda: run_cli('check', str(seed))) * 1000:7.0f} ms")
    print(f"cli: `nsxkube check` 3 + 200 workers           {median_seconds(lambda: run_cli('check', str(big))) * 1000:7.0f} ms   (goal < 1 s)")
    print(f"cli: `nsxkube check -o json` 3 + 200 workers   {median_seconds(lambda: run_cli('check', str(big), '-o', 'json')) * 1000:7.0f} ms")


SECTIONS: dict[str, Callable[[Path], None]] = {"cli": bench_cli}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sections", nargs="*", choices=[*SECTIONS, []], help="default: all")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nsxkube-bench-") as tmp:
        for name in args.sections or list(SECTIONS):
            SECTIONS[name](Path(tmp))


if __name__ == "__main__":
    main()
