"""``posecli image``: still images into one output file, one image entry per input."""

from __future__ import annotations

import typer

from .console import progress_bars, warn
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
    QUIET,
    SAMPLES,
    SIGMA,
    WEIGHTS,
    parse_params,
)


def image(
    inputs: list[str] = typer.Argument(..., help="Image files (PNG, JPEG, ...)."),
    out: str = OUT,
    weights: str | None = WEIGHTS,
    device: str = DEVICE,
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
    """Estimate poses in images; write one JSON file with one image entry per input.

    Example: posecli image a.jpg b.png --out poses.json
    """
    from ..formats import check_output_path
    from ..pipeline import Estimator, load_model, process_images, run_info
    from ..sinks import check_format, open_sink
    from ..video import read_image

    params = parse_params(smoothing_sigma, peak_threshold, paf_samples, paf_threshold,
                          paf_min_fraction, min_parts, min_score)
    check_format(fmt)
    check_output_path(out)
    # Every image is decoded once, and so checked, before the model loads.
    images = [(path, read_image(path)) for path in inputs]
    model = load_model(weights, device)
    estimator = Estimator(model, net_height, params, warn)
    sink = open_sink(fmt, out)
    try:
        with progress_bars(quiet) as progress:
            progress.start(len(inputs))
            count = process_images(images, estimator, [sink], progress.advance)
        sink.finish(run_info(model, estimator, {"paths": list(inputs)}, count))
    except BaseException:
        sink.discard()
        raise
