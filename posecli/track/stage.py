"""The tracking stage of the pipeline: between the parse and the sinks.

:class:`TrackingStage` is a :class:`~posecli.sinks.Sink` that gives each batch's
frames their track ids (:class:`~posecli.track.frames.FrameTracker`, one frame
at a time, so batch sizes never change the result) and passes them on to the
sinks it feeds: every output, the rendered video included, sees tracked people.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..formats import FrameResult
from ..sinks import OutputGroup, Sink
from ..video import FrameBatch
from .frames import FrameTracker
from .params import TrackParams


class TrackingStage(OutputGroup):
    """Tracks each batch's frames, then hands them to ``sinks`` (which finish, or are
    discarded, together as an :class:`OutputGroup`)."""

    def __init__(self, params: TrackParams, sinks: Sequence[Sink]) -> None:
        super().__init__(list(sinks))
        self.tracker = FrameTracker(params)

    def add(self, batch: FrameBatch, frames: list[FrameResult]) -> None:
        super().add(batch, [self.tracker(frame) for frame in frames])


def tracked(sinks: Sequence[Sink], params: TrackParams | None) -> list[Sink]:
    """``sinks`` behind a TrackingStage, or as they are when ``params`` is None (no tracking)."""
    return list(sinks) if params is None else [TrackingStage(params, sinks)]
