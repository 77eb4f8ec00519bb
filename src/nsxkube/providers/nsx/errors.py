"""NSX's error answers as one line: what was asked, the status, NSX's own `error_message` and its
related errors. The body shape (`httpStatus`, `error_code`, `error_message`, `module_name`,
`details`, `related_errors[]`) is the Policy API's."""

from __future__ import annotations

from typing import Any

from nsxkube.errors import ProviderError

RELATED_SHOWN = 3
# 500 answers worth another try only with this code ("transaction aborted, retry").
TRANSACTION_ABORTED = 607
BAD_XSRF_TOKEN = 98
RETRY_STATUSES = frozenset({429, 503})
STALE_STATUSES = frozenset({409, 412})


class NsxRequestError(ProviderError):
    """NSX answered a call with an error; `status` and `error_code` say which."""

    def __init__(self, message: str, *, status: int, error_code: int | None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.error_code = error_code


def error_body(payload: Any) -> dict[str, Any]:
    return payload if isinstance(payload, dict) else {}


def _flat(text: Any) -> str:
    return " ".join(str(text).split())


def describe(method: str, path: str, status: int, payload: Any) -> str:
    """`NSX refused PATCH /policy/api/v1/infra: 400 (error 500012) <message>; related: …`"""
    body = error_body(payload)
    code = body.get("error_code")
    message = _flat(body.get("error_message") or body.get("details") or "no error message")
    text = f"NSX refused {method} {path}: {status}{f' (error {code})' if code is not None else ''} {message}"
    related = [_flat(r.get("error_message", "")) for r in body.get("related_errors") or [] if isinstance(r, dict)]
    related = [r for r in related if r and r not in message]
    if related:
        more = f" (+{len(related) - RELATED_SHOWN} more)" if len(related) > RELATED_SHOWN else ""
        text += "; related: " + "; ".join(related[:RELATED_SHOWN]) + more
    return text


def is_retryable(status: int, error_code: int | None) -> bool:
    """429 and 503 always; 500 only when NSX says the transaction aborted (607)."""
    return status in RETRY_STATUSES or (status == 500 and error_code == TRANSACTION_ABORTED)
