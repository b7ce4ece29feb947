"""Running a batch's jobs: one video into its outputs, and the loop every engine shares.

:class:`VideoJobRunner` holds the loaded model and the options and turns one
:class:`~posecli.batch.plan.Job` into its outputs (written atomically);
:class:`RunnerSpec` says how to build one (a Ray actor builds its own from it).
:func:`run_batch` is the one driver loop of every engine: it records every
result and stops cleanly on Ctrl-C; an engine only runs jobs
(:func:`local_engine` here, one after the other in this process;
``ray_engine`` on a cluster), each through :func:`run_job`, which skips a job
whose outputs can be reused (``--skip-existing``, checked against the
provenance of the runner that would run it: the same device, precision and
options), times a job and captures its failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InputError, PoseCliError, error_reason
from ..parse.params import ParseParams
from .manifest import BatchReport, JobResult
from .plan import Job
from .provenance import Provenance, source_record

if TYPE_CHECKING:
    from ..pipeline import Estimator, PoseModel
    from ..track.params import TrackParams

#: Runs one job into its outputs; returns (frames, people).
RunOne = Callable[[Job], tuple[int, int]]
#: Runs jobs, calling ``on_start(job)`` as each starts and yielding (job, result)
#: pairs as they finish, in any order; Ctrl-C propagates as KeyboardInterrupt.
Engine = Callable[[Sequence[Job], Callable[[Job], None]], Iterator[tuple[Job, JobResult]]]


class VideoJobRunner:
    """Runs one job (a whole video) through a loaded model into its output files.

    ``fmt``: an output format (``sinks.OUTPUT_FORMATS``); ``on_frames``: called
    with the number of frames of each finished batch; ``on_warning``: one-line
    warnings (skipped packets, a ``--frames`` that selects nothing...);
    ``tracking``: track ids (and smoothing) for every person, None for none;
    ``frames``: a ``--frames`` value (``START:END[:STEP]``), None for every frame.
    Each output's ``info.source`` records the input's size and digest
    (:func:`~posecli.batch.provenance.source_record`).
    """

    def __init__(self, model: PoseModel, estimator: Estimator, fmt: str, batch_size: int,
                 on_frames: Callable[[int], None] = lambda n: None,
                 on_warning: Callable[[str], None] | None = None,
                 tracking: TrackParams | None = None, frames: str | None = None) -> None:
        from ..video import parse_frame_range

        self.model, self.estimator = model, estimator
        self.fmt, self.batch_size = fmt, batch_size
        self.on_frames, self.on_warning = on_frames, on_warning
        self.tracking = tracking
        self.frames = frames
        self.frame_range = parse_frame_range(frames) if frames is not None else None
        self._provenance: Provenance | None = None

    def options(self) -> dict[str, Any]:
        """What the runner adds to the estimator's options in each output's
        ``info.options``: format, ``--frames`` and tracking."""
        from ..track.params import tracking_options

        return {"format": self.fmt, "frames": self.frames, **tracking_options(self.tracking)}

    def provenance(self) -> Provenance:
        """What an output of this runner records (for ``--skip-existing``): its weights
        and options, as they are where it runs (a Ray worker's device, not the driver's)."""
        from ..pipeline import run_info

        if self._provenance is None:
            info = run_info(self.model, self.estimator, {}, 0, True, self.options())
            self._provenance = Provenance.of(info["model"]["sha256"], info["options"])
        return self._provenance

    def __call__(self, job: Job) -> tuple[int, int]:
        """Process ``job``; returns (frames, people). Raises PoseCliError for a bad
        input and KeyboardInterrupt when interrupted (its outputs are then discarded; a
        signal while they were being written comes after they are in place)."""
        from ..pipeline import nothing_selected, run_video_to_sinks
        from ..sinks import PeopleCounter, open_outputs
        from ..track.stage import tracked
        from ..video import VideoReader

        job.output.parent.mkdir(parents=True, exist_ok=True)
        if job.render is not None:
            job.render.parent.mkdir(parents=True, exist_ok=True)
        with VideoReader(str(job.source), self.batch_size, self.frame_range,
                         on_warning=self.on_warning) as reader:
            try:
                record = source_record(job.source)
            except OSError as exc:
                raise InputError(f"cannot read {job.source}: {error_reason(exc)}") from None
            counter = PeopleCounter()
            outputs = open_outputs(self.fmt, job.output, job.render, reader.info)
            sinks = [*tracked(outputs, self.tracking), counter]
            run = run_video_to_sinks(reader, self.model, self.estimator, sinks,
                                     lambda frames: self.on_frames(frames),
                                     self.options(), keep_incomplete=False,
                                     source_record=record)
        if run.interrupted_writing:  # its outputs are complete and in place: stop after it
            raise KeyboardInterrupt
        if self.frames is not None and run.frames_processed == 0 and self.on_warning:
            self.on_warning(nothing_selected(self.frames, run.info.frame_count, job.source))
        return run.frames_processed, counter.people


@dataclass(frozen=True)
class RunnerSpec:
    """How to build a :class:`VideoJobRunner`: picklable, so every engine's workers
    build theirs the same way. ``weights``: a weights file path (resolved by the
    caller); ``device``: as ``--device`` (resolved where the runner is built);
    ``tracking`` and ``frames``: as for :class:`VideoJobRunner`; ``skip_existing``:
    whether each engine checks a job's outputs before running it
    (:meth:`VideoJobRunner.provenance` of the runner that would run it);
    ``precision``: as ``--precision``."""

    weights: str
    device: str
    net_height: int | None
    params: ParseParams
    fmt: str
    batch_size: int
    tracking: TrackParams | None = None
    frames: str | None = None
    skip_existing: bool = False
    precision: str = "auto"

    def build(self, on_frames: Callable[[int], None] = lambda n: None,
              on_warning: Callable[[str], None] | None = None,
              device: str | None = None) -> VideoJobRunner:
        """Load the model (on ``device`` when given, else the spec's) into a runner."""
        from ..pipeline import Estimator, load_model

        model = load_model(self.weights, device or self.device, self.precision)
        estimator = Estimator(model, self.net_height, self.params,
                              on_warning or (lambda message: None), batch_size=self.batch_size)
        return VideoJobRunner(model, estimator, self.fmt, self.batch_size, on_frames, on_warning,
                              self.tracking, self.frames)


def run_job(job: Job, run_one: RunOne, skip_existing: Provenance | None = None) -> JobResult:
    """Run one job: ok with its frames and people, or failed with the reason (a bad
    input never stops a batch); timed. With ``skip_existing`` (what reusable outputs
    record), a job whose outputs can be reused is ``skipped``, and one that runs
    says why in ``redo_reason`` (:meth:`Provenance.redo_reason`). KeyboardInterrupt
    propagates."""
    started = time.monotonic()
    result = JobResult(str(job.source), str(job.output), "ok")
    if skip_existing is not None:
        result.redo_reason = skip_existing.redo_reason(job)
        if result.redo_reason is None:
            result.status = "skipped"
            return result
    try:
        result.frames, result.people = run_one(job)
    except PoseCliError as exc:
        result.status, result.error = "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
        result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
    result.seconds = round(time.monotonic() - started, 3)
    return result


def local_engine(run_one: RunOne, skip_existing: Provenance | None = None) -> Engine:
    """The local engine: jobs one after the other in this process (``skip_existing``:
    as for :func:`run_job`)."""

    def run(jobs: Sequence[Job], on_start: Callable[[Job], None]
            ) -> Iterator[tuple[Job, JobResult]]:
        for job in jobs:
            on_start(job)
            yield job, run_job(job, run_one, skip_existing)

    return run


def run_batch(jobs: Sequence[Job], engine: Engine,
              on_done: Callable[[JobResult], None] = lambda result: None) -> BatchReport:
    """Run ``jobs`` on ``engine``; record every job's status; stop cleanly on Ctrl-C.

    After Ctrl-C, or when the engine fails (a PoseCliError, kept in
    ``report.failure``), a job that had started and not finished is
    ``interrupted`` and one that never started is ``not_started``. The report
    lists jobs in plan order.
    """
    started_at = time.monotonic()
    results: dict[Job, JobResult] = {}
    started: set[Job] = set()
    report = BatchReport()
    try:
        with closing(engine(jobs, started.add)) as finished:
            for job, result in finished:
                results[job] = result
                on_done(result)
    except KeyboardInterrupt:
        report.interrupted = True
    except PoseCliError as exc:
        report.failure = exc
    for job in jobs:
        report.results.append(results.get(job) or JobResult(
            str(job.source), str(job.output), "interrupted" if job in started else "not_started"))
    report.wall_seconds = round(time.monotonic() - started_at, 3)
    return report
