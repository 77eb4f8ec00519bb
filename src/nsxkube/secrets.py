"""Secrets come from environment variables, or from a prompt when a person is at the terminal.

They are never read from cluster.yaml and never written anywhere by nsxkube.
"""

from __future__ import annotations

import getpass
import os
import sys

from nsxkube.errors import CredentialsError


def read_secret(env_name: str, what: str) -> str:
    """The value of ``env_name``; prompts (without echo) only when stdin is a terminal."""
    value = os.environ.get(env_name)
    if value:
        return value
    if sys.stdin is not None and sys.stdin.isatty():
        entered = getpass.getpass(f"{what} ({env_name} is not set): ")
        if entered:
            return entered
    raise CredentialsError(f"{what} is needed: set the environment variable {env_name}",
                           hint="cluster.yaml names the variable; it never holds the secret")
