"""nsxkube benchmarks: run `python benchmarks/bench.py [section ...]` and read the figures.

Timings are wall-clock medians of several runs on this machine; they are measured here, not
asserted in tests, so a slow CI machine never fails the suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
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


def check_once(path: Path) -> tuple[float, float, int, str]:
    """One `nsxkube check PATH`: wall seconds, peak RSS in MiB, exit code, first line of stderr.

    The peak is read by GNU time when installed (a small process in between: the child's high-water
    mark would otherwise start at this benchmark's own size, copied by fork); else by wait4."""
    gnu_time = shutil.which("time") if Path("/usr/bin/time").exists() else None
    prefix = [gnu_time, "-f", "%M"] if gnu_time else []
    start = time.perf_counter()
    process = subprocess.Popen([*prefix, sys.executable, "-m", "nsxkube", "check", str(path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = (process.stderr.read() if process.stderr else b"").decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    lines = stderr.strip().splitlines() or [""]
    peak_kib = float(lines.pop()) if gnu_time and lines[-1].strip().isdigit() else usage.ru_maxrss
    return seconds, peak_kib / 1024, os.waitstatus_to_exitcode(status), (lines or [""])[0]


def bench_hostile(work: Path) -> None:
    """Each hostile input of tests/cli/hostile_inputs.py through `nsxkube check`: median time of three
    runs and peak memory (goal: < 1 s and < 200 MB each, exit 2 with one line). The seed spec is the
    baseline: most of each figure is the interpreter starting."""
    from tests.cli.hostile_inputs import HOSTILE

    seed = write_spec(work, example_data(), "seed.yaml")
    seconds, rss, code, _ = check_once(seed)
    print(f"hostile: baseline `check` of the seed spec        {seconds * 1000:6.0f} ms {rss:6.1f} MiB  exit {code}")
    worst_time = worst_rss = 0.0
    clean = 0
    for number, hostile in enumerate(HOSTILE):
        path = work / f"hostile-{number}.yaml"
        hostile.make(path)
        runs = [check_once(path) for _ in range(3)]  # the median run: the machine may be busy
        seconds, _, code, line = sorted(runs)[1]
        rss = max(run[1] for run in runs)
        worst_time, worst_rss = max(worst_time, seconds), max(worst_rss, rss)
        ok = code == 2 and hostile.words in line
        clean += ok
        print(f"hostile: {hostile.label[:44]:44} {seconds * 1000:6.0f} ms {rss:6.1f} MiB  exit {code}"
              f"{'' if ok else '  NOT REFUSED CLEANLY: ' + line[:120]}")
    print(f"hostile: {clean} of {len(HOSTILE)} refused cleanly; worst {worst_time * 1000:.0f} ms, {worst_rss:.1f} MiB "
          "(goal < 1 s, < 200 MB)")


SECTIONS: dict[str, Callable[[Path], None]] = {"cli": bench_cli, "hostile": bench_hostile}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sections", nargs="*", choices=[*SECTIONS, []], help="default: all")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nsxkube-bench-") as tmp:
        for name in args.sections or list(SECTIONS):
            SECTIONS[name](Path(tmp))


if __name__ == "__main__":
    main()
