"""``posecli compare``: OKS matching, tolerances, exit codes 0 / 1 / 2, report and JSON."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from posecli.cli import main
from posecli.compare import (
    CompareInputError,
    DifferentVideosError,
    Tolerances,
    compare_files,
    match_people,
)
from posecli.errors import UsageError
from posecli.formats import FrameResult, coco_document, write_json
from posecli.oks import oks_matrix
from posecli.parse import Person
from posecli.skeleton import COCO17_SIGMAS, COCO18_NAMES

WIDTH, HEIGHT = 640, 480

#: A standing person, (dx, dy) from the neck in pixels, COCO-18 order: ~100 x 200 px.
BODY = {
    "nose": (0, -30), "neck": (0, 0),
    "right_shoulder": (-25, 0), "right_elbow": (-35, 40), "right_wrist": (-40, 80),
    "left_shoulder": (25, 0), "left_elbow": (35, 40), "left_wrist": (40, 80),
    "right_hip": (-15, 90), "right_knee": (-18, 135), "right_ankle": (-20, 170),
    "left_hip": (15, 90), "left_knee": (18, 135), "left_ankle": (20, 170),
    "right_eye": (-6, -36), "left_eye": (6, -36), "right_ear": (-12, -32), "left_ear": (12, -32),
}


def person(x: float, y: float, move: dict[str, tuple[float, float]] | None = None,
           drop: tuple[str, ...] = ()) -> Person:
    """A person with its neck at (x, y); ``move`` shifts parts, ``drop`` removes them."""
    keypoints = np.zeros((18, 3))
    for index, name in enumerate(COCO18_NAMES):
        if name in drop:
            continue
        dx, dy = BODY[name]
        mx, my = (move or {}).get(name, (0.0, 0.0))
        keypoints[index] = (x + dx + mx, y + dy + my, 0.9)
    found = int((keypoints[:, 2] > 0).sum())
    return Person(keypoints=keypoints, score=0.8, total_score=0.8 * found, num_parts=found)


def crowd() -> list[Person]:
    return [person(150, 150), person(450, 200)]


def write_doc(path: Path, frames: list[list[Person]], indices: list[int] | None = None,
              size: tuple[int, int] = (WIDTH, HEIGHT)) -> Path:
    """A posecli COCO document of ``frames`` (frame indices 0, 5, 10, ... by default)."""
    indices = indices if indices is not None else [5 * i for i in range(len(frames))]
    results = [FrameResult(index, index / 10, size[0], size[1], f"in.mp4#{index}", people)
               for index, people in zip(indices, frames, strict=True)]
    write_json(coco_document(results, {"tool": "posecli"}), path)
    return path


def run_cli(args: list, capsys) -> tuple[int, str, str]:
    """posecli in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def one_line_error(err: str, *fragments: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("posecli: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def expected(tmp_path) -> Path:
    return write_doc(tmp_path / "expected.json", [crowd() for _ in range(4)])


# --------------------------------------------------------------------------- CLI: pass / fail


def test_identical_files_pass(expected, tmp_path, capsys):
    actual = write_doc(tmp_path / "actual.json", [crowd() for _ in range(4)])
    code, out, err = run_cli(["compare", expected, actual], capsys)
    assert code == 0, err
    assert out.startswith("PASS: 4 frames compared, 0 differ"), out
    assert "frames that differ" not in out
    code, out, _ = run_cli(["compare", expected, actual, "--json"], capsys)
    assert code == 0
    result = orjson.loads(out)
    assert result["passed"] is True and result["failures"] == []
    summary = result["summary"]
    assert summary["worst_oks"] == 1.0
    assert summary["max_drift_px"] == 0.0
    assert (summary["matched"], summary["missing"], summary["extra"]) == (8, 0, 0)
    assert result["matched_by"] == "frame_index"
    assert [f["frame_index"] for f in result["frames"]] == [0, 5, 10, 15]


def test_same_file_twice_passes(expected, capsys):
    code, _, err = run_cli(["compare", expected, expected, "--quiet"], capsys)
    assert code == 0, err


def test_keypoint_moved_beyond_tolerance_fails(expected, tmp_path, capsys):
    frames = [crowd() for _ in range(4)]
    frames[1][0] = person(150, 150, move={"right_wrist": (60, 0)})  # frame_index 5
    actual = write_doc(tmp_path / "actual.json", frames)
    code, out, err = run_cli(["compare", expected, actual], capsys)
    assert code == 1, err
    assert err == ""
    assert "frames that differ" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] == ["5"]]
    assert len(rows) == 1  # frame 5, and only it
    assert rows[0][:7] == ["5", "0.500", "2/2", "0.941", "60.00", "0", "0"]
    assert "person 3: OKS 0.941 < 0.95" in out
    summary = [line for line in out.splitlines() if line.startswith("FAIL:")]
    assert summary and "1 differ" in summary[0]
    assert "max drift 60.00 px (frame 5)" in summary[0]
    assert "worst OKS 0.941 (frame 5)" in summary[0]  # 16 of 17 keypoints agree


