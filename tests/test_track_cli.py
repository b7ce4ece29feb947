"""Tracking in the pipeline: video and batch give track ids, smooth, write CSV."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from test_cli import assert_one_line_error, run_cli

from posecli.csv_format import csv_is_complete, sidecar_path
from posecli.track import TrackParams

WALKERS = Path(__file__).resolve().parents[1] / "samples" / "walkers.mp4"
DEMO = ["--weights", "demo", "--net-height", 256, "--quiet", "--frames", "0:8"]


def _video(tmp_path, capsys, name: str, *args) -> Path:
    out = tmp_path / name
    code, _, err = run_cli(["video", WALKERS, *DEMO, "--out", out, *args], capsys)
    assert code == 0, err
    return out


def test_ids_do_not_depend_on_batch_size(tmp_path, capsys, one_torch_thread):
    one = _video(tmp_path, capsys, "one.json", "--batch-size", 1)
    three = _video(tmp_path, capsys, "three.json", "--batch-size", 3)
    doc, other = orjson.loads(one.read_bytes()), orjson.loads(three.read_bytes())
    assert (doc["info"]["options"].pop("batch_size"), other["info"]["options"].pop("batch_size")
            ) == (1, 3)  # recorded: a batch size can move borderline detections
    assert doc == other
    ids = [a["track_id"] for a in doc["annotations"]]
    assert ids and min(ids) == 1
    first_seen = list(dict.fromkeys(ids))
    assert first_seen == list(range(1, len(first_seen) + 1))  # numbered by first appearance
    assert len(first_seen) < len(ids)  # people keep their ids across frames
    for image_id in {a["image_id"] for a in doc["annotations"]}:
        frame_ids = [a["track_id"] for a in doc["annotations"] if a["image_id"] == image_id]
        assert len(set(frame_ids)) == len(frame_ids)
    tracking = doc["info"]["options"]["tracking"]
    assert tracking == TrackParams().to_dict() and tracking["smooth"] is None


def test_no_track_and_smooth_options(tmp_path, capsys, one_torch_thread):
    plain = orjson.loads(_video(tmp_path, capsys, "plain.json", "--no-track").read_bytes())
    assert plain["info"]["options"]["tracking"] is None
    assert all("track_id" not in a and "raw_keypoints" not in a for a in plain["annotations"])
    smooth = orjson.loads(_video(tmp_path, capsys, "smooth.json", "--smooth",
                                 "--smooth-beta", 0.5, "--track-buffer", 2).read_bytes())
    tracking = smooth["info"]["options"]["tracking"]
    assert tracking["buffer_seconds"] == 2.0 and tracking["smooth"]["beta"] == 0.5
    # The raw keypoints are the unsmoothed run's, and smoothing moved some of them.
    assert [a["raw_keypoints"] for a in smooth["annotations"]] == \
        [a["keypoints"] for a in plain["annotations"]]
    assert any(a["keypoints"] != a["raw_keypoints"] for a in smooth["annotations"])
    code, _, err = run_cli(["video", WALKERS, "--out", tmp_path / "x.json", "--no-track",
                            "--smooth"], capsys)
    assert code == 2
    assert_one_line_error(code, err, "--smooth", "--no-track")
    assert not (tmp_path / "x.json").exists()


def test_openpose_person_id_is_the_track_id(tmp_path, capsys, one_torch_thread):
    coco = orjson.loads(_video(tmp_path, capsys, "c.json").read_bytes())
    openpose = orjson.loads(_video(tmp_path, capsys, "o.json", "--format", "openpose")
                            .read_bytes())
    person_ids = [p["person_id"] for f in openpose["frames"] for p in f["people"]]
    assert person_ids == [[a["track_id"]] for a in coco["annotations"]]
    untracked = orjson.loads(_video(tmp_path, capsys, "u.json", "--format", "openpose",
                                    "--no-track").read_bytes())
    assert {tuple(p["person_id"]) for f in untracked["frames"] for p in f["people"]} == {(-1,)}


def test_video_csv_matches_the_coco_output(tmp_path, capsys, one_torch_thread):
    pd = pytest.importorskip("pandas")
    coco = orjson.loads(_video(tmp_path, capsys, "c.json").read_bytes())
    out = _video(tmp_path, capsys, "c.csv", "--format", "csv")
    table = pd.read_csv(out)
    assert table["track_id"].tolist() == [a["track_id"] for a in coco["annotations"]]
    assert table["score"].tolist() == [a["score"] for a in coco["annotations"]]
    assert set(table["file"]) == {"walkers.mp4"}
    record = orjson.loads(sidecar_path(out).read_bytes())
    assert record["info"]["options"] == coco["info"]["options"]
    assert csv_is_complete(out)


def test_batch_writes_csv_and_resumes(tmp_path, tiny_weights, small_video, capsys):
    args = ["batch", small_video, "--out-dir", tmp_path / "out", "--weights", tiny_weights,
            "--net-height", 64, "--format", "csv"]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    [output] = list((tmp_path / "out").rglob("*.csv"))
    assert output.name == "small clip.csv" and csv_is_complete(output)
    manifest = orjson.loads((tmp_path / "out" / "manifest.json").read_bytes())
    assert manifest["options"]["tracking"] == TrackParams().to_dict()
    code, _, err = run_cli([*args, "--skip-existing"], capsys)
    assert code == 0 and "1 skipped" in err
    sidecar_path(output).unlink()  # no record: not known complete, so done again
    code, _, err = run_cli([*args, "--skip-existing"], capsys)
    assert code == 0 and "1 ok, 0 skipped" in err and csv_is_complete(output)
