"""The parser's thresholds, with the reference implementation's defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import UsageError


@dataclass(frozen=True)
class ParseParams:
    """Every threshold of the parse (heatmap and PAF values are unitless)."""

    #: Gaussian sigma (pixels of the original frame) applied to heatmaps before peak finding.
    smoothing_sigma: float = 3.0
    #: A peak is a 4-neighbourhood local maximum of the smoothed heatmap above this.
    peak_threshold: float = 0.1
    #: Evenly spaced samples of the PAF line integral between two candidate parts.
    paf_samples: int = 10
    #: A sample supports a limb when the PAF projected on the limb exceeds this.
    paf_sample_threshold: float = 0.05
    #: A pair is a limb candidate when more than this fraction of samples support it.
    paf_min_fraction: float = 0.8
    #: Distance prior: pairs longer than this fraction of the frame height are penalised.
    distance_prior: float = 0.5
    #: People with fewer parts than this are dropped.
    min_parts: int = 4
    #: People whose total score divided by their part count is below this are dropped.
    min_mean_score: float = 0.4
    #: A part keeps at most this many peaks, those of highest smoothed value (OpenPose's
    #: POSE_MAX_PEOPLE cap); only frames of noise reach it, where it bounds the work.
    max_peaks_per_part: int = 127

    def __post_init__(self) -> None:
        checks = [
            (self.smoothing_sigma >= 0, "smoothing sigma must be >= 0"),
            (self.peak_threshold >= 0, "peak threshold must be >= 0"),
            (self.paf_samples >= 2, "PAF samples must be >= 2"),
            (0 <= self.paf_min_fraction <= 1, "PAF min fraction must be within 0..1"),
            (self.distance_prior > 0, "distance prior must be > 0"),
            (self.min_parts >= 1, "min parts must be >= 1"),
            (self.max_peaks_per_part >= 1, "max peaks per part must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(f"bad parse parameter: {message}")

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)
