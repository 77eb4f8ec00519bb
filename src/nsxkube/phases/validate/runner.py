"""Runs the checks: independent ones in parallel, the whole run under one deadline, progress as
each finishes. A check that raises is a failed check with the error's own line; one still running
at the deadline is failed as such (its thread is left to end by itself)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from nsxkube.errors import NsxkubeError
from nsxkube.phases.validate.model import Check, CheckResult, Outcome, Probe
from nsxkube.pipeline.context import Context

PHASE = "validate"


def run_checks(ctx: Context, checks: Sequence[Check], *, deadline_seconds: float = 300.0,
               concurrency: int = 8) -> list[CheckResult]:
    """Every check's result, in the order of ``checks``."""
    results: dict[str, CheckResult] = {}
    started: dict[str, float] = {}
    probe = Probe(ctx)

    def timed(check: Check) -> Outcome:
        started[check.id] = time.monotonic()
        return check.run(probe)

    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(checks) or 1)), thread_name_prefix=PHASE)
    try:
        futures: dict[Future[Outcome], Check] = {pool.submit(timed, c): c for c in checks}
        end = time.monotonic() + deadline_seconds
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=max(0.0, end - time.monotonic()), return_when=FIRST_COMPLETED)
            if not done:
                break
            for future in done:
                check = futures[future]
                results[check.id] = _result(check, future, time.monotonic() - started.get(check.id, time.monotonic()))
                ctx.reporter.progress(PHASE, "checks", len(results), len(checks),
                                      f"{check.id}: {results[check.id].verdict}")
        for future in pending:
            check = futures[future]
            future.cancel()
            results[check.id] = CheckResult(check.id, check.group, check.title, "fail",
                                            f"did not finish within the run's {deadline_seconds:g} s",
                                            "run it alone: nsxkube validate --only " + check.group, check.doc)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        probe.close()
    return [results[c.id] for c in checks]


def _result(check: Check, future: Future[Outcome], seconds: float) -> CheckResult:
    try:
        outcome = future.result()
    except NsxkubeError as err:
        outcome = Outcome("fail", err.message, err.hint or "")
    except Exception as err:  # a check's own bug must not hide the others' results
        outcome = Outcome("fail", f"the check failed: {type(err).__name__}: {err}", "report this as a bug")
    doc = check.doc if outcome.verdict in ("warn", "fail") else ""
    return CheckResult(check.id, check.group, check.title, outcome.verdict, outcome.detail, outcome.hint, doc,
                       round(seconds, 3))
