"""nsxkube benchmark, section `lab nodes`: `apply` building a real cluster on the lab's nodes.

    python benchmarks/bench_lab_nodes.py [--workers-after 5] [--keep]

Runs as an operator would, each command a subprocess, in a fresh temporary lab directory:

1. `nsxkube lab up --nodes` (programs and images found in the cache; a first build is announced
   and timed apart);
2. `nsxkube apply cluster.yaml` (3 control planes + 2 workers) from nothing to every node Ready:
   wall time, the per-phase seconds of last-apply.json, and the bootstrap phase split into its steps
   from the per-node command logs (getting ready: cloud-init, bundle, image preload, preflight, MTU
   probe; kubeadm init; the control-plane joins, one at a time; the worker joins, in parallel; the
   bridge CNI) — the rest of the phase is CSR approval, labels, the Ready wait and the kubeconfig;
3. the memory of the nodes (resident and page cache of their cgroups, containers included) and of
   the machine, once every node is Ready;
4. the no-op re-apply;
5. the workers' count raised (default 5: 3 + 5), `apply` again: time and memory;
6. `nsxkube lab down`, and its time.

Needs root and the built programs (scripts/lab builds them). Figures are measured, not asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "nsxkube"]
CLUSTER = "k8s-lab"
LOG_LINE = re.compile(r"^=== (\S+) (.+): exit (\d+) \(([\d.]+) s\)$")
PREPARE = ("waiting for cloud-init", "upload ", "checking the image bundle", "preloading images", "preflight",
           "MTU probe")


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 1800) -> tuple[float, str]:
    start = time.monotonic()
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    return seconds, result.stdout


def node_steps(workdir: Path) -> dict[str, list[tuple[str, float]]]:
    """node → [(command label, seconds)] of the last apply (the logs append; the last run is at the end)."""
    steps = {}
    for log in sorted((workdir / "logs").glob("*.log")):
        entries = []
        for line in log.read_text(errors="replace").splitlines():
            match = LOG_LINE.match(line)
            if match:
                entries.append((match.group(2), float(match.group(4))))
        steps[log.stem] = entries
    return steps


def bootstrap_split(workdir: Path, phase_seconds: float) -> dict[str, float]:
    steps = node_steps(workdir)

    def total(node: str, *labels: str) -> float:
        return sum(s for label, s in steps.get(node, []) if label.startswith(labels))

    control_planes = sorted(n for n in steps if "-cp-" in n)
    workers = sorted(n for n in steps if "-worker-" in n)
    split = {
        "getting ready (cloud-init, bundle, images, preflight, MTU; in parallel)":
            max(total(n, *PREPARE) for n in steps),
        "kubeadm init": total(control_planes[0], "kubeadm init"),
        "control-plane joins (one at a time)": sum(total(n, "kubeadm join as control-plane") for n in control_planes),
        "worker joins (in parallel)": max((total(n, "kubeadm join as worker") for n in workers), default=0.0),
        "bridge CNI (in parallel)": max(total(n, "installing the bridge CNI") for n in steps),
    }
    split["the rest: CSR approval, labels, Ready wait, kubeconfig"] = phase_seconds - sum(split.values())
    return split


def memory(supervisor_pid: int) -> tuple[int, int, int]:
    """(nodes' resident, nodes' page cache, machine in use) bytes."""
    rss = cache = 0
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mountpoint = line.split()[4]
        if not mountpoint.endswith("/memory"):
            continue
        for group in Path(mountpoint).rglob(f"nsxkube-nxl{supervisor_pid}"):
            stats = dict(line.split() for line in (group / "memory.stat").read_text().splitlines())
            rss += int(stats.get("total_rss", stats.get("anon", 0)))
            cache += int(stats.get("total_cache", stats.get("file", 0)))
    info = {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in
                                                      Path("/proc/meminfo").read_text().splitlines())}
    return rss, cache, info["MemTotal"] - info["MemAvailable"]


def mib(value: float) -> str:
    return f"{value / 2**20:.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers-after", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave the lab running")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    lab_dir = Path(tempfile.mkdtemp(prefix="nsxkube-bench-nodes-"))
    spec = lab_dir / "cluster.yaml"
    try:
        seconds, out = run([*CLI, "lab", "up", "--dir", str(lab_dir), "--nodes"])
        print(f"lab up --nodes: {seconds:.1f} s")
        for line in out.splitlines():
            if "images:" in line or "programs:" in line or "built in" in line:
                print(f"  {line.strip()}")
        env = {**os.environ}
        for line in (lab_dir / "lab.env").read_text().splitlines():
            if line.startswith("export "):
                key, _, value = line[len("export "):].partition("=")
                env[key] = value.strip("'")
        supervisor = json.loads((lab_dir / "lab.json").read_text())["pid"]
        workdir = lab_dir / ".nsxkube" / CLUSTER

        seconds, _ = run([*CLI, "apply", str(spec)], env)
        record = json.loads((workdir / "last-apply.json").read_text())
        print(f"apply 3 control planes + 2 workers, from nothing to every node Ready: {seconds:.1f} s")
        for phase in record["phases"]:
            print(f"  {phase['name']:17} {phase['seconds']:7.1f} s")
        boot = next(p["seconds"] for p in record["phases"] if p["name"] == "bootstrap")
        for step, step_seconds in bootstrap_split(workdir, boot).items():
            print(f"    {step:62} {step_seconds:6.1f} s")
        rss, cache, used = memory(supervisor)
        print(f"memory of the 5 nodes: resident {mib(rss)}, page cache {mib(cache)}; machine in use {mib(used)}")

        seconds, _ = run([*CLI, "apply", str(spec)], env)
        record = json.loads((workdir / "last-apply.json").read_text())
        changed = [c for p in record["phases"] for c in p["changes"] if c["action"] != "unchanged"]
        print(f"re-apply (no-op): {seconds:.1f} s, {len(changed)} change(s)")

        text = spec.read_text()
        spec.write_text(re.sub(r"(  workers:\n    count: )2", rf"\g<1>{args.workers_after}", text, count=1))
        seconds, _ = run([*CLI, "apply", str(spec)], env)
        print(f"apply 3 + {args.workers_after} (adds {args.workers_after - 2} workers): {seconds:.1f} s")
        rss, cache, used = memory(supervisor)
        print(f"memory of the {3 + args.workers_after} nodes: resident {mib(rss)}, page cache {mib(cache)}; "
              f"machine in use {mib(used)}")
    finally:
        if not args.keep:
            seconds, _ = run([*CLI, "lab", "down", "--dir", str(lab_dir)])
            print(f"lab down: {seconds:.1f} s")


if __name__ == "__main__":
    main()
