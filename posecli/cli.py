"""The ``posecli`` command line: options in, pipeline wired, one line per error.

No math lives here: every command parses its options, calls the pipeline, and
hands the results to a sink from ``formats``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from . import __version__
from .batch import MANIFEST_NAME, Job, JobResult, plan_jobs, prepare_dir, run_jobs, write_manifest
from .cli_compare import register as register_compare
from .cli_options import (
    BATCH,
    DEVICE,
    FORMAT,
    MIN_PARTS,
    MIN_SCORE,
    NET_HEIGHT,
    OUT,
    PAF_FRACTION,
    PAF_THRESHOLD,
    PEAK,
    QUIET,
    SAMPLES,
    SIGMA,
    WEIGHTS,
    parse_params,
)
from .cli_train import register as register_train
from .cli_weights import weights_app
from .errors import Interrupted, PoseCliError
from .formats import FrameResult, check_output_path
from .interrupts import ESTIMATE_THREAD
from .pipeline import (
    Estimator,
    load_model,
    process_images,
    run_info,
    run_video_to_sinks,
    selected_count,
)
from .render import RenderSink
from .sinks import JSONL, Sink, check_format, open_sink
from .synth import generate_dataset
from .video import FrameBatch, VideoReader, parse_frame_range, read_image

app = typer.Typer(
    name="posecli",
    help="Multi-person 2D pose estimation over video and images (OpenPose CPM/PAF).",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(weights_app, name="weights")
register_train(app)
register_compare(app)

@app.command()
def video(
    input: str = typer.Argument(
        ..., help="Video file (any format FFmpeg reads), - for stdin, /dev/videoN, or a URL."),
    out: str = OUT,
    weights: str | None = WEIGHTS,
    device: str = DEVICE,
    batch_size: int = BATCH,
    net_height: int = NET_HEIGHT,
    frames: str | None = typer.Option(
        None, "--frames", help="Frames to process, START:END[:STEP] (Python slice; e.g. 0:300:5)."),
    fmt: str = FORMAT,
    realtime: bool = typer.Option(
        False, "--realtime", help="Live sources: drop frames when processing falls behind."),
    render: Path | None = typer.Option(
        None, "--render", help="Also write an MP4 of the frames with skeletons drawn."),
    quiet: bool = QUIET,
    peak_threshold: float = PEAK,
    smoothing_sigma: float = SIGMA,
    paf_samples: int = SAMPLES,
    paf_threshold: float = PAF_THRESHOLD,
    paf_min_fraction: float = PAF_FRACTION,
    min_parts: int = MIN_PARTS,
    min_score: float = MIN_SCORE,
) -> None:
    """Estimate poses in every frame of a video; write one JSON file.

    Example: posecli video in.mp4 --out poses.json --frames 0:300
    """
    params = parse_params(smoothing_sigma, peak_threshold, paf_samples, paf_threshold,
                     paf_min_fraction, min_parts, min_score)
    frame_range = parse_frame_range(frames) if frames is not None else None
    check_format(fmt)
    check_output_path(out)
    if render is not None:
        check_output_path(render)
    with VideoReader(input, batch_size, frame_range, realtime=realtime,
                     on_warning=_warn) as reader:  # bad input fails before the model loads
        model = load_model(weights, device)
        estimator = Estimator(model, net_height, params, _warn)
        sinks = _open_sinks(fmt, out, render, reader)
        with _progress(quiet) as progress:
            progress.start(selected_count(frame_range, reader.info.frame_count))
            run = run_video_to_sinks(reader, model, estimator, sinks, progress.advance,
                                     {"frames": frames, "realtime": realtime})
    if not run.complete:
        raise Interrupted(f"interrupted: {run.frames_processed} frames written to {out}, "
                          "marked incomplete")


def _open_sinks(fmt: str, out: str | Path, render: Path | None,
                reader: VideoReader) -> list[Sink]:
    """The output sink, plus the annotated-video sink when asked for."""
    sink = open_sink(fmt, out)
    if render is None:
        return [sink]
    try:
        return [sink, RenderSink(render, reader.info)]
    except BaseException:
        sink.discard()
        raise


@app.command()
def image(
    inputs: list[str] = typer.Argument(..., help="Image files (PNG, JPEG, ...)."),
    out: str = OUT,
    weights: str | None = WEIGHTS,
    device: str = DEVICE,
    net_height: int = NET_HEIGHT,
    fmt: str = FORMAT,
    quiet: bool = QUIET,
    peak_threshold: float = PEAK,
    smoothing_sigma: float = SIGMA,
    paf_samples: int = SAMPLES,
    paf_threshold: float = PAF_THRESHOLD,
    paf_min_fraction: float = PAF_FRACTION,
    min_parts: int = MIN_PARTS,
    min_score: float = MIN_SCORE,
) -> None:
    """Estimate poses in images; write one JSON file with one image entry per input.

    Example: posecli image a.jpg b.png --out poses.json
    """
    params = parse_params(smoothing_sigma, peak_threshold, paf_samples, paf_threshold,
                     paf_min_fraction, min_parts, min_score)
    check_format(fmt)
    check_output_path(out)
    # Every image is decoded once, and so checked, before the model loads.
    images = [(path, read_image(path)) for path in inputs]
    model = load_model(weights, device)
    estimator = Estimator(model, net_height, params, _warn)
    sink = open_sink(fmt, out)
    try:
        with _progress(quiet) as progress:
            progress.start(len(inputs))
            count = process_images(images, estimator, [sink], progress.advance)
        sink.finish(run_info(model, estimator, {"paths": list(inputs)}, count))
    except BaseException:
        sink.discard()
        raise


@app.command()
def batch(
    inputs: list[str] = typer.Argument(..., help="Video files, directories (recursive) or globs."),
    out_dir: Path = typer.Option(..., "--out-dir", "-d", help="Folder for the outputs."),
    skip_existing: bool = typer.Option(
        False, "--skip-existing", help="Skip inputs whose complete output already exists."),
    manifest: Path | None = typer.Option(
        None, "--manifest", help="Where to write the manifest (default OUT_DIR/manifest.json)."),
    render_dir: Path | None = typer.Option(
        None, "--render-dir", help="Also write an annotated MP4 per input, mirrored here."),
    weights: str | None = WEIGHTS,
    device: str = DEVICE,
    batch_size: int = BATCH,
    net_height: int = NET_HEIGHT,
    fmt: str = FORMAT,
    quiet: bool = QUIET,
    peak_threshold: float = PEAK,
    smoothing_sigma: float = SIGMA,
    paf_samples: int = SAMPLES,
    paf_threshold: float = PAF_THRESHOLD,
    paf_min_fraction: float = PAF_FRACTION,
    min_parts: int = MIN_PARTS,
    min_score: float = MIN_SCORE,
) -> None:
    """Process many videos with one model load; outputs mirror the input tree.

    Example: posecli batch videos/ --out-dir poses/ --skip-existing
    """
    params = parse_params(smoothing_sigma, peak_threshold, paf_samples, paf_threshold,
                     paf_min_fraction, min_parts, min_score)
    check_format(fmt)
    jobs = plan_jobs(inputs, out_dir, ".jsonl" if fmt == JSONL else ".json", render_dir)
    prepare_dir(out_dir)
    if render_dir is not None:
        prepare_dir(render_dir)
    model = load_model(weights, device)
    estimator = Estimator(model, net_height, params, _warn)
    err = Console(stderr=True, highlight=False, soft_wrap=True)

    with _progress(quiet, files=len(jobs)) as progress:
        def run_one(job: Job) -> tuple[int, int]:
            job.output.parent.mkdir(parents=True, exist_ok=True)
            if job.render is not None:
                job.render.parent.mkdir(parents=True, exist_ok=True)
            with VideoReader(str(job.source), batch_size, on_warning=_warn) as reader:
                counter = _PeopleCounter()
                sinks = [*_open_sinks(fmt, job.output, job.render, reader), counter]
                run = run_video_to_sinks(reader, model, estimator, sinks, progress.advance,
                                         keep_incomplete=False)
            return run.frames_processed, counter.people

        def done(result: JobResult) -> None:
            progress.file_done()
            if result.status == "failed":
                err.print(f"posecli: failed: {result.input}: {result.error}", markup=False)

        report = run_jobs(jobs, run_one, skip_existing, done)
    header = {"tool": "posecli", "version": __version__, "model": model.describe(),
              "options": {**estimator.options(), "format": fmt}}
    write_manifest(manifest or out_dir / MANIFEST_NAME, report, header)
    totals = report.totals()
    err.print(f"posecli: {_count(totals['files'], 'file')}: {totals['ok']} ok, {totals['skipped']} "
              f"skipped, {totals['failed']} failed; {totals['frames']} frames, "
              f"{totals['people']} people, {totals['fps']:.1f} fps", markup=False)
    if report.interrupted:
        raise Interrupted("interrupted: finished outputs kept, the one in progress discarded")
    if totals["failed"]:
        raise typer.Exit(1)


@app.command()
def synth(
    out_dir: Path = typer.Argument(..., help="Folder to write the dataset into."),
    images: int = typer.Option(200, "--images", help="Number of still images."),
    videos: int = typer.Option(0, "--videos", help="Number of clips of moving figures."),
    video_frames: int = typer.Option(30, "--video-frames", help="Frames per clip."),
    fps: float = typer.Option(10.0, "--fps", help="Clip frame rate."),
    width: int = typer.Option(368, "--width", help="Image width in pixels."),
    height: int = typer.Option(368, "--height", help="Image height in pixels."),
    min_people: int = typer.Option(1, "--min-people", help="Fewest figures per image."),
    max_people: int = typer.Option(4, "--max-people", help="Most figures per image."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same files."),
    quiet: bool = QUIET,
) -> None:
    """Write a synthetic COCO-format person-keypoints dataset (and clips).

    Procedurally drawn articulated figures with exact keypoints, for training
    and testing. Example: posecli synth data/synth --images 500 --videos 2
    """
    with _progress(quiet) as progress:
        progress.start(images + videos * video_frames)
        summary = generate_dataset(out_dir, images=images, seed=seed, width=width,
                                   height=height, min_people=min_people,
                                   max_people=max_people, videos=videos,
                                   video_frames=video_frames, fps=fps,
                                   progress=progress.advance)
    Console(stderr=True, highlight=False).print(
        f"posecli: wrote {_count(summary.images, 'image')} "
        f"({_count(summary.people, 'person', 'people')}) and "
        f"{_count(len(summary.videos), 'clip')} to {summary.out_dir}", markup=False)


def _count(number: int, noun: str, plural: str | None = None) -> str:
    """``3 clips``, ``1 clip``; ``plural`` for irregular nouns (person / people)."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


