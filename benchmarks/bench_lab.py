"""nsxkube benchmark, section `lab`: the main job and `apply` against `nsxkube lab` (vcsim + NSX emulator).

    python benchmarks/bench_lab.py [main] [seed] [workers] [--runs 3] [--workers 50] [--no-bindings]

Every run starts a fresh lab in its own temporary directory and stops it afterwards (`nsxkube lab
down`, also when a step fails). All commands run as subprocesses, as an operator types them, so the
figures include Python start-up and the log-in to both simulators.

  main     `scripts/lab` (the README's main job) end to end with NSXKUBE_LAB_DIR set to a fresh
           directory, and its own timings table; then `scripts/lab` again on the same directory (lab
           already running) and that the second apply changed nothing (last-apply.json: every
           change "unchanged"). The first-time installs are excluded: scripts/setup and
           `programs/build.sh vcsim` run once before, untimed in the figures (their time is printed).
  seed     `nsxkube lab up`, then `nsxkube apply cluster.yaml --phase network,machines` for the lab's
           5-node cluster (3 control planes + 2 workers): wall time, the per-phase seconds of
           last-apply.json, and the no-op re-apply.
  workers  the same with the workers' `count: 2` of the lab's cluster.yaml changed to 50 (53 nodes),
           checked with `nsxkube check` first; then `--phase network,machines,network-bindings` on
           top (network and machines no-op, the NSX bindings of 53 nodes are the work) and its
           no-op re-apply (skip with --no-bindings).

Prints median / min / max over --runs runs, the machine, and the vcsim origin (`nsxkube lab
status`). Figures are measured here, not asserted; the script exits non-zero only when a command
fails or a re-apply changes something.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_CLI = ROOT / ".venv" / "bin" / "nsxkube"
NSXKUBE = [str(_CLI)] if _CLI.exists() else [sys.executable, "-m", "nsxkube"]
SECTIONS = ("main", "seed", "workers")
NETWORK_MACHINES = "network,machines"
WITH_BINDINGS = "network,machines,network-bindings"
TIMING_LINE = re.compile(r"^\s{2}(?P<title>\S.*?)\s+(?P<seconds>\d+\.\d+) s(?:\s+\(exit (?P<rc>\d+)\))?\s*$")


class Figures:
    """Samples by figure name (in first-seen order), notes about them, and odd things seen."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.notes: dict[str, str] = {}
        self.odd: list[str] = []

    def add(self, name: str, seconds: float, note: str = "") -> None:
        self.samples[name].append(seconds)
        if note:
            self.notes[name] = note

    def remark(self, text: str) -> None:
        if text not in self.odd:
            self.odd.append(text)


def run(cmd: list[str], figures: Figures, *, env: dict[str, str] | None = None,
        what: str = "") -> tuple[float, str]:
    """Runs a command, returns (wall seconds, stdout); a failure stops the benchmark with its output."""
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    label = what or " ".join(Path(cmd[0]).name if i == 0 else a for i, a in enumerate(cmd))
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise RuntimeError(f"`{label}` failed (exit {result.returncode}) after {seconds:.2f} s:\n{tail}")
    for line in result.stderr.splitlines():
        if re.search(r"warn|error|traceback|deprecat", line, re.IGNORECASE):
            figures.remark(f"stderr of `{label}`: {line.strip()}")
    return seconds, result.stdout


def lab_env(lab_dir: Path) -> dict[str, str]:
    """The environment with lab.env's `export NAME='value'` lines applied (as `source` would)."""
    env = dict(os.environ)
    for line in (lab_dir / "lab.env").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("export ") and "=" in line:
            name, value = line.removeprefix("export ").split("=", 1)
            words = shlex.split(value)
            env[name.strip()] = words[0] if words else ""
    return env


