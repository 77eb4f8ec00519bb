"""Authentication as NSX does it: HTTP basic on every call, or a session from
POST /api/session/create (JSESSIONID cookie + X-XSRF-TOKEN header on every later call).

Bad credentials → 403 / error_code 403; a session that expired or a wrong XSRF token → 403 /
error_code 98 ("log in again"). The emulator checks the XSRF token on every method, not only on
writes, and expires sessions after `session_ttl` seconds of idleness or on demand.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs

from nsxkube.lab.nsx.errors import BAD_CREDENTIALS, BAD_XSRF_TOKEN, MODULE_COMMON, NsxApiError

SESSION_COOKIE = "JSESSIONID"
XSRF_HEADER = "X-XSRF-TOKEN"
DEFAULT_SESSION_TTL = 1800.0  # NSX's default idle timeout for API sessions


@dataclass(frozen=True)
class Identity:
    """Who a request authenticated as, and how — what the request log records."""

    kind: str  # basic | session | none
    user: str | None
    ok: bool

    def as_log(self) -> dict[str, object]:
        return {"kind": self.kind, "user": self.user, "ok": self.ok}


@dataclass
class _Session:
    user: str
    xsrf_token: str
    last_used: float


def bad_credentials() -> NsxApiError:
    return NsxApiError(
        403,
        BAD_CREDENTIALS,
        "The credentials were incorrect or the account specified has been locked.",
        module=MODULE_COMMON,
    )


def bad_xsrf() -> NsxApiError:
    return NsxApiError(
        403,
        BAD_XSRF_TOKEN,
        "The session has expired or the X-XSRF-TOKEN header is missing or wrong; log in again.",
        module=MODULE_COMMON,
    )


class Authenticator:
    def __init__(
        self,
        username: str,
        password: str,
        *,
        session_ttl: float = DEFAULT_SESSION_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.username = username
        self._password = password
        self.session_ttl = session_ttl
        self._clock = clock
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def _credentials_ok(self, username: str, password: str) -> bool:
        # compare_digest keeps the comparison time independent of where the strings differ.
        return hmac.compare_digest(username.encode(), self.username.encode()) & hmac.compare_digest(
            password.encode(), self._password.encode()
        )

    def login(self, form_body: bytes) -> tuple[str, str]:
        """POST /api/session/create → (session id, XSRF token), or 403/403."""
        form = parse_qs(form_body.decode("utf-8", "replace"))
        username = (form.get("j_username") or [""])[0]
        password = (form.get("j_password") or [""])[0]
        if not self._credentials_ok(username, password):
            raise bad_credentials()
        session_id, token = secrets.token_hex(16), secrets.token_urlsafe(24)
        with self._lock:
            self._sessions[session_id] = _Session(username, token, self._clock())
        return session_id, token

    def logout(self, headers: Mapping[str, str]) -> None:
        session_id = _session_cookie(headers)
        if session_id:
            with self._lock:
                self._sessions.pop(session_id, None)

    def expire_all(self) -> None:
        with self._lock:
            self._sessions.clear()

    def authenticate(self, headers: Mapping[str, str]) -> Identity:
        """Who sent the request; raises 403 (403 or 98) when the credentials do not hold."""
        authorization = headers.get("Authorization")
        if authorization:
            return self._basic(authorization)
        session_id = _session_cookie(headers)
        if session_id:
            return self._session(session_id, headers.get(XSRF_HEADER))
        raise bad_credentials()

    def _basic(self, authorization: str) -> Identity:
        scheme, _, encoded = authorization.partition(" ")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        username, sep, password = decoded.partition(":")
        if scheme.lower() != "basic" or not sep or not self._credentials_ok(username, password):
            raise bad_credentials()
        return Identity("basic", username, True)

    def _session(self, session_id: str, xsrf_token: str | None) -> Identity:
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and now - session.last_used > self.session_ttl:
                del self._sessions[session_id]
                session = None
            if (
                session is None
                or not xsrf_token
                or not hmac.compare_digest(xsrf_token.encode(), session.xsrf_token.encode())
            ):
                raise bad_xsrf()
            session.last_used = now
            return Identity("session", session.user, True)


def _session_cookie(headers: Mapping[str, str]) -> str | None:
    raw = headers.get("Cookie")
    if not raw:
        return None
    try:
        cookie = SimpleCookie(raw)
    except CookieError:
        return None
    morsel = cookie.get(SESSION_COOKIE)
    return morsel.value if morsel else None


def identity_of_failure(headers: Mapping[str, str]) -> Identity:
    """What to log for a request whose authentication failed (never the password)."""
    if headers.get("Authorization"):
        try:
            user = base64.b64decode(headers["Authorization"].partition(" ")[2]).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            user = None
        return Identity("basic", user, False)
    if _session_cookie(headers):
        return Identity("session", None, False)
    return Identity("none", None, False)