class _PeopleCounter(Sink):
    """Counts the people found, for the batch summary."""

    def __init__(self) -> None:
        self.people = 0

    def add(self, batch: FrameBatch, frames: list[FrameResult]) -> None:
        self.people += sum(len(frame.people) for frame in frames)

    def finish(self, info: dict[str, object]) -> None:
        pass


def _warn(message: str) -> None:
    """One warning line on stderr."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"posecli: warning: {message}", markup=False)


class _RateColumn(ProgressColumn):
    """Frames per second since the task started."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:6.1f} fps" if speed else "   ... fps", style="progress.data.speed")


class _FrameProgress:
    """Progress bars on stderr (frames, and files for a batch), or nothing when off."""

    def __init__(self, progress: Progress | None, files: int | None = None) -> None:
        self._progress = progress
        self._frames = None
        self._files = None
        if progress is not None and files is not None:
            self._files = progress.add_task("files", total=files)
            self._frames = progress.add_task("frames", total=None)

    def start(self, total: int | None) -> None:
        if self._progress is not None:
            self._frames = self._progress.add_task("frames", total=total)

    def advance(self, frames: int) -> None:
        if self._progress is not None and self._frames is not None:
            self._progress.advance(self._frames, frames)

    def file_done(self) -> None:
        if self._progress is not None and self._files is not None:
            self._progress.advance(self._files, 1)


