"""``posecli video``: one video (file, stdin, camera or URL) into one output file."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ..errors import Interrupted
from ..track.params import tracking_options
from .console import progress_bars, run_summary, say, warn
from .options import (
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
    PRECISION,
    QUIET,
    SAMPLES,
    SIGMA,
    SMOOTH,
    SMOOTH_BETA,
    SMOOTH_MIN_CUTOFF,
    TRACK,
    TRACK_BUFFER,
    TRACK_MIN_OKS,
    WEIGHTS,
    parse_params,
    track_params,
)


def video(
    input: str = typer.Argument(
        ..., help="Video file (any format FFmpeg reads), - for stdin, /dev/videoN, or a URL."),
    out: str = OUT,
    weights: str | None = WEIGHTS,
    device: str = DEVICE,
    precision: str = PRECISION,
    batch_size: int = BATCH,
    net_height: int | None = NET_HEIGHT,
    frames: str | None = typer.Option(
        None, "--frames", metavar="START:END[:STEP]",
        help="Frames to process (Python slice of frame indices; e.g. 0:300:5, -100:); "
             "one that selects none gives an empty output and a warning."),
    fmt: str = FORMAT,
    realtime: bool = typer.Option(
        False, "--realtime",
        help="Live sources (camera, stream): drop frames when processing falls behind."),
    render: Path | None = typer.Option(
        None, "--render", metavar="FILE",
        help="Also write the frames with skeletons drawn as an MP4 video (with the "
             "input's audio) to FILE."),
    quiet: bool = QUIET,
    peak_threshold: float = PEAK,
    smoothing_sigma: float = SIGMA,
    paf_samples: int = SAMPLES,
    paf_threshold: float = PAF_THRESHOLD,
    paf_min_fraction: float = PAF_FRACTION,
    min_parts: int = MIN_PARTS,
    min_score: float = MIN_SCORE,
    track: bool = TRACK,
    track_buffer: float = TRACK_BUFFER,
    track_min_oks: float = TRACK_MIN_OKS,
    smooth: bool = SMOOTH,
    smooth_min_cutoff: float = SMOOTH_MIN_CUTOFF,
    smooth_beta: float = SMOOTH_BETA,
) -> None:
    """Estimate poses in a video; write one output file.

    Every frame (or those --frames selects) is processed; coordinates are
    pixels of the displayed frame. A summary line goes to stderr at the end.

    Example: posecli video in.mp4 --out poses.json --frames 0:300
    """
    from ..formats import check_output_path
    from ..outputs import check_distinct
    from ..pipeline import (
        Estimator,
        load_model,
        nothing_selected,
        run_video_to_sinks,
        selected_count,
    )
    from ..sinks import CSV, PeopleCounter, check_format, open_outputs
    from ..track.stage import tracked
    from ..video import VideoReader, parse_frame_range

    params = parse_params(smoothing_sigma, peak_threshold, paf_samples, paf_threshold,
                          paf_min_fraction, min_parts, min_score)
    tracking = track_params(track, track_buffer, track_min_oks, smooth, smooth_min_cutoff,
                            smooth_beta)
    frame_range = parse_frame_range(frames) if frames is not None else None
    check_format(fmt)
    check_distinct(output_paths(input, out, fmt == CSV, render))
    check_output_path(out)
    if render is not None:
        check_output_path(render, stream_ok=False)
    with VideoReader(input, batch_size, frame_range, realtime=realtime,
                     on_warning=warn) as reader:  # bad input fails before the model loads
        model = load_model(weights, device, precision)
        estimator = Estimator(model, net_height, params, warn, batch_size=batch_size)
        people = PeopleCounter()
        sinks = tracked([*open_outputs(fmt, out, render, reader.info), people], tracking)
        started = time.monotonic()
        with progress_bars(quiet) as progress:
            progress.start(selected_count(frame_range, reader.info.frame_count))
            run = run_video_to_sinks(reader, model, estimator, sinks, progress.advance,
                                     {"frames": frames, "realtime": realtime,
                                      **tracking_options(tracking)}, last=True)
    if frames is not None and run.complete and run.frames_processed == 0:
        warn(nothing_selected(frames, run.info.frame_count, input))
    if not run.complete:
        raise Interrupted(f"interrupted: {run.frames_processed} frames written to {out}, "
                          "marked incomplete")
    if run.interrupted_writing:
        raise Interrupted(f"interrupted while writing: all {run.frames_processed} frames "
                          f"written to {out}")
    if not quiet:
        written = [out] if render is None else [out, str(render)]
        say(run_summary(run.frames_processed, "frame", "fps", people.people,
                        time.monotonic() - started, written))



def output_paths(input: str, out: str, csv: bool, render: Path | None
                 ) -> list[tuple[str, str | Path | None]]:
    """The files a video run reads and writes, named for messages: none may be another
    (the CSV's sidecar included)."""
    from ..csv_format import sidecar_path

    sidecar = sidecar_path(out) if csv and out != "-" else None
    return [("input", input), ("--out", out), ("--out's sidecar", sidecar), ("--render", render)]
