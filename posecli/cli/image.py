"""``posecli image``: still images into one output file, one image entry per input.

Like ``batch``, a file that cannot be read is reported (``posecli: failed: PATH:
reason``) and the others go on; the exit code is then 1. When no input can be
read, nothing is written (and a single input's error is the one line printed).
"""

from __future__ import annotations

import time
from itertools import chain
from pathlib import Path

import typer

from ..errors import InputError, Interrupted
from .console import count, progress_bars, run_summary, say, warn
from .options import (
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
    WEIGHTS,
    parse_params,
)


def image(
    inputs: list[str] = typer.Argument(..., metavar="IMAGE...",
                                       help="Image files (PNG, JPEG, ...)."),
    out: str = OUT,
    render: Path | None = typer.Option(
        None, "--render", metavar="DIR",
        help="Also write each image with its skeletons drawn into DIR (same file name; "
             "JPEG for .jpg/.jpeg inputs, else PNG). Never overwrites an input."),
    weights: str | None = WEIGHTS,
    device: str = DEVICE,
    precision: str = PRECISION,
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
) -> None:
    """Estimate poses in images; write one output file.

    One image entry per input, in order. A file that cannot be read is
    reported and skipped (exit code 1 at the end); when none can be read,
    nothing is written.

    Example: posecli image a.jpg b.png --out poses.json --render annotated/
    """
    from ..batch import prepare_dir
    from ..formats import check_output_path
    from ..outputs import check_distinct
    from ..pipeline import (
        Estimator,
        check_precision,
        finish_outputs,
        load_model,
        process_images,
        read_images,
        run_info,
    )
    from ..render import StillRenderSink
    from ..sinks import OutputGroup, PeopleCounter, check_format, open_sink
    from ..stills import plan_renders

    params = parse_params(smoothing_sigma, peak_threshold, paf_samples, paf_threshold,
                          paf_min_fraction, min_parts, min_score)
    check_format(fmt)
    renders = plan_renders(inputs, render) if render is not None else None
    check_distinct([*(("input", path) for path in inputs), ("--out", out), ("--render", render),
                    *(("--render", path) for path in renders or [])])
    check_output_path(out)
    check_precision(precision, device)
    failed: list[str] = []
    with progress_bars(quiet) as progress:
        progress.start(len(inputs))

        def report_failure(path: str, reason: str) -> None:
            if len(inputs) == 1:  # one input: its error is the one line, as for video
                raise InputError(reason)
            failed.append(path)
            progress.advance(1)
            say(f"posecli: failed: {path}: {reason}")

        images = read_images(inputs, report_failure)
        first = next(images, None)  # the model loads only once an image could be read
        if first is None:
            raise InputError(f"no image could be read ({count(len(inputs), 'input')} "
                             "failed); nothing written")
        model = load_model(weights, device, precision)
        estimator = Estimator(model, net_height, params, warn, batch_size=1)
        if render is not None:
            prepare_dir(render)
        people = PeopleCounter()
        sinks = [open_sink(fmt, out), people]
        if renders is not None:
            sinks.append(StillRenderSink(renders))
        started = time.monotonic()
        outputs = OutputGroup(sinks)
        try:
            done = process_images(chain([first], images), estimator, [outputs],
                                  progress.advance)
            info = run_info(model, estimator, {"paths": list(inputs), "failed": failed}, done)
            interrupted_writing = finish_outputs(outputs, info, last=True)
        except BaseException:
            outputs.discard()
            raise
    if interrupted_writing:
        raise Interrupted(f"interrupted while writing: all {count(done, 'image')} written "
                          f"to {out}")
    if not quiet:
        written = [out] if render is None else [out, f"{render}/"]
        say(run_summary(done, "image", "images/s", people.people,
                        time.monotonic() - started, written, failed=len(failed)))
    if failed:
        raise typer.Exit(1)
