"""What a plan / apply / destroy did, as data: for `-o json` and for the record each run leaves in
the work directory (``last-<verb>.json``: phases, changes, seconds; never a secret)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from nsxkube.pipeline.runner import RunResult
from nsxkube.untrusted import InputError, read_json

RECORD = "last-{verb}.json"


def result_dict(result: RunResult) -> dict[str, Any]:
    return {
        "verb": result.verb,
        "ok": result.ok,
        "changed": result.changed,
        "next_step": result.next_step,
        "phases": [
            {
                "name": p.name,
                "ok": p.ok,
                "error": p.error,
                "seconds": round(p.seconds, 3),
                "changes": [
                    {"action": c.action, "kind": c.kind, "name": c.name, "fields": list(c.fields), "detail": c.detail}
                    for c in p.changes
                ],
            }
            for p in result.phases
        ],
    }


def record_run(workdir: Path, result: RunResult) -> Path:
    """Keeps the run's result in the work directory, for the operator and for `nsxkube lab summary`."""
    path = workdir / RECORD.format(verb=result.verb)
    record = {**result_dict(result), "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path


def read_record(workdir: Path, verb: str) -> dict[str, Any] | None:
    """The last run's record of ``verb``, or None when there is none (or it cannot be read)."""
    try:
        record = read_json(workdir / RECORD.format(verb=verb))
    except InputError:  # missing, torn, foreign or hostile (bounded: see nsxkube.untrusted)
        return None
    return record if isinstance(record, dict) else None
