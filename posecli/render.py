"""Draw skeletons on frames in OpenPose's style; write them as an MP4 video or as images.

``draw_poses`` rasterises every limb of every person of a frame at once with
numpy: each limb is a capsule (the points within half the line thickness of the
segment between its two parts), cut into one run of pixels per image row, so
the cost grows with the number of pixels drawn, not with the frame size or with
a Python loop per limb. Limbs are alpha-blended over the frame (as in the CMU
demo), joints are opaque discs drawn on top.

``RenderSink`` is a :class:`~posecli.sinks.Sink` encoding each processed frame,
with its skeletons, as H.264 (yuv420p, BT.709) in an MP4 that browsers play.
Each output frame keeps its input timestamp (variable frame rates and
``--frames`` subsets included); the source's audio is copied into the final
file (or converted to AAC when MP4 cannot hold its codec). ``StillRenderSink``
writes each processed still image, with its skeletons, to its own PNG or JPEG.
"""

from __future__ import annotations

import heapq
import math
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.codec
import av.error
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

from .errors import PoseCliError, error_reason
from .formats import FrameResult
from .outputs import fsync_path, temp_file_beside
from .parse import Person
from .sinks import Sink
from .skeleton import LIMBS, NUM_PARTS, NUM_SEEDING_LIMBS, PART_COLOURS_RGB
from .sources import is_stream, stream_start
from .stills import write_still
from .video import FrameBatch, VideoInfo

__all__ = ["LIMB_ALPHA", "RENDER_TAG", "RenderSink", "StillRenderSink", "default_thickness",
           "draw_poses"]

#: Opacity of limbs over the frame (OpenPose's demo blends its sticks at 0.6).
LIMB_ALPHA = 0.6
#: Joint disc radius, as a fraction of the limb thickness.
_JOINT_RADIUS = 0.75

_DRAWN_LIMBS = np.array(LIMBS[:NUM_SEEDING_LIMBS], dtype=np.int64)  # 17 x 2
_ALPHA_256 = round(LIMB_ALPHA * 256)
_PIXEL = np.dtype((np.void, 3))  # one RGB pixel as a single item
_PART_PIXELS = np.array(PART_COLOURS_RGB, dtype=np.uint8).view(_PIXEL).reshape(-1)
#: Limb colours times alpha (of 256), plus 128 for rounding.
_LIMB_PREMULTIPLIED = (np.array(PART_COLOURS_RGB[:NUM_SEEDING_LIMBS], dtype=np.uint16)
                       * _ALPHA_256 + 128)

#: The ``comment`` tag of every rendered MP4: ``batch`` never takes such a file as an input.
RENDER_TAG = "posecli render"
#: Output time base: 90 kHz, MPEG's clock; finer than any frame rate.
TIME_BASE = Fraction(1, 90000)
#: Audio codecs an MP4 file can hold as they are (others are converted to AAC).
MP4_AUDIO = frozenset({"aac", "mp3", "mp2", "ac3", "eac3", "opus", "alac", "flac"})
_AV_ERRORS = (av.error.FFmpegError, OSError, EOFError, ValueError)
_POLL_S = 0.05  # how often a blocked add() checks the worker is still alive
_BT709_MATRIX = 1  # AVCOL_SPC_BT709: the codec context takes FFmpeg's numbering


# --------------------------------------------------------------------------- drawing


def default_thickness(height: int, width: int) -> int:
    """Limb thickness in pixels for a frame size: 4 at 768x576, 7 at 1080p."""
    return max(2, round(min(height, width) / 160))


