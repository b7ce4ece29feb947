"""The shipped demo model: labelled for what it is, and as good as it says it is."""

from __future__ import annotations

import pytest
from test_cli import run_cli

from posecli.evaluate import evaluate
from posecli.pipeline import load_model
from posecli.synth import generate_dataset
from posecli.weights import builtin_models, load_weights, resolve_weights

SAMPLE = builtin_models().get("demo")


def test_demo_model_is_shipped_and_labelled():
    assert SAMPLE is not None and resolve_weights("demo") == SAMPLE
    metadata = load_weights(SAMPLE).metadata
    assert "synthetic" in metadata["label"] and "not a model of real people" in metadata["label"]


def test_demo_model_reaches_its_reported_ap(tmp_path):
    """The first 20 images of the held-out synthetic set (seed 2) score what was recorded."""
    reported = load_weights(SAMPLE).metadata["heldout_first20"]
    generate_dataset(tmp_path, images=reported["images"], seed=2, width=256, height=256)
    model = load_model("demo", device="cpu")
    result = evaluate(model, tmp_path / "annotations.json", tmp_path, reported["net_height"])
    assert result.stats["AP"] == pytest.approx(reported["stats"]["AP"], abs=0.02)
    assert result.stats["AP50"] == pytest.approx(reported["stats"]["AP50"], abs=0.03)


def test_demo_label_reaches_the_output(tmp_path, small_video, capsys):
    out = tmp_path / "poses.json"
    code, _, err = run_cli(["video", small_video, "--weights", "demo", "--net-height", 64,
                            "--out", out], capsys)
    assert code == 0, err
    import orjson

    assert "synthetic" in orjson.loads(out.read_bytes())["info"]["model"]["label"]
