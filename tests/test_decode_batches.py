"""VideoReader hands over each frame in the array PyAV converted it into (no copy into
a batch block), and a held batch is never overwritten by later decoding."""

from __future__ import annotations

import av
import numpy as np

from posecli.video import VideoReader


def _plain_frames(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_held_batches_are_never_overwritten(small_video):
    with VideoReader(small_video, 2) as reader:
        batches = list(reader)  # every batch still held while later ones are decoded
    assert [len(b) for b in batches] == [2, 2, 2]
    frames = [frame for b in batches for frame in b.frames]
    assert len({frame.__array_interface__["data"][0] for frame in frames}) == 6
    assert np.array_equal(np.stack(frames), _plain_frames(small_video))


def test_frames_are_the_converted_arrays_not_copies(small_video):
    with VideoReader(small_video, 4, queue_size=1) as reader:
        batches = list(reader)
    assert [len(b) for b in batches] == [4, 2]
    for batch in batches:
        for frame in batch.frames:
            assert frame.flags.c_contiguous and frame.dtype == np.uint8
            assert isinstance(frame.base, av.video.plane.VideoPlane)  # PyAV's own buffer
        assert batch.images.shape == (len(batch), batch.height, batch.width, 3)
    assert np.array_equal(np.concatenate([b.images for b in batches]),
                          _plain_frames(small_video))
