"""`check` looks up every pinned chart where addons.charts says charts come from: real chart
archives in a directory, a real HTTP server for a public index and an OCI registry, and sources
that do not answer."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from nsxkube.checks.charts import check_charts
from nsxkube.errors import SpecError
from nsxkube.render.addons.versions import ChartSource, HelmChart, helm_charts
from tests.support.specs import example_data, example_design, with_changes


def make_chart_archive(directory: Path, name: str, version: str, *, inside_version: str | None = None) -> Path:
    """A minimal chart archive as `helm package` lays it out: <name>/Chart.yaml inside <name>-<version>.tgz."""
    meta = yaml.safe_dump({"apiVersion": "v2", "name": name, "version": inside_version or version,
                           "appVersion": "1.0.0"}).encode()
    target = directory / f"{name}-{version}.tgz"
    with tarfile.open(target, "w:gz") as tar:
        info = tarfile.TarInfo(f"{name}/Chart.yaml")
        info.size = len(meta)
        tar.addfile(info, io.BytesIO(meta))
    return target


def charts_from(changes: dict[str, object]) -> tuple[HelmChart, ...]:
    return helm_charts(example_design(changes))


def test_a_directory_holding_every_pinned_archive_passes(tmp_path):
    charts = charts_from({"addons.charts.directory": str(tmp_path)})
    assert len(charts) >= 4
    for chart in charts:
        make_chart_archive(tmp_path, chart.chart, chart.version)
    found = check_charts(charts)
    assert [f.status for f in found] == ["ok"] * len(charts)
    assert "metrics-server 3.13.0 (app 0.8.0)" in " ".join(f.detail for f in found)


def test_a_missing_or_wrong_archive_fails_and_says_how_to_get_it(tmp_path):
    charts = charts_from({"addons.charts.directory": str(tmp_path)})
    for chart in charts:
        if chart.release == "metrics-server":
            make_chart_archive(tmp_path, chart.chart, chart.version, inside_version="3.12.2")
        elif chart.release != "cilium":
            make_chart_archive(tmp_path, chart.chart, chart.version)
    by_release = dict(zip((c.release for c in charts), check_charts(charts), strict=True))
    assert by_release["cilium"].status == "fail"
    assert "no cilium-1.20.0.tgz" in by_release["cilium"].detail
    assert "helm pull cilium/cilium --version 1.20.0" in by_release["cilium"].hint
    assert by_release["metrics-server"].status == "fail"
    assert "holds metrics-server 3.12.2" in by_release["metrics-server"].detail
    assert by_release["metallb"].status == "ok"


def test_a_file_that_is_not_an_archive_fails(tmp_path):
    (chart,) = [c for c in charts_from({"addons.charts.directory": str(tmp_path)}) if c.release == "cilium"]
    (tmp_path / chart.archive).write_text("not a tarball")
    (finding,) = check_charts([chart])
    assert finding.status == "fail" and "is not a chart archive" in finding.detail


def test_an_unreachable_public_repository_is_could_not_check_and_fast():
    charts = charts_from({})
    unreachable = [HelmChart(c.release, c.namespace, c.repo_name, "https://charts.invalid/", c.chart, c.version,
                             c.app_version, c.values) for c in charts]
    started = time.monotonic()
    found = check_charts(unreachable, deadline=2)
    assert time.monotonic() - started < 4
    assert [f.status for f in found] == ["warn"] * len(charts)
    assert all(f.detail.startswith("could not check ") for f in found)


def test_a_source_that_never_answers_is_cut_off_by_the_deadline():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts the connection, never answers
    try:
        (chart,) = [c for c in charts_from({}) if c.release == "cilium"]
        port = silent.getsockname()[1]
        stuck = HelmChart(chart.release, chart.namespace, chart.repo_name, f"http://127.0.0.1:{port}/", chart.chart,
                          chart.version, chart.app_version, None)
        started = time.monotonic()
        (finding,) = check_charts([stuck], deadline=1)
        assert time.monotonic() - started < 3
        assert finding.status == "warn" and "could not check" in finding.detail
    finally:
        silent.close()


class _Handler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, bytes, dict[str, str]]]] = {}

    def do_GET(self) -> None:
        key = self.path.split("?")[0]
        status, body, headers = self.routes.get(key, (404, b"{}", {}))
        if key in self.routes and "Authorization" in headers.get("x-needs", "") and not self.headers.get(
                "Authorization"):
            status, body, headers = 401, b"{}", {"WWW-Authenticate": headers["x-challenge"]}
        self.send_response(status)
        for name, value in headers.items():
            if not name.startswith("x-"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[str, dict[str, tuple[int, bytes, dict[str, str]]]]]:
    routes: ClassVar[dict[str, tuple[int, bytes, dict[str, str]]]] = {}
    handler = type("Handler", (_Handler,), {"routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", routes
    finally:
        server.shutdown()
        server.server_close()


def test_a_public_index_is_read_and_an_unpublished_version_fails(http_server):
    host, routes = http_server
    charts = [c for c in charts_from({}) if c.release in ("cilium", "metrics-server")]
    index = {"apiVersion": "v1", "entries": {
        "cilium": [{"name": "cilium", "version": "1.20.0", "appVersion": "1.20.0"}],
        "metrics-server": [{"name": "metrics-server", "version": "3.13.1", "appVersion": "0.8.1"},
                           {"name": "metrics-server", "version": "3.12.2", "appVersion": "0.7.2"}],
    }}
    routes["/charts/index.yaml"] = (200, yaml.safe_dump(index).encode(), {})
    local = [HelmChart(c.release, c.namespace, c.repo_name, f"http://{host}/charts", c.chart, c.version,
                       c.app_version, None) for c in charts]
    cilium, metrics = check_charts(local)
    assert cilium.status == "ok"
    assert metrics.status == "fail" and "newest: 3.13.1" in metrics.detail


def test_an_oci_registry_is_asked_for_the_tags_with_an_anonymous_token(http_server):
    host, routes = http_server
    realm = f"http://{host}/token"
    needs = {"x-needs": "Authorization", "x-challenge": f'Bearer realm="{realm}",service="registry"'}
    routes["/v2/charts/cilium/tags/list"] = (200, json.dumps({"name": "charts/cilium", "tags": ["1.20.0"]}).encode(),
                                             needs)
    routes["/v2/charts/metallb/tags/list"] = (200, json.dumps({"name": "charts/metallb", "tags": ["0.15.2"]}).encode(),
                                              needs)
    routes["/token"] = (200, json.dumps({"token": "anonymous"}).encode(), {})
    charts = [c for c in charts_from({"addons.charts.oci": f"oci://{host}/charts"})
              if c.release in ("cilium", "metallb", "metrics-server")]
    assert all(c.source == ChartSource("oci", f"oci://{host}/charts") for c in charts)
    cilium, metallb, metrics = check_charts(charts)
    assert cilium.status == "ok"
    assert metallb.status == "fail" and "no tag 0.16.1" in metallb.detail
    assert metrics.status == "fail" and "no repository charts/metrics-server" in metrics.detail


def _check_cli(spec: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nsxkube", "check", str(spec), *args], capture_output=True,
                          text=True, timeout=60)


def test_check_reports_each_chart_of_an_air_gapped_directory_and_fails_on_a_missing_one(tmp_path):
    charts_dir = tmp_path / "charts"
    charts_dir.mkdir()
    data = with_changes(example_data(), {"addons.charts.directory": str(charts_dir)})
    spec = tmp_path / "cluster.yaml"
    spec.write_text(yaml.safe_dump(data))
    for chart in charts_from({"addons.charts.directory": str(charts_dir)}):
        if chart.release != "metallb":
            make_chart_archive(charts_dir, chart.chart, chart.version)
    failed = _check_cli(spec)
    assert failed.returncode == 1
    assert "error: chart: metallb 0.16.1 is not in directory" in failed.stderr
    assert "ok: chart: cilium 1.20.0 (app 1.20.0)" in failed.stdout
    make_chart_archive(charts_dir, "metallb", "0.16.1")
    passed = _check_cli(spec, "-o", "json")
    assert passed.returncode == 0, passed.stderr
    assert {f["status"] for f in json.loads(passed.stdout)["charts"]} == {"ok"}


def test_check_of_the_public_repositories_passes_with_or_without_internet(tmp_path):
    spec = tmp_path / "cluster.yaml"
    spec.write_text(yaml.safe_dump(example_data()))
    result = _check_cli(spec)
    assert result.returncode == 0, result.stderr
    # Offline (the test sandbox) it says what it could not check; online, that the chart is there.
    assert ("warning: chart: could not check cilium 1.20.0 in https://helm.cilium.io/" in result.stdout
            or "ok: chart: cilium 1.20.0 (app 1.20.0) is in https://helm.cilium.io/" in result.stdout)
    assert "chart" not in _check_cli(spec, "--no-charts").stdout.split("is valid")[1]


def test_chart_sources_are_one_or_the_other():
    with pytest.raises(SpecError) as raised:
        example_design({"addons.charts.directory": "/srv/charts", "addons.charts.oci": "oci://r.example.com/c"})
    assert "addons.charts" in str(raised.value.problems[0].key)