def test_keypoint_moved_within_tolerance_passes(expected, tmp_path, capsys):
    frames = [crowd() for _ in range(4)]
    frames[2][1] = person(450, 200, move={"left_knee": (2, -1)})
    actual = write_doc(tmp_path / "actual.json", frames)
    code, out, err = run_cli(["compare", expected, actual, "--json"], capsys)
    assert code == 0, err
    result = orjson.loads(out)
    assert 0.99 < result["summary"]["worst_oks"] < 1.0
    assert result["summary"]["max_drift_px"] == pytest.approx(np.hypot(2, 1), abs=1e-3)
    match = result["frames"][2]["matches"][1]
    assert match["worst_keypoint"] == "left_knee"
    assert match["drift_mean_px"] == pytest.approx(np.hypot(2, 1) / 17, abs=1e-3)
    # ... but not within a drift limit of 1 px.
    code, out, _ = run_cli(["compare", expected, actual, "--max-drift", 1], capsys)
    assert code == 1
    assert "person 6: left_knee moved 2.24 px > 1" in out


def test_min_oks_option(expected, tmp_path, capsys):
    frames = [crowd() for _ in range(4)]
    frames[0][0] = person(150, 150, move={"right_wrist": (60, 0)})
    actual = write_doc(tmp_path / "actual.json", frames)
    assert run_cli(["compare", expected, actual], capsys)[0] == 1
    assert run_cli(["compare", expected, actual, "--min-oks", 0.9], capsys)[0] == 0


def test_missing_person(expected, tmp_path, capsys):
    frames = [crowd() for _ in range(4)]
    frames[3] = frames[3][:1]
    actual = write_doc(tmp_path / "actual.json", frames)
    code, out, _ = run_cli(["compare", expected, actual, "--json"], capsys)
    assert code == 1
    result = orjson.loads(out)
    assert result["summary"]["missing"] == 1 and result["summary"]["extra"] == 0
    differing = [f for f in result["frames"] if f["differs"]]
    assert [f["frame_index"] for f in differing] == [15]
    assert differing[0]["missing"] == [8]  # the annotation id in the expected file
    assert differing[0]["reasons"] == ["1 missing > 0"]
    code, out, _ = run_cli(["compare", expected, actual, "--max-missing", 1], capsys)
    assert code == 0, out
    assert "missing 1, extra 0" in out


def test_extra_person(expected, tmp_path, capsys):
    frames = [crowd() for _ in range(4)]
    frames[0] = frames[0] + [person(300, 250)]
    actual = write_doc(tmp_path / "actual.json", frames)
    code, out, _ = run_cli(["compare", expected, actual], capsys)
    assert code == 1
    assert "missing 0, extra 1" in out
    assert "1 extra > 0" in out
    assert run_cli(["compare", expected, actual, "--max-extra", 1], capsys)[0] == 0


def test_person_far_away_is_missing_and_extra_not_a_match(expected, tmp_path, capsys):
    frames = [crowd() for _ in range(4)]
    frames[1][0] = person(150, 400)  # moved 250 px down: OKS ~0, under the matching floor
    actual = write_doc(tmp_path / "actual.json", frames)
    code, out, _ = run_cli(["compare", expected, actual, "--json"], capsys)
    assert code == 1
    summary = orjson.loads(out)["summary"]
    assert (summary["matched"], summary["missing"], summary["extra"]) == (7, 1, 1)


def test_max_diff_frames_allows_a_fraction(expected, tmp_path, capsys):
    frames = [crowd() for _ in range(4)]
    frames[2] = []  # one frame of four loses both people
    actual = write_doc(tmp_path / "actual.json", frames)
    code, out, _ = run_cli(["compare", expected, actual], capsys)
    assert code == 1
    assert "1 of 4 frames differ (25.0%), more than the 0.0% allowed" in out
    assert run_cli(["compare", expected, actual, "--max-diff-frames", 0.25], capsys)[0] == 0
    assert run_cli(["compare", expected, actual, "--max-diff-frames", 0.2], capsys)[0] == 1


def test_table_is_limited_to_rows(expected, tmp_path, capsys):
    actual = write_doc(tmp_path / "actual.json", [[] for _ in range(4)])
    code, out, _ = run_cli(["compare", expected, actual, "--rows", 2], capsys)
    assert code == 1
    assert "... and 2 more differing frames" in out
    code, out, _ = run_cli(["compare", expected, actual, "--quiet"], capsys)
    assert code == 1
    assert out.strip().splitlines() == [out.strip()]
    assert out.startswith("FAIL: 4 frames compared, 4 differ (100.0%); worst OKS n/a")


