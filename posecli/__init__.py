"""posecli: multi-person 2D human pose estimation over video (CMU CPM/PAF).

The Python API: :func:`load_model` finds and loads weights; :func:`estimate`
returns the people of each frame; :func:`posecli.parse.parse_batch` parses the
raw outputs of any network with the CMU output layout.
"""

from __future__ import annotations

__version__ = "0.1.0"

# Nothing is imported at run time (not even typing): the command line installs its
# signal handlers right after this, before any slow import.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .parse.params import ParseParams
    from .person import Person
    from .pipeline import PoseModel, estimate, load_model

__all__ = ["ParseParams", "Person", "PoseModel", "__version__", "estimate", "load_model"]

_LAZY = {"ParseParams": "parse.params", "Person": "person", "PoseModel": "pipeline",
         "estimate": "pipeline", "load_model": "pipeline"}


def __getattr__(name: str) -> Any:
    """The API's torch-backed names, imported on first use (the command line starts
    without torch)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