def apply_record(lab_dir: Path) -> dict[str, Any]:
    cluster = json.loads((lab_dir / "lab.json").read_text(encoding="utf-8"))["cluster"]
    return json.loads((lab_dir / ".nsxkube" / cluster / "last-apply.json").read_text(encoding="utf-8"))


def actions(record: dict[str, Any]) -> dict[str, Counter[str]]:
    return {p["name"]: Counter(c["action"] for c in p.get("changes", [])) for p in record["phases"]}


def describe(counts: Counter[str]) -> str:
    return ", ".join(f"{n} {a}" for a, n in counts.most_common()) or "no changes"


def expect_unchanged(record: dict[str, Any], what: str) -> str:
    """Raises unless every change of every phase is "unchanged"; returns a short description."""
    by_phase = actions(record)
    changed = {p: c for p, c in by_phase.items() if set(c) - {"unchanged"}}
    if changed or not record.get("ok", False) or record.get("changed"):
        detail = "; ".join(f"{p}: {describe(c)}" for p, c in by_phase.items())
        raise RuntimeError(f"{what} was not a no-op (ok={record.get('ok')}, changed={record.get('changed')}): {detail}")
    return "all unchanged (" + ", ".join(f"{p} {sum(c.values())}" for p, c in by_phase.items()) + ")"


@contextmanager
def fresh_lab(work: Path, tag: str, figures: Figures) -> Iterator[Path]:
    """A new, empty lab directory; the lab started in it is stopped afterwards, whatever happened."""
    lab_dir = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=work))
    try:
        yield lab_dir
    finally:
        down = subprocess.run([*NSXKUBE, "lab", "down", "--dir", str(lab_dir)], cwd=ROOT,
                              capture_output=True, text=True)
        if down.returncode != 0:
            figures.remark(f"`lab down` in {lab_dir} failed: {(down.stdout + down.stderr).strip()}")


def vcsim_origin(lab_dir: Path, figures: Figures) -> str:
    _, out = run([*NSXKUBE, "lab", "status", "--dir", str(lab_dir)], figures, what="nsxkube lab status")
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0] == "vcenter":
            return parts[2].strip()
    return "unknown (no vcenter line in `lab status`)"


def lab_up(lab_dir: Path, figures: Figures) -> tuple[float, str]:
    seconds, out = run([*NSXKUBE, "lab", "up", "--dir", str(lab_dir)], figures, what="nsxkube lab up")
    return seconds, out


def timed_apply(spec: Path, phases: str, env: dict[str, str], figures: Figures) -> tuple[float, dict[str, Any]]:
    seconds, _ = run([*NSXKUBE, "apply", str(spec), "--phase", phases], figures, env=env,
                     what=f"nsxkube apply --phase {phases}")
    return seconds, apply_record(spec.parent)


def phase_seconds(record: dict[str, Any]) -> dict[str, float]:
    return {p["name"]: float(p["seconds"]) for p in record["phases"]}


def set_workers(spec: Path, count: int) -> None:
    """Changes the `count:` directly under `nodes:` → `workers:` and nothing else."""
    lines = spec.read_text(encoding="utf-8").splitlines(keepends=True)
    first = lines[0]
    nodes = workers = None
    changed = 0
    for i, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if not stripped or stripped.startswith("#"):
            continue
        if nodes is None:
            if indent == 0 and stripped == "nodes:":
                nodes = indent
            continue
        if indent <= nodes:
            break  # past the nodes: block
        if workers is None:
            if stripped == "workers:":
                workers = indent
            continue
        if indent <= workers:
            break  # past the workers: block
        match = re.fullmatch(r"count:\s*(\d+)", stripped)
        if match:
            lines[i] = f"{line[:indent]}count: {count}{line[len(line.rstrip()):]}"
            changed += 1
            break
    if changed != 1:
        raise RuntimeError(f"no `count:` under nodes.workers in {spec}")
    spec.write_text("".join(lines), encoding="utf-8")
    if spec.read_text(encoding="utf-8").splitlines(keepends=True)[0] != first:
        raise RuntimeError(f"{spec}: the lab's marker line moved")


