"""Command-line options shared by the commands that run the model, declared once.

Typer declares options as parameter defaults; each command lists the ones it
takes (``weights: str | None = WEIGHTS``), so the flags, defaults and help texts
stay the same everywhere. The parse thresholds default to :class:`ParseParams`'.
"""

from __future__ import annotations

import typer

from ..defaults import DEFAULT_BATCH_SIZE, DEFAULT_NET_HEIGHT
from ..parse.params import ParseParams

_DEFAULTS = ParseParams()

OUT = typer.Option(..., "--out", "-o", help="Output JSON file, or - for stdout.")
WEIGHTS = typer.Option(None, "--weights", "-w",
                       help="Weights file, or a model's name: demo (built in), cmu or "
                            "lightweight (downloaded); else $POSECLI_WEIGHTS, else the cached "
                            "CMU model.")
DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N.")
BATCH = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", min=1, help="Frames per network batch.")
NET_HEIGHT = typer.Option(None, "--net-height", show_default=False,
                          help="Network input height in pixels (multiple of 8 recommended); "
                               f"default: the model's ({DEFAULT_NET_HEIGHT} for the CMU and "
                               "Lightweight models).")
FORMAT = typer.Option("coco", "--format", help="coco (one document), openpose, or jsonl "
                      "(one JSON object per frame, streamed).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar.")
PEAK = typer.Option(_DEFAULTS.peak_threshold, "--peak-threshold",
                    help="Minimum smoothed heatmap value of a part peak.")
SIGMA = typer.Option(_DEFAULTS.smoothing_sigma, "--smoothing-sigma",
                     help="Gaussian sigma (pixels) applied to heatmaps before peak finding.")
SAMPLES = typer.Option(_DEFAULTS.paf_samples, "--paf-samples",
                       help="Samples of the PAF line integral per candidate limb.")
PAF_THRESHOLD = typer.Option(_DEFAULTS.paf_sample_threshold, "--paf-threshold",
                             help="Minimum PAF projection for a sample to support a limb.")
PAF_FRACTION = typer.Option(_DEFAULTS.paf_min_fraction, "--paf-min-fraction",
                            help="Fraction of samples that must support a limb.")
MIN_PARTS = typer.Option(_DEFAULTS.min_parts, "--min-parts", help="Minimum parts per person.")
MIN_SCORE = typer.Option(_DEFAULTS.min_mean_score, "--min-score",
                         help="Minimum mean score (total score / parts) per person.")


def parse_params(smoothing_sigma: float, peak_threshold: float, paf_samples: int,
                 paf_threshold: float, paf_min_fraction: float, min_parts: int,
                 min_score: float) -> ParseParams:
    """The ParseParams of the parse-threshold options above."""
    return ParseParams(smoothing_sigma=smoothing_sigma, peak_threshold=peak_threshold,
                       paf_samples=paf_samples, paf_sample_threshold=paf_threshold,
                       paf_min_fraction=paf_min_fraction, min_parts=min_parts,
                       min_mean_score=min_score)
