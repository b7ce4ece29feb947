"""Lightweight OpenPose's published checkpoint, read into :class:`LightweightNet` naming.

``checkpoint_iter_370000.pth`` is a dict: ``state_dict`` (the network with three
refinement stages) beside ``optimizer``, ``scheduler``, ``iter`` and
``current_epoch``. Only ``state_dict`` is used, and of it the trunk, the initial
stage and the first refinement stage: the network its authors evaluate (40% AP
on COCO val). Batch-norm step counters (``num_batches_tracked``, training
bookkeeping) are dropped. A bare state dict in the same layout, with or without
nn.DataParallel's ``module.`` prefix, is read too.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from ..errors import WeightsError
from ..weights.layouts import strip_module_prefix
from .network import LightweightConfig, LightweightNet

#: Batch-norm buffers that only count training steps.
STEP_COUNTER = "num_batches_tracked"
#: Batch-norm buffers that are statistics, not parameters.
RUNNING_STATS = ("running_mean", "running_var", STEP_COUNTER)
#: The refinement stages its authors keep (of the three in the published file).
KEPT_REFINEMENT_STAGES = 1
_STAGE_KEY = re.compile(r"refinement_stages\.(\d+)\.")


def read_checkpoint(obj: dict[str, Any], where: str) -> tuple[dict[str, Any],
                                                               LightweightConfig,
                                                               dict[str, Any]]:
    """(state dict to load, config, metadata) of a Lightweight OpenPose checkpoint.

    ``where`` names the file in errors. The metadata records how many
    refinement stages the file held and, when present, its training iteration
    (as ``step``).
    """
    state = obj["state_dict"] if isinstance(obj.get("state_dict"), dict) else obj
    if bad := [k for k in state if not isinstance(k, str)]:
        raise WeightsError(f"{where} has a non-string key {bad[0]!r} in its state dict")
    state = dict(zip(strip_module_prefix(state), state.values()))
    stages = {int(m[1]) for key in state if (m := _STAGE_KEY.match(key))}
    keep = min(KEPT_REFINEMENT_STAGES, len(stages))
    kept = {key: value for key, value in state.items()
            if not key.endswith(f".{STEP_COUNTER}")
            and not ((m := _STAGE_KEY.match(key)) and int(m[1]) >= keep)}
    metadata: dict[str, Any] = {"refinement_stages_in_file": len(stages)}
    if isinstance(obj.get("iter"), int):
        metadata["step"] = obj["iter"]
    return kept, LightweightConfig(refinement_stages=keep), metadata


def expected_shapes(config: LightweightConfig) -> dict[str, torch.Size]:
    """Key -> shape of the tensors a checkpoint must provide for ``LightweightNet(config)``."""
    with torch.device("meta"):  # shapes only: nothing is allocated or initialised
        state = LightweightNet(config).state_dict()
    return {k: v.shape for k, v in state.items() if not k.endswith(f".{STEP_COUNTER}")}


def build_network(state: dict[str, torch.Tensor], config: LightweightConfig) -> LightweightNet:
    """A LightweightNet holding ``state`` (validated against :func:`expected_shapes`)."""
    network = LightweightNet(config)
    result = network.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith(f".{STEP_COUNTER}")]
    if missing or result.unexpected_keys:
        raise ValueError(f"state does not fit: missing {missing}, "
                         f"unexpected {result.unexpected_keys}")
    return network


def is_parameter(key: str) -> bool:
    """Whether a state-dict key is a learned parameter (not a batch-norm statistic)."""
    return key.rsplit(".", 1)[-1] not in RUNNING_STATS
