"""The record every plan / apply / destroy leaves in the work directory."""

from __future__ import annotations

from pathlib import Path

from nsxkube.pipeline.change import Change
from nsxkube.pipeline.record import read_record, record_run
from nsxkube.pipeline.runner import PhaseResult, RunResult


def test_the_last_apply_is_kept_and_read_back(tmp_path: Path) -> None:
    assert read_record(tmp_path, "apply") is None
    result = RunResult("apply", [PhaseResult("network", "t", [Change("create", "segment", "s")], 0.4567),
                                 PhaseResult("machines", "t", [], 1.0, ok=False, error="vCenter said no")],
                       next_step="run it again")
    path = record_run(tmp_path, result)
    assert path == tmp_path / "last-apply.json"
    record = read_record(tmp_path, "apply")
    assert record is not None and record["verb"] == "apply" and record["ok"] is False
    assert [(p["name"], p["seconds"], p["error"]) for p in record["phases"]] == [
        ("network", 0.457, None), ("machines", 1.0, "vCenter said no")]
    assert record["phases"][0]["changes"][0]["action"] == "create" and record["finished_at"].endswith("+00:00")
    (tmp_path / "last-apply.json").write_text("{torn")
    assert read_record(tmp_path, "apply") is None
