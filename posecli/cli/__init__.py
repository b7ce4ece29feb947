"""The ``posecli`` command line: options in, pipeline wired, one line per error.

One module per command (``video``, ``image``, ``batch``, ``synth``, ``train``
and ``eval``, ``compare``, ``track``, ``weights``), shared option declarations in
``options``, stderr output in ``console``, the app and its entry point in
``app``. No math lives here.
"""

from .app import app, entry, main

__all__ = ["app", "entry", "main"]
