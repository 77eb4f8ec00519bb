"""`nsxkube lab nsx` (the typer sub-app, run as `python -m nsxkube.cli.lab`): serves the emulator in the
foreground, prints how to reach it, logs requests, stops on SIGTERM; a bad preset is one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from nsxkube.providers.nsx.client import ClientConfig, NsxClient, parse_manager
from nsxkube.spec.model import Tls


def test_lab_nsx_serves_the_tanzu_preset_until_sigterm(tmp_path: Path) -> None:
    log_file = tmp_path / "nsx.jsonl"
    command = [sys.executable, "-m", "nsxkube", "lab", "nsx", "--preset", "tanzu", "--listen", "127.0.0.1:0",
               "--log", str(log_file), "--realization-delay", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        env: dict[str, str] = {}
        assert process.stdout is not None
        while len(env) < 5:
            line = process.stdout.readline()
            assert line, "the emulator exited before printing its address"
            if line.startswith("export "):
                name, _, value = line[len("export "):].strip().partition("=")
                env[name] = value
        config = ClientConfig(parse_manager(env["NSX_URL"]), Tls(thumbprint=env["NSX_THUMBPRINT"]), "session",
                              env["NSX_USERNAME"], env["NSX_PASSWORD"])
        client = NsxClient(config)
        assert client.get_object("/infra/tier-1s/t1-gw") is not None
        client.close()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    logged = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [entry["path"] for entry in logged] == ["/api/session/create", "/policy/api/v1/infra/tier-1s/t1-gw",
                                                   "/api/session/destroy"]


def test_lab_nsx_refuses_an_unknown_preset_in_one_line() -> None:
    done = subprocess.run([sys.executable, "-m", "nsxkube", "lab", "nsx", "--preset", "nope"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2 and done.stderr.startswith("error: lab nsx: unknown preset 'nope'")
    assert done.stderr.count("\n") == 1


def test_lab_up_refuses_a_vip_provider_it_cannot_give_in_one_line(tmp_path: Path) -> None:
    for args, said in ((["--api-vip-provider", "kube-vip"], "error: --api-vip-provider is for the lab's nodes"),
                       (["--nodes", "--api-vip-provider", "haproxy"], "error: --api-vip-provider 'haproxy': ")):
        done = subprocess.run([sys.executable, "-m", "nsxkube", "lab", "up", "--dir", str(tmp_path / "lab"), *args],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 2 and done.stderr.startswith(said), done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert not (tmp_path / "lab" / "lab.json").exists()  # nothing started
