"""Hostile and broken cluster files through `nsxkube check` as a user runs it (a subprocess): each is
refused with exit 2 and one line naming the problem (with its line and column where it has one),
within seconds — never an internal error (exit 70), a hang, or memory growth."""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import time

import pytest

from nsxkube.untrusted import InputError, read_text
from tests.cli.hostile_inputs import HOSTILE

LIMIT_SECONDS = 10  # generous for a loaded CI machine; the benchmark measures the real figure (< 1 s)
LIMIT_MEMORY = 200 << 20


def check_limited(path) -> subprocess.CompletedProcess:
    def limit_memory() -> None:  # a runaway parse dies here instead of taking the machine
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run([sys.executable, "-m", "nsxkube", "check", str(path)], capture_output=True, text=True,
                          timeout=60, preexec_fn=limit_memory)


@pytest.mark.parametrize("hostile", HOSTILE, ids=[h.label for h in HOSTILE])
def test_hostile_file_is_refused_in_one_line(tmp_path, hostile):
    path = tmp_path / "cluster.yaml"
    hostile.make(path)
    start = time.monotonic()
    result = check_limited(path)
    elapsed = time.monotonic() - start
    assert result.returncode == 2, (result.returncode, result.stderr[-500:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert 1 <= len(lines) <= hostile.lines, result.stderr[:2000]
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert lines[0].startswith(f"error: {path}"), lines[0][:300]
    if hostile.positioned:
        assert re.match(rf"error: {re.escape(str(path))}:\d+:\d+: ", lines[0]), lines[0][:300]
    assert hostile.words in lines[0], lines[0][:300]
    assert max(len(line) for line in lines) < 600, "a huge value must not be echoed back whole"
    assert elapsed < LIMIT_SECONDS, elapsed


def test_positions_are_given_where_the_problem_is(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text("name: lab\nvsphere:\n  datacenter: &dc dc1\n")
    line = check_limited(path).stderr.strip()
    assert line.startswith(f"error: {path}:3:15: YAML anchor &dc"), line


def test_an_unreadable_file_says_why_in_one_line(tmp_path, monkeypatch):
    # root (as in CI) reads a chmod 000 file anyway: the refusal the OS gives others is simulated here
    path = tmp_path / "cluster.yaml"
    path.write_text("name: lab\n")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(InputError, match="permission denied"):
        read_text(path)


def test_the_example_itself_still_passes(tmp_path):
    path = tmp_path / "cluster.yaml"
    assert subprocess.run([sys.executable, "-m", "nsxkube", "init", str(path)], capture_output=True).returncode == 0
    assert check_limited(path).returncode == 0


def test_a_file_its_user_may_not_read_is_one_line_not_a_usage_block():
    """chmod 000 gave click's three-line usage error ('Invalid value for path'); root reads anything,
    so as root the check runs as nobody on a file in a directory nobody may enter."""
    import os
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="nsxkube-unreadable-")
    try:
        os.chmod(directory, 0o755)
        path = os.path.join(directory, "cluster.yaml")
        with open(path, "w") as handle:
            handle.write("name: lab\n")
        os.chmod(path, 0o000)
        as_nobody = os.geteuid() == 0

        def drop() -> None:
            if as_nobody:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)

        try:
            probe = subprocess.run([sys.executable, "-c", "import nsxkube"], capture_output=True, preexec_fn=drop)
        except OSError:
            probe = None
        if probe is None or probe.returncode != 0:
            pytest.skip("the interpreter is not readable by nobody here: the CliRunner test below covers it")
        result = subprocess.run([sys.executable, "-m", "nsxkube", "check", path], capture_output=True, text=True,
                                preexec_fn=drop, timeout=60)
        assert result.returncode == 2, result
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines == [f"error: {path}: cannot read: permission denied (check the file's owner and mode)"]
    finally:
        shutil.rmtree(directory)


def test_the_cli_reports_an_unreadable_file_itself(tmp_path, monkeypatch):
    """What a user who may not read the file sees, simulated for root: click's own readability check
    (os.access) and the read both refuse. Before: click's three-line usage block."""
    import os

    from typer.testing import CliRunner

    from nsxkube.cli import app

    path = tmp_path / "cluster.yaml"
    path.write_text("name: lab\n")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda target, mode, *a, **k: False if str(target) == str(path)
                        else real_access(target, mode, *a, **k))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("nsxkube.untrusted.open", refuse, raising=False)
    from nsxkube.errors import SpecError

    result = CliRunner().invoke(app, ["check", str(path)])  # main() turns the SpecError into its one line, exit 2
    assert "Usage:" not in result.output and "is not readable" not in result.output, result.output
    assert isinstance(result.exception, SpecError), (result.exit_code, result.output)
    assert result.exception.one_line() == f"{path}: cannot read: permission denied (check the file's owner and mode)"
