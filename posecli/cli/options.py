"""Command-line options shared by the commands that run the model, declared once.

Typer declares options as parameter defaults; each command lists the ones it
takes (``weights: str | None = WEIGHTS``), so the flags, defaults and help texts
stay the same everywhere. The parse thresholds default to :class:`ParseParams`'.
"""

from __future__ import annotations

import typer

from ..defaults import DEFAULT_BATCH_SIZE, DEFAULT_NET_HEIGHT
from ..errors import UsageError
from ..parse.params import ParseParams
from ..track.params import SmoothParams, TrackParams
from ..weights.registry import MODELS
from ..weights.store import builtin_models

_DEFAULTS = ParseParams()
_TRACK = TrackParams()
_SMOOTH = SmoothParams()

OUT = typer.Option(..., "--out", "-o", metavar="FILE",
                   help="Output file (JSON; JSON lines with --format jsonl), or - for stdout.")
WEIGHTS = typer.Option(
    None, "--weights", "-w", metavar="FILE|NAME",
    help=f"Weights file, or a model's name: {', '.join(builtin_models()) or 'none'} (built "
         f"in), {' or '.join(MODELS)} (after posecli weights download NAME). Default: "
         "$POSECLI_WEIGHTS, else the downloaded CMU model. demo is a demonstration: it "
         "knows posecli's synthetic figures, not real people.")
DEVICE = typer.Option("auto", "--device", metavar="DEVICE",
                      help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N.")
PRECISION = typer.Option(
    "auto", "--precision", metavar="PRECISION",
    help="The network's arithmetic: auto (bf16 where the hardware computes it natively: "
         "CPUs with AVX512-BF16 or AMX, CUDA GPUs with bf16; else fp32), fp32, bf16, or "
         "fp16 (CUDA only).")
BATCH = typer.Option(DEFAULT_BATCH_SIZE, "--batch-size", min=1, metavar="N",
                     help="Frames per network batch.")
NET_HEIGHT = typer.Option(None, "--net-height", show_default=False, metavar="PX",
                          help="Network input height in pixels (multiple of 8 recommended); "
                               "larger finds smaller people, more slowly. Default: the "
                               f"model's ({DEFAULT_NET_HEIGHT} for the CMU and Lightweight "
                               "models).")
FORMAT = typer.Option("coco", "--format", metavar="FORMAT",
                      help="coco (one COCO keypoints document), openpose, jsonl "
                           "(one JSON object per frame, streamed) or csv (one row per "
                           "person per frame).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary line.")
QUIET_PROGRESS = typer.Option(False, "--quiet", "-q", help="No progress bar.")
PEAK = typer.Option(_DEFAULTS.peak_threshold, "--peak-threshold", metavar="VALUE",
                    help="Minimum smoothed heatmap value of a part peak.")
SIGMA = typer.Option(_DEFAULTS.smoothing_sigma, "--smoothing-sigma", metavar="PX",
                     help="Gaussian sigma (pixels) applied to heatmaps before peak finding.")
SAMPLES = typer.Option(_DEFAULTS.paf_samples, "--paf-samples", metavar="N",
                       help="Samples of the PAF line integral per candidate limb.")
PAF_THRESHOLD = typer.Option(_DEFAULTS.paf_sample_threshold, "--paf-threshold",
                             metavar="VALUE",
                             help="Minimum PAF projection for a sample to support a limb.")
PAF_FRACTION = typer.Option(_DEFAULTS.paf_min_fraction, "--paf-min-fraction",
                            metavar="FRACTION",
                            help="Fraction of samples (0 to 1) that must support a limb.")
MIN_PARTS = typer.Option(_DEFAULTS.min_parts, "--min-parts", metavar="N",
                         help="People with fewer parts are dropped.")
MIN_SCORE = typer.Option(_DEFAULTS.min_mean_score, "--min-score", metavar="SCORE",
                         help="People with a lower mean score (total score / parts) are "
                              "dropped.")


def parse_params(smoothing_sigma: float, peak_threshold: float, paf_samples: int,
                 paf_threshold: float, paf_min_fraction: float, min_parts: int,
                 min_score: float) -> ParseParams:
    """The ParseParams of the parse-threshold options above."""
    return ParseParams(smoothing_sigma=smoothing_sigma, peak_threshold=peak_threshold,
                       paf_samples=paf_samples, paf_sample_threshold=paf_threshold,
                       paf_min_fraction=paf_min_fraction, min_parts=min_parts,
                       min_mean_score=min_score)


TRACK = typer.Option(True, "--track/--no-track",
                     help="Give each person a track_id that follows them from frame to frame.")
TRACK_BUFFER = typer.Option(_TRACK.buffer_seconds, "--track-buffer", min=0.0, metavar="SECONDS",
                            help="End a track after this long (presentation time) unmatched.")
TRACK_MIN_OKS = typer.Option(_TRACK.min_oks, "--track-min-oks", min=0.0, max=1.0,
                             metavar="OKS",
                             help="Least OKS for a person to continue a track.")
SMOOTH = typer.Option(False, "--smooth", help="Smooth keypoints along each track (One Euro "
                      "filter); the raw ones are kept as raw_keypoints.")
SMOOTH_MIN_CUTOFF = typer.Option(_SMOOTH.min_cutoff, "--smooth-min-cutoff", metavar="HZ",
                                 help="One Euro cutoff at rest (lower: steadier, more lag).")
SMOOTH_BETA = typer.Option(_SMOOTH.beta, "--smooth-beta", metavar="BETA",
                           help="One Euro speed coefficient, Hz per frame height/s (higher: "
                           "less lag).")


def track_params(track: bool, track_buffer: float, track_min_oks: float, smooth: bool,
                 smooth_min_cutoff: float, smooth_beta: float) -> TrackParams | None:
    """The TrackParams of the tracking options above (None: --no-track)."""
    smoothing = SmoothParams(min_cutoff=smooth_min_cutoff, beta=smooth_beta) if smooth else None
    if not track:
        if smooth:
            raise UsageError("--smooth smooths along tracks: it cannot be used with --no-track")
        return None
    return TrackParams(buffer_seconds=track_buffer, min_oks=track_min_oks, smooth=smoothing)

