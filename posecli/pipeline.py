"""Frames through the stages: preprocess -> network -> parse -> per-frame results.

The decoding thread (``video.VideoReader``) feeds batches of frames; each batch
is resized and normalised on the model's device, run through the network (in the
model's precision, see ``precision``), and parsed into people on a thread of its
own while the network runs the next batch. Sinks (``formats``) turn the results
into documents, in frame order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .defaults import DEFAULT_BATCH_SIZE
from .errors import InputError, PoseCliError, UsageError
from .families import CMU as CMU_FAMILY
from .families import DECODERS, ModelFamily
from .formats import FrameResult
from .interrupts import closing, run_interruptibly, signals_held, wait_interruptibly
from .lightweight.decode import LightweightDecoding
from .lightweight.decode import decode_batch as decode_lightweight
from .lightweight.network import LightweightNet
from .model import PoseNet
from .parse import ParseParams, Person, parse_batch
from .precision import cast_network, device_kind, resolve_precision
from .preprocess import Geometry, check_net_height, plan_geometry, preprocess
from .sinks import OutputGroup, Sink
from .video import FrameBatch, VideoInfo, VideoReader, read_image
from .weights.load import LoadedWeights, build_model, load_weights
from .weights.metadata import public_metadata
from .weights.store import resolve_weights

#: The name of the thread that parses a batch while the network runs the next one.
PARSE_THREAD = "posecli-parse"


def start_parse_thread() -> ThreadPoolExecutor:
    """The thread that parses a batch while the network runs the next one; its torch
    CPU operations run on one thread, and every other thread keeps its count.

    The network's operations already spread over every core; the parse's are small
    (a few thousand values each), so splitting them as well only adds a second team
    of threads that waits for cores the network holds. On 2 cores this took the demo
    model's parse from 33 to 19 CPU ms per frame (vtest.avi, net height 184).
    ``torch.set_num_threads`` sets the calling thread's count and also the count
    that threads started later begin with (the network runs on such threads: see
    ``run_interruptibly``), so that default is put back once the parse thread has
    taken its own.
    """
    threads = torch.get_num_threads()
    pool = ThreadPoolExecutor(1, thread_name_prefix=PARSE_THREAD, initializer=_one_cpu_thread)
    pool.submit(int).result()  # the initializer has run
    torch.set_num_threads(threads)
    return pool


def _one_cpu_thread() -> None:
    torch.set_num_threads(1)
    torch.get_num_threads()  # fixes this thread's count now (torch reads it lazily)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        index = name.partition(":")[2]
        if index and not index.isdigit():
            raise UsageError(f"bad --device {name!r}: expected auto, cpu, cuda or cuda:N")
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available on this machine")
        if index and int(index) >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
        return torch.device(name)
    raise UsageError(f"bad --device {name!r}: expected auto, cpu, cuda or cuda:N")


@dataclass
class PoseModel:
    """A network with its weights' provenance, ready on a device.

    ``network`` is a PoseNet or a LightweightNet: anything whose ``predict(images)``
    returns (heatmaps N x 19 x h x w, pafs N x 38 x h x w) in the CMU layout.
    ``family`` (what the network expects as input, which decoding suits it)
    defaults to the weights' family, or the CMU family without weights.
    ``precision`` (fp32, bf16 or fp16; see :mod:`posecli.precision`) is the type
    the network was cast to: :func:`load_model` casts it.
    """

    network: PoseNet | LightweightNet
    weights: LoadedWeights | None
    device: torch.device
    family: ModelFamily | None = None
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.family is None:
            self.family = self.weights.family if self.weights is not None else CMU_FAMILY

    def describe(self) -> dict[str, Any]:
        """Provenance for output files: weights file, format, SHA-256, config, and the
        metadata that identifies the model (no paths of the machine it was trained on)."""
        metadata = public_metadata(self.weights.metadata)
        return {
            "weights": self.weights.path.name,
            "format": self.weights.format,
            "family": self.family.name,
            "sha256": self.weights.sha256,
            "config": self.weights.config.to_dict(),
            # A built-in model says what it is (e.g. a synthetic-data demonstration).
            **({"label": metadata["label"]} if "label" in metadata else {}),
            **({"metadata": metadata} if metadata else {}),
        }


def check_precision(precision: str, device: str = "auto") -> str:
    """The precision ``load_model(..., device, precision)`` will use; a UsageError now
    (before any work) for a bad value or one the device cannot run."""
    return resolve_precision(precision, resolve_device(device))


def load_model(weights: str | Path | None = None, device: str = "auto",
               precision: str = "auto") -> PoseModel:
    """Find and load weights (see ``weights.resolve_weights``) onto ``device``, cast to
    ``precision`` (auto, fp32, bf16 or fp16: :func:`posecli.precision.resolve_precision`)."""
    torch_device = resolve_device(device)
    used = resolve_precision(precision, torch_device)  # a bad value fails before loading
    loaded = load_weights(resolve_weights(weights))
    network = cast_network(build_model(loaded, torch_device), used)
    return PoseModel(network, loaded, torch_device, precision=used)


@dataclass(frozen=True)
class NetworkMaps:
    """One batch's float32 network outputs (heatmaps N x 19 x h x w, pafs N x 38 x h x w,
    CMU layout) and the geometry that maps them onto the frames."""

    heatmaps: torch.Tensor
    pafs: torch.Tensor
    geometry: Geometry


class Estimator:
    """Runs batches of same-sized frames through the network and the decoding.

    ``net_height`` defaults to the model family's; ``decoder`` ("posecli" or
    "lightweight", see :data:`~posecli.families.DECODERS`) to the family's:
    posecli's parse with ``params`` for the CMU family, Lightweight OpenPose's
    own decoding (its published constants; ``params`` unused) for that model.
    When the device runs out of memory, the batch is split in halves (and later
    batches stay at the size that worked), with one warning through
    ``on_warning``; only a single frame that does not fit is an error.
    ``batch_size`` is the most frames per batch the caller gives it: it is
    recorded in :meth:`options` (a batch's shape can move borderline detections),
    not enforced.
    """

    def __init__(self, model: PoseModel, net_height: int | None = None,
                 params: ParseParams | None = None,
                 on_warning: Callable[[str], None] = lambda message: None,
                 decoder: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        spec = model.family.input
        net_height = spec.net_height if net_height is None else net_height
        check_net_height(net_height, spec.stride)
        decoder = decoder or model.family.decoder
        if decoder not in DECODERS:
            raise UsageError(f"bad decoder {decoder!r}: expected {' or '.join(DECODERS)}")
        self.model = model
        self.net_height = net_height
        self.params = params or ParseParams()
        self.decoder = decoder
        self.batch_size = batch_size
        self.on_warning = on_warning
        self.max_batch: int | None = None  # set after an out-of-memory split
        if decoder == "lightweight" and self.params != ParseParams():
            on_warning("the parse options (--peak-threshold, --min-parts ...) do not apply to "
                       "the Lightweight OpenPose decoding, which uses its published constants")

    def __call__(self, frames: np.ndarray | Sequence[np.ndarray]) -> list[list[Person]]:
        """N H x W x 3 uint8 RGB frames of one size (an N x H x W x 3 array, or a
        sequence of arrays) -> the people of each frame."""
        return self.decode(self.maps(frames))

    @torch.inference_mode()
    def maps(self, frames: np.ndarray | Sequence[np.ndarray]) -> NetworkMaps:
        """The network half: N H x W x 3 uint8 RGB frames of one size -> their maps."""
        spec = self.model.family.input
        height, width = np.shape(frames[0])[:2]
        geometry = plan_geometry(height, width, self.net_height, spec.stride)
        net_input = preprocess(frames, geometry, self.model.device, spec)
        heatmaps, pafs = self._predict(net_input)
        return NetworkMaps(heatmaps, pafs, geometry)

    @torch.inference_mode()
    def decode(self, maps: NetworkMaps) -> list[list[Person]]:
        """The decoding half: a batch's maps -> the people of each frame (no state is
        kept between calls, so it may run on another thread than :meth:`maps`)."""
        return decode_maps(maps.heatmaps, maps.pafs, maps.geometry, self.decoder, self.params)

    def _predict(self, net_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Network outputs for a batch, split into smaller batches if memory runs out."""
        size = len(net_input) if self.max_batch is None else min(self.max_batch, len(net_input))
        while True:
            try:
                parts = [self.model.network.predict(chunk) for chunk in net_input.split(size)]
                return torch.cat([h for h, _ in parts]), torch.cat([p for _, p in parts])
            except torch.cuda.OutOfMemoryError:
                if size == 1:
                    raise PoseCliError(
                        f"out of memory on {self.model.device} for one frame at net height "
                        f"{self.net_height}: try a smaller --net-height") from None
                if self.model.device.type == "cuda":
                    torch.cuda.empty_cache()
                size = (size + 1) // 2
                self.max_batch = size
                self.on_warning(f"out of memory on {self.model.device}: "
                                f"continuing with batches of {size}")

    def options(self) -> dict[str, Any]:
        """The options that change results, for output files: net height, the
        precision used, the device kind, the torch version and the batch size (their
        float rounding can move borderline detections), the parse's parameters (a
        decoder other than posecli's parse is named, with its constants as ``parse``)."""
        compute = {"precision": self.model.precision, "device": device_kind(self.model.device),
                   "torch": torch.__version__, "batch_size": self.batch_size}
        if self.decoder == "lightweight":
            return {"net_height": self.net_height, **compute, "decoder": self.decoder,
                    "parse": LightweightDecoding().to_dict()}
        return {"net_height": self.net_height, **compute, "parse": self.params.to_dict()}


