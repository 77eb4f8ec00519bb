"""The commented example cluster.yaml that `nsxkube init` writes, the lab starts from and the
docs are rendered for."""

from __future__ import annotations

import re
from importlib import resources

from nsxkube.errors import UsageError
from nsxkube.spec.types import check_dns_label


def example_text(name: str | None = None) -> str:
    """The example, optionally renamed (the cluster name and its VM folder)."""
    text = resources.files("nsxkube.spec").joinpath("example-cluster.yaml").read_text(encoding="utf-8")
    if name:
        try:
            check_dns_label(name)
        except ValueError as err:
            raise UsageError(f"--name {name!r}: {err}") from None
        text = re.sub(r"(?m)^name: k8s-prod", f"name: {name}", text, count=1)
        text = re.sub(r"(?m)^  folder: k8s-prod", f"  folder: {name}", text, count=1)
    return text
