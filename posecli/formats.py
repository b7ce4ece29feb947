"""Output documents (COCO keypoints, OpenPose JSON) and writing them safely.

A document is built in memory from per-frame results, serialised with orjson
and written to a temporary file beside the destination, then renamed: a crash
or an error never leaves a partial output file (see :mod:`posecli.outputs`,
whose temporary-file functions are re-exported here).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from .errors import PoseCliError, UsageError
from .outputs import is_device_or_pipe, write_atomic, write_stdout
from .skeleton import COCO17_NAMES, COCO17_SKELETON, coco18_to_coco17

if TYPE_CHECKING:
    from .person import Person

FORMATS = ("coco", "openpose")
_DECIMALS = 5  # scores are rounded so outputs compare cleanly across runs


@dataclass(frozen=True)
class FrameResult:
    """The people found in one frame.

    ``frame_index``: index in the source (0-based, stream order); ``timestamp``:
    presentation time in seconds; ``width`` x ``height``: frame size in pixels;
    ``file_name``: the frame's name in the output (image path, or video#index).
    """

    frame_index: int
    timestamp: float
    width: int
    height: int
    file_name: str
    people: list[Person]


def coco_document(frames: Iterable[FrameResult], info: dict[str, Any]) -> dict[str, Any]:
    """A COCO keypoints dataset: info, categories, images (one per frame), annotations."""
    images, annotations = [], []
    for image_id, frame in enumerate(frames, start=1):
        images.append({
            "id": image_id,
            "frame_index": frame.frame_index,
            "timestamp": round(float(frame.timestamp), 6),
            "width": frame.width,
            "height": frame.height,
            "file_name": frame.file_name,
        })
        for person in frame.people:
            annotations.append(coco_annotation(person, len(annotations) + 1, image_id))
    return {"info": info, "categories": coco_categories(), "images": images,
            "annotations": annotations}


def coco_categories() -> list[dict[str, Any]]:
    """COCO's one keypoints category: person, its 17 keypoint names and skeleton."""
    return [{
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(COCO17_NAMES),
        "skeleton": [list(limb) for limb in COCO17_SKELETON],
    }]


def coco_annotation(person: Person, annotation_id: int, image_id: int) -> dict[str, Any]:
    """One person as a COCO annotation: 17 x (x, y, v); x, y in pixels (floats), v the
    integer visibility flag: 2 found, 0 missing (with x = y = 0.0).

    A tracked person also gets ``track_id``; a smoothed one ``raw_keypoints``
    (the parse's keypoints, in the same 17 x (x, y, v) form).
    """
    keypoints = coco18_to_coco17(person.keypoints)
    found = keypoints[:, 2] > 0
    if found.any():
        low, high = keypoints[found, :2].min(0), keypoints[found, :2].max(0)
    else:  # a person made only of the neck and parts COCO lacks: not possible with >= 4 parts
        low = high = np.zeros(2)
    width, height = high - low
    annotation = {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": 1,
        "keypoints": _coco_keypoints(keypoints),
        "keypoint_scores": [round(float(v), _DECIMALS) for v in keypoints[:, 2]],
        "num_keypoints": int(found.sum()),
        "score": round(person.score, _DECIMALS),
        "bbox": [float(low[0]), float(low[1]), float(width), float(height)],
        "area": float(width * height),
        "iscrowd": 0,
    }
    if person.track_id is not None:
        annotation["track_id"] = int(person.track_id)
    if person.raw_keypoints is not None:
        annotation["raw_keypoints"] = _coco_keypoints(coco18_to_coco17(person.raw_keypoints))
    return annotation


def _coco_keypoints(keypoints: np.ndarray) -> list[float | int]:
    """17 x (x, y, score) -> the flat COCO list 17 x (x, y, v): x, y rounded to 0.01 px,
    v = 2 where found (score > 0); 0.0, 0.0, 0 where not."""
    found = keypoints[:, 2] > 0
    coordinates = np.where(found[:, None], keypoints[:, :2], 0.0)
    return [value for (x, y), seen in zip(coordinates, found)
            for value in (round(float(x), 2), round(float(y), 2), 2 if seen else 0)]


def openpose_document(frames: Iterable[FrameResult], info: dict[str, Any]) -> dict[str, Any]:
    """OpenPose's per-frame layout, all frames in one file (COCO-18 keypoint order).

    ``person_id`` is ``[track_id]`` for a tracked person, ``[-1]`` otherwise; a
    smoothed person also gets ``pose_keypoints_2d_raw`` (the parse's keypoints).
    """
    return {
        "version": 1.3,
        "info": info,
        "frames": [{
            "frame_index": frame.frame_index,
            "timestamp": round(float(frame.timestamp), 6),
            "file_name": frame.file_name,
            "people": [openpose_person(person) for person in frame.people],
        } for frame in frames],
    }


def openpose_person(person: Person) -> dict[str, Any]:
    """One person in OpenPose's layout: person_id, 18 x (x, y, score), score."""
    entry = {
        "person_id": [-1 if person.track_id is None else int(person.track_id)],
        "pose_keypoints_2d": [round(float(v), _DECIMALS) for v in person.keypoints.ravel()],
        "score": round(person.score, _DECIMALS),
    }
    if person.raw_keypoints is not None:
        entry["pose_keypoints_2d_raw"] = [round(float(v), _DECIMALS)
                                          for v in person.raw_keypoints.ravel()]
    return entry


def build_document(fmt: str, frames: Iterable[FrameResult], info: dict[str, Any]) -> dict[str, Any]:
    """The document of format ``fmt`` (one of FORMATS)."""
    builders = {"coco": coco_document, "openpose": openpose_document}
    return builders[fmt](frames, info)


def json_line(document: Any) -> bytes:
    """``document`` as one line of JSON (NumPy values allowed), newline included: how
    every posecli output, trailer and sidecar is written."""
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"


def write_json(document: dict[str, Any], out: str | Path) -> None:
    """Write ``document`` to ``out`` atomically ("-" writes to stdout)."""
    data = json_line(document)
    if str(out) == "-":
        write_stdout(data)
        return
    write_atomic(Path(out), data)


def check_output_path(out: str | Path, stream_ok: bool = True) -> None:
    """Fail before any work when ``out`` cannot be created (missing folder, a directory).

    A device or named pipe (``/dev/null``) is written directly when ``stream_ok``, else
    refused (an MP4 needs a file it can seek in).
    """
    if str(out) == "-":
        return
    path = Path(out)
    if is_device_or_pipe(path):
        if stream_ok:
            return
        raise UsageError(f"output {path} is not a regular file (a device or pipe): "
                         "write it to a file")
    if path.is_dir():
        raise PoseCliError(f"output {path} is a directory")
    folder = path.parent
    if not folder.is_dir():
        raise PoseCliError(f"output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise PoseCliError(f"output folder is not writable: {folder}")
