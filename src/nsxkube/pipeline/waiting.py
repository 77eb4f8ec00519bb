"""Waiting for another system to catch up (NSX publishing a port group, learning a VM, dropping
a port): one backoff for every phase that polls."""

from __future__ import annotations

import time
from collections.abc import Iterator

DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)  # then the last one again


def backoff(timeout: float, delays: tuple[float, ...] = DELAYS) -> Iterator[int]:
    """Yields 0 at once, then 1, 2, … after growing pauses, as long as ``timeout`` seconds have not
    passed; a loop over it that never breaks has timed out (``for … else``)."""
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        yield attempt
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        time.sleep(min(delays[min(attempt, len(delays) - 1)], remaining))
        attempt += 1
