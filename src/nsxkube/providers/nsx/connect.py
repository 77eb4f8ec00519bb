"""One NSX client per run, built from cluster.yaml and the environment, shared by every phase."""

from __future__ import annotations

from collections.abc import Callable

from nsxkube.pipeline.context import Context
from nsxkube.providers.nsx.client import Backoff, ClientConfig, NsxClient, parse_manager
from nsxkube.secrets import read_secret
from nsxkube.spec.model import Nsx

CLIENT_NAME = "nsx"
INSECURE_WARNING = ("NSX certificate verification is OFF (nsx.tls.insecure: true): anyone on the network path "
                    "can pose as NSX and read its password; set nsx.tls.thumbprint or nsx.tls.ca_file")


def client_config(nsx: Nsx, secret: Callable[[str, str], str] = read_secret, *,
                  backoff: Backoff | None = None) -> ClientConfig:
    """Credentials only from the environment variables cluster.yaml names (or a prompt)."""
    names = nsx.credentials
    return ClientConfig(
        endpoint=parse_manager(nsx.manager),
        tls=nsx.tls,
        auth=nsx.auth,
        username=secret(names.user_env, "NSX user name"),
        password=secret(names.password_env, "NSX password"),
        credential_names=f"{names.user_env} and {names.password_env}",
        backoff=backoff or Backoff(),
    )


def nsx_client(ctx: Context, phase: str) -> NsxClient:
    """The run's shared client; the first phase to ask builds it (and warns if TLS is off)."""

    def build(c: Context) -> NsxClient:
        nsx = c.design.spec.nsx
        if nsx.tls.insecure:
            c.reporter.warning(phase, INSECURE_WARNING)
        return NsxClient(client_config(nsx, c.secret), notify=lambda message: c.reporter.step(phase, message))

    return ctx.client(CLIENT_NAME, build, close=NsxClient.close)