def decode_maps(heatmaps: torch.Tensor, pafs: torch.Tensor, geometry: Geometry,
                decoder: str, params: ParseParams) -> list[list[Person]]:
    """Network maps (N x 19 x h x w, N x 38 x h x w, CMU layout) -> people of each frame,
    with posecli's parse (``params``) or the Lightweight OpenPose decoding."""
    if decoder == "lightweight":
        return decode_lightweight(heatmaps, pafs, geometry)
    return parse_batch(heatmaps, pafs, geometry, params)


def estimate(frames: np.ndarray | Sequence[np.ndarray], model: PoseModel, *,
             net_height: int | None = None, params: ParseParams | None = None,
             batch_size: int = DEFAULT_BATCH_SIZE,
             decoder: str | None = None) -> list[list[Person]]:
    """People in each of ``frames`` (H x W x 3 uint8 RGB arrays, or one N x H x W x 3 array).

    Frames of different sizes may be mixed; consecutive frames of one size are
    batched ``batch_size`` at a time. Coordinates are pixels of each frame.
    ``net_height`` and ``decoder`` default to the model family's (see Estimator).
    """
    if batch_size < 1:
        raise UsageError(f"bad batch size {batch_size}: expected >= 1")
    estimator = Estimator(model, net_height, params, decoder=decoder, batch_size=batch_size)
    people: list[list[Person]] = []
    for group in _same_size_groups(list(frames), batch_size):
        people.extend(estimator(group))
    return people


