"""Turn an input (video file, stream URL or still image) into batches of RGB frames.

Decoding uses PyAV (FFmpeg) with its threaded decoding on, in a background thread
that feeds a bounded queue, so memory stays flat however long the video is.
Images come out upright: the display-matrix rotation of the stream is applied to
the pixels.  Every problem with the input is raised as a one-line ``InputError``;
a bad ``--frames`` value as a ``UsageError``.

Besides files, a video can come from stdin, a pipe, a camera or a stream URL
(``sources`` checks and opens them). A packet that fails to decode is skipped (and
reported) instead of ending the read, unless more than ``MAX_CORRUPT_IN_A_ROW`` fail
in a row (``packets``).
"""

from __future__ import annotations

import itertools
import os
import queue
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import av
import av.error
import numpy as np

from posecli.errors import InputError, UsageError, error_reason
from posecli.interrupts import interrupt_count
from posecli.packets import MAX_CORRUPT_IN_A_ROW, PacketDecoder
from posecli.sources import (
    AV_ERRORS,
    NOT_STREAMABLE,
    check_file,
    check_source,
    count_frames,
    index_at_end,
    is_stream,
    open_args,
    source_name,
)

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "MAX_CORRUPT_IN_A_ROW",
    "FrameBatch",
    "VideoInfo",
    "VideoReader",
    "parse_frame_range",
    "probe_video",
    "read_batches",
    "read_image",
    "rotate_upright",
]

_FRAME_RANGE = re.compile(r"^\s*(-?\d+)?\s*:\s*(-?\d+)?\s*(?::\s*(-?\d+)?\s*)?$")

# How long the decoding thread waits on a full queue before re-checking for close().
_POLL_S = 0.05
# How long close() waits for the decoding thread to finish its current frame; once
# the command line was interrupted (a thread blocked on a stalled pipe or stream is
# then left behind, and the process leaves at once); after a second Ctrl-C, not at all.
_JOIN_S = 10.0
_JOIN_INTERRUPTED_S = 1.0

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