def draw_poses(image: np.ndarray, people: Sequence[Person], *,
               thickness: int | None = None) -> np.ndarray:
    """A copy of ``image`` (H x W x 3 uint8 RGB) with the skeletons of ``people``.

    Draws the 17 limbs OpenPose draws for the COCO model (the ear-to-shoulder
    limbs are left out), each a ``thickness``-pixel line in the colour of its
    index blended over the frame at ``LIMB_ALPHA``, then every found part as an
    opaque disc in its part colour. Parts with score 0 (missing) and limbs with a
    missing end are not drawn; shapes are clipped to the frame. ``thickness``
    defaults to :func:`default_thickness` of the frame size.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be H x W x 3 uint8, got {image.shape} {image.dtype}")
    out = np.array(image, order="C", copy=True)
    if not people:
        return out
    height, width = out.shape[:2]
    if thickness is None:
        thickness = default_thickness(height, width)
    if thickness < 1:
        raise ValueError(f"thickness must be >= 1, got {thickness}")
    keypoints = np.stack([np.asarray(p.keypoints, dtype=np.float64) for p in people])
    found = (keypoints[..., 2] > 0) & np.isfinite(keypoints).all(-1)  # P x 18
    # Pixels as 3-byte items: 1-D take/put move whole pixels at once.
    pixels_in = np.ascontiguousarray(image).view(_PIXEL).reshape(-1)
    pixels_out = out.view(_PIXEL).reshape(-1)

    # Limbs: every limb of every person with both ends found, blended at once.
    ends_a, ends_b = _DRAWN_LIMBS[:, 0], _DRAWN_LIMBS[:, 1]
    drawn = found[:, ends_a] & found[:, ends_b]  # P x 17
    limb_ids = np.broadcast_to(np.arange(len(_DRAWN_LIMBS), dtype=np.uint8), drawn.shape)
    index, colour = _capsule_pixels(keypoints[:, ends_a, :2][drawn],
                                    keypoints[:, ends_b, :2][drawn], limb_ids[drawn],
                                    thickness / 2, height, width)
    if len(index):
        blended = np.take(_LIMB_PREMULTIPLIED, colour, axis=0)  # colour * alpha + 1/2
        below = np.take(pixels_in, index).view(np.uint8).reshape(-1, 3)
        blended += below * np.uint16(256 - _ALPHA_256)
        blended >>= 8
        np.put(pixels_out, index, blended.astype(np.uint8).view(_PIXEL).reshape(-1))

    # Joints: opaque discs over the limbs.
    part_ids = np.broadcast_to(np.arange(NUM_PARTS, dtype=np.uint8), found.shape)
    centres = keypoints[..., :2][found]
    radius = max(1.0, _JOINT_RADIUS * thickness)
    index, colour = _capsule_pixels(centres, centres, part_ids[found], radius, height, width)
    if len(index):
        np.put(pixels_out, index, np.take(_PART_PIXELS, colour))
    return out


def _capsule_pixels(start: np.ndarray, end: np.ndarray, labels: np.ndarray, radius: float,
                    height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels within ``radius`` of each segment ``start[k] -> end[k]`` (K x 2, x y).

    Pixel (x, y) has its centre at integer coordinates. Returns the flat indices
    (y * width + x) of the covered pixels inside the frame, and for each the
    label of its segment (``labels[k]``). A capsule is convex, so it covers one
    run of pixels per row: the union of the runs of its two end discs and of its
    straight band (the rectangle between them).
    """
    if len(start) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=labels.dtype)
    ax, ay = start[:, 0], start[:, 1]
    dx, dy = end[:, 0] - ax, end[:, 1] - ay
    length = np.hypot(dx, dy)
    point = length < 1e-9
    ux = np.where(point, 1.0, dx / np.where(point, 1.0, length))
    uy = np.where(point, 0.0, dy / np.where(point, 1.0, length))
    # Nudge zero components: the divisions stay finite and a run that should be
    # unbounded (or empty) becomes one far beyond the frame (or far outside it).
    ux = np.where(np.abs(ux) < 1e-7, 1e-7, ux)
    uy = np.where(np.abs(uy) < 1e-7, 1e-7, uy)

    # Rows each capsule spans, clipped to the frame.
    top = np.maximum(np.ceil(np.minimum(ay, ay + dy) - radius), 0)
    bottom = np.minimum(np.floor(np.maximum(ay, ay + dy) + radius), height - 1)
    rows_per = np.maximum(bottom - top + 1, 0).astype(np.int64)
    seg = np.repeat(np.arange(len(start)), rows_per)
    y = (np.repeat(top.astype(np.int64) - _run_starts(rows_per), rows_per)
         + np.arange(len(seg)))

    # Per row, x relative to the start point: rel is the row's height above it.
    rel = y - ay[seg]
    # Band: |across| = |ux * rel - uy * x| <= radius ...
    centre = (ux / uy)[seg] * rel
    half = (radius / np.abs(uy))[seg]
    lo_band, hi_band = centre - half, centre + half
    # ... and 0 <= along = ux * x + uy * rel <= length.
    p = (-uy / ux)[seg] * rel
    q = p + (length / ux)[seg]
    np.maximum(lo_band, np.minimum(p, q), out=lo_band)
    np.minimum(hi_band, np.maximum(p, q), out=hi_band)
    missed = lo_band > hi_band  # no band in this row: an empty run
    lo_band[missed] = np.inf
    hi_band[missed] = -np.inf
    # End discs (empty runs where the row misses one), then the union of the pieces.
    half_a = _half_chord(rel, radius)
    half_b = _half_chord(rel - dy[seg], radius)
    shift_b = dx[seg]
    lo = np.minimum(np.minimum(-half_a, shift_b - half_b), lo_band)
    hi = np.maximum(np.maximum(half_a, shift_b + half_b), hi_band)
    x0 = ax[seg]
    first = np.ceil(np.clip(lo + x0, 0, width)).astype(np.int64)
    last = np.floor(np.clip(hi + x0, -1, width - 1)).astype(np.int64)
    count = np.maximum(last - first + 1, 0)

    # Expand the runs into pixels.
    pixels = np.repeat(y * width + first - _run_starts(count), count)
    pixels += np.arange(len(pixels))
    return pixels, np.repeat(labels[seg], count)


