"""Model weights: where they come from (:mod:`.store`, no torch) and how they are read
(:mod:`.load`, torch).

The names of both modules are available here; those of :mod:`.load` are
imported on first use, so that finding or downloading weights never loads torch.
"""

from typing import Any

from . import store
from .store import *  # noqa: F403 - the package re-exports its parts (store.__all__)

_LOAD_NAMES = frozenset({
    "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "LoadedWeights", "block_names", "build_model",
    "infer_config", "load_untrusted", "load_weights", "save_checkpoint", "validate",
})


def __getattr__(name: str) -> Any:
    if name in _LOAD_NAMES:
        from . import load

        return getattr(load, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [*store.__all__, *sorted(_LOAD_NAMES)]
