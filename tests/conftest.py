"""Shared fixtures: tiny models in the real key layouts, generated videos, shared media."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from posecli.model import ModelConfig, PoseNet
from posecli.synth import encode_png

SHARED_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"

TINY = ModelConfig(stages=2, vgg_widths=(4, 4, 8, 8), cpm_widths=(8, 8), stage1_width=8,
                   stage1_hidden=8, refine_width=8, refine_kernel=3)


@pytest.fixture
def shared_media() -> Path:
    """../shared/media beside the repository; tests using it skip in a user's clone."""
    if not SHARED_MEDIA.is_dir():
        pytest.skip("../shared/media is not present")
    return SHARED_MEDIA


@pytest.fixture(autouse=True)
def _isolated_weights(tmp_path_factory, monkeypatch):
    """No test sees the real user cache or a POSECLI_WEIGHTS of the environment."""
    monkeypatch.setenv("POSECLI_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("POSECLI_WEIGHTS", raising=False)


@pytest.fixture
def one_torch_thread():
    """One torch thread: on a shared 2-core machine two threads are many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_thread_count_does_not_matter(network: torch.nn.Module, images: torch.Tensor) -> None:
    """``network.predict(images)`` gives equal bytes on 1, 2 and 3 CPU threads (a one-CPU
    Ray worker must write what a many-thread process writes)."""
    threads = torch.get_num_threads()
    outputs = []
    try:
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            outputs.append(network.eval().predict(images))
    finally:
        torch.set_num_threads(threads)
    for heatmaps, pafs in outputs[1:]:
        assert torch.equal(heatmaps, outputs[0][0]) and torch.equal(pafs, outputs[0][1])


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A random tiny model saved as a flat state dict in the body_pose_model.pth layout."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny_body_pose_model.pth"
    torch.save(PoseNet(TINY).state_dict(), path)
    return path


def save_png(image: np.ndarray, path: Path) -> Path:
    """Write an H x W x 3 uint8 RGB array as a PNG (with the project's own encoder)."""
    path.write_bytes(encode_png(np.ascontiguousarray(image)))
    return path


def write_video(path: Path, frames: np.ndarray, fps: int = 10, codec: str = "mpeg4") -> Path:
    """Encode N x H x W x 3 uint8 RGB frames (even H, W) into ``path``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="session")
def small_video(tmp_path_factory) -> Path:
    """Six 96x64 frames at 10 fps, a moving bright square on grey."""
    frames = np.full((6, 64, 96, 3), 90, dtype=np.uint8)
    for i, frame in enumerate(frames):
        frame[10:30, 10 + 8 * i:30 + 8 * i] = 230
    return write_video(tmp_path_factory.mktemp("video") / "small clip.mp4", frames)
