"""posecli track: re-track / smooth saved outputs (COCO, JSON lines, OpenPose) without the
network; and posecli.readers, which reads them back."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest
from test_cli import assert_one_line_error, run_cli
from test_compare import person

from posecli.formats import FrameResult, build_document, write_json
from posecli.readers import UnreadableOutputError, read_poses
from posecli.sinks import frame_record, jsonl_trailer

INFO = {"tool": "posecli", "version": "0.1.0", "complete": True,
        "source": {"path": "walk.mp4", "width": 640, "height": 480},
        "model": {"weights": "w.pth", "sha256": "abc"},
        "options": {"net_height": 368, "tracking": None}}


def walk(gap: tuple[int, int] = (6, 9), frames: int = 14) -> list[FrameResult]:
    """Two people walking right at 10 fps; the second is missing in frames [gap)."""
    out = []
    for k in range(frames):
        people = [person(100 + 8 * k, 150, move={"nose": ((-1) ** k * 2.0, 0.0)})]
        if not gap[0] <= k < gap[1]:
            people.append(person(400 + 6 * k, 250))
        out.append(FrameResult(k, k / 10, 640, 480, f"walk.mp4#{k}", people))
    return out


def save(path: Path, fmt: str, frames: list[FrameResult] | None = None) -> Path:
    frames = walk() if frames is None else frames
    if fmt == "jsonl":
        path.write_bytes(b"".join(orjson.dumps(frame_record(f)) + b"\n" for f in frames)
                         + jsonl_trailer(len(frames), INFO))
    else:
        write_json(build_document(fmt, frames, INFO), path)
    return path


def load(path: Path) -> dict:
    return orjson.loads(path.read_bytes())


def track_ids(doc: dict) -> list[list[int]]:
    by_image: dict[int, list[int]] = {}
    for a in doc["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a["track_id"])
    return [by_image.get(image["id"], []) for image in doc["images"]]


def test_retracking_gives_ids_and_keeps_the_input_provenance(tmp_path, capsys):
    source = save(tmp_path / "in.json", "coco")
    code, _, err = run_cli(["track", source, "--out", tmp_path / "out.json"], capsys)
    assert code == 0, err
    assert "14 frames, 25 people, 2 tracks" in err
    doc = load(tmp_path / "out.json")
    assert track_ids(doc) == [[1, 2]] * 6 + [[1]] * 3 + [[1, 2]] * 5
    assert doc["info"]["model"] == INFO["model"] and doc["info"]["source"] == INFO["source"]
    assert doc["info"]["options"]["net_height"] == 368
    assert doc["info"]["options"]["tracking"]["buffer_seconds"] == 1.0
    assert doc["info"]["retrack"]["input"] == str(source)
    assert doc["info"]["retrack"]["input_tracking"] is None
    # Nothing but the ids changed: the annotations equal a tracked run's.
    plain = load(source)
    for a, b in zip(plain["annotations"], doc["annotations"]):
        assert {k: v for k, v in b.items() if k != "track_id"} == a


def test_tracking_options_change_the_ids(tmp_path, capsys):
    source = save(tmp_path / "in.json", "coco")
    code, _, err = run_cli(["track", source, "--out", tmp_path / "out.json",
                            "--track-buffer", 0.1], capsys)
    assert code == 0, err
    # The second person is gone for 0.3 s, longer than the buffer: a new track.
    assert track_ids(load(tmp_path / "out.json"))[9:] == [[1, 3]] * 5
    # Existing ids are ignored: tracking the re-tracked file with defaults gives 2 tracks.
    code, _, err = run_cli(["track", tmp_path / "out.json", "--out", tmp_path / "again.json"],
                           capsys)
    assert code == 0 and "2 tracks" in err


@pytest.mark.parametrize("fmt", ["coco", "jsonl", "openpose"])
def test_the_output_keeps_the_input_format(tmp_path, capsys, fmt):
    source = save(tmp_path / f"in.{fmt}", fmt)
    out = tmp_path / f"out.{fmt}"
    code, _, err = run_cli(["track", source, "--out", out], capsys)
    assert code == 0, err
    poses = read_poses(out)
    assert poses.layout == fmt
    assert [frame.track_ids for frame in poses.frames] == \
        [[1, 2]] * 6 + [[1]] * 3 + [[1, 2]] * 5
    original = read_poses(source)
    for a, b in zip(original.frames, poses.frames):
        for p, q in zip(a.people, b.people):
            np.testing.assert_array_equal(p.keypoints, q.keypoints)  # the neck too (openpose)
            assert p.score == q.score


def test_openpose_to_coco_and_csv(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    source = save(tmp_path / "in.json", "openpose")
    code, _, err = run_cli(["track", source, "--out", tmp_path / "out.json", "--format", "coco"],
                           capsys)
    assert code == 0, err
    doc = load(tmp_path / "out.json")
    assert doc["images"][0]["width"] == 640 and len(doc["annotations"]) == 25
    code, _, err = run_cli(["track", source, "--out", tmp_path / "out.csv"], capsys)
    assert code == 2 and "--format csv" in err
    code, _, err = run_cli(["track", source, "--out", tmp_path / "out.csv", "--format", "csv"],
                           capsys)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "out.csv")
    assert table["track_id"].tolist() == [a["track_id"] for a in doc["annotations"]]


def test_smoothing_keeps_raw_keypoints_and_can_be_undone(tmp_path, capsys):
    source = save(tmp_path / "in.json", "coco")
    smoothed, back = tmp_path / "smooth.json", tmp_path / "back.json"
    code, _, err = run_cli(["track", source, "--out", smoothed, "--smooth",
                            "--smooth-min-cutoff", 0.5], capsys)
    assert code == 0, err
    raw, doc = load(source), load(smoothed)
    assert [a["raw_keypoints"] for a in doc["annotations"]] == \
        [a["keypoints"] for a in raw["annotations"]]
    nose = [a["keypoints"][0] for a in doc["annotations"] if a["track_id"] == 1]
    raw_nose = [a["keypoints"][0] for a in raw["annotations"][::2][:len(nose)]]
    assert np.abs(np.diff(nose, 2)).mean() < 0.5 * np.abs(np.diff(raw_nose, 2)).mean()
    assert doc["info"]["options"]["tracking"]["smooth"]["min_cutoff"] == 0.5
    # Without --smooth, a smoothed file gives back its raw keypoints.
    code, _, err = run_cli(["track", smoothed, "--out", back], capsys)
    assert code == 0, err
    undone = load(back)
    assert [a["keypoints"] for a in undone["annotations"]] == \
        [a["keypoints"] for a in raw["annotations"]]
    assert all("raw_keypoints" not in a for a in undone["annotations"])
    assert undone["info"]["retrack"]["input_tracking"]["smooth"]["min_cutoff"] == 0.5


def test_keep_ids_smooths_along_the_files_ids(tmp_path, capsys):
    doc = load(save(tmp_path / "in.json", "coco"))
    for a in doc["annotations"]:
        a["track_id"] = 50 + a["id"] % 2  # hand-made ids, swapped every frame
    (tmp_path / "ids.json").write_bytes(orjson.dumps(doc))
    code, _, err = run_cli(["track", tmp_path / "ids.json", "--out", tmp_path / "out.json",
                            "--keep-ids", "--smooth"], capsys)
    assert code == 0, err
    out = load(tmp_path / "out.json")
    assert [a["track_id"] for a in out["annotations"]] == \
        [a["track_id"] for a in doc["annotations"]]
    assert out["info"]["options"]["tracking"]["keep_ids"] is True
    code, _, err = run_cli(["track", save(tmp_path / "plain.json", "coco"), "--out",
                            tmp_path / "x.json", "--keep-ids"], capsys)
    assert_one_line_error(code, err, "without a track id")
    assert code == 1 and not (tmp_path / "x.json").exists()


def test_never_writes_over_its_input(tmp_path, capsys, monkeypatch):
    source = save(tmp_path / "in.json", "coco")
    before = source.read_bytes()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link.json").symlink_to(source)
    for out in (source, "in.json", "./sub/../in.json", "link.json"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        code, _, err = run_cli(["track", source, "--out", out], capsys)
        assert code == 2, out
        assert_one_line_error(code, err, "is the input file")
    assert source.read_bytes() == before


def test_bad_input_is_one_line_and_no_output(tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    for name, fragment in (("bad.json", "not valid JSON"), ("list.json", "JSON list"),
                           ("missing.json", "cannot read")):
        code, _, err = run_cli(["track", tmp_path / name, "--out", tmp_path / "o.json"], capsys)
        assert code == 1
        assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "o.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "list.json"]


def test_reads_stdin_and_writes_stdout(tmp_path, capsys, monkeypatch):
    data = save(tmp_path / "in.jsonl", "jsonl").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, err = run_cli(["track", "-", "--out", "-"], capsys)
    assert code == 0, err
    *records, trailer = [orjson.loads(line) for line in out.splitlines()]
    assert [[p["track_id"] for p in r["people"]] for r in records][:2] == [[1, 2], [1, 2]]
    assert trailer["complete"] is True and trailer["frames"] == len(records)


def test_readers_keep_scores_ids_and_raw_keypoints(tmp_path):
    frames = walk()
    people = frames[0].people
    frames[0] = FrameResult(0, 0.0, 640, 480, "walk.mp4#0", [
        type(p)(p.keypoints, p.score, p.total_score, p.num_parts, track_id=i + 4,
                raw_keypoints=p.keypoints + 1.0) for i, p in enumerate(people)])
    poses = read_poses(save(tmp_path / "in.json", "coco", frames))
    first = poses.frames[0]
    assert first.track_ids == [4, 5] and first.file_name == "walk.mp4#0"
    assert first.people[0].raw_keypoints is not None
    assert poses.frames[1].track_ids == [None, None]
    assert poses.info == INFO and poses.layout == "coco"
    np.testing.assert_allclose(first.people[0].keypoints[0], [102.0, 120.0, 0.9])
    assert first.people[0].keypoints[1].tolist() == [0.0, 0.0, 0.0]  # COCO has no neck
    np.testing.assert_allclose(first.keypoints[0, 0], [102.0, 120.0, 2.0])
    with pytest.raises(UnreadableOutputError, match="track_id"):
        doc = load(tmp_path / "in.json")
        doc["annotations"][0]["track_id"] = "one"
        (tmp_path / "bad.json").write_bytes(orjson.dumps(doc))
        read_poses(tmp_path / "bad.json")
