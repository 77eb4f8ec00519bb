"""Waiting for vCenter tasks from many threads with one property-collector read per interval.

Fifty clones in flight cost one ``RetrievePropertiesEx`` per poll, not fifty: whichever waiting
thread finds no poll running does it for every pending task and wakes the others.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from nsxkube.errors import ProviderError
from nsxkube.providers.vsphere.faults import describe_fault


class TaskFailed(ProviderError):
    """A vCenter task ended in error; ``fault`` is vCenter's fault object."""

    def __init__(self, what: str, fault: Any) -> None:
        super().__init__(f"{what}: {describe_fault(fault)}")
        self.fault = fault


class TaskWaiter:
    FIRST_INTERVAL = 0.05
    MAX_INTERVAL = 1.0

    def __init__(self, session: Any) -> None:
        self.session = session
        self._cond = threading.Condition()
        self._pending: dict[str, Any] = {}
        self._done: dict[str, tuple[str, Any, Any]] = {}
        self._polling = False
        self._interval = self.FIRST_INTERVAL

    def wait(self, task: Any, what: str, timeout: float) -> Any:
        """The task's result; TaskFailed with vCenter's error, ProviderError after ``timeout`` seconds."""
        key = task._moId
        deadline = time.monotonic() + timeout
        with self._cond:
            self._pending[key] = task
            self._interval = self.FIRST_INTERVAL
        try:
            while True:
                with self._cond:
                    while key not in self._done and self._polling:
                        if time.monotonic() > deadline:
                            raise ProviderError(f"{what}: vCenter task {key} did not finish within {timeout:g} s",
                                                hint="see the task in vCenter's Recent Tasks; run apply again later")
                        self._cond.wait(timeout=0.5)
                    if key in self._done:
                        state, error, result = self._done.pop(key)
                        if state == "error":
                            raise TaskFailed(what, error)
                        return result
                    if time.monotonic() > deadline:
                        raise ProviderError(f"{what}: vCenter task {key} did not finish within {timeout:g} s",
                                            hint="see the task in vCenter's Recent Tasks; run apply again later")
                    self._polling = True
                    interval = self._interval
                self._poll(interval)
        finally:
            with self._cond:
                self._pending.pop(key, None)
                self._done.pop(key, None)

    def _poll(self, interval: float) -> None:
        """As the one polling thread: sleep, read every pending task's state, wake the waiters."""
        rows: dict[str, dict[str, Any]] = {}
        try:
            time.sleep(interval)
            with self._cond:
                tasks = list(self._pending.values())
            rows = self.session.read_objects(tasks, ["info.state", "info.error", "info.result"])
        finally:
            with self._cond:
                for key, props in rows.items():
                    state = props.get("info.state")
                    if state in ("success", "error") and key in self._pending:
                        self._done[key] = (state, props.get("info.error"), props.get("info.result"))
                        del self._pending[key]
                self._polling = False
                self._interval = min(self._interval * 1.5, self.MAX_INTERVAL)
                self._cond.notify_all()
