"""docs/runbooks/ and docs/troubleshooting.md are the bundle's pages for the example cluster: they cannot drift."""

import re
from pathlib import Path

from nsxkube.render.docs.site import COMMAND, RUNBOOKS, main, render_site

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
# [text](target) and ![alt](target); the target ends at a space (title) or the closing parenthesis.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)")
CODE = re.compile(r"^```.*?^```|`[^`\n]*`", re.S | re.M)


def test_committed_pages_are_current(tmp_path):
    main([str(tmp_path)])
    generated = {p.relative_to(tmp_path).as_posix(): p.read_text(encoding="utf-8")
                 for p in sorted(tmp_path.rglob("*.md"))}
    committed_runbooks = {p.relative_to(DOCS).as_posix() for p in (DOCS / RUNBOOKS).glob("*.md")}
    generated_runbooks = {path for path in generated if path.startswith(f"{RUNBOOKS}/")}
    assert committed_runbooks == generated_runbooks, f"run: {COMMAND}"
    assert generated_runbooks and "troubleshooting.md" in generated
    for path, text in generated.items():
        committed = DOCS / path
        assert committed.exists() and committed.read_text(encoding="utf-8") == text, f"{path} is stale; run: {COMMAND}"


def test_pages_are_the_stage_runbooks_and_troubleshooting():
    paths = [page.path for page in render_site()]
    assert "troubleshooting.md" in paths and "versions.md" in paths
    assert [p for p in paths if p not in ("troubleshooting.md", "versions.md")] == [
        f"{RUNBOOKS}/stage-0-nsx-and-template.md", f"{RUNBOOKS}/stage-1-cluster-and-addons.md",
        f"{RUNBOOKS}/stage-2-operations.md", f"{RUNBOOKS}/stage-3-migration-from-tanzu.md"]
    for page in render_site():
        assert page.content.startswith(f"> Generated from the example cluster.yaml (`nsxkube init`) by `{COMMAND}`")


def test_relative_links_resolve_in_the_repository():
    broken = []
    for page in render_site():
        source = DOCS / page.path
        for target in LINK.findall(CODE.sub("", page.content)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
                continue  # a URL or an anchor in the same page
            resolved = (source.parent / target.split("#", 1)[0]).resolve()
            if not resolved.is_relative_to(REPO) or not resolved.exists():
                broken.append(f"{page.path}: {target}")
    assert not broken, f"links that do not resolve in the repository: {broken}"


def test_the_versions_page_lists_every_chart_with_chart_and_app_version_and_where_it_was_checked():
    from nsxkube.design.versions import CHART_CHECKS

    (page,) = [p for p in render_site() if p.path == "versions.md"]
    assert set(CHART_CHECKS) == {"cilium", "metallb", "ingress-nginx", "metrics-server", "kube-prometheus-stack",
                                 "velero"}
    for release, where in CHART_CHECKS.items():  # velero and ingress-nginx are off in the example: listed all the same
        assert re.search(rf"^\| {release} \| [0-9.]+ \| v?[0-9.]+ \| {re.escape(where)} \|$", page.content, re.M), release
