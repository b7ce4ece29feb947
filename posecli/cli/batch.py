"""``posecli batch``: many videos with one model load; outputs mirror the input tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from .. import __version__
from ..errors import Interrupted, UsageError
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


def batch(
    inputs: list[str] = typer.Argument(
        ..., metavar="INPUT...", help="Video files, directories (searched recursively for "
        "video files) or quoted glob patterns."),
    out_dir: Path = typer.Option(..., "--out-dir", "-d", metavar="OUT_DIR",
                                 help="Folder for the outputs (mirrors the input paths)."),
    skip_existing: bool = typer.Option(
        False, "--skip-existing", help="Skip inputs whose complete output (and render) "
        "already exists and was made from the same input file, weights and result-changing "
        "options; redo the others (the manifest says why) and update the manifest."),
    manifest: Path | None = typer.Option(
        None, "--manifest", metavar="FILE",
        help="Where to write the manifest (default: OUT_DIR/manifest.json, or "
             "OUT_DIR/manifest-K-of-N.json with --shard)."),
    render_dir: Path | None = typer.Option(
        None, "--render-dir", metavar="DIR",
        help="Also write each input's frames with skeletons drawn as an MP4 under DIR "
             "(mirroring the input paths)."),
    engine: str = typer.Option(
        "local", "--engine", metavar="ENGINE", help="local (this process) or ray (workers on "
        "a Ray cluster, or on a local Ray instance; pip install 'posecli[ray]')."),
    ray_address: str | None = typer.Option(
        None, "--ray-address", metavar="ADDRESS", help="With --engine ray: auto (the cluster "
        "this runs in), HOST:PORT, or ray://HOST:PORT (default: a new local Ray instance)."),
    workers: int | None = typer.Option(
        None, "--workers", min=1, metavar="N", help="With --engine ray: workers, each with "
        "its own model (default: as many as the cluster's CPUs and GPUs hold)."),
    gpus_per_worker: float = typer.Option(
        0.0, "--gpus-per-worker", min=0.0, metavar="G", help="With --engine ray: GPUs per "
        "worker; fractions let workers share a GPU (e.g. 0.5)."),
    shard: str | None = typer.Option(
        None, "--shard", metavar="K/N", help="Only shard K of N of the inputs (0 <= K < N), "
        "for job arrays; merge the shards' manifests with posecli manifest merge."),
    weights: str | None = WEIGHTS,
    device: str = DEVICE,
    precision: str = PRECISION,
    batch_size: int = BATCH,
    net_height: int | None = NET_HEIGHT,
    frames: str | None = typer.Option(
        None, "--frames", metavar="START:END[:STEP]",
        help="Frames of each video to process (Python slice of frame indices; e.g. 0:300:5); "
             "a video it selects nothing of gets an empty output and a warning."),
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
    on (exit code 1 at the end); OUT_DIR/manifest.json records every input with
    its status: ok, failed, skipped, interrupted or not_started. Outputs,
    renders and manifests posecli wrote are never taken as inputs.

    Example: posecli batch videos/ --out-dir poses/ --skip-existing
    """
    from ..batch import (
        MANIFEST_NAME,
        EngineChoice,
        JobResult,
        RunnerSpec,
        Shard,
        check_writable,
        check_written_paths,
        plan_jobs,
        prepare_dir,
        run_batch,
        update_report,
        write_manifest,
    )

    part = Shard.parse(shard) if shard is not None else None
    choice = EngineChoice(engine, ray_address, workers, gpus_per_worker)
    choice.check(device)
    from ..pipeline import check_precision

    check_precision(precision, choice.driver_device or device)
    from ..sinks import CSV, check_format, output_suffix
    from ..video import parse_frame_range
    from ..weights.store import resolve_weights

    params = parse_params(smoothing_sigma, peak_threshold, paf_samples, paf_threshold,
                          paf_min_fraction, min_parts, min_score)
    tracking = track_params(track, track_buffer, track_min_oks, smooth, smooth_min_cutoff,
                            smooth_beta)
    if frames is not None:
        parse_frame_range(frames)
    check_format(fmt)
    jobs = plan_jobs(inputs, out_dir, output_suffix(fmt), render_dir)
    manifest = manifest or out_dir / (part.manifest_name if part is not None else MANIFEST_NAME)
    if manifest.is_dir():
        raise UsageError(f"--manifest {manifest} is a directory")
    check_written_paths(jobs, manifest, csv=fmt == CSV)
    created = [folder.resolve() for folder in (out_dir, render_dir) if folder is not None]
    manifest_in_created = any(manifest.parent.resolve().is_relative_to(f) for f in created)
    if not manifest_in_created:  # else made like them
        check_writable(manifest.parent)
    header: dict[str, Any] = {"tool": "posecli", "version": __version__}
    if part is not None:
        header["shard"] = part.describe(jobs, out_dir)
        jobs = part.select(jobs, out_dir)
    spec = RunnerSpec(str(resolve_weights(weights).absolute()), device, net_height, params,
                      fmt, batch_size, tracking, frames, skip_existing,
                      precision)
    with choice.session() as session:
        prepare_dir(out_dir)
        if render_dir is not None:
            prepare_dir(render_dir)
        if manifest_in_created and manifest.parent.resolve() not in created:
            prepare_dir(manifest.parent)
        runner = spec.build(on_warning=warn, device=choice.driver_device)
        provenance = runner.provenance()

        with progress_bars(quiet, files=len(jobs)) as progress:
            def done(result: JobResult) -> None:
                progress.file_done()
                if result.status == "failed":
                    say(f"posecli: failed: {result.input}: {result.error}")

            run = session.engine(spec, runner, len(jobs), progress.advance, warn)
            report = run_batch(jobs, run, done)
        header.update({"model": runner.model.describe(), "options": provenance.options,
                       "engine": session.describe()})
        recorded = report
        if skip_existing and manifest.is_file():
            recorded, dropped = update_report((str(manifest), manifest.read_bytes()), header,
                                              report)
            if dropped:
                warn(f"{dropped}: it is replaced by this run's")
        write_manifest(manifest, recorded, header)
    totals = report.totals()
    if not quiet:
        say(f"posecli: {count(totals['files'], 'file')}: {totals['ok']} ok, {totals['skipped']} "
            f"skipped, {totals['failed']} failed; {totals['frames']} frames, "
            f"{totals['people']} people, {totals['fps']:.1f} fps")
    if report.failure is not None:
        raise report.failure
    if report.interrupted:
        raise Interrupted("interrupted: finished outputs kept, those in progress discarded")
    if totals["failed"]:
        raise typer.Exit(1)
