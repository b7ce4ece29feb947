"""Running a batch's jobs: one video into its outputs, and the local engine's loop.

:class:`VideoJobRunner` holds the loaded model and the options and turns one
:class:`~posecli.batch.plan.Job` into its outputs (written atomically).
:func:`run_jobs` runs jobs one after the other in this process, skipping
complete outputs when asked, recording failures and stopping cleanly on Ctrl-C.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from ..errors import PoseCliError
from .manifest import BatchReport, JobResult
from .plan import Job

if TYPE_CHECKING:
    from ..pipeline import Estimator, PoseModel
    from ..track.params import TrackParams


class VideoJobRunner:
    """Runs one job (a whole video) through a loaded model into its output files.

    ``fmt``: an output format (``sinks.OUTPUT_FORMATS``); ``on_frames``: called
    with the number of frames of each finished batch; ``on_warning``: one-line
    warnings (skipped packets...); ``tracking``: track ids (and smoothing) for
    every person, None for none.
    """

    def __init__(self, model: PoseModel, estimator: Estimator, fmt: str, batch_size: int,
                 on_frames: Callable[[int], None] = lambda n: None,
                 on_warning: Callable[[str], None] | None = None,
                 tracking: TrackParams | None = None) -> None:
        self.model, self.estimator = model, estimator
        self.fmt, self.batch_size = fmt, batch_size
        self.on_frames, self.on_warning = on_frames, on_warning
        self.tracking = tracking

    def __call__(self, job: Job) -> tuple[int, int]:
        """Process ``job``; returns (frames, people). Raises PoseCliError for a bad
        input and KeyboardInterrupt when interrupted (its outputs are then discarded)."""
        from ..pipeline import run_video_to_sinks
        from ..sinks import PeopleCounter, open_outputs
        from ..track.params import tracking_options
        from ..track.stage import tracked
        from ..video import VideoReader

        job.output.parent.mkdir(parents=True, exist_ok=True)
        if job.render is not None:
            job.render.parent.mkdir(parents=True, exist_ok=True)
        with VideoReader(str(job.source), self.batch_size, on_warning=self.on_warning) as reader:
            counter = PeopleCounter()
            outputs = open_outputs(self.fmt, job.output, job.render, reader.info)
            sinks = [*tracked(outputs, self.tracking), counter]
            run = run_video_to_sinks(reader, self.model, self.estimator, sinks, self.on_frames,
                                     tracking_options(self.tracking), keep_incomplete=False)
        return run.frames_processed, counter.people


def is_complete(output: Path) -> bool:
    """Whether ``output`` is a finished posecli output (a half-written one never is).

    Documents must parse and say ``info.complete``; JSON-lines files (which only
    appear when finished) must have every line parse; CSV files need their
    ``.info.json`` sidecar (:func:`posecli.csv_format.csv_is_complete`).
    """
    if output.suffix == ".csv":
        from ..csv_format import csv_is_complete

        return csv_is_complete(output)
    try:
        data = output.read_bytes()
    except OSError:
        return False
    try:
        if output.suffix == ".jsonl":
            return all(orjson.loads(line) is not None for line in data.splitlines())
        return orjson.loads(data).get("info", {}).get("complete") is True
    except (orjson.JSONDecodeError, AttributeError):
        return False


def run_jobs(jobs: list[Job], run_one: Callable[[Job], tuple[int, int]], skip_existing: bool,
             on_done: Callable[[JobResult], None] = lambda result: None) -> BatchReport:
    """Run each job; record ok / skipped / failed; stop cleanly on Ctrl-C.

    ``run_one`` processes one job and returns (frames, people); it raises
    PoseCliError for a bad input and KeyboardInterrupt when interrupted.
    """
    report = BatchReport()
    for job in jobs:
        started = time.monotonic()
        result = JobResult(str(job.source), str(job.output), "ok")
        if skip_existing and is_complete(job.output):
            result.status = "skipped"
        else:
            try:
                result.frames, result.people = run_one(job)
            except KeyboardInterrupt:
                report.interrupted = True
                break
            except PoseCliError as exc:
                result.status, result.error = "failed", str(exc)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
                result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
        result.seconds = round(time.monotonic() - started, 3)
        report.results.append(result)
        on_done(result)
    return report
