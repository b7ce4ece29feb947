"""Which published layout a state dict's key names follow (no torch).

Shared by the loader (:mod:`posecli.weights.load`), which classifies the keys of
a loaded state dict, and the sniffer (:mod:`posecli.weights.sniff`), which
classifies the key names it finds in a pickle without loading it, so that both
name a file's format the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: rtpose's ``nn.Sequential`` keys: ``model0.N.param`` (trunk), ``modelS_B.N.param``.
SEQUENTIAL_KEY = re.compile(r"(model(?:0|\d+_[12]))\.(\d+)\.(\w+)")
#: Module names only the Lightweight OpenPose network has.
LIGHTWEIGHT_PREFIXES = ("cpm.align.", "initial_stage.", "refinement_stages.")
#: nn.DataParallel's prefix on every key.
MODULE_PREFIX = "module."
#: A posecli checkpoint's ``format`` value.
CHECKPOINT_FORMAT = "posecli-checkpoint"


def strip_module_prefix(keys: Iterable[str]) -> list[str]:
    """Keys without the ``module.`` prefix that nn.DataParallel puts on every key."""
    keys = list(keys)
    if keys and all(key.startswith(MODULE_PREFIX) for key in keys):
        return [key[len(MODULE_PREFIX):] for key in keys]
    return keys


def state_dict_layout(keys: Iterable[str]) -> str | None:
    """``lightweight``, ``pose_model`` or ``body_pose_model`` from key names; None if the keys
    follow none of them (no Lightweight module, no rtpose block and no ``conv1_1``)."""
    names = [key.removeprefix(MODULE_PREFIX) for key in keys]
    if any(name.startswith(LIGHTWEIGHT_PREFIXES) for name in names):
        return "lightweight"
    if any(SEQUENTIAL_KEY.fullmatch(name) for name in names):
        return "pose_model"
    if any(name.startswith("conv1_1.") for name in names):
        return "body_pose_model"
    return None
