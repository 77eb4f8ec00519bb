"""Real validators for rendered files: cloud-init schema, shellcheck, Kubernetes OpenAPI, yamllint.

Each returns a list of findings (empty = valid) so a test can show every problem at once.
A missing validator skips the test with the reason, never passes silently.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

BUILT_IN_GROUPS = {
    "", "apps", "batch", "policy", "networking.k8s.io", "rbac.authorization.k8s.io", "storage.k8s.io",
    "autoscaling", "scheduling.k8s.io", "coordination.k8s.io", "node.k8s.io", "discovery.k8s.io",
    "admissionregistration.k8s.io", "apiextensions.k8s.io", "certificates.k8s.io", "events.k8s.io",
}


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (scripts/setup installs it)")
    return path


def cloud_init_schema(path: Path) -> list[str]:
    tool = require_tool("cloud-init")
    result = subprocess.run([tool, "schema", "--config-file", str(path)], capture_output=True, text=True)
    return [] if result.returncode == 0 else [f"{path}: {(result.stdout + result.stderr).strip()}"]


def shellcheck(path: Path) -> list[str]:
    tool = require_tool("shellcheck")
    findings = []
    syntax = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    if syntax.returncode != 0:
        findings.append(f"{path}: bash -n: {syntax.stderr.strip()}")
    result = subprocess.run([tool, "-S", "style", "-f", "gcc", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        findings.append(result.stdout.strip())
    return findings


def yamllint(path: Path) -> list[str]:
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    config = YamlLintConfig("extends: default\nrules:\n  line-length: {max: 200}\n  document-start: disable\n"
                            "  truthy: {check-keys: false}\n  comments: {min-spaces-from-content: 1}\n")
    problems = linter.run(path.read_text(encoding="utf-8"), config, str(path))
    return [f"{path}:{p.line}:{p.column}: {p.message} ({p.rule})" for p in problems if p.level == "error"]


def is_built_in(obj: dict[str, Any]) -> bool:
    api_version = str(obj.get("apiVersion", ""))
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    return group in BUILT_IN_GROUPS


def kubernetes_objects(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(doc, dict) and "kind" in doc]


def kubernetes_schema(obj: dict[str, Any], version: str) -> list[str]:
    """Validate one built-in object against the target version's OpenAPI schema (strict)."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        return [f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}: {err.message} at {list(err.path)}"]
    except kubernetes_validate.SchemaNotFoundError as err:
        return [f"{obj.get('kind')}: no schema: {err}"]
    return []


def write_temp(content: str, suffix: str) -> Path:
    with tempfile.NamedTemporaryFile("w", suffix=suffix, delete=False, encoding="utf-8") as handle:
        handle.write(content)
    return Path(handle.name)
