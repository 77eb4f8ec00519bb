"""The one way phases do work on many items at once (clones, power-ons, node joins): at most
``concurrency`` at a time, each item's failure kept apart so the others finish."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class Outcomes(Generic[Result]):
    """Per item key: what the work returned, or the exception it raised."""

    done: dict[Hashable, Result] = field(default_factory=dict)
    failed: dict[Hashable, BaseException] = field(default_factory=dict)


def each(items: Iterable[Item], work: Callable[[Item], Result], *, key: Callable[[Item], Hashable],
         concurrency: int, name: str = "work") -> Outcomes[Result]:
    """Runs ``work`` on every item and waits for all; results and failures come back in item order.
    Any exception is caught per item (a vSphere fault, an SSH error): the caller decides what it means."""
    items = list(items)
    outcomes: Outcomes[Result] = Outcomes()
    if not items:
        return outcomes
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(items))), thread_name_prefix=name) as pool:
        futures = [(key(item), pool.submit(work, item)) for item in items]
        for item_key, future in futures:
            try:
                outcomes.done[item_key] = future.result()
            except Exception as err:
                outcomes.failed[item_key] = err
    return outcomes
