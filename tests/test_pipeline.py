"""The Python API and the estimator: batching, mixed sizes, out-of-memory fallback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY

from posecli.errors import PoseCliError, UsageError
from posecli.model import PoseNet
from posecli.pipeline import Estimator, PoseModel, estimate, load_model, resolve_device
from posecli.weights import load_weights


@pytest.fixture
def tiny_model(tiny_weights) -> PoseModel:
    return load_model(tiny_weights, device="cpu")


def test_load_model_and_estimate_mixed_sizes(tiny_model):
    frames = [np.zeros((48, 64, 3), np.uint8), np.zeros((48, 64, 3), np.uint8),
              np.full((30, 40, 3), 200, np.uint8)]
    people = estimate(frames, tiny_model, net_height=64, batch_size=2)
    assert len(people) == 3
    assert all(isinstance(p, list) for p in people)


def test_batched_equals_one_by_one(tiny_model):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (4, 40, 56, 3), dtype=np.uint8)
    estimator = Estimator(tiny_model, 64)
    calls = []
    real_predict = tiny_model.network.predict
    tiny_model.network.predict = lambda x: calls.append(len(x)) or real_predict(x)
    batched = estimator(frames)
    singles = [estimator(frame[None])[0] for frame in frames]
    assert calls[0] == 4
    for a, b in zip(batched, singles):
        assert len(a) == len(b)
        for pa, pb in zip(a, b):
            np.testing.assert_allclose(pa.keypoints, pb.keypoints, atol=1e-4)


def test_out_of_memory_splits_batches(tiny_model):
    sizes = []
    real_predict = tiny_model.network.predict

    def predict(x):
        sizes.append(len(x))
        if len(x) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_predict(x)

    tiny_model.network.predict = predict
    warnings = []
    estimator = Estimator(tiny_model, 64, on_warning=warnings.append)
    frames = np.random.default_rng(0).integers(0, 255, (8, 40, 56, 3), dtype=np.uint8)
    assert len(estimator(frames)) == 8
    assert sizes == [8, 4, 2, 2, 2, 2]
    assert estimator.max_batch == 2 and len(warnings) == 2
    sizes.clear()
    estimator(frames)  # later batches start at the size that worked
    assert sizes == [2, 2, 2, 2]


def test_out_of_memory_at_one_frame_is_one_clear_error(tiny_model):
    def predict(x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    tiny_model.network.predict = predict
    with pytest.raises(PoseCliError, match="smaller --net-height"):
        Estimator(tiny_model, 64)(np.zeros((1, 40, 56, 3), np.uint8))


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "cuda:x"):
        with pytest.raises(UsageError):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="not available"):
            resolve_device("cuda")


def test_model_description_names_weights(tiny_model, tiny_weights):
    info = tiny_model.describe()
    assert info["sha256"] == load_weights(tiny_weights).sha256
    assert info["config"] == TINY.to_dict()
    assert isinstance(tiny_model.network, PoseNet)
