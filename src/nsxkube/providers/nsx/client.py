"""A small NSX Manager client on httpx: trust, login, retries, paging and one-line errors.

It only sends what callers give it and never decides policy. Auth is HTTP basic on every call,
or a session (`POST /api/session/create` → JSESSIONID cookie + X-XSRF-TOKEN header on every
later call; 403 with error 98 means the token went stale: log in again, once per call).
Retries: 429, 503 and 500/607 with exponential backoff (honouring Retry-After); a hierarchical
PATCH meeting 409/412 is sent again (it carries no revision); a PUT meeting 409/412 goes back to
`update_object`, which re-reads and re-applies the caller's change. `X-Allow-Overwrite` is never
sent: objects of a principal identity stay untouched.

One client is one session on one connection pool: it may be used from several threads at once
(independent reads in parallel); the login happens once, under a lock, before the first call.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from nsxkube.errors import CredentialsError, ProviderError
from nsxkube.providers.nsx.errors import (
    BAD_XSRF_TOKEN,
    STALE_STATUSES,
    NsxRequestError,
    describe,
    error_body,
    is_retryable,
)
from nsxkube.providers.nsx.trust import Endpoint, verify_context
from nsxkube.spec.model import Tls

POLICY = "/policy/api/v1"
SESSION_CREATE = "/api/session/create"
SESSION_DESTROY = "/api/session/destroy"
XSRF_HEADER = "X-XSRF-TOKEN"
PAGE_SIZE = 1000
TRANSPORT_RETRIES = 2  # a refused or reset connection: NSX may be restarting, but not for long


@dataclass(frozen=True)
class Backoff:
    attempts: int = 6
    first_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after), self.max_delay)
        return min(self.first_delay * 2 ** (attempt - 1), self.max_delay)


@dataclass(frozen=True)
class ClientConfig:
    endpoint: Endpoint
    tls: Tls
    auth: Literal["session", "basic"]
    username: str
    password: str = field(repr=False)
    credential_names: str = "the NSX credentials"
    timeout: float = 60.0
    backoff: Backoff = Backoff()


def parse_manager(manager: str) -> Endpoint:
    """`nsx.example.com`, `10.0.0.5:8443`, `[::1]:443` or `https://host[:port]` → host and port."""
    text = manager.strip()
    parts = urlsplit(text if "://" in text else f"https://{text}")
    if parts.scheme != "https" or not parts.hostname:
        raise ProviderError(f"nsx.manager {manager!r} is not a host name or address (https only)")
    try:
        port = parts.port or 443
    except ValueError:
        raise ProviderError(f"nsx.manager {manager!r} has an invalid port") from None
    return Endpoint(parts.hostname, port)


def api_path(path: str) -> str:
    """Policy paths (/infra/…, /search/…) get the Policy API prefix; /api/… and /policy/… stay."""
    return path if path.startswith(("/api/", "/policy/")) else POLICY + path


class NsxClient:
    def __init__(self, config: ClientConfig, *, notify: Callable[[str], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._notify = notify or (lambda message: None)
        self._sleep = sleep
        self._http: httpx.Client | None = None
        self._xsrf_token: str | None = None
        self._lock = threading.Lock()  # guards building the HTTP client and logging in

    # ---- connection and login ---------------------------------------------------------------

    def _client(self) -> httpx.Client:
        with self._lock:
            return self._client_locked()

    def _client_locked(self) -> httpx.Client:
        if self._http is None:
            cfg = self.config
            verify = verify_context(cfg.tls, cfg.endpoint)  # a thumbprint is checked here, before any login
            self._http = httpx.Client(
                base_url=f"https://{cfg.endpoint.display}", verify=verify, timeout=cfg.timeout,
                auth=(cfg.username, cfg.password) if cfg.auth == "basic" else None,
                headers={"Accept": "application/json"},
            )
        return self._http

    def _ensure_session(self, stale_token: str | None = None) -> None:
        """Log in unless another thread already did (or already replaced the token found stale)."""
        with self._lock:
            if self.config.auth == "session" and self._xsrf_token == stale_token:
                self._login()

    def _login(self) -> None:
        cfg = self.config
        http = self._client_locked()
        http.cookies.clear()
        form = {"j_username": cfg.username, "j_password": cfg.password}
        for attempt in range(1, cfg.backoff.attempts + 1):
            response = self._send(http, "POST", SESSION_CREATE, data=form)
            code = error_body(_json(response)).get("error_code")
            if not is_retryable(response.status_code, code) or attempt == cfg.backoff.attempts:
                break
            delay = cfg.backoff.delay(attempt, response.headers.get("Retry-After"))
            self._notify(f"NSX answered {response.status_code} to the login ({_message(response)}); "
                         f"retry {attempt}/{cfg.backoff.attempts - 1} in {delay:.1f} s")
            self._sleep(delay)
        if response.status_code in (401, 403):
            raise CredentialsError(
                f"NSX at {cfg.endpoint.display} refused the login of {cfg.username!r}: "
                f"{_message(response)}", hint=f"check {cfg.credential_names}")
        if response.status_code != 200:
            raise ProviderError(describe("POST", SESSION_CREATE, response.status_code, _json(response)))
        if not response.headers.get(XSRF_HEADER):
            raise ProviderError(f"NSX at {cfg.endpoint.display} accepted the login but sent no {XSRF_HEADER} header",
                                hint="set nsx.auth: basic")
        self._xsrf_token = response.headers[XSRF_HEADER]

    def close(self) -> None:
        if self._http is None:
            return
        if self._xsrf_token is not None:
            # leave no session open on the manager; failing to is no reason to fail a run
            with contextlib.suppress(httpx.HTTPError):
                self._http.post(SESSION_DESTROY, headers={XSRF_HEADER: self._xsrf_token})
        self._http.close()
        self._http = None
        self._xsrf_token = None

    def request_ready(self) -> None:
        """Build the connection pool and log in now, so calls made in parallel next share one session."""
        self._client()
        if self.config.auth == "session" and self._xsrf_token is None:
            self._ensure_session()

    def notify(self, message: str) -> None:
        """Pass a line for the operator to whoever built the client (the phase's reporter)."""
        self._notify(message)

    # ---- sending ----------------------------------------------------------------------------

    def _send(self, http: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
        endpoint = self.config.endpoint.display
        for attempt in range(TRANSPORT_RETRIES + 1):
            try:
                return http.request(method, path, **kwargs)
            except httpx.ConnectError as err:
                if _is_certificate_error(err):
                    raise ProviderError(
                        f"NSX at {endpoint} presented a certificate nsxkube does not trust: {_reason(err)}",
                        hint="set nsx.tls.thumbprint (SHA-256 of its certificate) or nsx.tls.ca_file") from None
                failure = err
            except httpx.TransportError as err:
                failure = err
            if attempt < TRANSPORT_RETRIES:
                self._sleep(self.config.backoff.delay(attempt + 1))
        raise ProviderError(f"cannot reach NSX at {endpoint}: {_reason(failure)}",
                            hint="check nsx.manager and that this machine can reach it on HTTPS") from None

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> Any:
        """One API call with login, retries and NSX errors as NsxRequestError; the parsed JSON answer."""
        cfg, http = self.config, self._client()
        if cfg.auth == "session" and self._xsrf_token is None:
            self._ensure_session()
        full, relogged = api_path(path), False
        for attempt in range(1, cfg.backoff.attempts + 1):
            token = self._xsrf_token
            headers = {XSRF_HEADER: token} if token else {}
            response = self._send(http, method, full, params=params, json=json, headers=headers)
            status = response.status_code
            if status < 400:
                return _json(response)
            payload = _json(response)
            code = error_body(payload).get("error_code")
            if status == 403 and code == BAD_XSRF_TOKEN and cfg.auth == "session" and not relogged:
                self._notify("NSX session expired; logging in again")
                self._ensure_session(stale_token=token)
                relogged = True
                continue
            if status in (401, 403) and code in (None, 401, 403):
                raise CredentialsError(f"NSX at {cfg.endpoint.display} refused the credentials of "
                                       f"{cfg.username!r}: {_message(response)}", hint=f"check {cfg.credential_names}")
            retry = is_retryable(status, code) or (status in STALE_STATUSES and method == "PATCH")
            if retry and attempt < cfg.backoff.attempts:
                delay = cfg.backoff.delay(attempt, response.headers.get("Retry-After"))
                self._notify(f"NSX answered {status} to {method} {full} ({_message(response)}); "
                             f"retry {attempt}/{cfg.backoff.attempts - 1} in {delay:.1f} s")
                self._sleep(delay)
                continue
            raise NsxRequestError(describe(method, full, status, payload), status=status, error_code=code)
        raise AssertionError("unreachable: the loop returns or raises")

    # ---- read verbs -------------------------------------------------------------------------

    def get_object(self, path: str, *, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The object at `path`, or None when NSX says it does not exist."""
        try:
            return self.request("GET", path, params=params)
        except NsxRequestError as err:
            if err.status == 404:
                return None
            raise

    def list_objects(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every page of a list (`cursor` until there is none)."""
        query = {"page_size": PAGE_SIZE, **(params or {})}
        results: list[dict[str, Any]] = []
        while True:
            page = self.request("GET", path, params=query) or {}
            results += page.get("results") or []
            cursor = page.get("cursor")
            if not cursor:
                return results
            query = {**query, "cursor": cursor}

    # ---- write verbs ------------------------------------------------------------------------

    def patch_infra(self, body: dict[str, Any]) -> None:
        """One hierarchical PATCH /policy/api/v1/infra."""
        self.request("PATCH", "/infra", json=body)

    def update_object(self, path: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
        """Read, let `change` return the new body (None: nothing to do), PUT it with the read revision;
        on 409/412 (someone else wrote meanwhile) read again and re-apply `change`."""
        attempts = self.config.backoff.attempts
        for attempt in range(1, attempts + 1):
            current = self.get_object(path)
            if current is None:
                raise ProviderError(f"{path} does not exist in NSX")
            body = change(current)
            if body is None:
                return current
            try:
                return self.request("PUT", path, json={**body, "_revision": current.get("_revision")})
            except NsxRequestError as err:
                if err.status not in STALE_STATUSES or attempt == attempts:
                    raise
                self._notify(f"{path} changed while nsxkube updated it ({err.status}); reading it again")
        raise AssertionError("unreachable: the loop returns or raises")


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return {"error_message": response.text[:200]}


def _message(response: httpx.Response) -> str:
    body = error_body(_json(response))
    return " ".join(str(body.get("error_message") or f"HTTP {response.status_code}").split())


def _is_certificate_error(err: BaseException) -> bool:
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(err)


def _reason(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return " ".join(text.split())