@contextmanager
def _progress(quiet: bool, files: int | None = None) -> Iterator[_FrameProgress]:
    """Progress bars only when stderr is a terminal and --quiet is off."""
    if quiet or not sys.stderr.isatty():
        yield _FrameProgress(None)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), _RateColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        yield _FrameProgress(progress, files)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app; every error becomes one line and an exit code."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _terminate)
    interrupted_run = False
    try:
        code = app(args=argv, prog_name="posecli", standalone_mode=False)
    except PoseCliError as exc:
        err.print(f"posecli: error: {exc}", markup=False)
        code = exc.exit_code
        interrupted_run = isinstance(exc, Interrupted)
    except BrokenPipeError:
        code = 141
    except Exception as exc:
        if not _is_click_error(exc):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":
            typer.echo(exc.ctx.get_help())
            code = 0
        else:
            err.print(f"posecli: error: {exc.format_message()}", markup=False)
            code = exc.exit_code
    if code == 130 and not interrupted_run:  # Typer turns a bare Ctrl-C into 130
        err.print(f"posecli: interrupted after {time.monotonic() - started:.1f} s; "
                  "no output written", markup=False)
    sys.exit(code if isinstance(code, int) else 0)


def entry() -> None:
    """The console script: main(), then a hard exit if an interrupted network call
    is still running in the background (interpreter shutdown would abort in torch).
    Outputs are complete and flushed by then."""
    try:
        main()
    except SystemExit as exc:
        if any(t.name == ESTIMATE_THREAD and t.is_alive() for t in threading.enumerate()):
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.code if isinstance(exc.code, int) else 1)
        raise


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM stops a run like Ctrl-C: finished work is kept, nothing partial is left."""
    raise KeyboardInterrupt


def _is_click_error(exc: Exception) -> bool:
    """Whether ``exc`` is Click's usage/parameter error (Typer may vendor Click)."""
    return any(cls.__name__ == "ClickException" for cls in type(exc).__mro__)


if __name__ == "__main__":
    entry()
