"""What of a checkpoint's metadata identifies the model, for output files (no torch).

posecli checkpoints record how they were made, including the paths of the data
and of the run on the machine that trained them, and the machine's thread and
device settings. Outputs carry only what identifies the model: its name and
label, the training summary (sizes, schedule, augmentation: what changes the
weights), where training stopped, and its recorded scores.
"""

from __future__ import annotations

from typing import Any

#: Top-level metadata entries that identify the model.
IDENTIFYING_KEYS = ("name", "label", "step", "epoch", "loss", "world_size")
#: Training options that shape the weights (not paths, devices, threads or logging).
TRAINING_SUMMARY_KEYS = (
    "model", "steps", "batch_size", "lr", "optimizer", "momentum", "weight_decay",
    "warmup_steps", "schedule", "clip_grad", "amp", "crop", "seed", "augment", "sigma",
    "limb_width",
)


def training_summary(training: dict[str, Any]) -> dict[str, Any]:
    """The options of a training run that shape its weights (see TRAINING_SUMMARY_KEYS)."""
    return {key: training[key] for key in TRAINING_SUMMARY_KEYS if key in training}


def public_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Identifying metadata: IDENTIFYING_KEYS, the training summary, and every score
    record (an entry holding ``stats``, e.g. ``heldout``), in the checkpoint's order."""
    public: dict[str, Any] = {}
    for key, value in metadata.items():
        if key in IDENTIFYING_KEYS:
            public[key] = value
        elif key == "training" and isinstance(value, dict):
            public[key] = training_summary(value)
        elif isinstance(value, dict) and "stats" in value:
            public[key] = value
    return public
