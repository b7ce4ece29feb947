"""Turn a training checkpoint into the shipped demo model (posecli/models/demo.pt).

    python tools/package_demo_model.py runs/demo/last.pt data/synth_val

Keeps the weights and model config, drops the optimiser state, and records what
the model is (a synthetic-data demonstration), how it was trained (the training
summary: no paths or settings of the machine it ran on), and its scores on the
held-out synthetic set: all of it, and its first 20 images (the set
tests/test_demo_model.py checks the shipped model against). Given the shipped
demo.pt itself, it rewrites the metadata around the same weights.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from posecli.evaluate import evaluate
from posecli.pipeline import PoseModel
from posecli.weights import BUILTIN_DIR, build_model, load_weights, save_checkpoint
from posecli.weights.metadata import training_summary

LABEL = ("synthetic-data demonstration model: trained by posecli on posecli synth figures; "
         "not a model of real people")
NET_HEIGHT = 256
TEST_IMAGES = 20


def main(checkpoint: str, val_dir: str) -> None:
    loaded = load_weights(checkpoint)
    network = build_model(loaded)
    model = PoseModel(network, loaded, torch.device("cpu"))
    annotations = Path(val_dir) / "annotations.json"
    scores = {}
    for name, limit in (("heldout", None), ("heldout_first20", TEST_IMAGES)):
        result = evaluate(model, annotations, val_dir, NET_HEIGHT, max_images=limit)
        scores[name] = {"images": result.images, "net_height": NET_HEIGHT,
                        "stats": {k: round(v, 4) for k, v in result.stats.items()}}
        print(name, scores[name])
    metadata = {"name": "demo", "label": LABEL, "step": loaded.metadata.get("step"),
                "training": training_summary(loaded.metadata.get("training") or {}), **scores}
    out = BUILTIN_DIR / "demo.pt"
    BUILTIN_DIR.mkdir(exist_ok=True)
    save_checkpoint(out, network, metadata)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main(*sys.argv[1:])