def test_json_output_on_failure(expected, tmp_path, capsys):
    frames = [crowd() for _ in range(4)]
    frames[1][1] = person(450, 200, move={"nose": (0, 30)}, drop=("left_ankle",))
    actual = write_doc(tmp_path / "actual.json", frames)
    code, out, err = run_cli(["compare", expected, actual, "--json", "--min-oks", 0.99], capsys)
    assert code == 1 and err == ""
    result = orjson.loads(out)
    assert result["passed"] is False
    assert result["tolerances"]["min_oks"] == 0.99
    assert result["summary"]["frames_differing"] == 1
    assert result["summary"]["worst_oks_frame"] == 5
    match = result["frames"][1]["matches"][1]
    assert (match["expected_id"], match["actual_id"]) == (4, 4)
    assert match["only_expected"] == ["left_ankle"] and match["only_actual"] == []
    assert match["worst_keypoint"] == "nose" and match["drift_max_px"] == 30.0
    assert result["frames"][1]["reasons"][0].startswith("person 4: OKS ")


def test_actual_from_stdin(expected, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(expected.read_bytes())))
    code, out, err = run_cli(["compare", expected, "-"], capsys)
    assert code == 0, err
    assert out.startswith("PASS")


# --------------------------------------------------------------------------- CLI: exit 2


def test_different_frame_sizes_exit_2(expected, tmp_path, capsys):
    actual = write_doc(tmp_path / "actual.json", [crowd() for _ in range(4)], size=(320, 240))
    code, out, err = run_cli(["compare", expected, actual], capsys)
    assert code == 2 and out == ""
    one_line_error(err, "different videos", "frame 0 is 640x480 in expected, 320x240 in actual")


def test_different_frame_indices_exit_2(expected, tmp_path, capsys):
    actual = write_doc(tmp_path / "actual.json", [crowd() for _ in range(3)])
    code, _, err = run_cli(["compare", expected, actual], capsys)
    assert code == 2
    one_line_error(err, "frames differ: expected has 4 frames, actual 3; first missing index 15")
    shifted = write_doc(tmp_path / "shifted.json", [crowd() for _ in range(4)], [1, 6, 11, 16])
    code, _, err = run_cli(["compare", expected, shifted], capsys)
    assert code == 2
    one_line_error(err, "expected has 4 frames, actual 4; first missing index 0")


@pytest.mark.parametrize("content, fragment", [
    (None, "cannot read expected file"),
    (b"", "is empty"),
    (b"{not json", "is not valid JSON"),
    (b"\xff\xfe\x00garbage", "is not valid JSON"),
    (b'{"foo": 1}', "needs 'images' and 'annotations'"),
    (b"[1, 2, 3]", "is a JSON list"),
    (b'{"version": 1.3, "frames": []}', "OpenPose layout"),
    (b'{"images": [{"id": 1, "width": 640}], "annotations": []}', "height"),
    (b'{"images": [{"id": 1, "width": 640, "height": 480}], '
     b'"annotations": [{"image_id": 2, "keypoints": []}]}', "not in 'images'"),
    (b'{"images": [{"id": 1, "width": 640, "height": 480}], '
     b'"annotations": [{"image_id": 1, "keypoints": [1, 2, 2]}]}', "3 keypoint values"),
])
def test_unusable_expected_exit_2(tmp_path, expected, content, fragment, capsys):
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_bytes(content)
    code, out, err = run_cli(["compare", bad, expected], capsys)
    assert code == 2 and out == ""
    one_line_error(err, fragment)


def test_directory_and_missing_actual_exit_2(tmp_path, expected, capsys):
    code, _, err = run_cli(["compare", expected, tmp_path], capsys)
    assert code == 2
    one_line_error(err, "cannot read actual file")
    code, _, err = run_cli(["compare", expected, tmp_path / "nope.json"], capsys)
    assert code == 2
    one_line_error(err, "cannot read actual file", "nope.json")


def test_bad_option_exit_2(expected, capsys):
    code, _, err = run_cli(["compare", expected, expected, "--min-oks", 1.5], capsys)
    assert code == 2
    one_line_error(err, "--min-oks")


# --------------------------------------------------------------------------- library


def coco17(p: Person) -> np.ndarray:
    """A person's 17 x 3 (x, y, v) as written in the output."""
    from posecli.formats import coco_annotation
    return np.asarray(coco_annotation(p, 1, 1)["keypoints"]).reshape(17, 3)