def _half_chord(dy: np.ndarray, radius: float) -> np.ndarray:
    """Half the chord of a circle at vertical offset ``dy``; -inf where it misses."""
    half_sq = radius * radius - dy * dy
    half = np.sqrt(np.maximum(half_sq, 0.0))  # (a square root of < 0 is slow)
    half[half_sq < 0] = -np.inf
    return half


def _run_starts(counts: np.ndarray) -> np.ndarray:
    """Where each run begins in the concatenation of runs of ``counts`` lengths."""
    return np.cumsum(counts) - counts


# --------------------------------------------------------------------------- still images


class StillRenderSink(Sink):
    """Writes each added image, skeletons drawn, to ``renders[frame.frame_index]``.

    PNG or JPEG by the file's suffix (``stills.write_still``). Each file is
    written atomically as its image is added; :meth:`discard` removes the ones
    written, so an interrupted or failed run leaves no renders behind.
    """

    def __init__(self, renders: Sequence[Path]) -> None:
        self.renders = list(renders)
        self.written: list[Path] = []

    def add(self, batch: FrameBatch, frames: list[FrameResult]) -> None:
        for image, frame in zip(batch.frames, frames):
            dest = self.renders[frame.frame_index]
            write_still(dest, draw_poses(image, frame.people))
            self.written.append(dest)

    def discard(self) -> None:
        for path in self.written:
            path.unlink(missing_ok=True)
        self.written = []


# --------------------------------------------------------------------------- video


