"""``posecli batch``: many videos with one model load; outputs mirror the input tree."""

from __future__ import annotations

from pathlib import Path

import typer

from .. import __version__
from ..errors import Interrupted
from ..track.params import tracking_options
from .console import count, progress_bars, say, warn
from .options import (
    BATCH,
    DEVICE,
    FORMAT,
    MIN_PARTS,
    MIN_SCORE,
    NET_HEIGHT,
    PAF_FRACTION,
    PAF_THRESHOLD,
    PEAK,
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


def batch(
    inputs: list[str] = typer.Argument(
        ..., metavar="INPUT...", help="Video files, directories (searched recursively for "
        "video files) or quoted glob patterns."),
    out_dir: Path = typer.Option(..., "--out-dir", "-d", metavar="OUT_DIR",
                                 help="Folder for the outputs (mirrors the input paths)."),
    skip_existing: bool = typer.Option(
        False, "--skip-existing", help="Skip inputs whose complete output already exists."),
    manifest: Path | None = typer.Option(
        None, "--manifest", metavar="FILE",
        help="Where to write the manifest (default: OUT_DIR/manifest.json)."),
    render_dir: Path | None = typer.Option(
        None, "--render-dir", metavar="DIR",
        help="Also write each input's frames with skeletons drawn as an MP4 under DIR "
             "(mirroring the input paths)."),
    weights: str | None = WEIGHTS,
    device: str = DEVICE,
    batch_size: int = BATCH,
    net_height: int | None = NET_HEIGHT,
    fmt: str = FORMAT,
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
    """Estimate poses in many videos with one model load.

    Each input's output mirrors its path under OUT_DIR (videos/a/b.mp4 ->
    OUT_DIR/videos/a/b.json). A file that fails is reported and the batch goes
    on (exit code 1 at the end); OUT_DIR/manifest.json records every file.

    Example: posecli batch videos/ --out-dir poses/ --skip-existing
    """
    from ..batch import (
        MANIFEST_NAME,
        JobResult,
        VideoJobRunner,
        plan_jobs,
        prepare_dir,
        run_jobs,
        write_manifest,
    )
    from ..pipeline import Estimator, load_model
    from ..sinks import check_format, output_suffix

    params = parse_params(smoothing_sigma, peak_threshold, paf_samples, paf_threshold,
                          paf_min_fraction, min_parts, min_score)
    tracking = track_params(track, track_buffer, track_min_oks, smooth, smooth_min_cutoff,
                            smooth_beta)
    check_format(fmt)
    jobs = plan_jobs(inputs, out_dir, output_suffix(fmt), render_dir)
    prepare_dir(out_dir)
    if render_dir is not None:
        prepare_dir(render_dir)
    model = load_model(weights, device)
    estimator = Estimator(model, net_height, params, warn)

    with progress_bars(quiet, files=len(jobs)) as progress:
        run_one = VideoJobRunner(model, estimator, fmt, batch_size, progress.advance, warn,
                                 tracking)

        def done(result: JobResult) -> None:
            progress.file_done()
            if result.status == "failed":
                say(f"posecli: failed: {result.input}: {result.error}")

        report = run_jobs(jobs, run_one, skip_existing, done)
    header = {"tool": "posecli", "version": __version__, "model": model.describe(),
              "options": {**estimator.options(), "format": fmt, **tracking_options(tracking)}}
    write_manifest(manifest or out_dir / MANIFEST_NAME, report, header)
    totals = report.totals()
    if not quiet:
        say(f"posecli: {count(totals['files'], 'file')}: {totals['ok']} ok, {totals['skipped']} "
            f"skipped, {totals['failed']} failed; {totals['frames']} frames, "
            f"{totals['people']} people, {totals['fps']:.1f} fps")
    if report.interrupted:
        raise Interrupted("interrupted: finished outputs kept, the one in progress discarded")
    if totals["failed"]:
        raise typer.Exit(1)