def test_oks_matches_coco_formula():
    e = coco17(person(150, 150))[None]
    shift = np.array([3.0, -4.0])
    a = e.copy()
    a[..., :2] += shift
    area = 5000.0
    oks = oks_matrix(e, np.array([area]), a)
    manual = np.mean(np.exp(-25.0 / (2 * area * (2 * COCO17_SIGMAS) ** 2)))
    assert oks.shape == (1, 1)
    assert oks[0, 0] == pytest.approx(manual, rel=1e-9)


def test_oks_visibility_rules():
    e = coco17(person(150, 150))
    a = e.copy()
    a[0] = 0  # nose missing in actual: counts 0
    assert oks_matrix(e[None], [20000.0], a[None])[0, 0] == pytest.approx(16 / 17)
    e2 = e.copy()
    e2[0] = 0  # not labelled in expected: ignored, whatever the actual says
    a2 = e.copy()
    a2[0, :2] += 500
    assert oks_matrix(e2[None], [20000.0], a2[None])[0, 0] == pytest.approx(1.0)
    assert oks_matrix(np.zeros((0, 17, 3)), [], a[None]).shape == (0, 1)


def test_oks_matrix_is_people_by_people():
    people = np.stack([coco17(p) for p in crowd()])
    oks = oks_matrix(people, [20000.0, 20000.0], people[::-1])
    assert oks.shape == (2, 2)
    assert oks[0, 1] == pytest.approx(1.0) and oks[1, 0] == pytest.approx(1.0)
    assert oks[0, 0] < 1e-6 and oks[1, 1] < 1e-6


@pytest.mark.parametrize("method", ["greedy", "optimal"])
def test_match_people(method):
    if method == "optimal":
        pytest.importorskip("scipy")
    oks = np.array([[0.2, 0.95, 0.0],
                    [0.9, 0.3, 0.05],
                    [0.0, 0.0, 0.05]])
    assert match_people(oks, 0.1, method) == [(0, 1), (1, 0)]
    assert match_people(oks, 0.01, method) == [(0, 1), (1, 0), (2, 2)]
    assert match_people(np.zeros((0, 3)), 0.1, method) == []


def test_compare_files_api(expected, tmp_path):
    frames = [crowd() for _ in range(4)]
    frames[1][0] = person(150, 150, move={"right_wrist": (60, 0)})
    actual = write_doc(tmp_path / "actual.json", frames)
    result = compare_files(expected, actual)
    assert not result.passed
    assert [f.frame_index for f in result.differing_frames] == [5]
    assert result.summary.worst_oks == pytest.approx(16 / 17, abs=1e-3)
    result = compare_files(expected, actual, Tolerances(min_oks=0.9), matching="greedy")
    assert result.passed and result.matching == "greedy"
    with pytest.raises(UsageError):
        Tolerances(max_diff_frames=2.0)


def test_frames_without_frame_index_match_by_image_order(expected, tmp_path):
    doc = orjson.loads(expected.read_bytes())
    for image in doc["images"]:
        del image["frame_index"]
    stripped = tmp_path / "stripped.json"
    stripped.write_bytes(orjson.dumps(doc))
    result = compare_files(expected, stripped)
    assert result.passed and result.matched_by == "image_order"
    assert [f.frame_index for f in result.frames] == [0, 1, 2, 3]


def test_library_errors(expected, tmp_path):
    other = write_doc(tmp_path / "other.json", [crowd()], size=(640, 360), indices=[0])
    with pytest.raises(DifferentVideosError) as info:
        compare_files(expected, other)
    assert info.value.exit_code == 2
    with pytest.raises(CompareInputError):
        compare_files(tmp_path / "missing.json", expected)


def test_json_lines_input(expected, tmp_path, capsys):
    sinks = pytest.importorskip("posecli.sinks")
    frames = [FrameResult(5 * i, i / 2, WIDTH, HEIGHT, f"in.mp4#{5 * i}", crowd())
              for i in range(4)]
    lines = tmp_path / "actual.jsonl"
    records = b"".join(orjson.dumps(sinks.frame_record(f)) + b"\n" for f in frames)
    lines.write_bytes(records + sinks.jsonl_trailer(4, {"tool": "posecli", "complete": True}))
    code, out, err = run_cli(["compare", expected, lines, "--json"], capsys)
    assert code == 0, err
    result = orjson.loads(out)
    assert result["summary"]["matched"] == 8 and result["summary"]["worst_oks"] == 1.0
    lines.write_bytes(records + b"{broken\n" + sinks.jsonl_trailer(5, {}))
    code, _, err = run_cli(["compare", expected, lines], capsys)
    assert code == 2
    one_line_error(err, "line 5 is not valid JSON")


def test_auto_matching_falls_back_to_greedy_without_scipy(monkeypatch):
    import importlib.util

    from posecli.compare import resolve_matching
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "scipy" else real(name, *a))
    assert resolve_matching("auto") == "greedy"
    with pytest.raises(UsageError):
        resolve_matching("hungarian")
