"""The ``posecli`` command line: options in, pipeline wired, one line per error.

One module per command (``video``, ``image``, ``batch``, ``synth``, ``train``
and ``eval``, ``compare``, ``track``, ``weights``), shared option declarations in
``options``, stderr output in ``console``, the app and ``main`` in ``app``. No
math lives here. The app is imported on first use, so that :func:`entry` installs
the signal handlers before the slow imports.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["app", "entry", "main"]

START_UP_INTERRUPTED = "posecli: interrupted during start-up; no output written"


def entry() -> None:
    """The console script (and ``python -m posecli``).

    SIGINT/SIGTERM handlers come first, so a Ctrl-C while the command line is
    still importing is one line and exit 130 too; the process then ends through
    ``interrupts.leave``.
    """
    from ..interrupts import install_handlers, leave

    install_handlers()
    try:
        _load().main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except KeyboardInterrupt:  # before a command started
        print(START_UP_INTERRUPTED, file=sys.stderr)
        code = 130
    leave(code)


def _load() -> Any:
    """Import the app module; the package's ``app`` and ``main`` become its (importing
    the submodule would otherwise leave ``app`` naming the module)."""
    import importlib

    module = importlib.import_module(".app", __name__)
    globals().update(app=module.app, main=module.main)
    return module


def __getattr__(name: str) -> Any:
    """``app`` and ``main``, imported on first use."""
    if name in ("app", "main"):
        return getattr(_load(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