class RenderSink(Sink):
    """Encode every added frame, skeletons drawn, as an H.264 MP4 at ``out``.

    Frames must be added in presentation order. Output frame *i* is shown at the
    timestamp of added frame *i* (90 kHz time base; a missing timestamp follows
    the previous one by a frame period, and a repeated one is moved one tick
    later), so decoding the output gives the same frames at the same times as the
    input, for variable frame rates and ``--frames`` subsets too. Odd frame sizes
    are padded by one pixel (a copy of the last row or column): yuv420p needs
    even ones.

    Drawing and encoding run in a background thread, at most ``queue_size``
    batches behind :meth:`add`, so they overlap the network's work on the next
    batch; the sink holds on to the batches' images until then.

    ``thickness``: limb thickness in pixels (default: scaled with the frame size);
    ``crf`` and ``preset``: libx264's quality and speed settings.

    Audio: ``source`` is the file whose audio streams are copied into the output
    (None: the input ``info.path`` when it is a local file; ``audio=False``: no
    audio). Its timestamps are shifted like the video's (relative to the start
    of the source's video stream). Codecs MP4 cannot hold are converted to AAC.

    The video is written to a temporary file beside ``out`` and renamed by
    :meth:`finish`; :meth:`discard` removes the temporary files. Problems (an
    unwritable folder, an encoder failure) raise :class:`PoseCliError`, from the
    constructor, :meth:`add` or :meth:`finish`.
    """

    def __init__(self, out: str | os.PathLike[str], info: VideoInfo, *,
                 source: str | None = None, audio: bool = True,
                 thickness: int | None = None, crf: int = 20, preset: str = "veryfast",
                 queue_size: int = 2) -> None:
        self.dest = Path(out)
        self.info = info
        self.thickness, self.crf, self.preset = thickness, crf, preset
        try:
            av.codec.Codec("libx264", "w")
        except _AV_ERRORS:
            raise PoseCliError(f"cannot render {self.dest}: this FFmpeg build has no "
                               "libx264 (H.264) encoder") from None
        if source is None and not is_stream(info.path):  # stdin or a camera cannot be re-read
            source = info.path
        self.audio_source = source if audio else None
        self._audio_streams = _count_audio(self.audio_source) if self.audio_source else 0
        self._tmp: list[Path] = []
        self._video_tmp: Path | None = self._temp_file()
        self._final: Path | None = None  # the finished video, prepared, not yet renamed
        self._committed = False
        self._container: Any = None
        self._stream: Any = None
        self._size: tuple[int, int] = (0, 0)  # encoded (width, height), even
        self._last_pts: int | None = None
        self.frames_written = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, queue_size))
        self._worker: threading.Thread | None = None
        self._error: BaseException | None = None
        self._abort = threading.Event()

    # Sink API ---------------------------------------------------------------

    def add(self, batch: FrameBatch, frames: list[FrameResult]) -> None:
        """Queue a batch for drawing and encoding (in order)."""
        if len(frames) != len(batch):
            raise ValueError(f"{len(frames)} results for {len(batch)} frames")
        self._check()
        if self._video_tmp is None:
            raise PoseCliError(f"video {self.dest} was already finished or discarded")
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, daemon=True,
                                            name=f"posecli-render {self.dest.name}")
            self._worker.start()
        self._put((batch.frames, [(f.timestamp, f.people) for f in frames]))

    def prepare(self, info: dict[str, Any] | None = None) -> None:
        """Encode what is queued, add the audio, and flush the finished video to disk
        (still under its temporary name)."""
        if self._video_tmp is None or self._final is not None:
            return
        try:
            self._stop_worker()
            self._check()
            if self.frames_written == 0:
                raise PoseCliError(f"no frames were processed: nothing to render to "
                                   f"{self.dest}")
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
            final = self._video_tmp
            if self._audio_streams:
                final = self._temp_file()
                _remux_with_audio(self._video_tmp, self.audio_source, final)
            fsync_path(final)
        except _AV_ERRORS as exc:
            self.discard()
            raise PoseCliError(f"cannot write video {self.dest}: {error_reason(exc)}") from None
        except BaseException:
            self.discard()
            raise
        self._final = final

    def commit(self) -> None:
        """Move the prepared video to ``out``."""
        if self._final is None:
            return
        try:
            os.replace(self._final, self.dest)
        except OSError as exc:
            self.discard()
            raise PoseCliError(f"cannot write video {self.dest}: {error_reason(exc)}") from None
        self._tmp.remove(self._final)
        self._final = None
        self._committed = True
        self.discard()  # the other temporary file, if any

    def retract(self) -> None:
        """Remove the video :meth:`commit` moved to ``out``."""
        if self._committed:
            self.dest.unlink(missing_ok=True)
            self._committed = False

    def discard(self) -> None:
        """Stop encoding and remove the temporary files."""
        self._abort.set()
        while True:  # unblock the worker and drop what it has not started
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._stop_worker()
        if self._container is not None:
            for _ in range(2):  # a failed close (a full disk) can leave the file open:
                try:            # the second one closes it
                    self._container.close()
                    break
                except _AV_ERRORS:
                    continue
            self._container = None
            _close_leaked_files(self._tmp)
        for path in self._tmp:
            path.unlink(missing_ok=True)
        self._tmp = []
        self._video_tmp = None
        self._final = None

    # Internals --------------------------------------------------------------

    def _put(self, item: Any) -> None:
        """Queue an item for the worker, waiting while the queue is full."""
        while True:
            self._check()
            if self._worker is None or not self._worker.is_alive():
                raise PoseCliError(f"cannot encode video {self.dest}: the encoder stopped")
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def _stop_worker(self) -> None:
        """Let the worker finish the queued batches, and wait for it."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        while worker.is_alive():
            try:
                self._queue.put(None, timeout=_POLL_S)
                break
            except queue.Full:
                continue
        worker.join()

    def _check(self) -> None:
        """Raise the worker's error, if it had one, as a PoseCliError."""
        error, self._error = self._error, None
        if error is None:
            return
        if isinstance(error, PoseCliError):
            raise error
        if isinstance(error, _AV_ERRORS):
            raise PoseCliError(f"cannot encode video {self.dest}: {error_reason(error)}") from None
        raise error

    def _work(self) -> None:
        """Worker thread: draw and encode queued batches until None (or an abort)."""
        try:
            while not self._abort.is_set():
                item = self._queue.get()
                if item is None:
                    return
                images, results = item
                for image, (timestamp, people) in zip(images, results):
                    if self._abort.is_set():
                        return
                    self._encode(draw_poses(image, people, thickness=self.thickness),
                                 timestamp)
        except BaseException as exc:
            self._error = exc

    def _temp_file(self) -> Path:
        fd, path = temp_file_beside(self.dest, ".part.mp4")
        os.close(fd)
        self._tmp.append(path)
        return path

    def _open(self, height: int, width: int) -> None:
        """Open the temporary MP4 and the H.264 encoder for frames of this size."""
        self._size = (width + width % 2, height + height % 2)
        # The index goes first (for browsers) here, unless a remux follows.
        options = {} if self._audio_streams else {"movflags": "+faststart"}
        self._container = av.open(str(self._video_tmp), "w", format="mp4", options=options)
        self._container.metadata["comment"] = RENDER_TAG
        stream = self._container.add_stream(
            "libx264", rate=_frame_rate(self.info.fps), time_base=TIME_BASE,
            options={"crf": str(self.crf), "preset": self.preset})
        stream.width, stream.height = self._size
        stream.pix_fmt = "yuv420p"
        ctx = stream.codec_context
        ctx.color_range = int(ColorRange.MPEG)
        ctx.colorspace = _BT709_MATRIX
        ctx.color_primaries = int(ColorPrimaries.BT709)
        ctx.color_trc = int(ColorTrc.BT709)
        self._stream = stream

    def _encode(self, image: np.ndarray, timestamp: float) -> None:
        height, width = image.shape[:2]
        if self._container is None:
            self._open(height, width)
        if width % 2 or height % 2:
            image = np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame = frame.reformat(width=self._size[0], height=self._size[1], format="yuv420p",
                               src_colorspace=Colorspace.ITU709,
                               dst_colorspace=Colorspace.ITU709,
                               dst_color_range=ColorRange.MPEG)
        frame.pts = self._next_pts(timestamp)
        frame.time_base = TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def _next_pts(self, timestamp: float) -> int:
        """The frame's pts in TIME_BASE ticks, strictly after the previous one."""
        if math.isfinite(timestamp):
            pts = round(timestamp / TIME_BASE)
        elif self._last_pts is None:
            pts = 0
        else:
            pts = self._last_pts + round(1 / (_frame_rate(self.info.fps) * TIME_BASE))
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        return pts


