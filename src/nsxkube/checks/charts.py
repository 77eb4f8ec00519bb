"""Are the pinned Helm charts where `addons.charts` says charts come from? Read-only.

Three sources: a public repository (its ``index.yaml``), a directory of chart archives
(``<chart>-<version>.tgz``, opened and its ``Chart.yaml`` read), or an OCI registry (the
distribution API's tag list, anonymously). A source that does not answer in time is reported
as "could not check" (warn), never as missing: `check` runs on workstations without internet.
Every lookup runs in a daemon thread under one deadline, because a name lookup that hangs is not
bound by the HTTP client's timeouts.
"""

from __future__ import annotations

import tarfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from nsxkube.findings import Finding
from nsxkube.render.addons.versions import HelmChart

CHECK = "chart"
DEFAULT_DEADLINE = 4.0


def check_charts(charts: Sequence[HelmChart], *, deadline: float = DEFAULT_DEADLINE) -> list[Finding]:
    """One finding per chart: ok (found), fail (the source answered and it is not there), warn (could not check)."""
    results: dict[int, Finding] = {}
    threads = []
    for index, chart in enumerate(charts):
        thread = threading.Thread(target=_run, args=(results, index, chart, deadline), daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(deadline + 0.5)
    return [results.get(i) or _could_not(c, f"no answer within {deadline:g} s") for i, c in enumerate(charts)]


def _run(results: dict[int, Finding], index: int, chart: HelmChart, deadline: float) -> None:
    lookup: Callable[[HelmChart, float], Finding] = {
        "directory": _in_directory, "oci": _in_oci_registry}.get(chart.source.kind, _in_public_repo)
    try:
        results[index] = lookup(chart, deadline)
    except Exception as err:
        results[index] = _could_not(chart, f"{type(err).__name__}: {err}")


def _name(chart: HelmChart) -> str:
    return f"{chart.chart} {chart.version}"


def _could_not(chart: HelmChart, why: str) -> Finding:
    return Finding(CHECK, "warn", f"could not check {_name(chart)} in {chart.where} ({why})",
                   "run check where the chart source is reachable")


def _found(chart: HelmChart) -> Finding:
    return Finding(CHECK, "ok", f"{_name(chart)} (app {chart.app_version}) is in {chart.where}")


def _missing(chart: HelmChart, detail: str, hint: str) -> Finding:
    return Finding(CHECK, "fail", f"{_name(chart)} is not in {chart.where}: {detail}", hint)


# ---- public repository --------------------------------------------------------------------------


def _in_public_repo(chart: HelmChart, deadline: float) -> Finding:
    import httpx

    url = chart.repo_url.rstrip("/") + "/index.yaml"
    try:
        answer = httpx.get(url, timeout=deadline, follow_redirects=True)
    except httpx.HTTPError as err:
        return _could_not(chart, str(err) or type(err).__name__)
    if answer.status_code != 200:
        return _could_not(chart, f"{url} answered HTTP {answer.status_code}")
    versions = published_versions(yaml.safe_load(answer.text), chart.chart)
    if chart.version in versions:
        return _found(chart)
    return _missing(chart, f"the repository's index has no such version (newest: {_newest(versions)})",
                    "the pin in nsxkube's version set is wrong: report it")


def published_versions(index: Any, chart: str) -> list[str]:
    """The versions of `chart` a Helm repository index lists, newest first as the index orders them."""
    entries = index.get("entries") if isinstance(index, dict) else None
    listed = entries.get(chart) if isinstance(entries, dict) else None
    return [str(e.get("version")) for e in listed or () if isinstance(e, dict)]


def _newest(versions: list[str]) -> str:
    return versions[0] if versions else "the chart is not listed at all"


# ---- directory of archives ----------------------------------------------------------------------


def _in_directory(chart: HelmChart, _deadline: float) -> Finding:
    directory = Path(chart.source.location).expanduser()
    fetch = f"helm pull {chart.repo_name}/{chart.chart} --version {chart.version} -d {chart.source.location}"
    if not directory.is_dir():
        return _missing(chart, "the directory does not exist", f"create it and fill it: {fetch}")
    archive = directory / chart.archive
    if not archive.is_file():
        return _missing(chart, f"no {chart.archive}", f"on a machine with internet: {fetch}")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = tar.extractfile(f"{chart.chart}/Chart.yaml")
            meta = yaml.safe_load(member.read()) if member else None
    except (tarfile.TarError, KeyError, OSError, yaml.YAMLError) as err:
        return _missing(chart, f"{chart.archive} is not a chart archive ({err})", f"download it again: {fetch}")
    if not isinstance(meta, dict) or (meta.get("name"), str(meta.get("version"))) != (chart.chart, chart.version):
        seen = f"{meta.get('name')} {meta.get('version')}" if isinstance(meta, dict) else "no Chart.yaml"
        return _missing(chart, f"{chart.archive} holds {seen}", f"download it again: {fetch}")
    return _found(chart)


# ---- OCI registry -------------------------------------------------------------------------------


def _in_oci_registry(chart: HelmChart, deadline: float) -> Finding:
    import httpx

    host, _, path = chart.source.location.removeprefix("oci://").partition("/")
    repository = f"{path}/{chart.chart}".strip("/")
    # Like docker and helm, a registry on the loopback interface is spoken to in plain HTTP.
    scheme = "http" if host.split(":")[0] in ("localhost", "127.0.0.1") else "https"
    url = f"{scheme}://{host}/v2/{repository}/tags/list"
    try:
        with httpx.Client(timeout=deadline) as client:
            answer = client.get(url)
            if answer.status_code == 401:  # anonymous pull token, the way helm and docker get one
                token = _anonymous_token(client, answer.headers.get("www-authenticate", ""), repository)
                if token:
                    answer = client.get(url, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as err:
        return _could_not(chart, str(err) or type(err).__name__)
    if answer.status_code == 404:
        return _missing(chart, f"the registry has no repository {repository}",
                        f"helm push {chart.archive} {chart.source.location}")
    if answer.status_code != 200:
        return _could_not(chart, f"{url} answered HTTP {answer.status_code} (a login may be needed)")
    tags = answer.json().get("tags") or []
    # OCI tags cannot hold '+': helm writes a version's '+' as '_'.
    if chart.version.replace("+", "_") in tags:
        return _found(chart)
    return _missing(chart, f"{repository} has no tag {chart.version}", f"helm push {chart.archive} "
                    f"{chart.source.location}")


def _anonymous_token(client: Any, challenge: str, repository: str) -> str | None:
    if not challenge.lower().startswith("bearer "):
        return None
    fields = dict(part.split("=", 1) for part in challenge[7:].split(",") if "=" in part)
    fields = {k.strip(): v.strip().strip('"') for k, v in fields.items()}
    if "realm" not in fields:
        return None
    params = {"scope": f"repository:{repository}:pull", **({"service": fields["service"]} if "service" in fields else {})}
    answer = client.get(fields["realm"], params=params)
    if answer.status_code != 200:
        return None
    body = answer.json()
    return body.get("token") or body.get("access_token")
