"""Tracking saved outputs again: ``posecli track``, without the network.

:func:`retrack_file` reads a posecli output (COCO document, JSON lines or the
OpenPose layout, see :mod:`posecli.readers`), tracks its frames again (the ids
in the file are ignored, unless ``keep_ids``) and/or smooths them, and writes
the result in the same format (or another) through the ordinary sinks, so the
output is written atomically. Raw keypoints kept in a smoothed file
(``raw_keypoints``) are what gets tracked and smoothed again: without smoothing
the output holds them, unsmoothed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import UsageError
from ..formats import FrameResult
from ..readers import PoseFile, read_poses
from ..sinks import check_format, open_sink
from ..video import FrameBatch
from .frames import track_frames
from .params import TrackParams


@dataclass(frozen=True)
class RetrackSummary:
    """What :func:`retrack_file` wrote: frames, people and distinct track ids."""

    frames: int
    people: int
    tracks: int
    format: str


def retrack_file(source: str | Path, out: str | Path, params: TrackParams | None = None,
                 fmt: str | None = None, keep_ids: bool = False) -> RetrackSummary:
    """Track (and smooth) the frames of the output file ``source`` into ``out``.

    ``fmt``: an output format (default: the input's); ``keep_ids``: smooth along
    the ids the file already has instead of tracking. ``out`` may be "-"
    (stdout) and ``source`` "-" (stdin), never the same file.
    """
    params = params or TrackParams()
    _check_not_same(source, out)
    if fmt is not None:
        check_format(fmt)
    poses = read_poses(source, "input")
    if fmt is None:
        fmt = poses.layout
        _check_suffix(out, fmt)
    frames = track_frames(frame_results(poses), params, keep_ids)
    sink = open_sink(fmt, out)
    try:
        sink.add(_no_pixels(frames), frames)
        sink.finish(retrack_info(poses, str(source), params, keep_ids))
    except BaseException:
        sink.discard()
        raise
    people = [p for frame in frames for p in frame.people]
    return RetrackSummary(len(frames), len(people), len({p.track_id for p in people}), fmt)


def frame_results(poses: PoseFile) -> list[FrameResult]:
    """A file's frames as FrameResults, in presentation order (by frame index when every
    frame has one, else as stored). Missing frame indices become positions, missing
    timestamps NaN, missing file names empty."""
    frames = [FrameResult(position if f.frame_index is None else f.frame_index,
                          math.nan if f.timestamp is None else f.timestamp,
                          f.width, f.height, f.file_name or "", f.people)
              for position, f in enumerate(poses.frames)]
    if poses.has_frame_index:
        frames.sort(key=lambda frame: frame.frame_index)
    return frames


def retrack_info(poses: PoseFile, source: str, params: TrackParams,
                 keep_ids: bool) -> dict[str, Any]:
    """The output's info: the input's (its provenance), with ``options.tracking`` set to
    what was done now and ``retrack`` saying from what; ``complete`` is false when the
    input is the output of a run that did not finish."""
    info = dict(poses.info or {"tool": "posecli", "version": __version__, "complete": True})
    if not poses.complete:  # the input's run did not finish: neither is this output
        info["complete"] = False
    options = info.get("options")
    options = dict(options) if isinstance(options, dict) else {}
    tracking = ({"keep_ids": True, "smooth": None if params.smooth is None
                 else params.smooth.to_dict()} if keep_ids else params.to_dict())
    info["retrack"] = {"tool": "posecli track", "version": __version__, "input": source,
                       "input_format": poses.layout, "input_tracking": options.get("tracking")}
    info["options"] = {**options, "tracking": tracking}
    return info


def _no_pixels(frames: list[FrameResult]) -> FrameBatch:
    """The batch handed to the sinks with the frames: indices and times, no images."""
    return FrameBatch(np.zeros((len(frames), 0, 0, 3), np.uint8),
                      np.array([f.frame_index for f in frames], dtype=np.int64),
                      np.array([f.timestamp for f in frames], dtype=np.float64))


def _check_suffix(out: str | Path, fmt: str) -> None:
    """Refuse to write (say) COCO JSON to ``poses.csv`` just because the input was COCO."""
    named = {".csv": "csv", ".jsonl": "jsonl"}.get(Path(str(out)).suffix.lower())
    if str(out) != "-" and named is not None and named != fmt:
        raise UsageError(f"the input is {fmt} and --out {out} looks like {named}: "
                         f"add --format {named} (or --format {fmt})")


def _check_not_same(source: str | Path, out: str | Path) -> None:
    if str(source) == "-" or str(out) == "-":
        return
    source, out = Path(source), Path(out)
    same = source.resolve() == out.resolve()
    if not same and source.exists() and out.exists():
        same = os.path.samefile(source, out)
    if same:
        raise UsageError(f"--out {out} is the input file: write the result elsewhere")