def _close_leaked_files(paths: list[Path]) -> None:
    """Close this process's descriptors still open on ``paths`` (Linux).

    PyAV never closes the file of an output whose header could not be written (a
    full disk): its descriptor would keep the removed file's space in use until
    the process ends. Once closed, PyAV does not touch that descriptor again.
    """
    names = {os.path.realpath(path) for path in paths}
    try:
        descriptors = os.listdir("/proc/self/fd")
    except OSError:
        return
    for descriptor in descriptors:
        try:
            if os.readlink(f"/proc/self/fd/{descriptor}") in names:
                os.close(int(descriptor))
        except OSError:
            continue


def _frame_rate(fps: float | None) -> Fraction:
    """The nominal rate for the encoder (rate control only; pts set the timing)."""
    if fps and math.isfinite(fps) and fps > 0:
        return Fraction(fps).limit_denominator(1001)
    return Fraction(25)


def _count_audio(source: str) -> int:
    """How many audio streams ``source`` has (0 when it cannot be opened)."""
    try:
        with av.open(source) as container:
            return len(container.streams.audio)
    except _AV_ERRORS:
        return 0


def _remux_with_audio(video: Path, source: str, out: Path) -> None:
    """Write ``out``: the video stream of ``video`` and the audio of ``source``.

    Audio times are shifted back by the start time of the source's video stream,
    so sound stays in sync with frames whose timestamps count from that start.
    Packets of the two files are merged in time order, so the muxer buffers little.
    """
    with av.open(str(video)) as vin, av.open(source) as ain, \
            av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"}) as dst:
        dst.metadata["comment"] = RENDER_TAG
        vstream = vin.streams.video[0]
        offset = stream_start(ain.streams.video[0]) if ain.streams.video else 0.0
        video_out = {vstream.index: (dst.add_stream_from_template(vstream), False)}
        audio = list(ain.streams.audio)
        audio_out: dict[int, tuple[Any, bool]] = {}
        for astream in audio:
            if astream.codec_context.name in MP4_AUDIO:
                audio_out[astream.index] = (dst.add_stream_from_template(astream), False)
            else:  # convert to AAC
                aac = dst.add_stream("aac", rate=astream.codec_context.sample_rate or 48000)
                aac.layout = astream.codec_context.layout
                audio_out[astream.index] = (aac, True)
        merged = heapq.merge(_copied(vin.demux(vstream), video_out, 0.0, 0),
                             _copied(ain.demux(*audio), audio_out, offset, 1),
                             key=lambda item: item[:2])
        for _, _, packet in merged:
            dst.mux(packet)
        for stream, encoded in audio_out.values():
            if encoded:
                dst.mux(stream.encode())


def _copied(packets: Iterator[Any], outputs: dict[int, tuple[Any, bool]], offset: float,
            order: int) -> Iterator[tuple[float, int, Any]]:
    """(dts in seconds, ``order``, packet) for the output of each input packet.

    ``outputs`` maps an input stream index to (output stream, whether to
    re-encode). A packet is moved ``offset`` seconds earlier and onto its output
    stream, or decoded and its samples encoded with the output stream.
    """
    for packet in packets:
        out, encode = outputs[packet.stream.index]
        if encode:
            for frame in packet.decode():  # an empty packet flushes the decoder
                if frame.pts is not None and offset:
                    frame.pts -= round(offset / frame.time_base)
                for encoded in out.encode(frame):
                    yield float(encoded.dts * encoded.time_base), order, encoded
            continue
        if packet.dts is None or packet.size == 0:
            continue
        if offset:
            shift = round(offset / packet.time_base)
            packet.dts -= shift
            if packet.pts is not None:
                packet.pts -= shift
        packet.stream = out
        yield float(packet.dts * packet.time_base), order, packet
