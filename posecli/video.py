"""Turn an input (video file, stream URL or still image) into batches of RGB frames.

Decoding uses PyAV (FFmpeg) with its threaded decoding on, in a background thread
that feeds a bounded queue, so memory stays flat however long the video is.
Images come out upright: the display-matrix rotation of the stream is applied to
the pixels.  Every problem with the input is raised as a one-line ``InputError``;
a bad ``--frames`` value as a ``UsageError``.
"""

from __future__ import annotations

import itertools
import os
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import av
import av.error
import numpy as np

from posecli.errors import InputError, UsageError

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "FrameBatch",
    "VideoInfo",
    "VideoReader",
    "parse_frame_range",
    "probe_video",
    "read_batches",
    "read_image",
    "rotate_upright",
]

# Errors PyAV raises for unreadable input: FFmpeg's own, plus OS-level ones.
_AV_ERRORS = (av.error.FFmpegError, OSError, EOFError)

_FRAME_RANGE = re.compile(r"^\s*(-?\d+)?\s*:\s*(-?\d+)?\s*(?::\s*(-?\d+)?\s*)?$")

# How long the decoding thread waits on a full queue before re-checking for close().
_POLL_S = 0.05
# How long close() waits for the decoding thread to finish its current frame.
_JOIN_S = 10.0


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a video before decoding it.

    Attributes:
        path: The file path or stream URL, as given.
        width: Displayed width in pixels (after ``rotation`` is applied).
        height: Displayed height in pixels (after ``rotation`` is applied).
        fps: Average frame rate in frames per second, or None when unknown.
        frame_count: Number of frames, or None when the container does not say.
        rotation: Counter-clockwise rotation in degrees (0, 90, 180 or 270) that is
            applied to the decoded pixels to make them upright.
        codec: FFmpeg decoder name, e.g. ``"h264"``.
        duration: Length in seconds, or None when unknown.
    """

    path: str
    width: int
    height: int
    fps: float | None
    frame_count: int | None
    rotation: int
    codec: str
    duration: float | None


@dataclass
class FrameBatch:
    """Consecutive selected frames of one video.

    Attributes:
        images: ``(N, H, W, 3)`` uint8 RGB, C-contiguous, upright (displayed size).
        indices: ``(N,)`` int64 frame indices, counted from 0 in stream order.
        timestamps: ``(N,)`` float64 presentation times in seconds from the start
            of the stream (NaN when neither the timestamp nor the rate is known).
    """

    images: np.ndarray
    indices: np.ndarray
    timestamps: np.ndarray


def parse_frame_range(text: str) -> slice:
    """Parse a ``--frames`` value ``START:END[:STEP]`` into a slice.

    Python slice semantics: every part is optional (``10:``, ``:100``, ``::5``) and
    START/END may be negative (counted from the end). STEP must be positive.

    Raises:
        UsageError: the text is not of that form, or STEP <= 0.
    """
    match = _FRAME_RANGE.match(text)
    if match is None:
        raise UsageError(f"bad --frames value {text!r}: expected START:END[:STEP] with integers")
    start, stop, step = (None if part is None else int(part) for part in match.groups())
    if step is not None and step <= 0:
        raise UsageError(f"bad --frames value {text!r}: STEP must be a positive integer")
    return slice(start, stop, step)


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Open a video file or stream URL and describe its first video stream.

    The first frame is decoded to learn the rotation, so a video whose frames
    cannot be decoded at all fails here.

    Raises:
        InputError: missing file, directory, empty file, not a video, no video
            stream, or the first frame cannot be decoded.
    """
    container, _, info = _open_video(path)
    container.close()
    return info


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a still image (PNG, JPEG, ...) as an ``(H, W, 3)`` uint8 RGB array.

    Any display-matrix rotation (e.g. from EXIF) is applied, so the image is upright.

    Raises:
        InputError: missing file, directory, empty file, or not an image.
    """
    source = _check_source(path)
    try:
        with av.open(source) as container:
            if not container.streams.video:
                raise InputError(f"not an image file: {source} (no picture in it)")
            frame = next(container.decode(container.streams.video[0]), None)
            if frame is None:
                raise InputError(f"not an image file: {source} (no picture in it)")
            return _to_rgb(frame)
    except _AV_ERRORS as exc:
        raise InputError(f"not an image file: {source} ({_reason(exc)})") from None


class VideoReader:
    """Decode a video in a background thread into batches of selected frames.

    Use it as a context manager and iterate it once::

        with VideoReader("in.mp4", batch_size=8, frames=parse_frame_range("0:100")) as reader:
            print(reader.info.width, reader.info.height)
            for batch in reader:
                ...  # batch.images: (N, H, W, 3) uint8

    Leaving the ``with`` block (normally, by ``break`` or by an exception) stops the
    decoding thread and closes the file. Breaking out of a bare ``for`` loop also
    cleans up once the loop's iterator is released.

    The thread decodes ahead of the consumer by at most ``queue_size`` batches, then
    blocks. Only frames whose index is in ``frames`` are converted to RGB, and
    decoding stops at the first index past the end of the range.

    Args:
        path: Video file path, or a URL (anything containing ``://``) PyAV can open.
        batch_size: Most frames per batch (>= 1). A batch is cut short at the end
            and where the frame size changes.
        frames: Which frame indices to yield (Python slice semantics, step > 0);
            None for all.
        queue_size: Most decoded batches waiting for the consumer (>= 1).

    Raises:
        InputError: when opening (see ``probe_video``) or, during iteration, when a
            frame cannot be decoded.
        UsageError: ``frames`` has a negative START/END and the frame count cannot
            be found, or a step <= 0.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        batch_size: int,
        frames: slice | None = None,
        *,
        queue_size: int = 4,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.batch_size = batch_size
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._container, self._frames, self.info = _open_video(path)
        try:
            self._start, self._stop_index, self._step = self._resolve(frames)
        except BaseException:
            self._container.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[FrameBatch]:
        """Yield the batches; can be iterated only once."""
        if self._thread is not None or self._stop.is_set():
            raise RuntimeError("a VideoReader can be iterated only once")
        self._thread = threading.Thread(
            target=self._produce, name=f"posecli-decode {self.info.path}", daemon=True
        )
        self._thread.start()
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """Stop the decoding thread, wait for it, and close the input. Idempotent."""
        self._stop.set()
        if self._thread is None:
            self._container.close()
        else:
            self._thread.join(_JOIN_S)

    def _resolve(self, frames: slice | None) -> tuple[int, int | None, int]:
        """Turn ``frames`` into (start >= 0, stop >= 0 or None for no end, step > 0)."""
        if frames is None:
            return 0, None, 1
        step = 1 if frames.step is None else frames.step
        if step <= 0:
            raise UsageError(f"bad --frames step {step}: STEP must be a positive integer")
        start, stop = frames.start, frames.stop
        if (start is None or start >= 0) and (stop is None or stop >= 0):
            return start or 0, stop, step
        count = self.info.frame_count or _count_frames(self.info.path)
        if not count:
            raise UsageError(
                f"--frames with a negative START or END needs the frame count, "
                f"which is unknown for {self.info.path}"
            )
        self.info = replace(self.info, frame_count=count)
        return frames.indices(count)

    def _produce(self) -> None:
        """Thread body: decode, convert and queue batches, then None (or the error)."""
        try:
            for batch in self._batches():
                if not self._put(batch):
                    return
            self._put(None)
        except _AV_ERRORS as exc:
            self._put(InputError(f"cannot decode {self.info.path}: {_reason(exc)}"))
        except Exception as exc:
            self._put(exc)
        finally:
            self._container.close()

    def _put(self, item: object) -> bool:
        """Queue an item, waiting while the queue is full; False once closed."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
            except queue.Full:
                continue
            return True
        return False

    def _batches(self) -> Iterator[FrameBatch]:
        start, stop, step = self._start, self._stop_index, self._step
        fps = self.info.fps
        stream_start = self._stream_start()
        images: list[np.ndarray] = []
        indices: list[int] = []
        times: list[float] = []
        if stop is not None and start >= stop:
            return
        for index, frame in enumerate(self._frames):
            if self._stop.is_set():
                return
            if index >= start and (index - start) % step == 0:
                image = _to_rgb(frame)
                if images and image.shape != images[0].shape:
                    yield _batch(images, indices, times)
                    images, indices, times = [], [], []
                images.append(image)
                indices.append(index)
                if frame.pts is not None:
                    times.append(float(frame.time) - stream_start)
                else:
                    times.append(index / fps if fps else float("nan"))
                if len(images) == self.batch_size:
                    yield _batch(images, indices, times)
                    images, indices, times = [], [], []
            if stop is not None and index + 1 >= stop:
                break  # do not decode past the end of the range
        if images:
            yield _batch(images, indices, times)

    def _stream_start(self) -> float:
        """The video stream's start time in seconds (0 when unknown)."""
        stream = self._container.streams.video[0]
        if stream.start_time is None or stream.time_base is None:
            return 0.0
        return float(stream.start_time * stream.time_base)


def read_batches(
    path: str | os.PathLike[str],
    batch_size: int,
    frames: slice | None = None,
    *,
    queue_size: int = 4,
) -> Iterator[FrameBatch]:
    """Generator over the batches of ``VideoReader(path, batch_size, frames)``.

    Opening errors are raised on the first ``next()``. The reader's thread is stopped
    when the generator finishes or is closed (explicitly, by ``with
    contextlib.closing(...)``, or when a ``for`` loop that broke out drops it).
    """
    with VideoReader(path, batch_size, frames, queue_size=queue_size) as reader:
        yield from reader


def _check_source(path: str | os.PathLike[str]) -> str:
    """Return the path as a string after checking a local file exists and is not empty."""
    source = os.fspath(path)
    if "://" in source:
        return source
    file = Path(source)
    if not file.exists():
        raise InputError(f"input not found: {source}")
    if file.is_dir():
        raise InputError(f"input is a directory, not a file: {source}")
    if file.stat().st_size == 0:
        raise InputError(f"input is empty: {source}")
    return source


def _open_video(
    path: str | os.PathLike[str],
) -> tuple[av.container.InputContainer, Iterator[av.VideoFrame], VideoInfo]:
    """Open a video, decode its first frame and describe it.

    Returns the open container, an iterator over all its decoded video frames
    (starting with the first one, already decoded) and the VideoInfo.
    """
    source = _check_source(path)
    try:
        container = av.open(source)
    except _AV_ERRORS as exc:
        raise InputError(f"not a video file: {source} ({_reason(exc)})") from None
    try:
        if not container.streams.video:
            raise InputError(f"no video stream in {source}")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        decoded = container.decode(stream)
        first = next(decoded, None)
    except _AV_ERRORS as exc:
        container.close()
        raise InputError(f"cannot decode {source}: {_reason(exc)}") from None
    except BaseException:
        container.close()
        raise
    rotation = _rotation(first) if first is not None else 0
    width = first.width if first is not None else stream.width
    height = first.height if first is not None else stream.height
    if rotation in (90, 270):
        width, height = height, width
    fps = float(stream.average_rate) if stream.average_rate else None
    if stream.duration and stream.time_base:
        duration: float | None = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / av.time_base
    else:
        duration = None
    info = VideoInfo(
        path=source,
        width=width,
        height=height,
        fps=fps,
        frame_count=stream.frames or None,
        rotation=rotation,
        codec=stream.codec_context.name,
        duration=duration,
    )
    frames = decoded if first is None else itertools.chain([first], decoded)
    return container, frames, info


def _count_frames(source: str) -> int | None:
    """Count the video packets of a file without decoding; None for streams or on error."""
    if "://" in source:
        return None
    try:
        with av.open(source) as container:
            stream = container.streams.video[0]
            return sum(1 for packet in container.demux(stream) if packet.size)
    except _AV_ERRORS:
        return None


def _rotation(frame: av.VideoFrame) -> int:
    """The frame's display rotation, counter-clockwise, rounded to 0, 90, 180 or 270."""
    return round(frame.rotation / 90) % 4 * 90


def rotate_upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate an ``(H, W, C)`` image counter-clockwise by ``rotation`` degrees (a
    multiple of 90) and return it C-contiguous; ``(W, H, C)`` for 90 and 270."""
    return np.ascontiguousarray(np.rot90(image, k=rotation // 90 % 4))


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """An upright ``(H, W, 3)`` uint8 RGB copy of a decoded frame."""
    return rotate_upright(frame.to_ndarray(format="rgb24"), _rotation(frame))


def _batch(images: list[np.ndarray], indices: list[int], times: list[float]) -> FrameBatch:
    return FrameBatch(
        images=np.stack(images),
        indices=np.asarray(indices, dtype=np.int64),
        timestamps=np.asarray(times, dtype=np.float64),
    )


def _reason(exc: BaseException) -> str:
    """A short reason from a PyAV/OS error, without the errno and path."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(reason).split())
