"""Compare two posecli COCO outputs of the same video: the regression check for CI.

:func:`compare_files` loads an *expected* and an *actual* output file (posecli's
``--format coco`` documents, any COCO keypoints dataset with ``images`` and
``annotations``, or posecli's ``--format jsonl`` streams), pairs their frames
by ``frame_index`` (by image id order when a file has no ``frame_index``), and
refuses files of different videos (other frame indices, other frame sizes). In
every frame it matches people by COCO's object keypoint similarity (OKS) and
measures how far the matched keypoints moved. The :class:`CompareResult` says,
per frame and in total, what differs and whether the differences stay within
the :class:`Tolerances`.

OKS between an expected person *e* and an actual person *a* is COCO's::

    OKS = mean over keypoints k labelled in e (v > 0) of
          exp(-d_k^2 / (2 * area_e * (2 * sigma_k)^2))

(:func:`posecli.oks.oks_matrix`) with ``sigma_k`` from
:data:`~posecli.skeleton.COCO17_SIGMAS` and ``area_e`` the expected person's
``area`` (else its bbox area, else the area of its keypoints' bounding box). A
keypoint labelled in *e* and missing in *a* counts 0. People are paired by
maximum total OKS (scipy's ``linear_sum_assignment`` when scipy is installed,
else greedily by descending OKS); a pair needs OKS >= the matching floor,
unpaired expected people are *missing*, unpaired actual ones *extra*.

Unusable input raises :class:`CompareInputError` (exit code 2), files of
different videos :class:`DifferentVideosError` (also exit code 2).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PoseCliError, UsageError
from .oks import oks_matrix
from .readers import OPENPOSE, PoseFile, PoseFrame, UnreadableOutputError, read_poses
from .skeleton import COCO17_NAMES

MATCHING_METHODS = ("auto", "optimal", "greedy")
_OKS_DECIMALS = 6
_PX_DECIMALS = 4


class CompareInputError(PoseCliError):
    """An input of ``compare`` that cannot be used: unreadable, not JSON, not COCO keypoints."""

    exit_code = 2


class DifferentVideosError(CompareInputError):
    """The two files describe different videos (other frame indices or frame sizes)."""


@dataclass(frozen=True)
class Tolerances:
    """How much the actual output may differ from the expected one.

    ``min_oks``: minimum OKS of every matched person; ``max_missing`` /
    ``max_extra``: expected people without a match / actual people without a
    match allowed per frame; ``max_drift``: largest keypoint displacement in
    pixels allowed per matched person (None: not checked); ``max_diff_frames``:
    the fraction of frames that may differ; ``match_floor``: the OKS a pair
    needs to count as the same person at all; ``same_ids``: also require the
    same identities (track ids, up to renaming), allowing ``max_id_switches``
    ID switches in all.
    """

    min_oks: float = 0.95
    max_missing: int = 0
    max_extra: int = 0
    max_diff_frames: float = 0.0
    max_drift: float | None = None
    match_floor: float = 0.1
    same_ids: bool = False
    max_id_switches: int = 0

    def __post_init__(self) -> None:
        for name in ("min_oks", "max_diff_frames", "match_floor"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"{name} must be between 0 and 1, got {value}")
        for name in ("max_missing", "max_extra", "max_id_switches"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if self.max_drift is not None and not self.max_drift >= 0:
            raise UsageError(f"max_drift must be 0 or more, got {self.max_drift}")


@dataclass
class PersonMatch:
    """An expected person paired with an actual one.

    ``drift_mean_px`` / ``drift_max_px``: displacement over the keypoints present
    in both (None when they share none); ``worst_keypoint``: the keypoint that
    moved most (None when none moved); ``only_expected`` / ``only_actual``:
    keypoint names found in one person and not the other.
    """

    expected_id: int
    actual_id: int
    oks: float
    drift_mean_px: float | None
    drift_max_px: float | None
    worst_keypoint: str | None
    only_expected: list[str]
    only_actual: list[str]
    expected_track_id: int | None = None
    actual_track_id: int | None = None


@dataclass
class FrameComparison:
    """One frame: matched pairs, unmatched people, and why it differs (if it does)."""

    frame_index: int
    timestamp: float | None
    expected_image_id: int
    actual_image_id: int
    people_expected: int
    people_actual: int
    matches: list[PersonMatch]
    missing: list[int]  # annotation ids of expected people without a match
    extra: list[int]  # annotation ids of actual people without a match
    differs: bool = False
    reasons: list[str] = field(default_factory=list)
    id_switches: list[str] = field(default_factory=list)  # with Tolerances.same_ids

    @property
    def worst_oks(self) -> float | None:
        return min((m.oks for m in self.matches), default=None)

    @property
    def max_drift_px(self) -> float | None:
        return max((m.drift_max_px for m in self.matches if m.drift_max_px is not None),
                   default=None)


@dataclass
class Summary:
    """Totals over all compared frames."""

    frames_compared: int
    frames_differing: int
    diff_fraction: float
    people_expected: int
    people_actual: int
    matched: int
    missing: int
    extra: int
    worst_oks: float | None
    worst_oks_frame: int | None
    max_drift_px: float | None
    max_drift_frame: int | None
    id_switches: int | None = None  # None: identities not checked


@dataclass
class CompareResult:
    """Everything :func:`compare_files` found; ``passed`` when within tolerance.

    ``matched_by``: ``frame_index``, or ``image_order`` when a file has no
    frame indices; ``matching``: ``optimal`` or ``greedy``; ``failures``: one
    line per broken tolerance (empty when passed).
    """

    expected: str
    actual: str
    tolerances: Tolerances
    matched_by: str
    matching: str
    frames: list[FrameComparison]
    summary: Summary
    passed: bool
    failures: list[str]

    @property
    def differing_frames(self) -> list[FrameComparison]:
        """Frames that differ, or where an identity switched."""
        return [frame for frame in self.frames if frame.differs or frame.id_switches]

    def to_dict(self) -> dict[str, Any]:
        """The whole result as plain JSON-ready data."""
        return {
            "passed": self.passed,
            "failures": list(self.failures),
            "expected": self.expected,
            "actual": self.actual,
            "tolerances": vars(self.tolerances).copy(),
            "matched_by": self.matched_by,
            "matching": self.matching,
            "summary": vars(self.summary).copy(),
            "frames": [_frame_dict(frame) for frame in self.frames],
        }


def _frame_dict(frame: FrameComparison) -> dict[str, Any]:
    return {
        "frame_index": frame.frame_index,
        "timestamp": frame.timestamp,
        "expected_image_id": frame.expected_image_id,
        "actual_image_id": frame.actual_image_id,
        "people_expected": frame.people_expected,
        "people_actual": frame.people_actual,
        "differs": frame.differs,
        "reasons": list(frame.reasons),
        "worst_oks": frame.worst_oks,
        "max_drift_px": frame.max_drift_px,
        "matches": [vars(match).copy() for match in frame.matches],
        "missing": list(frame.missing),
        "extra": list(frame.extra),
        "id_switches": list(frame.id_switches),
    }


# --------------------------------------------------------------------------- loading


def load_poses(path: str | Path, label: str = "input",
               allow_incomplete: bool = False) -> PoseFile:
    """Read a posecli output file for comparing; "-" reads stdin.

    Accepted: posecli's COCO document (``--format coco``) or any COCO keypoints
    dataset with images and annotations, and posecli's ``--format jsonl``
    stream (see :func:`posecli.readers.read_poses`). ``label`` names the file in
    error messages ("expected", "actual"). The output of a run that did not
    finish (``PoseFile.complete`` false: interrupted, or a JSON-lines stream
    without its completion line) is refused unless ``allow_incomplete``.
    """
    try:
        poses = read_poses(path, label)
    except UnreadableOutputError as exc:
        raise CompareInputError(str(exc)) from None
    name = "stdin" if str(path) == "-" else str(path)
    if not (poses.complete or allow_incomplete):
        raise CompareInputError(f"{label} file {name} is incomplete: {poses.incomplete_reason}; "
                                "pass --allow-incomplete to compare it anyway")
    if poses.layout == OPENPOSE:
        raise CompareInputError(f"{label} file {name} is in OpenPose layout; compare reads "
                                "posecli's COCO output (--format coco)")
    return poses


# --------------------------------------------------------------------------- OKS, matching


def resolve_matching(method: str = "auto") -> str:
    """``optimal`` or ``greedy``: what ``auto`` means depends on scipy being installed."""
    if method not in MATCHING_METHODS:
        raise UsageError(f"bad matching {method!r}: expected one of {', '.join(MATCHING_METHODS)}")
    if method != "auto":
        return method
    return "optimal" if importlib.util.find_spec("scipy") is not None else "greedy"


def match_people(oks: np.ndarray, floor: float, method: str = "auto") -> list[tuple[int, int]]:
    """(expected, actual) index pairs with OKS >= ``floor``, sorted by expected index.

    ``optimal`` maximises the total OKS (scipy); ``greedy`` takes pairs by
    descending OKS, ties in index order.
    """
    method = resolve_matching(method)
    if oks.size == 0:
        return []
    eligible = oks >= floor
    if method == "optimal" and min(oks.shape) > 1:  # one row or column: greedy is optimal
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(np.where(eligible, oks, 0.0), maximize=True)
        pairs = [(int(r), int(c)) for r, c in zip(rows, cols) if eligible[r, c]]
    else:
        pairs = []
        used_expected, used_actual = set(), set()
        for flat in np.argsort(-oks, axis=None, kind="stable"):
            e, a = divmod(int(flat), oks.shape[1])
            if not eligible[e, a]:
                break
            if e not in used_expected and a not in used_actual:
                pairs.append((e, a))
                used_expected.add(e)
                used_actual.add(a)
    return sorted(pairs)


# --------------------------------------------------------------------------- comparing


def compare_files(expected: str | Path, actual: str | Path,
                  tolerances: Tolerances | None = None,
                  matching: str = "auto", allow_incomplete: bool = False) -> CompareResult:
    """Load and compare two output files; see :func:`compare_poses`. Outputs of runs
    that did not finish are refused unless ``allow_incomplete`` (see :func:`load_poses`)."""
    if str(expected) == "-" and str(actual) == "-":
        raise UsageError("only one of the two files can be - (stdin)")
    return compare_poses(load_poses(expected, "expected", allow_incomplete),
                         load_poses(actual, "actual", allow_incomplete), tolerances, matching)


def compare_poses(expected: PoseFile, actual: PoseFile,
                  tolerances: Tolerances | None = None,
                  matching: str = "auto") -> CompareResult:
    """Compare two loaded files frame by frame; raise DifferentVideosError when unrelated."""
    tolerances = tolerances or Tolerances()
    method = resolve_matching(matching)
    by_index = expected.has_frame_index and actual.has_frame_index
    expected_frames = _keyed(expected, by_index)
    actual_frames = _keyed(actual, by_index)
    _check_same_video(expected_frames, actual_frames, by_index)

    if tolerances.same_ids:
        _check_track_ids(expected, "expected")
        _check_track_ids(actual, "actual")

    frames = []
    for key in sorted(expected_frames):
        frame = _compare_frame(key, expected_frames[key], actual_frames[key], tolerances, method)
        frames.append(frame)
    summary = _summarise(frames)
    failures = []
    if summary.frames_differing > tolerances.max_diff_frames * summary.frames_compared + 1e-9:
        failures.append(
            f"{summary.frames_differing} of {summary.frames_compared} frames differ "
            f"({100 * summary.diff_fraction:.1f}%), more than the "
            f"{100 * tolerances.max_diff_frames:.1f}% allowed")
    if tolerances.same_ids:
        summary.id_switches = count_id_switches(frames)
        if summary.id_switches > tolerances.max_id_switches:
            failures.append(f"{summary.id_switches} ID switches, more than the "
                            f"{tolerances.max_id_switches} allowed")
    return CompareResult(
        expected=expected.path, actual=actual.path, tolerances=tolerances,
        matched_by="frame_index" if by_index else "image_order", matching=method,
        frames=frames, summary=summary, passed=not failures, failures=failures)


def _check_track_ids(poses: PoseFile, label: str) -> None:
    for frame in poses.frames:
        if any(track_id is None for track_id in frame.track_ids):
            where = frame.image_id if frame.frame_index is None else frame.frame_index
            raise CompareInputError(f"{label} file {poses.path}: frame {where} has a person "
                                    "without a track_id; --same-ids needs tracked outputs")


def count_id_switches(frames: list[FrameComparison]) -> int:
    """ID switches over the frames' matched pairs, in frame order; records them per frame.

    Identities may be named differently in the two files; what must hold is a
    one-to-one correspondence. A matched pair (expected id e, actual id a) is a
    switch when e was last matched to another actual id, or a to another
    expected id (two tracks swapping counts 2, as in the MOT metrics; one actual
    track taking over another expected person counts 1).
    """
    partner_of_expected: dict[int, int] = {}
    partner_of_actual: dict[int, int] = {}
    switches = 0
    for frame in frames:
        frame.id_switches = []
        for match in frame.matches:
            e, a = match.expected_track_id, match.actual_track_id
            if e is None or a is None:
                continue
            was_a, was_e = partner_of_expected.get(e, a), partner_of_actual.get(a, e)
            if was_a != a or was_e != e:
                switches += 1
                before = (f"expected track {e} was actual {was_a}" if was_a != a
                          else f"actual track {a} was expected {was_e}")
                frame.id_switches.append(f"expected track {e} is actual track {a} "
                                         f"({before})")
            partner_of_expected[e], partner_of_actual[a] = a, e
    return switches


def _keyed(poses: PoseFile, by_index: bool) -> dict[int, PoseFrame]:
    if by_index:
        return {frame.frame_index: frame for frame in poses.frames}  # type: ignore[misc]
    return dict(enumerate(poses.frames))


def _check_same_video(expected: dict[int, PoseFrame], actual: dict[int, PoseFrame],
                      by_index: bool) -> None:
    what = "index" if by_index else "position (image id order)"
    if expected.keys() != actual.keys():
        first = min(expected.keys() ^ actual.keys())
        side = "actual" if first in expected else "expected"
        raise DifferentVideosError(
            f"frames differ: expected has {len(expected)} frames, actual {len(actual)}; "
            f"first missing {what} {first} (not in {side})")
    for key in sorted(expected):
        e, a = expected[key], actual[key]
        if (e.width, e.height) != (a.width, a.height):
            raise DifferentVideosError(
                f"different videos: frame {key} is {e.width}x{e.height} in expected, "
                f"{a.width}x{a.height} in actual")


def _compare_frame(key: int, expected: PoseFrame, actual: PoseFrame,
                   tolerances: Tolerances, method: str) -> FrameComparison:
    oks = oks_matrix(expected.keypoints, expected.areas, actual.keypoints)
    pairs = match_people(oks, tolerances.match_floor, method)
    matches = []
    if pairs:
        e_index, a_index = (np.array(side) for side in zip(*pairs))
        e_points, a_points = expected.keypoints[e_index], actual.keypoints[a_index]
        in_expected, in_actual = e_points[..., 2] > 0, a_points[..., 2] > 0  # M x 17
        both = in_expected & in_actual
        distance = np.linalg.norm(e_points[..., :2] - a_points[..., :2], axis=-1)  # M x 17
        distance = np.where(both, distance, 0.0)
        shared = both.sum(-1)  # M
        worst = distance.argmax(-1)  # M
        drift_max = np.round(distance.max(-1), _PX_DECIMALS).tolist()
        drift_mean = np.round(distance.sum(-1) / np.maximum(shared, 1), _PX_DECIMALS).tolist()
        pair_oks = np.round(oks[e_index, a_index], _OKS_DECIMALS).tolist()
        only_e, only_a = in_expected & ~both, in_actual & ~both
        any_e, any_a = only_e.any(-1).tolist(), only_a.any(-1).tolist()
        for m, (e, a) in enumerate(pairs):
            has_shared = bool(shared[m])
            matches.append(PersonMatch(
                expected_id=expected.ids[e], actual_id=actual.ids[a], oks=pair_oks[m],
                drift_mean_px=drift_mean[m] if has_shared else None,
                drift_max_px=drift_max[m] if has_shared else None,
                worst_keypoint=COCO17_NAMES[worst[m]] if drift_max[m] > 0 else None,
                only_expected=_names(only_e[m]) if any_e[m] else [],
                only_actual=_names(only_a[m]) if any_a[m] else [],
                expected_track_id=expected.people[e].track_id if expected.people else None,
                actual_track_id=actual.people[a].track_id if actual.people else None))
    matched_e = {e for e, _ in pairs}
    matched_a = {a for _, a in pairs}
    frame = FrameComparison(
        frame_index=key, timestamp=expected.timestamp,
        expected_image_id=expected.image_id, actual_image_id=actual.image_id,
        people_expected=len(expected.ids), people_actual=len(actual.ids), matches=matches,
        missing=[pid for i, pid in enumerate(expected.ids) if i not in matched_e],
        extra=[pid for i, pid in enumerate(actual.ids) if i not in matched_a])
    frame.reasons = _reasons(frame, tolerances)
    frame.differs = bool(frame.reasons)
    return frame


def _names(mask: np.ndarray) -> list[str]:
    return [COCO17_NAMES[k] for k in np.flatnonzero(mask)]


def _reasons(frame: FrameComparison, tolerances: Tolerances) -> list[str]:
    reasons = []
    for match in frame.matches:
        if match.oks < tolerances.min_oks:
            reasons.append(f"person {match.expected_id}: OKS {match.oks:.3f} < "
                           f"{tolerances.min_oks:g}")
        if (tolerances.max_drift is not None and match.drift_max_px is not None
                and match.drift_max_px > tolerances.max_drift):
            reasons.append(f"person {match.expected_id}: {match.worst_keypoint} moved "
                           f"{match.drift_max_px:.2f} px > {tolerances.max_drift:g}")
    if len(frame.missing) > tolerances.max_missing:
        reasons.append(f"{len(frame.missing)} missing > {tolerances.max_missing}")
    if len(frame.extra) > tolerances.max_extra:
        reasons.append(f"{len(frame.extra)} extra > {tolerances.max_extra}")
    return reasons


def _summarise(frames: list[FrameComparison]) -> Summary:
    worst_oks = worst_oks_frame = max_drift = max_drift_frame = None
    for frame in frames:
        oks, drift = frame.worst_oks, frame.max_drift_px
        if oks is not None and (worst_oks is None or oks < worst_oks):
            worst_oks, worst_oks_frame = oks, frame.frame_index
        if drift is not None and (max_drift is None or drift > max_drift):
            max_drift, max_drift_frame = drift, frame.frame_index
    compared = len(frames)
    differing = sum(frame.differs for frame in frames)
    return Summary(
        frames_compared=compared, frames_differing=differing,
        diff_fraction=round(differing / compared, _OKS_DECIMALS) if compared else 0.0,
        people_expected=sum(frame.people_expected for frame in frames),
        people_actual=sum(frame.people_actual for frame in frames),
        matched=sum(len(frame.matches) for frame in frames),
        missing=sum(len(frame.missing) for frame in frames),
        extra=sum(len(frame.extra) for frame in frames),
        worst_oks=worst_oks, worst_oks_frame=worst_oks_frame,
        max_drift_px=max_drift, max_drift_frame=max_drift_frame)
