"""Output documents: COCO's integer visibility flags."""

from __future__ import annotations

import numpy as np
import orjson

from posecli.formats import FrameResult, coco_annotation
from posecli.parse import Person
from posecli.sinks import frame_record


def _person() -> Person:
    keypoints = np.zeros((18, 3))
    keypoints[[0, 1, 2, 5]] = [[10.25, 20.5, 0.9], [12.0, 30.0, 0.8], [5.0, 31.0, 1.2],
                               [19.0, 31.0, 0.7]]
    return Person(keypoints=keypoints, score=0.85, total_score=3.4, num_parts=4)


def test_coco_visibility_is_an_integer():
    annotation = coco_annotation(_person(), 1, 1)
    triplets = [annotation["keypoints"][i:i + 3] for i in range(0, 51, 3)]
    assert triplets[0] == [10.25, 20.5, 2]  # nose, found
    assert triplets[1] == [0.0, 0.0, 0]  # left eye, missing
    assert all(type(v) is int for _, _, v in triplets)
    assert all(type(x) is float and type(y) is float for x, y, _ in triplets)
    # As written to files (COCO documents and JSON lines alike): 2, not 2.0.
    text = orjson.dumps(annotation).decode()
    assert '"keypoints":[10.25,20.5,2,0.0,0.0,0,' in text


def test_json_lines_records_use_the_same_keypoints():
    record = frame_record(FrameResult(0, 0.0, 40, 40, "x#0", [_person()]))
    assert record["people"][0]["keypoints"][:6] == [10.25, 20.5, 2, 0.0, 0.0, 0]
