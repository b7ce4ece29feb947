"""``posecli compare``: check a new output against a reference one (CI regression check).

Exit code 0 when the differences are within tolerance, 1 when they are not, 2
when an input cannot be used (unreadable, not JSON, not a COCO keypoints file,
a different video, or the output of a run that did not finish). The library side
is :mod:`posecli.compare`.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..compare import CompareResult, FrameComparison, Tolerances, compare_files
from ..outputs import write_stdout

_DEFAULTS = Tolerances()
_LOG_WIDTH = 120


def compare(
    expected: Path = typer.Argument(..., metavar="EXPECTED",
                                    help="Reference output (--format coco or jsonl)."),
    actual: Path = typer.Argument(..., metavar="ACTUAL",
                                  help="Output to check (same formats), or - for stdin."),
    min_oks: float = typer.Option(
        _DEFAULTS.min_oks, "--min-oks", min=0.0, max=1.0, metavar="OKS",
        help="Minimum OKS of every matched person."),
    max_missing: int = typer.Option(
        _DEFAULTS.max_missing, "--max-missing", min=0, metavar="N",
        help="Expected people without a match allowed per frame."),
    max_extra: int = typer.Option(
        _DEFAULTS.max_extra, "--max-extra", min=0, metavar="N",
        help="Actual people without a match allowed per frame."),
    max_diff_frames: float = typer.Option(
        _DEFAULTS.max_diff_frames, "--max-diff-frames", min=0.0, max=1.0, metavar="FRACTION",
        help="Fraction of the frames (0 to 1, not a count) allowed to differ."),
    max_drift: float | None = typer.Option(
        None, "--max-drift", min=0.0, metavar="PX",
        help="Largest keypoint displacement in pixels allowed per matched person (default: "
             "not checked)."),
    match_floor: float = typer.Option(
        _DEFAULTS.match_floor, "--match-floor", min=0.0, max=1.0, metavar="OKS",
        help="OKS a pair needs to count as the same person at all (below it: one missing "
             "and one extra person)."),
    same_ids: bool = typer.Option(
        False, "--same-ids", help="Also require the same identities (track ids, up to "
        "renaming); ID switches are counted over the matched people."),
    max_id_switches: int = typer.Option(
        _DEFAULTS.max_id_switches, "--max-id-switches", min=0, metavar="N",
        help="ID switches allowed in all with --same-ids."),
    rows: int = typer.Option(20, "--rows", min=0, metavar="N",
                             help="Differing frames listed in the table."),
    json_out: bool = typer.Option(
        False, "--json", help="Print the full result (every frame) as JSON instead of a table."),
    quiet: bool = typer.Option(False, "--quiet", "-q",
                               help="Print only the PASS/FAIL summary line."),
    allow_incomplete: bool = typer.Option(
        False, "--allow-incomplete",
        help="Compare an output whose run did not finish (interrupted; a JSON lines file "
             "without its completion line) instead of refusing it (exit 2)."),
) -> None:
    """Check an output against a reference output of the same video.

    People are matched per frame by COCO's object keypoint similarity (OKS).
    A frame differs when a matched person's OKS is below --min-oks (or a
    keypoint moved more than --max-drift pixels), or when more people than
    --max-missing / --max-extra have no match. The check fails when more than
    --max-diff-frames of the frames differ. With --same-ids, it also fails when
    more than --max-id-switches matched people changed identity (track_id) from
    the other file's. Exit codes: 0 pass, 1 fail, 2 bad input.

    Example: posecli compare expected.json actual.json --min-oks 0.9
    """
    tolerances = Tolerances(min_oks=min_oks, max_missing=max_missing, max_extra=max_extra,
                            max_diff_frames=max_diff_frames, max_drift=max_drift,
                            match_floor=match_floor, same_ids=same_ids,
                            max_id_switches=max_id_switches)
    result = compare_files(expected, actual, tolerances, allow_incomplete=allow_incomplete)
    if json_out:
        write_stdout(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print_report(result, rows=rows, quiet=quiet)
    if not result.passed:
        raise typer.Exit(1)


def print_report(result: CompareResult, rows: int = 20, quiet: bool = False,
                 console: Console | None = None) -> None:
    """A table of the differing frames (up to ``rows``), then a one-line summary."""
    if console is None:
        console = Console(highlight=False)
        if not console.is_terminal and "COLUMNS" not in os.environ:
            console.width = _LOG_WIDTH  # CI logs: wide enough for the reasons column
    differing = result.differing_frames
    if not quiet and differing and rows > 0:
        console.print(_table(differing[:rows]))
        if len(differing) > rows:
            console.print(f"... and {len(differing) - rows} more differing frames "
                          "(--rows N, or --json for all)", markup=False)
    console.print(summary_line(result), markup=False, soft_wrap=True)
    if not quiet:
        for failure in result.failures:
            console.print(f"  {failure}", markup=False, soft_wrap=True)


def summary_line(result: CompareResult) -> str:
    """``PASS: ...`` or ``FAIL: ...`` with frames, worst OKS, max drift, missing, extra."""
    s = result.summary
    verdict = "PASS" if result.passed else "FAIL"
    oks = "n/a" if s.worst_oks is None else f"{s.worst_oks:.3f} (frame {s.worst_oks_frame})"
    drift = ("n/a" if s.max_drift_px is None
             else f"{s.max_drift_px:.2f} px (frame {s.max_drift_frame})")
    switches = "" if s.id_switches is None else f"; ID switches {s.id_switches}"
    return (f"{verdict}: {s.frames_compared} frames compared, {s.frames_differing} differ "
            f"({100 * s.diff_fraction:.1f}%); worst OKS {oks}; max drift {drift}; "
            f"missing {s.missing}, extra {s.extra}{switches}")


def _table(frames: list[FrameComparison]) -> Table:
    table = Table(title="frames that differ", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("frame", justify="right", no_wrap=True)
    table.add_column("time s", justify="right", no_wrap=True)
    table.add_column("people", justify="right", no_wrap=True)
    table.add_column("worst OKS", justify="right", no_wrap=True)
    table.add_column("drift px", justify="right", no_wrap=True)
    table.add_column("miss", justify="right", no_wrap=True)
    table.add_column("extra", justify="right", no_wrap=True)
    table.add_column("why", overflow="fold")
    for frame in frames:
        oks, drift = frame.worst_oks, frame.max_drift_px
        table.add_row(
            str(frame.frame_index),
            "" if frame.timestamp is None else f"{frame.timestamp:.3f}",
            f"{frame.people_expected}/{frame.people_actual}",
            "" if oks is None else f"{oks:.3f}",
            "" if drift is None else f"{drift:.2f}",
            str(len(frame.missing)),
            str(len(frame.extra)),
            Text("; ".join([*frame.reasons, *frame.id_switches])),
        )
    return table
