"""validate: the success criteria of the user's plan as checks against the live systems — NSX and
vCenter as `apply` would leave them (`infrastructure`), the cluster through its API (`cluster`).
Each check is ok / warn / fail / skipped with what it saw and, when not ok, a one-line hint and a
troubleshooting section. `nsxkube validate` runs them; reports in `report`."""

from __future__ import annotations

from collections.abc import Sequence

from nsxkube.errors import UsageError
from nsxkube.phases.validate import cluster, infrastructure
from nsxkube.phases.validate.model import GROUPS, Check, CheckResult
from nsxkube.phases.validate.runner import run_checks
from nsxkube.pipeline.context import Context

CHECKS: tuple[Check, ...] = (*infrastructure.CHECKS, *cluster.CHECKS)

__all__ = ["CHECKS", "CheckResult", "select_checks", "validate"]


def select_checks(only: Sequence[str] = ()) -> list[Check]:
    """Every check, or those of the groups (or check ids) named."""
    if not only:
        return list(CHECKS)
    known = {c.group for c in CHECKS} | {c.id for c in CHECKS}
    unknown = [name for name in only if name not in known]
    if unknown:
        raise UsageError(f"--only {unknown[0]}: no such group or check",
                         hint=f"groups: {', '.join(g for g in GROUPS if any(c.group == g for c in CHECKS))}")
    return [c for c in CHECKS if c.group in only or c.id in only]


def validate(ctx: Context, only: Sequence[str] = (), *, deadline_seconds: float = 300.0) -> list[CheckResult]:
    return run_checks(ctx, select_checks(only), deadline_seconds=deadline_seconds,
                      concurrency=ctx.options.concurrency)