@dataclass(frozen=True)
class FrameBatch:
    """Consecutive selected frames of one video, all of one size.

    Attributes:
        frames: ``N`` frames, each ``(H, W, 3)`` uint8 RGB, C-contiguous, upright
            (displayed size). The reader hands over the arrays PyAV converted the
            frames into, without copying them into one block; an ``(N, H, W, 3)``
            array is a valid ``frames`` too.
        indices: ``(N,)`` int64 frame indices, counted from 0 in stream order.
        timestamps: ``(N,)`` float64 presentation times in seconds from the start
            of the stream (NaN when neither the timestamp nor the rate is known).
    """

    frames: Sequence[np.ndarray]
    indices: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def height(self) -> int:
        """Frame height in pixels (0 for an empty batch)."""
        return int(self.frames[0].shape[0]) if len(self.frames) else 0

    @property
    def width(self) -> int:
        """Frame width in pixels (0 for an empty batch)."""
        return int(self.frames[0].shape[1]) if len(self.frames) else 0

    @property
    def images(self) -> np.ndarray:
        """The frames as one new ``(N, H, W, 3)`` uint8 array (a copy)."""
        return np.stack(self.frames) if len(self.frames) else np.zeros((0, 0, 0, 3), np.uint8)


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
    """Open a video file, stream URL, camera or stdin (``-``) and describe its first
    video stream.

    The first frame is decoded to learn the rotation, so a video whose frames
    cannot be decoded at all fails here. Probing stdin consumes what it reads.

    Raises:
        InputError: missing file, directory, empty file, not a video, no video
            stream, stdin is a terminal, the stream cannot be opened, or more than
            ``MAX_CORRUPT_IN_A_ROW`` packets in a row fail to decode.
    """
    container, _, _, info = _open_video(path)
    container.close()
    return info


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a still image (PNG, JPEG, ...) as an ``(H, W, 3)`` uint8 RGB array.

    Any display-matrix rotation (e.g. from EXIF) is applied, so the image is upright.

    Raises:
        InputError: missing file, directory, empty file, or not an image.
    """
    source = check_file(os.fspath(path))
    try:
        with av.open(source) as container:
            if not container.streams.video:
                raise InputError(f"not an image file: {source} (no picture in it)")
            frame = next(container.decode(container.streams.video[0]), None)
            if frame is None:
                raise InputError(f"not an image file: {source} (no picture in it)")
            return _to_rgb(frame)
    except AV_ERRORS as exc:
        raise InputError(f"not an image file: {source} ({error_reason(exc)})") from None


class VideoReader:
    """Decode a video in a background thread into batches of selected frames.

    Use it as a context manager and iterate it once::

        with VideoReader("in.mp4", batch_size=8, frames=parse_frame_range("0:100")) as reader:
            print(reader.info.width, reader.info.height)
            for batch in reader:
                ...  # batch.frames: N arrays (H, W, 3) uint8
            print(reader.skipped_packets, reader.dropped_frames)

    Leaving the ``with`` block (normally, by ``break`` or by an exception) stops the
    decoding thread and closes the file. Breaking out of a bare ``for`` loop also
    cleans up once the loop's iterator is released.

    The thread decodes ahead of the consumer by at most ``queue_size`` batches, then
    blocks (or, with ``realtime``, drops the oldest queued batch). Only frames whose
    index is in ``frames`` are converted to RGB, and decoding stops at the first
    index past the end of the range.

    A packet that fails to decode is skipped: it is counted in ``skipped_packets``
    and reported through ``on_warning``; the frame it held keeps its index, so later
    frames keep theirs (indices then have a gap). More than ``MAX_CORRUPT_IN_A_ROW``
    failures in a row raise ``InputError``. FFmpeg conceals many errors itself
    (damaged frames still decode; a container that lost bytes resyncs and drops
    what it cannot parse), so a damaged file may also just yield fewer frames.

    Args:
        path: Video file path; ``"-"`` for a video stream on stdin (format
            detected from its content); a camera device ``/dev/videoN`` or
            ``/dev/v4l/...`` (V4L2);
            or a URL (anything containing ``://``: ``rtsp://`` over TCP,
            ``http(s)://``, ``udp://``, ``tcp://``...). Stdin, cameras and most
            streams have no frame count.
        batch_size: Most frames per batch (>= 1). A batch is cut short at the end
            and where the frame size changes.
        frames: Which frame indices to yield (Python slice semantics, step > 0);
            None for all.
        queue_size: Most decoded batches waiting for the consumer (>= 1).
        realtime: Never make the decoding thread wait for the consumer: when the
            queue is full the oldest queued batch is dropped, so the consumer gets
            the most recent frames (for live sources). Dropped frames are counted
            in ``dropped_frames``; yielded indices still increase.
        on_warning: Called with a one-line message (``"SOURCE: skipped ..."``) for each
            skipped packet, from the thread that creates or iterates the reader
            (never from the decoding thread), just before the next batch.

    Attributes:
        info: The ``VideoInfo`` of the input.
        skipped_packets: (read-only) Packets skipped because they failed to decode.
        dropped_frames: Selected frames decoded but dropped in ``realtime`` mode.

    Raises:
        InputError: when opening (see ``probe_video``) or, during iteration, when
            the input cannot be read any more (e.g. more than
            ``MAX_CORRUPT_IN_A_ROW`` corrupt packets in a row, or a network error).
        UsageError: ``frames`` has a negative START/END and the frame count cannot
            be found (always so for stdin, cameras and streams), or a step <= 0.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        batch_size: int,
        frames: slice | None = None,
        *,
        queue_size: int = 4,
        realtime: bool = False,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.batch_size = batch_size
        self.realtime = realtime
        self.dropped_frames = 0
        self._on_warning = on_warning
        self._warnings: deque[str] = deque()
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        warn = self._warnings.append if on_warning is not None else None
        self._container, self._decoder, self._frames, self.info = _open_video(path, warn)
        try:
            self._start, self._stop_index, self._step = self._resolve(frames)
            self._report_warnings()
        except BaseException:
            self._container.close()
            raise

    @property
    def skipped_packets(self) -> int:
        """Packets skipped so far because they failed to decode (final once iterated)."""
        return self._decoder.skipped

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
                self._report_warnings()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """Stop the decoding thread, wait for it (see ``_JOIN_S``), and close the input.
        Idempotent: only the first call waits."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is None:
            self._container.close()
            return
        waited = 0.0
        while self._thread.is_alive() and waited < _JOIN_S:
            interrupts = interrupt_count()
            if interrupts > 1 or (interrupts and waited >= _JOIN_INTERRUPTED_S):
                return
            self._thread.join(_POLL_S)
            waited += _POLL_S

    def _report_warnings(self) -> None:
        """Pass the warnings the decoder queued to ``on_warning``, in order."""
        while self._warnings:
            message = self._warnings.popleft()
            if self._on_warning is not None:
                self._on_warning(message)

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
        count = self.info.frame_count or count_frames(self.info.path)
        if not count:
            raise UsageError(
                f"--frames with a negative START or END needs the frame count, "
                f"which is unknown for {source_name(self.info.path)}"
            )
        self.info = replace(self.info, frame_count=count)
        return frames.indices(count)

    def _produce(self) -> None:
        """Thread body: decode, convert and queue batches, then None (or the error)."""
        try:
            for batch in self._batches():
                if self.realtime:
                    self._put_latest(batch)
                elif not self._put(batch):
                    return
            self._put(None)
        except AV_ERRORS as exc:
            self._put(InputError(
                f"cannot decode {source_name(self.info.path)}: {error_reason(exc)}"))
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

    def _put_latest(self, batch: FrameBatch) -> None:
        """Queue a batch without waiting: while the queue is full, drop its oldest batch.

        Only this thread puts, and the consumer only takes, so after taking one out
        there is room; the end marker and errors go through ``_put`` after the last
        batch, so what is dropped here is always a batch.
        """
        while True:
            try:
                self._queue.put_nowait(batch)
            except queue.Full:
                try:
                    oldest = self._queue.get_nowait()
                except queue.Empty:
                    continue
                if isinstance(oldest, FrameBatch):
                    self.dropped_frames += len(oldest.indices)
                continue
            return

    def _batches(self) -> Iterator[FrameBatch]:
        """The selected frames, converted to RGB, in batches.

        Each frame stays in the array PyAV converted it into: copying it into one
        batch block cost a third of the decoding time (768x576: 743 instead of
        1,087 frames/s).
        """
        start, stop, step = self._start, self._stop_index, self._step
        fps = self.info.fps
        stream_start = self._decoder.stream_start
        images: list[np.ndarray] = []  # the batch being filled
        indices: list[int] = []
        times: list[float] = []
        if stop is not None and start >= stop:
            return
        index = -1
        for frame in self._frames:
            if self._stop.is_set():
                return
            index += 1 + self._decoder.take_gap()
            if stop is not None and index >= stop:
                break  # skipped packets made the index jump past the range
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


def read_batches(
    path: str | os.PathLike[str],
    batch_size: int,
    frames: slice | None = None,
    *,
    queue_size: int = 4,
    realtime: bool = False,
    on_warning: Callable[[str], None] | None = None,
) -> Iterator[FrameBatch]:
    """Generator over the batches of ``VideoReader(path, batch_size, frames, ...)``.

    Opening errors are raised on the first ``next()``. The reader's thread is stopped
    when the generator finishes or is closed (explicitly, by ``with
    contextlib.closing(...)``, or when a ``for`` loop that broke out drops it).
    """
    with VideoReader(
        path, batch_size, frames, queue_size=queue_size, realtime=realtime, on_warning=on_warning
    ) as reader:
        yield from reader


def _open_video(
    path: str | os.PathLike[str],
    warn: Callable[[str], None] | None = None,
) -> tuple[av.container.InputContainer, PacketDecoder, Iterator[av.VideoFrame], VideoInfo]:
    """Open a video, decode its first frame and describe it.

    Returns the open container, its packet decoder, an iterator over all its
    decoded video frames (starting with the first one, already decoded) and the
    VideoInfo. ``warn`` receives a message for each skipped packet.
    """
    source = check_source(path)
    target, kwargs = open_args(source)
    try:
        container = av.open(target, **kwargs)
    except (*AV_ERRORS, ValueError) as exc:
        if is_stream(source):
            raise InputError(f"cannot open {source_name(source)} ({error_reason(exc)})") from None
        raise InputError(f"not a video file: {source} ({error_reason(exc)})") from None
    try:
        if not container.streams.video:
            raise InputError(f"no video stream in {source_name(source)}")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        decoder = PacketDecoder(container, stream, source, warn)
        decoded = decoder.frames()
        first = next(decoded, None)
    except (*AV_ERRORS, InputError) as exc:
        container.close()
        if index_at_end(container, source):
            raise InputError(NOT_STREAMABLE.format(source=source_name(source))) from None
        if isinstance(exc, InputError):
            raise
        raise InputError(f"cannot decode {source_name(source)}: {error_reason(exc)}") from None
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
    return container, decoder, frames, info


def _rotation(frame: av.VideoFrame) -> int:
    """The frame's display rotation, counter-clockwise, rounded to 0, 90, 180 or 270."""
    return round(frame.rotation / 90) % 4 * 90


def rotate_upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Rotate an ``(H, W, C)`` image counter-clockwise by ``rotation`` degrees (a
    multiple of 90) and return it C-contiguous; ``(W, H, C)`` for 90 and 270."""
    return np.ascontiguousarray(np.rot90(image, k=rotation // 90 % 4))


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """An upright, C-contiguous ``(H, W, 3)`` uint8 RGB array of a decoded frame: the
    array PyAV converts into (it keeps that buffer alive), copied only to rotate it or
    where PyAV's rows are padded (widths whose rows are not a multiple of its alignment).
    """
    image = frame.to_ndarray(format="rgb24")
    rotation = _rotation(frame)
    return rotate_upright(image, rotation) if rotation else np.ascontiguousarray(image)


def _batch(images: list[np.ndarray], indices: list[int], times: list[float]) -> FrameBatch:
    return FrameBatch(
        frames=tuple(images),
        indices=np.asarray(indices, dtype=np.int64),
        timestamps=np.asarray(times, dtype=np.float64),
    )