def _same_size_groups(frames: list[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    group: list[np.ndarray] = []
    for frame in frames:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frames must be H x W x 3 uint8 RGB, got {frame.shape} {frame.dtype}")
        if group and (frame.shape != group[0].shape or len(group) == size):
            yield group
            group = []
        group.append(frame)
    if group:
        yield group


@dataclass(frozen=True)
class VideoRun:
    """How a video run ended: frames processed, whether every selected frame was
    (``complete``), and whether a signal came while the outputs were being written
    (``interrupted_writing``: they were finished first)."""

    info: VideoInfo
    frames_processed: int
    complete: bool
    interrupted_writing: bool = False


def process_video(reader: VideoReader, estimator: Estimator, sinks: Sequence[Sink],
                  on_batch: Callable[[int], None] = lambda n: None) -> VideoRun:
    """Run every batch of ``reader`` through ``estimator`` into ``sinks``.

    Three stages overlap: the reader's thread decodes ahead, the network runs
    batch k+1 while a parse thread (one CPU thread: see :func:`start_parse_thread`)
    decodes batch k's maps into people, and the sinks get each batch, in order, on
    this thread once its parse is done. The people are exactly those of
    ``estimator(batch.frames)`` batch by batch (the parse keeps no state between
    batches).

    Ctrl-C (or SIGTERM, which the CLI maps to it) stops at once, even in the
    middle of a long network call (which is left to finish in the background
    and is thrown away); the run is then reported incomplete, and the sinks
    hold every frame whose network call finished before it (the parse of the
    last such batch is short: it is waited for, unless a second Ctrl-C comes).
    """
    name = Path(reader.info.path).name
    done = 0
    pending: deque[tuple[FrameBatch, Future[list[list[Person]]]]] = deque()
    parse_thread = start_parse_thread()

    def write(batch: FrameBatch, people: list[list[Person]]) -> None:
        nonlocal done
        frames = [FrameResult(int(index), float(timestamp), batch.width, batch.height,
                              f"{name}#{int(index)}", found)
                  for index, timestamp, found in zip(batch.indices, batch.timestamps, people)]
        with signals_held():  # what the sinks hold and the count always agree
            for sink in sinks:
                sink.add(batch, frames)
            done += len(frames)
        on_batch(len(frames))

    def write_oldest() -> None:
        """Wait for the oldest pending parse, then write its batch (a Ctrl-C while
        waiting leaves it pending)."""
        people = wait_interruptibly(pending[0][1])
        write(pending.popleft()[0], people)

    try:
        for batch in reader:
            maps = run_interruptibly(estimator.maps, batch.frames)  # batch k-1 parses meanwhile
            if pending:
                write_oldest()
            pending.append((batch, parse_thread.submit(estimator.decode, maps)))
        while pending:
            write_oldest()
    except KeyboardInterrupt:
        try:
            while pending:
                write_oldest()
        except KeyboardInterrupt:
            pass
        return VideoRun(reader.info, done, complete=False)
    finally:
        parse_thread.shutdown(wait=False, cancel_futures=True)
    return VideoRun(reader.info, done, complete=True)


def run_video_to_sinks(reader: VideoReader, model: PoseModel, estimator: Estimator,
                       sinks: Sequence[Sink], on_batch: Callable[[int], None] = lambda n: None,
                       options: dict[str, Any] | None = None,
                       keep_incomplete: bool = True,
                       source_record: dict[str, Any] | None = None,
                       last: bool = False) -> VideoRun:
    """process_video, then finish the sinks, as one :class:`OutputGroup` (every output
    written before any is renamed into place), with the run's info block.

    A SIGINT or SIGTERM while the outputs are written does not stop the writing: it
    is held, and reported as ``interrupted_writing`` once they are in place
    (:func:`finish_outputs`; ``last`` as there).

    ``options`` joins ``info.options``; ``source_record`` (what batch records of
    the input: size, digest) joins ``info.source``. An interrupted run is finished
    as incomplete when ``keep_incomplete``, else its outputs are discarded and
    KeyboardInterrupt propagates. On any error every sink discards its output, so
    nothing partial is left behind.
    """
    outputs = OutputGroup(list(sinks))
    try:
        run = process_video(reader, estimator, [outputs], on_batch)
        if not (run.complete or keep_incomplete):
            raise KeyboardInterrupt
        info = run_info(model, estimator, {**source_info(reader), **(source_record or {})},
                        run.frames_processed, run.complete, options)
        interrupted_writing = finish_outputs(outputs, info, last)
    except BaseException:
        outputs.discard()
        raise
    return replace(run, interrupted_writing=interrupted_writing)


def finish_outputs(outputs: Sink, info: dict[str, Any], last: bool = False) -> bool:
    """``outputs.finish(info)`` with SIGINT and SIGTERM held until the outputs are in
    place, so that a Ctrl-C while they are written cannot throw the finished work
    away; returns whether one came meanwhile (for the caller to report). ``last``:
    the command ends with these outputs, so from then on a signal is only counted
    (:func:`~posecli.interrupts.closing`), with no moment between the two where it
    would still interrupt."""
    with signals_held(deliver=False) as held:
        outputs.finish(info)
        if last:
            closing()
    return bool(held)


def source_info(reader: VideoReader) -> dict[str, Any]:
    """The input's description for ``info.source``, with what decoding had to skip."""
    info = reader.info
    return {"path": info.path, "width": info.width, "height": info.height, "fps": info.fps,
            "frame_count": info.frame_count, "rotation": info.rotation, "codec": info.codec,
            "skipped_packets": reader.skipped_packets, "dropped_frames": reader.dropped_frames}


def selected_count(frames: slice | None, frame_count: int | None) -> int | None:
    """How many frames a --frames slice selects from ``frame_count`` (None if unknown)."""
    if frame_count is None:
        return None
    return len(range(*(frames or slice(None)).indices(frame_count)))


def nothing_selected(frames: str, frame_count: int | None, source: str | Path) -> str:
    """The warning for a ``--frames`` that selected no frame of ``source``."""
    of = f"the {frame_count} frames" if frame_count is not None else "the frames"
    return f"--frames {frames} selects none of {of} of {source}: its output holds no frames"


def read_images(paths: Iterable[str],
                on_failure: Callable[[str, str], None]) -> Iterator[tuple[int, str, np.ndarray]]:
    """Decode still images one at a time: (position in ``paths``, path, H x W x 3 uint8 RGB).

    A file that cannot be read (missing, empty, not an image) is reported as
    ``on_failure(path, reason)`` and skipped; the others are still yielded.
    """
    for index, path in enumerate(paths):
        try:
            image = read_image(path)
        except InputError as exc:
            on_failure(path, str(exc))
            continue
        yield index, path, image


def process_images(images: Iterable[tuple[int, str, np.ndarray]], estimator: Estimator,
                   sinks: Sequence[Sink], on_image: Callable[[int], None] = lambda n: None) -> int:
    """Pose estimation over decoded still images into ``sinks``, one frame per image, in order.

    ``images``: (index, name, H x W x 3 uint8 RGB) triples, as ``read_images``
    yields them; the index becomes the frame's ``frame_index`` (the image's
    position among the inputs), the name its ``file_name``. Returns the number of
    images processed.
    """
    done = 0
    for index, name, image in images:
        people = estimator(image[None])[0]
        batch = FrameBatch((image,), np.array([index]), np.zeros(1))
        frame = FrameResult(index, 0.0, image.shape[1], image.shape[0], name, people)
        for sink in sinks:
            sink.add(batch, [frame])
        done += 1
        on_image(1)
    return done


def run_info(model: PoseModel, estimator: Estimator, source: dict[str, Any],
             frames_processed: int, complete: bool = True,
             extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``info`` block of an output file (deterministic: no dates, no host names).

    ``complete`` is false when the run was interrupted: the file then holds the
    frames finished before the interruption.
    """
    return {
        "description": "posecli multi-person pose estimation (CMU CPM/PAF)",
        "tool": "posecli",
        "version": __version__,
        "complete": complete,
        "source": source,
        "frames_processed": frames_processed,
        "model": model.describe(),
        "options": {**estimator.options(), **(extra or {})},
    }
