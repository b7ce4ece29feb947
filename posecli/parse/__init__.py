"""From network outputs to people: the PAF parse of Cao et al. (CVPR 2017).

:func:`parse_batch` is the public entry point: give it the raw network outputs
for a batch of frames and the frames' :class:`~posecli.preprocess.Geometry`, get
back the people of every frame. The stages live in their own modules: map
resampling (``resample``), peak finding (``peaks``), limb scoring and matching
(``limbs``) and greedy assembly (``assemble``).
"""

from typing import TYPE_CHECKING, Any

from ..person import Person
from .params import ParseParams

if TYPE_CHECKING:
    from .parse import parse_batch

__all__ = ["ParseParams", "Person", "parse_batch"]


def __getattr__(name: str) -> Any:
    """``parse_batch`` loads torch, so it is imported on first use."""
    if name == "parse_batch":
        from . import parse

        return getattr(parse, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