def parse_timings(out: str) -> dict[str, float]:
    """The table scripts/lab prints after `==> timings`: title → seconds (exit codes must be 0)."""
    table: dict[str, float] = {}
    section = out.split("==> timings", 1)
    if len(section) < 2:
        raise RuntimeError("scripts/lab printed no timings table")
    for line in section[1].splitlines():
        match = TIMING_LINE.match(line)
        if not match:
            continue
        if match["rc"] not in (None, "0"):
            raise RuntimeError(f"scripts/lab step failed: {line.strip()}")
        table[match["title"]] = float(match["seconds"])
    return table


# --- sections -------------------------------------------------------------------------------------

def warm_up(figures: Figures) -> None:
    """The first-time installs, so the main job's figures do not include them."""
    seconds, _ = run(["scripts/setup"], figures)
    built, _ = run(["programs/build.sh", "vcsim"], figures)
    print(f"  warm-up (excluded): scripts/setup {seconds:.2f} s, programs/build.sh vcsim {built:.2f} s")


def bench_main(work: Path, figures: Figures, run_no: int) -> str:
    with fresh_lab(work, "main", figures) as lab_dir:
        env = {**os.environ, "NSXKUBE_LAB_DIR": str(lab_dir)}
        first, out = run(["scripts/lab"], figures, env=env, what="scripts/lab (fresh)")
        figures.add("main job: scripts/lab, fresh lab (wall)", first)
        for title, seconds in parse_timings(out).items():
            figures.add(f"  table: {title}", seconds)
        record = apply_record(lab_dir)
        figures.add("  apply record: total of phase seconds", sum(phase_seconds(record).values()),
                    "; ".join(f"{p} {describe(c)}" for p, c in actions(record).items()))
        second, out = run(["scripts/lab"], figures, env=env, what="scripts/lab (again)")
        parse_timings(out)  # every step exited 0
        figures.add("main job again, lab running (wall)", second,
                    "second apply: " + expect_unchanged(apply_record(lab_dir), "second scripts/lab apply"))
        origin = vcsim_origin(lab_dir, figures)
    print(f"  main    run {run_no}: fresh {first:.2f} s, again {second:.2f} s")
    return origin


def bench_seed(work: Path, figures: Figures, run_no: int) -> str:
    with fresh_lab(work, "seed", figures) as lab_dir:
        up, _ = lab_up(lab_dir, figures)
        figures.add("seed 3+2: nsxkube lab up", up)
        env, spec = lab_env(lab_dir), lab_dir / "cluster.yaml"
        wall, record = timed_apply(spec, NETWORK_MACHINES, env, figures)
        figures.add("seed 3+2: apply network,machines (wall)", wall)
        for phase, seconds in phase_seconds(record).items():
            figures.add(f"  seed phase {phase}", seconds, describe(actions(record)[phase]))
        noop, record = timed_apply(spec, NETWORK_MACHINES, env, figures)
        figures.add("seed 3+2: no-op re-apply (wall)", noop, expect_unchanged(record, "seed re-apply"))
        origin = vcsim_origin(lab_dir, figures)
    print(f"  seed    run {run_no}: apply {wall:.2f} s, no-op {noop:.2f} s")
    return origin


