"""The phases of `apply`, in order. Each module defines ``PHASE``; modules load lazily."""

from __future__ import annotations

import importlib
import importlib.util

from nsxkube.errors import UsageError
from nsxkube.pipeline.phase import Phase

# name → module; the order is the order of `apply` (destroy runs it backwards).
PHASES: dict[str, str] = {
    "network": "nsxkube.phases.network",
    "machines": "nsxkube.phases.machines",
    "network-bindings": "nsxkube.phases.network_bindings",
    "bootstrap": "nsxkube.phases.bootstrap",
}
# Phases the architecture names that this version cannot run yet: asked for by name, they are
# refused with this reason instead of pretending.
NOT_YET_BUILT: dict[str, str] = {
    "addons": "the addons phase (Cilium, CPI/CSI, MetalLB, ingress, …) is not built yet: apply the files "
    "under addons/ of `nsxkube render` as its README says",
    "validate": "validate is not a phase of apply yet: run `nsxkube validate PATH` after apply",
}


def available() -> list[str]:
    return [name for name in PHASES if importlib.util.find_spec(PHASES[name]) is not None]


def select(names: str | None) -> list[Phase]:
    """``None`` = every available phase in order; else a comma-separated list, run in apply order."""
    built = available()
    if names is None:
        wanted = built
    else:
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        for name in wanted:
            if name in NOT_YET_BUILT:
                raise UsageError(f"--phase {name}: {NOT_YET_BUILT[name]}")
            if name not in built:
                raise UsageError(f"--phase {name}: unknown phase", hint=f"phases: {', '.join(built)}")
        wanted = [n for n in built if n in wanted]
    return [importlib.import_module(PHASES[name]).PHASE for name in wanted]
