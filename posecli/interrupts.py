"""Stopping a run on Ctrl-C (or SIGTERM) promptly, and never half-way through a write.

Two tools, both for the main thread's processing loop:

* :func:`run_interruptibly` runs a long call (the network) in a worker thread,
  so a KeyboardInterrupt reaches the waiting main thread within a tenth of a
  second instead of after the call.
* :func:`signals_held` holds SIGINT/SIGTERM for a short block (handing a
  batch to the sinks and counting it) and delivers them when it ends, so an
  interrupted run never reports a different number of frames than it wrote and
  never leaves half a JSON line on stdout.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

ESTIMATE_THREAD = "posecli-estimate"  # the worker thread of an interruptible call
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)

Argument = TypeVar("Argument")


def run_interruptibly(function: Callable[[Argument], Any], argument: Argument) -> Any:
    """``function(argument)`` in a worker thread, so Ctrl-C reaches the waiting caller.

    A signal handler only runs in the main thread between Python bytecodes, never
    inside a long torch call; waiting here in short steps lets KeyboardInterrupt
    through within a tenth of a second. An abandoned call finishes in the
    background and its result is thrown away.
    """
    outcome: dict[str, Any] = {}
    finished = threading.Event()

    def work() -> None:
        try:
            outcome["value"] = function(argument)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            outcome["error"] = exc
        finally:
            finished.set()

    threading.Thread(target=work, name=ESTIMATE_THREAD, daemon=True).start()
    while not finished.wait(0.1):
        pass
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM inside the block; deliver the first one held when it ends.

    Delivery uses the handlers that were in place before (so Ctrl-C still becomes
    KeyboardInterrupt, and an unhandled SIGTERM still ends the process). Outside
    the main thread, where handlers cannot be changed, this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous: dict[int, Any] = {}
    try:
        for signum in HELD_SIGNALS:
            handler = signal.getsignal(signum)
            if handler is None:  # set outside Python: it could not be restored
                continue
            previous[signum] = handler  # recorded first, so a signal right now restores it
            signal.signal(signum, lambda received, frame: held.append(received))
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if held:
            signal.raise_signal(held[0])
