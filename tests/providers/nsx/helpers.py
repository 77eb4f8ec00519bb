"""Shared by the NSX provider, check and phase tests: a design and a Context pointed at an emulator,
and readers of the emulator's request log (the audit trail every test judges by)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nsxkube.design import Design
from nsxkube.lab.nsx import NsxEmulator
from nsxkube.phases.clients import NSX as CLIENT_NAME
from nsxkube.pipeline.context import Context, Options
from nsxkube.pipeline.reporter import RecordingReporter
from nsxkube.providers.nsx.client import Backoff, NsxClient
from nsxkube.providers.nsx.connect import client_config
from tests.support.specs import example_design

FAST = Backoff(attempts=4, first_delay=0.005, max_delay=0.02)
POLICY = "/policy/api/v1"
SESSION_CALLS = ("/api/session/create", "/api/session/destroy")


def manager_of(nsx: NsxEmulator) -> str:
    return nsx.url.split("://", 1)[1]


def emulator_design(nsx: NsxEmulator, changes: dict[str, Any] | None = None, *, trust: str = "thumbprint") -> Design:
    """The example cluster pointed at the emulator (its transport zone and tier-1), TLS pinned by thumbprint."""
    tls = {"thumbprint": {"nsx.tls.thumbprint": nsx.thumbprint}, "ca_file": {"nsx.tls.ca_file": nsx.ca_file},
           "insecure": {"nsx.tls.insecure": True}, "system": {}}[trust]
    return example_design({"nsx.manager": manager_of(nsx), "nsx.transport_zone": "overlay-tz", "nsx.tier1": "t1-gw",
                           **tls, **(changes or {})})


def env_of(nsx: NsxEmulator) -> dict[str, str]:
    return {"NSX_USER": nsx.username, "NSX_PASSWORD": nsx.password}


def make_context(design: Design, nsx: NsxEmulator, workdir: Path, *, realization_timeout: float = 5.0,
                 fast_client: bool = True) -> Context:
    """A Context as `nsxkube apply` builds it; the NSX client gets a fast backoff so fault tests stay quick."""
    env = env_of(nsx)
    ctx = Context(design=design, options=Options(workdir=workdir, realization_timeout_seconds=realization_timeout),
                  reporter=RecordingReporter(), secret=lambda name, what: env[name])
    if fast_client:
        config = client_config(design.spec.nsx, ctx.secret, backoff=FAST)
        ctx.client(CLIENT_NAME, lambda c: NsxClient(config, notify=lambda m: c.reporter.step("network", m),
                                                    sleep=lambda s: None), close=NsxClient.close)
    return ctx


def api_calls(nsx: NsxEmulator) -> list[dict[str, Any]]:
    """Every logged request except the session log-in and log-out."""
    return [r for r in nsx.requests if r["path"] not in SESSION_CALLS]


def writes(nsx: NsxEmulator) -> list[dict[str, Any]]:
    return [r for r in api_calls(nsx) if r["method"] != "GET"]


def patches(nsx: NsxEmulator) -> list[dict[str, Any]]:
    return [r for r in nsx.requests if r["method"] == "PATCH"]


def written_paths(body: dict[str, Any], parent: str = "/infra") -> Iterator[tuple[str, bool]]:
    """(path, marked_for_delete) of every object a hierarchical body writes (references only descend)."""
    collections = {"Segment": "segments", "Group": "groups", "Service": "services", "SecurityPolicy":
                   "security-policies", "SpoofGuardProfile": "spoofguard-profiles", "IPDiscoveryProfile":
                   "ip-discovery-profiles", "SegmentSecurityProfileBindingMap": "segment-security-profile-binding-maps",
                   "SegmentDiscoveryProfileBindingMap": "segment-discovery-profile-binding-maps", "Rule": "rules",
                   "SegmentPort": "ports", "Domain": "domains"}
    for child in body.get("children") or ():
        kind = child["resource_type"]
        if kind == "ChildResourceReference":
            yield from written_paths(child, f"{parent}/{collections[child['target_type']]}/{child['id']}")
            continue
        type_name = kind[len("Child"):]
        obj = child[type_name]
        path = f"{parent}/{collections[type_name]}/{obj['id']}"
        yield path, bool(child.get("marked_for_delete"))
        yield from written_paths(obj, path)
