"""What outputs say about the model: what identifies it, never the trainer's local paths."""

from __future__ import annotations

from typing import Any

from posecli.pipeline import load_model
from posecli.weights import builtin_models, load_weights
from posecli.weights.metadata import public_metadata


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


def test_public_metadata_keeps_the_model_and_drops_the_machine() -> None:
    training = {"annotations": "/home/me/coco/ann.json", "images": "/home/me/coco/train2017",
                "out": "/home/me/runs/x", "vgg": "/home/me/vgg19.pth", "device": "cuda:1",
                "threads": 8, "num_workers": 6, "log_every": 10, "checkpoint_every": 500,
                "model": {"stages": 6}, "steps": 1000, "lr": 4e-5, "crop": 368,
                "augment": {"flip_prob": 0.5}, "sigma": 7.0}
    metadata = {"name": "run", "label": "mine", "step": 1000, "epoch": 3, "loss": 0.1,
                "world_size": 8, "training": training, "host": "gpu-node-17",
                "heldout": {"images": 5, "stats": {"AP": 0.5}}, "notes": {"path": "/x"}}
    assert public_metadata(metadata) == {
        "name": "run", "label": "mine", "step": 1000, "epoch": 3, "loss": 0.1, "world_size": 8,
        "training": {"model": {"stages": 6}, "steps": 1000, "lr": 4e-5, "crop": 368,
                     "augment": {"flip_prob": 0.5}, "sigma": 7.0},
        "heldout": {"images": 5, "stats": {"AP": 0.5}}}


def test_demo_model_metadata_has_no_local_paths() -> None:
    """Every output embedded the demo model's training paths (/work/data/...)."""
    demo = builtin_models()["demo"]
    stored = load_weights(demo).metadata
    assert not [s for s in strings_in(stored) if "/" in s]  # fixed in the file itself
    described = load_model("demo", device="cpu").describe()
    assert not [s for s in strings_in(described) if "/" in s]
    metadata = described["metadata"]
    assert "synthetic" in described["label"]
    assert metadata["training"]["model"] == described["config"]
    assert metadata["training"]["steps"] == 8000 and metadata["step"] == 6250
    assert metadata["heldout"]["stats"]["AP"] == 0.1633
    assert metadata["heldout_first20"]["images"] == 20
