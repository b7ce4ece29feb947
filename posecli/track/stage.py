"""The tracking stage of the pipeline: between the parse and the sinks.

:class:`TrackingStage` is a :class:`~posecli.sinks.Sink` that gives each batch's
frames their track ids (:class:`~posecli.track.frames.FrameTracker`, one frame
at a time, so batch sizes never change the result) and passes them on to the
sinks it feeds: every output, the rendered video included, sees tracked people.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..formats import FrameResult
from ..sinks import Sink
from ..video import FrameBatch
from .frames import FrameTracker
from .params import TrackParams


class TrackingStage(Sink):
    """Tracks each batch's frames, then hands them to ``sinks``."""

    def __init__(self, params: TrackParams, sinks: Sequence[Sink]) -> None:
        self.tracker = FrameTracker(params)
        self.sinks = list(sinks)

    def add(self, batch: FrameBatch, frames: list[FrameResult]) -> None:
        tracked = [self.tracker(frame) for frame in frames]
        for sink in self.sinks:
            sink.add(batch, tracked)

    def finish(self, info: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.finish(info)

    def discard(self) -> None:
        for sink in self.sinks:
            sink.discard()


def tracked(sinks: Sequence[Sink], params: TrackParams | None) -> list[Sink]:
    """``sinks`` behind a TrackingStage, or as they are when ``params`` is None (no tracking)."""
    return list(sinks) if params is None else [TrackingStage(params, sinks)]
