"""posecli compare --same-ids: identities must correspond one to one (ID switches counted)."""

from __future__ import annotations

from pathlib import Path

import orjson
from test_cli import run_cli
from test_compare import person

from posecli.compare import Tolerances, compare_files
from posecli.formats import FrameResult, coco_document, write_json


def write(path: Path, ids: list[list[int | None]]) -> Path:
    """Frames of two people (left, right) standing still, with the given track ids."""
    frames = []
    for k, frame_ids in enumerate(ids):
        people = [type(p)(p.keypoints, p.score, p.total_score, p.num_parts, track_id=i)
                  for p, i in zip([person(150, 150), person(450, 200)], frame_ids)]
        frames.append(FrameResult(k, k / 10, 640, 480, f"v.mp4#{k}", people))
    write_json(coco_document(frames, {"tool": "posecli"}), path)
    return path


def switches(tmp_path: Path, expected: list, actual: list, **tolerances) -> int:
    result = compare_files(write(tmp_path / "e.json", expected), write(tmp_path / "a.json", actual),
                           Tolerances(same_ids=True, **tolerances))
    return result.summary.id_switches


def test_same_identities_under_other_names_pass(tmp_path):
    assert switches(tmp_path, [[1, 2]] * 6, [[1, 2]] * 6) == 0
    assert switches(tmp_path, [[1, 2]] * 6, [[7, 3]] * 6) == 0


def test_swapped_identities_count_two_switches(tmp_path):
    assert switches(tmp_path, [[1, 2]] * 6, [[1, 2]] * 3 + [[2, 1]] * 3) == 2


def test_one_actual_track_taking_over_another_person_counts_one(tmp_path):
    # Actual track 1 is the left person, then the right one (whose own track vanished).
    expected = [[1, 2]] * 3 + [[1, 2]] * 3
    actual = [[1, 2]] * 3 + [[5, 1]] * 3
    assert switches(tmp_path, expected, actual) == 2  # 1 -> 5 for left, track 1 taken over
    assert switches(tmp_path, [[1, 2]] * 3 + [[1, 3]] * 3, [[1, 2]] * 3 + [[1, 2]] * 3) == 1


def test_command_line_fails_on_switches_only_when_asked(tmp_path, capsys):
    expected = write(tmp_path / "e.json", [[1, 2]] * 6)
    actual = write(tmp_path / "a.json", [[1, 2]] * 3 + [[2, 1]] * 3)
    code, out, _ = run_cli(["compare", expected, actual], capsys)
    assert code == 0 and "ID switches" not in out  # off by default
    code, out, _ = run_cli(["compare", expected, actual, "--same-ids"], capsys)
    assert code == 1
    assert "ID switches 2" in out and "2 ID switches, more than the 0 allowed" in out
    assert "frames that differ" in out and "expected track 1 is" in out
    code, out, _ = run_cli(["compare", expected, actual, "--same-ids", "--max-id-switches", 2],
                           capsys)
    assert code == 0, out
    code, out, _ = run_cli(["compare", expected, actual, "--same-ids", "--json"], capsys)
    result = orjson.loads(out)
    assert result["summary"]["id_switches"] == 2
    assert [len(f["id_switches"]) for f in result["frames"]] == [0, 0, 0, 2, 0, 0]
    assert result["frames"][3]["id_switches"][0] == \
        "expected track 1 is actual track 2 (expected track 1 was actual 1)"
    assert result["frames"][0]["matches"][0]["actual_track_id"] == 1


def test_untracked_files_cannot_be_checked_for_identities(tmp_path, capsys):
    expected = write(tmp_path / "e.json", [[1, 2]] * 3)
    actual = write(tmp_path / "a.json", [[None, None]] * 3)
    code, _, err = run_cli(["compare", expected, actual, "--same-ids"], capsys)
    assert code == 2 and "without a track_id" in err and len(err.strip().splitlines()) == 1