def bench_workers(work: Path, figures: Figures, run_no: int, workers: int, bindings: bool) -> str:
    tag = f"3+{workers}"
    with fresh_lab(work, "workers", figures) as lab_dir:
        lab_up(lab_dir, figures)
        env, spec = lab_env(lab_dir), lab_dir / "cluster.yaml"
        set_workers(spec, workers)
        check, out = run([*NSXKUBE, "check", str(spec)], figures, env=env, what="nsxkube check")
        if f"{workers} workers" not in out:
            raise RuntimeError(f"nsxkube check does not report {workers} workers:\n{out[:400]}")
        figures.add(f"{tag}: nsxkube check", check)
        wall, record = timed_apply(spec, NETWORK_MACHINES, env, figures)
        figures.add(f"{tag}: apply network,machines (wall)", wall)
        for phase, seconds in phase_seconds(record).items():
            figures.add(f"  {tag} phase {phase}", seconds, describe(actions(record)[phase]))
        noop, record = timed_apply(spec, NETWORK_MACHINES, env, figures)
        figures.add(f"{tag}: no-op re-apply (wall)", noop, expect_unchanged(record, f"{tag} re-apply"))
        summary = f"apply {wall:.2f} s, no-op {noop:.2f} s"
        if bindings:
            bound, record = timed_apply(spec, WITH_BINDINGS, env, figures)
            figures.add(f"{tag}: apply {WITH_BINDINGS} (wall)", bound,
                        "network, machines no-op; bindings are the work")
            seconds, counts = phase_seconds(record), actions(record)
            figures.add(f"  {tag} phase network-bindings", seconds["network-bindings"],
                        describe(counts["network-bindings"]))
            again, record = timed_apply(spec, WITH_BINDINGS, env, figures)
            figures.add(f"{tag}: no-op re-apply with bindings (wall)", again,
                        expect_unchanged(record, f"{tag} re-apply with bindings"))
            summary += f", with bindings {bound:.2f} s (bindings phase {seconds['network-bindings']:.2f} s)"
        origin = vcsim_origin(lab_dir, figures)
    print(f"  workers run {run_no}: {summary}")
    return origin


# --- report ---------------------------------------------------------------------------------------

def print_table(figures: Figures, origins: set[str], runs: int) -> None:
    width = max(len(name) for name in figures.samples) + 2
    print(f"\nlab benchmark: {runs} run(s) each; seconds (median / min / max)")
    print(f"  {'figure':<{width}} {'median':>7} {'min':>7} {'max':>7}  note")
    for name, samples in figures.samples.items():
        note = figures.notes.get(name, "")
        print(f"  {name:<{width}} {statistics.median(samples):7.2f} {min(samples):7.2f} {max(samples):7.2f}  {note}")
    print(f"  machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
          f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
    print(f"  vcsim: {', '.join(sorted(origins)) or 'unknown'}")
    for text in figures.odd:
        print(f"  note: {text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", default=list(SECTIONS), help=f"any of {', '.join(SECTIONS)}; default all")
    parser.add_argument("--runs", type=int, default=3, help="runs of each section (default 3)")
    parser.add_argument("--workers", type=int, default=50, help="workers of the big cluster (default 50)")
    parser.add_argument("--no-bindings", action="store_true", help="skip network-bindings for the big cluster")
    args = parser.parse_args()
    unknown = set(args.sections) - set(SECTIONS) - {"lab"}  # `lab`: this whole file, as in bench.py
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))} (sections: {', '.join(SECTIONS)})")
    sections = [s for s in SECTIONS if s in args.sections or "lab" in args.sections]
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    figures, origins = Figures(), set()
    print(f"lab benchmark: {', '.join(sections)}; {args.runs} run(s) each")
    with tempfile.TemporaryDirectory(prefix="nsxkube-bench-lab-") as tmp:
        work = Path(tmp)
        try:
            if "main" in sections:
                warm_up(figures)
            for run_no in range(1, args.runs + 1):
                if "main" in sections:
                    origins.add(bench_main(work, figures, run_no))
                if "seed" in sections:
                    origins.add(bench_seed(work, figures, run_no))
                if "workers" in sections:
                    origins.add(bench_workers(work, figures, run_no, args.workers, not args.no_bindings))
        except RuntimeError as err:
            if figures.samples:
                print_table(figures, origins, args.runs)
            print(f"\nerror: {err}", file=sys.stderr)
            return 1
    print_table(figures, origins, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
