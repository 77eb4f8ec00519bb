"""Faults a test asks for: answer the next N matching calls with an error, make the next PUT
meet a stale revision, hold the next matching call for a while before carrying it out (so that a
client can be killed while its write is in flight: NSX then commits it with nobody listening). (Session expiry and realization errors live with sessions and realization.)"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from nsxkube.lab.nsx.errors import (
    INTERNAL_ERROR,
    MODULE_COMMON,
    SERVICE_UNAVAILABLE,
    TOO_MANY_REQUESTS,
    TRANSACTION_ABORTED,
    NsxApiError,
)

_DEFAULTS: dict[int, tuple[int, str]] = {
    429: (TOO_MANY_REQUESTS, "Client 'admin' exceeded request rate of 100 per second."),
    503: (SERVICE_UNAVAILABLE, "Service unavailable, please retry later."),
    500: (TRANSACTION_ABORTED, "The operation failed because of a transaction abort; please retry."),
}


@dataclass
class InjectedFailure:
    status: int
    error_code: int
    message: str
    remaining: int
    method: str | None = None
    path_prefix: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_prefix is None or path.startswith(self.path_prefix)
        )

    def error(self) -> NsxApiError:
        return NsxApiError(self.status, self.error_code, self.message, module=MODULE_COMMON)


@dataclass
class Hold:
    seconds: float
    remaining: int
    method: str | None = None
    path_prefix: str | None = None


# What `omit_derived_fields` leaves out of hierarchical read-backs: fields the tree position implies.
DERIVED_FIELDS = frozenset({"parent_path", "relative_path", "unique_id", "marked_for_delete", "overridden",
                            "rule_count"})


class FaultPlan:
    def __init__(self) -> None:
        self._failures: list[InjectedFailure] = []
        self._stale_puts = 0
        self._holds: list[Hold] = []
        self.holds_started = 0  # matching calls that began their hold (what a test waits for)
        self._lock = threading.Lock()
        self.omitted_fields: frozenset[str] = frozenset()

    def omit_derived_fields(self, on: bool = True) -> None:
        """Hierarchical reads leave out DERIVED_FIELDS from every child (as a sparser responder would)."""
        self.omitted_fields = DERIVED_FIELDS if on else frozenset()

    def hold_next(self, seconds: float, count: int = 1, *, method: str | None = None,
                  path_prefix: str | None = None) -> None:
        """Keep the next `count` matching calls waiting `seconds` before they are carried out."""
        if not 0 < seconds <= 300 or count < 1:
            raise ValueError("seconds must be in (0, 300] and count at least 1")
        with self._lock:
            self._holds.append(Hold(seconds, count, method.upper() if method else None, path_prefix))

    def take_hold(self, method: str, path: str) -> float:
        """How long this call waits (0: not at all), consuming one matching hold."""
        with self._lock:
            for hold in self._holds:
                if (hold.method is None or hold.method == method) and (
                        hold.path_prefix is None or path.startswith(hold.path_prefix)):
                    hold.remaining -= 1
                    if hold.remaining == 0:
                        self._holds.remove(hold)
                    self.holds_started += 1
                    return hold.seconds
        return 0.0

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        error_code: int | None = None,
        message: str | None = None,
        method: str | None = None,
        path_prefix: str | None = None,
    ) -> None:
        """Answer the next `count` matching calls with `status` (e.g. 429, 503, 500 → code 607)."""
        if not 400 <= status <= 599 or count < 1:
            raise ValueError("status must be 4xx/5xx and count at least 1")
        default_code, default_message = _DEFAULTS.get(status, (INTERNAL_ERROR, f"Injected failure {status}."))
        failure = InjectedFailure(
            status,
            default_code if error_code is None else error_code,
            message or default_message,
            count,
            method.upper() if method else None,
            path_prefix,
        )
        with self._lock:
            self._failures.append(failure)

    def stale_next_put(self, count: int = 1) -> None:
        with self._lock:
            self._stale_puts += count

    def clear(self) -> None:
        with self._lock:
            self._failures.clear()
            self._stale_puts = 0
            self._holds.clear()
            self.omitted_fields = frozenset()

    def take_failure(self, method: str, path: str) -> NsxApiError | None:
        """The error to answer this call with, if a planned failure matches (consuming one)."""
        with self._lock:
            for failure in self._failures:
                if failure.matches(method, path):
                    failure.remaining -= 1
                    if failure.remaining == 0:
                        self._failures.remove(failure)
                    return failure.error()
        return None

    def take_stale_put(self) -> bool:
        with self._lock:
            if self._stale_puts:
                self._stale_puts -= 1
                return True
        return False
