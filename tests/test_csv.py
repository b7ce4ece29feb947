"""--format csv: one row per person per frame, pandas-ready, with an info sidecar."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from test_compare import person

from posecli.csv_format import HEADER, CsvSink, csv_is_complete, frame_rows, sidecar_path
from posecli.formats import FrameResult
from posecli.skeleton import COCO17_NAMES
from posecli.video import FrameBatch

pd = pytest.importorskip("pandas")
NO_PIXELS = FrameBatch(np.zeros((0, 0, 0, 3), np.uint8), np.zeros(0, int), np.zeros(0))


def frames() -> list[FrameResult]:
    tracked = person(100, 120, drop=("left_wrist",))
    tracked = type(tracked)(tracked.keypoints, 0.75, 10.0, 17, track_id=3)
    return [FrameResult(0, 0.0, 640, 480, "my, clip.mp4#0", [tracked, person(300, 200)]),
            FrameResult(1, math.nan, 640, 480, "my, clip.mp4#1", []),
            FrameResult(2, 0.2, 640, 480, "my, clip.mp4#2", [person(302, 201)])]


def test_header_names_every_column():
    assert HEADER[:5] == ("file", "frame_index", "timestamp", "track_id", "score")
    assert HEADER[5:8] == ("nose_x", "nose_y", "nose_score")
    assert HEADER[-1] == "right_ankle_score" and len(HEADER) == 5 + 3 * len(COCO17_NAMES)


def test_rows_leave_missing_values_empty():
    rows = frame_rows(frames()[0])
    assert len(rows) == 2 and all(len(row) == len(HEADER) for row in rows)
    first = dict(zip(HEADER, rows[0]))
    assert first["file"] == "my, clip.mp4" and first["frame_index"] == 0
    assert first["track_id"] == 3 and first["score"] == 0.75
    assert (first["left_wrist_x"], first["left_wrist_y"], first["left_wrist_score"]) == \
        ("", "", "")
    assert first["nose_x"] == 100.0 and first["nose_y"] == 90.0 and first["nose_score"] == 0.9
    assert dict(zip(HEADER, rows[1]))["track_id"] == ""  # not tracked


def test_csv_file_loads_in_pandas_with_no_options(tmp_path):
    out = tmp_path / "poses.csv"
    sink = CsvSink(out)
    for frame in frames():
        sink.add(NO_PIXELS, [frame])
    sink.finish({"complete": True, "options": {"tracking": None}})
    table = pd.read_csv(out)
    assert list(table.columns) == list(HEADER)
    assert len(table) == 3
    assert table["file"].tolist() == ["my, clip.mp4"] * 3
    assert table["frame_index"].tolist() == [0, 0, 2]
    assert table["timestamp"].tolist() == [0.0, 0.0, 0.2]
    assert table["track_id"].iloc[0] == 3 and math.isnan(table["track_id"].iloc[1])
    assert math.isnan(table["left_wrist_x"].iloc[0]) and table["left_wrist_x"].iloc[1] == 340
    assert table["nose_x"].dtype.kind == "f"
    record = orjson.loads(sidecar_path(out).read_bytes())
    assert record["info"]["options"] == {"tracking": None}
    assert record["csv"]["rows"] == 3
    assert csv_is_complete(out)


def test_completion_needs_a_matching_complete_sidecar(tmp_path):
    out = tmp_path / "poses.csv"
    sink = CsvSink(out)
    sink.add(NO_PIXELS, frames())
    sink.finish({"complete": True})
    assert csv_is_complete(out)
    data = out.read_bytes()
    out.write_bytes(data + b"x,1\n")  # another run's CSV beside this sidecar
    assert not csv_is_complete(out)
    out.write_bytes(data)
    assert csv_is_complete(out)
    sidecar_path(out).unlink()
    assert not csv_is_complete(out)
    interrupted = CsvSink(out)
    interrupted.add(NO_PIXELS, frames()[:1])
    interrupted.finish({"complete": False})
    assert out.is_file() and not csv_is_complete(out)


def test_discard_leaves_nothing(tmp_path):
    sink = CsvSink(tmp_path / "poses.csv")
    sink.add(NO_PIXELS, frames())
    sink.discard()
    assert list(tmp_path.iterdir()) == []


def test_stdout_gets_the_rows_and_no_sidecar(tmp_path, capsysbinary, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sink = CsvSink("-")
    sink.add(NO_PIXELS, frames())
    sink.finish({"complete": True})
    out = capsysbinary.readouterr().out.decode()
    assert out.splitlines()[0] == ",".join(HEADER) and len(out.splitlines()) == 4
    assert list(tmp_path.iterdir()) == []
