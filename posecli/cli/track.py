"""``posecli track``: track (and smooth) a saved output again, without the network."""

from __future__ import annotations

import typer

from .console import count, say
from .options import SMOOTH, SMOOTH_BETA, SMOOTH_MIN_CUTOFF, TRACK_BUFFER, TRACK_MIN_OKS


def track(
    input: str = typer.Argument(..., help="A posecli output: COCO JSON, JSON lines or OpenPose "
                                "layout (- for stdin)."),
    out: str = typer.Option(..., "--out", "-o", metavar="FILE",
                            help="Output file, or - for stdout."),
    fmt: str | None = typer.Option(
        None, "--format", metavar="FORMAT",
        help="coco, openpose, jsonl or csv (default: the input's format)."),
    keep_ids: bool = typer.Option(
        False, "--keep-ids", help="Keep the file's track ids (only smooth or convert)."),
    track_buffer: float = TRACK_BUFFER,
    track_min_oks: float = TRACK_MIN_OKS,
    smooth: bool = SMOOTH,
    smooth_min_cutoff: float = SMOOTH_MIN_CUTOFF,
    smooth_beta: float = SMOOTH_BETA,
) -> None:
    """Give the people of a saved output new track ids, and smooth them if asked.

    The ids already in the file are ignored (--keep-ids keeps them). A smoothed
    file is tracked from its raw keypoints; without --smooth the output holds
    those raw keypoints. Examples: posecli track poses.json --out tuned.json
    --track-buffer 2; posecli track poses.json --smooth --format csv --out poses.csv
    """
    from ..formats import check_output_path
    from ..track.io import retrack_file
    from .options import track_params

    params = track_params(True, track_buffer, track_min_oks, smooth, smooth_min_cutoff,
                          smooth_beta)
    check_output_path(out)
    summary = retrack_file(input, out, params, fmt, keep_ids)
    say(f"posecli: {count(summary.frames, 'frame')}, "
        f"{count(summary.people, 'person', 'people')}, {count(summary.tracks, 'track')} "
        f"-> {out} ({summary.format})")
