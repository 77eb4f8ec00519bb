"""The run's one client per outside system, built on first use and shared by every phase: one NSX
session, one vCenter login, one SSH executor. Providers build clients from configuration; this
is where the pipeline's context (secrets, reporter, options) meets them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nsxkube.pipeline.context import Context

if TYPE_CHECKING:  # the providers import httpx, pyVmomi and asyncssh: loaded only when a phase runs
    from nsxkube.providers.nsx.client import NsxClient

NSX = "nsx"
VSPHERE = "vsphere"
NODES = "nodes"
SSH_CONNECT_SECONDS = 15.0


def nsx_client(ctx: Context, phase: str) -> NsxClient:
    """The first phase to ask builds it (and warns if TLS verification is off)."""
    from nsxkube.providers.nsx.client import NsxClient
    from nsxkube.providers.nsx.connect import INSECURE_WARNING, client_config

    def build(c: Context) -> NsxClient:
        nsx = c.design.spec.nsx
        if nsx.tls.insecure:
            c.reporter.warning(phase, INSECURE_WARNING)
        return NsxClient(client_config(nsx, c.secret), notify=lambda message: c.reporter.step(phase, message))

    return ctx.client(NSX, build, close=NsxClient.close)


def vsphere_session(ctx: Context, phase: str) -> Any:
    """The vCenter session (providers.vsphere.connection.Session), pooled for parallel clones."""
    from nsxkube.providers.vsphere.connection import open_session

    return ctx.client(VSPHERE, lambda c: open_session(
        c.design.spec.vsphere, c.secret, warn=lambda m: c.reporter.warning(phase, m),
        pool_size=c.options.concurrency + 2), close=lambda s: s.close())


def nodes_client(ctx: Context, phase: str) -> Any:
    """The SSH executor (providers.nodes.client), with host keys checked against known_hosts."""
    from nsxkube.providers.nodes.client import client_for

    def new_key(target: Any, fingerprint: str) -> None:
        ctx.reporter.warning(phase, f"trusting the new host key of {target.where}: {fingerprint} "
                                    "(compare it with the VM console)")

    return ctx.client(NODES, lambda c: client_for(
        c.design.spec.ssh, c.options.workdir, connect_timeout=min(SSH_CONNECT_SECONDS, c.options.timeout_seconds),
        on_new_host_key=new_key), close=lambda client: client.close())
