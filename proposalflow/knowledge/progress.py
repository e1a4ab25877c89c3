"""Progress of a knowledge run, for whoever listens in this process (the CLI's progress bar).

The tasks report totals and advances here; with no listener, reports go nowhere. A flow run in
another process (a worker) has no listener: its progress is in its logs.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

Listener = Callable[[str, int], None]  # ("total" | "advance", n)
_listeners: list[Listener] = []


def total(n: int) -> None:
    for listener in list(_listeners):
        listener("total", n)


def advance(n: int) -> None:
    for listener in list(_listeners):
        listener("advance", n)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)
