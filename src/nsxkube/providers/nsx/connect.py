"""The NSX client's configuration, built from cluster.yaml and the environment."""

from __future__ import annotations

from collections.abc import Callable

from nsxkube.providers.nsx.client import Backoff, ClientConfig, parse_manager
from nsxkube.secrets import read_secret
from nsxkube.spec.model import Nsx

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
