"""VideoReader converts frames straight into reused batch arrays: never one still held."""

from __future__ import annotations

import av
import numpy as np

from posecli.video import VideoReader, _BatchArrays


def _plain_frames(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_held_batches_are_never_overwritten(small_video):
    with VideoReader(small_video, 2) as reader:
        batches = list(reader)  # every batch still held while later ones are decoded
    assert [len(b.indices) for b in batches] == [2, 2, 2]
    assert len({id(b.images) for b in batches}) == 3
    assert np.array_equal(np.concatenate([b.images for b in batches]), _plain_frames(small_video))


def test_released_arrays_are_reused_and_short_batches_are_views(small_video):
    frames = []
    with VideoReader(small_video, 4, queue_size=1) as reader:
        for batch in reader:
            frames.append(batch.images.copy())
            assert batch.images.flags.c_contiguous
            del batch
    assert [len(f) for f in frames] == [4, 2]
    assert np.array_equal(np.concatenate(frames), _plain_frames(small_video))


def test_arrays_come_back_once_released():
    arrays = _BatchArrays(batch_size=2, keep=2)
    first = arrays.take((4, 6, 3))
    assert arrays.take((4, 6, 3)) is not first  # held: a new one
    first_id = id(first)
    del first
    again = arrays.take((4, 6, 3))
    assert id(again) == first_id and again.shape == (2, 4, 6, 3)  # released: reused
    view = again[:1]
    del again
    assert arrays.take((4, 6, 3)).base is None and view.base is not None
    assert arrays.take((4, 6, 3)) is not view.base  # a view of it is held: not reused
    assert arrays.take((8, 6, 3)).shape == (2, 8, 6, 3)  # another frame size
