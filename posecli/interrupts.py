"""Stopping a run on Ctrl-C (or SIGTERM) promptly, and never half-way through a write.

The command line's handlers (:func:`install_handlers`): the first SIGINT or
SIGTERM becomes KeyboardInterrupt in the main thread; every later one is only
counted, so finishing the outputs of the frames done (or a batch's manifest)
cannot be aborted by a second Ctrl-C. A signal that arrives while the main
thread is importing a module or running torch's Python code (which may have been
called from C++, where an exception aborts the process) waits until it is out.
:func:`leave` ends the process: after an interrupt, at once (``os._exit``), so
an abandoned network call still running in torch cannot abort the exit.

Two tools for the main thread's processing loop:

* :func:`run_interruptibly` runs a long call (the network) in a worker thread,
  so a KeyboardInterrupt reaches the waiting main thread within a tenth of a
  second instead of after the call.
* :func:`signals_held` holds SIGINT/SIGTERM for a short block (handing a
  batch to the sinks and counting it) and delivers them when it ends, so an
  interrupted run never reports a different number of frames than it wrote and
  never leaves half a JSON line on stdout; or, once every frame is processed,
  while the outputs are written, so that a Ctrl-C then cannot throw the whole
  run away (the caller reports it once they are in place).
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
from contextlib import contextmanager

# Only light imports at run time: the command line installs its handlers from here
# before any slow import.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from concurrent.futures import Future
    from types import FrameType
    from typing import Any, TypeVar

    Argument = TypeVar("Argument")

ESTIMATE_THREAD = "posecli-estimate"  # the worker thread of an interruptible call
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How often a signal that had to wait (import, torch code) is offered again, in seconds.
_RETRY_S = 0.02
# Code where a KeyboardInterrupt must not be raised: imports, and torch's Python code.
_DELICATE = ("<frozen importlib", f"{os.sep}torch{os.sep}")


def run_interruptibly(function: Callable[[Argument], Any], argument: Argument) -> Any:
    """``function(argument)`` in a worker thread, so Ctrl-C reaches the waiting caller.

    A signal handler only runs in the main thread between Python bytecodes, never
    inside a long torch call; waiting here in short steps lets KeyboardInterrupt
    through within a tenth of a second. An abandoned call finishes in the
    background and its result is thrown away.
    """
    from concurrent.futures import Future  # not at import: see the imports above

    outcome: Future[Any] = Future()

    def work() -> None:
        try:
            outcome.set_result(function(argument))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            outcome.set_exception(exc)

    threading.Thread(target=work, name=ESTIMATE_THREAD, daemon=True).start()
    return wait_interruptibly(outcome)


def wait_interruptibly(future: Future[Any]) -> Any:
    """``future.result()``, waited for in steps of a tenth of a second so that Ctrl-C
    reaches this (main) thread meanwhile."""
    from concurrent.futures import TimeoutError as FutureTimeout

    while True:
        try:
            return future.result(timeout=0.1)
        except FutureTimeout:
            continue


@contextmanager
def signals_held(deliver: bool = True) -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM inside the block; yields the list of the signals held.

    When the block ends the first one held is delivered (``deliver``), with the
    handlers that were in place before (so Ctrl-C still becomes KeyboardInterrupt,
    and an unhandled SIGTERM still ends the process), or left to the caller, who
    reads the list. Outside the main thread, where handlers cannot be changed,
    this does nothing (the list stays empty).
    """
    held: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous: dict[int, Any] = {}
    try:
        for signum in HELD_SIGNALS:
            handler = signal.getsignal(signum)
            if handler is None:  # set outside Python: it could not be restored
                continue
            previous[signum] = handler  # recorded first, so a signal right now restores it
            signal.signal(signum, lambda received, frame: held.append(received))
        yield held
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if held and deliver:
            signal.raise_signal(held[0])


class _Signals:
    """What the command line's handlers have seen: ``taken`` is the signal that
    became KeyboardInterrupt (0 if none), ``later`` how many came after it (or
    after the command ended), ``waiting`` whether one waits to be offered again."""

    def __init__(self) -> None:
        self.taken = 0
        self.later = 0
        self.waiting = False
        self.closing = False


_signals: _Signals | None = None


def install_handlers() -> Callable[[], None]:
    """Install the command line's SIGINT/SIGTERM handlers (see the module doc) with a
    fresh record; returns a function that puts the previous handlers back.

    Main thread only. Installing them again while they are in place keeps the
    record (the entry point installs them before the slow imports, ``main`` again).
    """
    global _signals
    previous = {signum: signal.getsignal(signum) for signum in HELD_SIGNALS}
    if previous[signal.SIGINT] is not _on_signal or _signals is None:
        _signals = _Signals()
    for signum in HELD_SIGNALS:
        signal.signal(signum, _on_signal)

    def restore() -> None:
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)

    return restore


def interrupt_count() -> int:
    """Signals received by the command line's handlers: 0, 1 (taken), or more."""
    if _signals is None or not _signals.taken:
        return 0
    return 1 + _signals.later


def closing() -> None:
    """From now on (the command is over) a signal is only counted: there is nothing
    left for it to stop."""
    if _signals is not None:
        _signals.closing = True


def leave(code: int) -> None:
    """End the process with ``code`` once the outputs are finished and flushed.

    After an interrupt (or with an abandoned network call still running) the
    process ends at once with ``os._exit``: interpreter shutdown would stop that
    thread inside torch's C++ code and abort ("terminate called without an
    active exception"). A signal arriving from here on is ignored.
    """
    closing()
    busy = any(t.name == ESTIMATE_THREAD and t.is_alive() for t in threading.enumerate())
    if threading.current_thread() is threading.main_thread():
        # Interpreter shutdown puts the default handlers back, and a signal would then
        # end the process silently: from here on, signals are ignored.
        for signum in HELD_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
    if interrupt_count() or busy:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing more can reach it
                pass
        os._exit(code)
    sys.exit(code)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """SIGINT/SIGTERM: the first becomes KeyboardInterrupt (once out of delicate code);
    later ones are only counted."""
    state = _signals
    if state is None:  # installed by hand without a record: behave like Ctrl-C
        raise KeyboardInterrupt
    if state.taken or state.closing:
        state.later += 1
        return
    if _in_delicate_code(frame):
        if not state.waiting:
            state.waiting = True
            retry = threading.Timer(_RETRY_S, _offer_again, (state, signum))
            retry.daemon = True
            retry.start()
        return
    state.taken, state.waiting = signum, False
    raise KeyboardInterrupt


def _offer_again(state: _Signals, signum: int) -> None:
    """(Timer thread) offer a waiting signal to the main thread's handler again."""
    state.waiting = False
    if not (state.taken or state.closing):
        _thread.interrupt_main(signum)


def _in_delicate_code(frame: FrameType | None) -> bool:
    """Whether the main thread is importing or inside torch's Python code."""
    while frame is not None:
        if frame.f_code.co_filename.startswith(_DELICATE[0]) or _DELICATE[1] in \
                frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False
