"""Reading posecli outputs back: COCO documents, JSON lines and the OpenPose layout.

:func:`read_poses` reads one file ("-": stdin) of any of posecli's output
formats (the format is detected from the content) into a :class:`PoseFile`:
its ``info`` block and its frames in image id order. Each :class:`PoseFrame`
holds its people twice: as COCO-17 arrays (``keypoints`` (x, y, v), ``areas``,
annotation ``ids``) for comparisons, and as :class:`~posecli.person.Person`
values (COCO-18 (x, y, score), score, track id, raw keypoints) for writing
outputs again. ``compare`` and ``posecli track`` both read through here.

Accepted: posecli's COCO document (``--format coco``) or any COCO keypoints
dataset with images and annotations (without ``keypoint_scores`` a labelled
keypoint gets score 1, without ``score`` a person gets 1); posecli's
``--format jsonl`` stream (one frame record per line, then the trailer
``{"complete": true, "frames": N, "info": ...}`` of a complete run); posecli's
``--format openpose`` layout (``frames`` with ``pose_keypoints_2d``; the frame
size comes from ``info.source``, 0 when it is not there). A file that cannot be
used raises :class:`UnreadableOutputError` with one line saying why.

``PoseFile.complete`` is False for a file of a run that did not finish: a
document whose ``info.complete`` is false, a JSON-lines stream without its
trailer (interrupted, killed or cut short) or whose trailer counts other
records. ``incomplete_reason`` then says why in a few words.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from .errors import InputError
from .oks import NUM_KEYPOINTS
from .person import Person
from .skeleton import COCO17_FROM_COCO18, NUM_PARTS, coco18_to_coco17

COCO, JSONL, OPENPOSE = "coco", "jsonl", "openpose"
#: The score given to a labelled keypoint whose recorded score is 0 (it stays found).
_FOUND_FLOOR = 1e-6
_NECK = 1  # COCO-18 index of the neck, which COCO-17 files do not have


class UnreadableOutputError(InputError):
    """A file that is not a usable posecli output (unreadable, not JSON, malformed)."""


@dataclass
class PoseFrame:
    """One image (frame) of a file, its people as arrays and as Person values.

    ``keypoints``: P x 17 x 3 (x, y, v) in COCO-17 order, pixels; ``areas``: P
    areas (square pixels) used as the OKS scale; ``ids``: the P annotation ids;
    ``people``: the same P people as :class:`Person` (COCO-18, with scores, track
    ids and raw keypoints where the file has them). ``frame_index``,
    ``timestamp`` (seconds) and ``file_name`` are None when the file lacks them.
    """

    image_id: int
    frame_index: int | None
    width: int
    height: int
    timestamp: float | None
    ids: list[int]
    keypoints: np.ndarray
    areas: np.ndarray
    file_name: str | None = None
    people: list[Person] = field(default_factory=list)

    @property
    def track_ids(self) -> list[int | None]:
        return [person.track_id for person in self.people]


@dataclass
class PoseFile:
    """A file read back: its frames in image id order, its ``layout`` (``coco``,
    ``jsonl`` or ``openpose``), its ``info`` block (None when it has none; a
    JSON-lines stream's is its trailer's), and why it is not a finished run's
    (``incomplete_reason``, None when it is)."""

    path: str
    frames: list[PoseFrame]
    layout: str = COCO
    info: dict[str, Any] | None = None
    incomplete_reason: str | None = None

    @property
    def complete(self) -> bool:
        """Whether the file is a finished run's (files of other tools count as finished)."""
        return self.incomplete_reason is None

    @property
    def has_frame_index(self) -> bool:
        return all(frame.frame_index is not None for frame in self.frames)


def read_poses(path: str | Path, label: str = "input") -> PoseFile:
    """Read a posecli output file; "-" reads stdin. ``label`` names the file in
    error messages ("expected", "actual", "input")."""
    name = "stdin" if str(path) == "-" else str(path)
    what = f"{label} file {name}"
    data = _read_bytes(path, what)
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        stream = _json_lines(data, what)
        if stream is None:
            raise UnreadableOutputError(f"{what} is not valid JSON: {_reason(exc)}") from None
        return _parse_records(*stream, name, what)
    if _is_record(document):  # a one-frame JSON-lines stream without its trailer
        return _parse_records([document], None, name, what)
    if _is_trailer(document):  # a complete JSON-lines stream of no frames
        return _parse_records([], document, name, what)
    if isinstance(document, dict) and "frames" in document and "images" not in document:
        poses = _parse_openpose(document, name, what)
    else:
        poses = _parse_document(document, name, what)
    if poses.info is not None and poses.info.get("complete") is False:
        poses.incomplete_reason = "its info says the run did not complete (interrupted)"
    return poses


def _read_bytes(path: str | Path, what: str) -> bytes:
    if str(path) == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise UnreadableOutputError(f"cannot read {what}: {exc.strerror or exc}") from None
    if not data.strip():
        raise UnreadableOutputError(f"{what} is empty")
    return data


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "parse error"


def _is_record(value: Any) -> bool:
    """Whether ``value`` looks like a ``--format jsonl`` record (one frame)."""
    return isinstance(value, dict) and "frame_index" in value and "people" in value


def _is_trailer(value: Any) -> bool:
    """Whether ``value`` looks like the last line of a complete ``--format jsonl`` stream."""
    return isinstance(value, dict) and "complete" in value and "frame_index" not in value


def jsonl_stream_complete(records: list[dict[str, Any]], trailer: dict[str, Any] | None
                          ) -> str | None:
    """Why a JSON-lines stream of ``records`` ending with ``trailer`` (None: no trailer)
    is not a complete run's output; None when it is."""
    if trailer is None:
        return "it has no completion line (the run was interrupted, killed or cut short)"
    frames = trailer.get("frames")
    if trailer.get("complete") is not True or not _is_whole(frames) \
            or not isinstance(trailer.get("info"), dict):
        return "its completion line is malformed"
    if frames != len(records):
        return f"its completion line counts {frames} frames but it holds {len(records)}"
    return None


def jsonl_is_complete(data: bytes) -> bool:
    """Whether ``data`` is a complete ``--format jsonl`` output: frame records, one per
    line, then the trailer line that counts them (an empty stream never is)."""
    if not data.endswith(b"\n"):
        return False
    try:
        *records, trailer = [orjson.loads(line) for line in data.splitlines()]
    except (orjson.JSONDecodeError, ValueError):  # ValueError: no line at all
        return False
    return (_is_trailer(trailer) and all(_is_record(record) for record in records)
            and jsonl_stream_complete(records, trailer) is None)


def _json_lines(data: bytes, what: str
                ) -> tuple[list[dict[str, Any]], dict[str, Any] | None] | None:
    """The records and trailer (None when absent) of a ``--format jsonl`` stream, or None
    when ``data`` is not one. A truncated last line (a stream cut short) is dropped."""
    lines = [(number, line) for number, line in enumerate(data.splitlines(), start=1)
             if line.strip()]
    records: list[dict[str, Any]] = []
    trailer = None
    for position, (number, line) in enumerate(lines):
        last = position == len(lines) - 1
        if trailer is not None:
            raise UnreadableOutputError(f"{what}: line {number} follows the completion line")
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            if not records:
                return None
            if last and not data.endswith(b"\n"):  # cut short while it was written
                break
            raise UnreadableOutputError(
                f"{what}: line {number} is not valid JSON: {_reason(exc)}") from None
        if _is_trailer(record) and records:
            trailer = record
            continue
        if not _is_record(record):
            if not records:
                return None
            raise UnreadableOutputError(
                f"{what}: line {number} is not a frame record (frame_index, people)")
        records.append(record)
    return records, trailer


def _parse_records(records: list[dict[str, Any]], trailer: dict[str, Any] | None, path: str,
                   what: str) -> PoseFile:
    """JSON-lines records (and trailer) as a COCO document: image ids and annotation ids
    from 1; the info block is the trailer's."""
    images, annotations = [], []
    for number, record in enumerate(records, start=1):
        image = {key: record.get(key)
                 for key in ("frame_index", "timestamp", "width", "height", "file_name")}
        images.append({"id": number, **image})
        people = record.get("people")
        if not isinstance(people, list):
            raise UnreadableOutputError(f"{what}: record {number} has no 'people' list")
        for person in people:
            if not isinstance(person, dict):
                raise UnreadableOutputError(f"{what}: record {number} has a person that is "
                                            "not an object")
            annotations.append({**person, "id": len(annotations) + 1, "image_id": number})
    info = (trailer or {}).get("info")
    poses = _parse_document({"images": images, "annotations": annotations,
                             "info": info if isinstance(info, dict) else None}, path, what)
    poses.layout = JSONL
    poses.incomplete_reason = jsonl_stream_complete(records, trailer)
    return poses


def _parse_openpose(document: dict[str, Any], path: str, what: str) -> PoseFile:
    """posecli's OpenPose layout as a COCO document (COCO-18 keypoints, the neck kept)."""
    frames = document["frames"]
    if not isinstance(frames, list):
        raise UnreadableOutputError(f"{what}: 'frames' is not a list")
    info = document.get("info") if isinstance(document.get("info"), dict) else None
    source = (info or {}).get("source")
    source = source if isinstance(source, dict) else {}
    width, height = (source.get(key) if _is_whole(source.get(key)) else 0
                     for key in ("width", "height"))
    images, annotations = [], []
    for number, entry in enumerate(frames, start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("people"), list):
            raise UnreadableOutputError(f"{what}: frames[{number - 1}] has no 'people' list")
        images.append({"id": number, "width": width, "height": height,
                       **{key: entry.get(key) for key in ("frame_index", "timestamp",
                                                          "file_name")}})
        for person in entry["people"]:
            at = f"{what}: frames[{number - 1}]"
            if not isinstance(person, dict):
                raise UnreadableOutputError(f"{at} has a person that is not an object")
            annotation = {"id": len(annotations) + 1, "image_id": number,
                          "openpose": _openpose_keypoints(person.get("pose_keypoints_2d"), at)}
            if "pose_keypoints_2d_raw" in person:
                annotation["openpose_raw"] = _openpose_keypoints(
                    person["pose_keypoints_2d_raw"], f"{at} (raw)")
            person_id = person.get("person_id")
            if isinstance(person_id, list) and len(person_id) == 1 and _is_whole(person_id[0]) \
                    and person_id[0] >= 0:
                annotation["track_id"] = int(person_id[0])
            if _is_number(person.get("score")):
                annotation["score"] = person["score"]
            annotations.append(annotation)
    poses = _parse_document({"info": info, "images": images, "annotations": annotations},
                            path, what)
    poses.layout = OPENPOSE
    return poses


def _openpose_keypoints(value: Any, what: str) -> np.ndarray:
    """18 x 3 (x, y, score) from OpenPose's flat ``pose_keypoints_2d`` list (COCO-18)."""
    return _numbers(value, NUM_PARTS, what, "(x, y, score)")


def _parse_document(document: Any, path: str, what: str) -> PoseFile:
    if isinstance(document, list):
        raise UnreadableOutputError(
            f"{what} is a JSON list, not a COCO keypoints document with images and annotations")
    if not isinstance(document, dict):
        raise UnreadableOutputError(f"{what} is not a COCO keypoints document")
    images, annotations = document.get("images"), document.get("annotations")
    if not isinstance(images, list) or not isinstance(annotations, list):
        raise UnreadableOutputError(
            f"{what} is not a COCO keypoints document: it needs 'images' and 'annotations' lists")

    frames: dict[int, PoseFrame] = {}
    frame_indices: set[int] = set()
    people: dict[int, tuple[list[int], list[np.ndarray], list[float], list[Person]]] = {}
    for position, image in enumerate(images):
        if not isinstance(image, dict):
            raise UnreadableOutputError(f"{what}: images[{position}] is not an object")
        image_id = _integer(image.get("id"), f"{what}: images[{position}].id")
        if image_id in frames:
            raise UnreadableOutputError(f"{what}: image id {image_id} appears twice")
        width = _integer(image.get("width"), f"{what}: image {image_id} width")
        height = _integer(image.get("height"), f"{what}: image {image_id} height")
        frame_index = image.get("frame_index")
        if frame_index is not None:
            frame_index = _integer(frame_index, f"{what}: image {image_id} frame_index")
            if frame_index in frame_indices:
                raise UnreadableOutputError(f"{what}: frame_index {frame_index} appears twice")
            frame_indices.add(frame_index)
        timestamp = image.get("timestamp")
        if not _is_number(timestamp):
            timestamp = None
        file_name = image.get("file_name")
        frames[image_id] = PoseFrame(image_id, frame_index, width, height,
                                     None if timestamp is None else float(timestamp),
                                     [], np.zeros((0, NUM_KEYPOINTS, 3)), np.zeros(0),
                                     file_name if isinstance(file_name, str) else None)
        people[image_id] = ([], [], [], [])

    for position, annotation in enumerate(annotations):
        if not isinstance(annotation, dict):
            raise UnreadableOutputError(f"{what}: annotations[{position}] is not an object")
        image_id = annotation.get("image_id")
        if image_id not in people or isinstance(image_id, bool):
            raise UnreadableOutputError(
                f"{what}: annotations[{position}] refers to image {image_id!r}, "
                "which is not in 'images'")
        at = f"{what}: annotations[{position}]"
        person = _person(annotation, at)
        keypoints = _coco17(person.keypoints)
        annotation_id = annotation.get("id", position + 1)
        if not isinstance(annotation_id, int) or isinstance(annotation_id, bool):
            annotation_id = position + 1
        ids, points, areas, persons = people[image_id]
        ids.append(annotation_id)
        points.append(keypoints)
        areas.append(_area(annotation, keypoints))
        persons.append(person)

    for image_id, (ids, points, areas, persons) in people.items():
        if ids:
            frame = frames[image_id]
            frame.ids = ids
            frame.keypoints = np.stack(points)
            frame.areas = np.asarray(areas, dtype=np.float64)
            frame.people = persons
    ordered = [frames[image_id] for image_id in sorted(frames)]
    info = document.get("info")
    return PoseFile(path, ordered, COCO, info if isinstance(info, dict) else None)


def _person(annotation: dict[str, Any], what: str) -> Person:
    """A COCO annotation (or an OpenPose entry converted by _parse_openpose) as a Person."""
    if "openpose" in annotation:
        keypoints = annotation["openpose"]
        raw = annotation.get("openpose_raw")
    else:
        labelled = _numbers(annotation.get("keypoints"), NUM_KEYPOINTS, what, "(x, y, v)")
        scores = annotation.get("keypoint_scores")
        if scores is None:
            scores = np.ones(NUM_KEYPOINTS)
        else:
            scores = _numbers(scores, NUM_KEYPOINTS, f"{what} keypoint_scores", "", width=1)[:, 0]
        keypoints = _coco18(labelled, scores)
        raw = annotation.get("raw_keypoints")
        if raw is not None:
            raw = _coco18(_numbers(raw, NUM_KEYPOINTS, f"{what} raw_keypoints", "(x, y, v)"),
                          scores)
    track_id = annotation.get("track_id")
    if track_id is not None:
        track_id = _integer(track_id, f"{what} track_id")
    score = annotation.get("score")
    score = float(score) if _is_number(score) else 1.0
    parts = int((keypoints[:, 2] > 0).sum())
    return Person(keypoints, score, score * parts, parts, track_id, raw)


def _coco18(labelled: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """17 x (x, y, v) COCO-17 and 17 keypoint scores -> 18 x (x, y, score) COCO-18 (no neck)."""
    found = labelled[:, 2] > 0
    keypoints = np.zeros((NUM_PARTS, 3))
    keypoints[COCO17_FROM_COCO18, :2] = np.where(found[:, None], labelled[:, :2], 0.0)
    keypoints[COCO17_FROM_COCO18, 2] = np.where(found, np.maximum(scores, _FOUND_FLOOR), 0.0)
    return keypoints


def _coco17(keypoints: np.ndarray) -> np.ndarray:
    """18 x (x, y, score) COCO-18 -> 17 x (x, y, v) COCO-17: v = 2 where found."""
    out = coco18_to_coco17(keypoints).copy()
    out[:, 2] = np.where(out[:, 2] > 0, 2.0, 0.0)
    return out


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _is_whole(value: Any) -> bool:
    return _is_number(value) and float(value).is_integer()


def _integer(value: Any, what: str) -> int:
    if _is_whole(value):
        return int(value)
    raise UnreadableOutputError(f"{what} is {value!r}, not an integer")


def _numbers(value: Any, rows: int, what: str, layout: str, width: int = 3) -> np.ndarray:
    """A flat list of ``rows * width`` finite numbers as a rows x width float64 array."""
    expected = rows * width
    if not isinstance(value, list):
        raise UnreadableOutputError(f"{what} has no keypoints list")
    if len(value) != expected:
        raise UnreadableOutputError(
            f"{what} has {len(value)} keypoint values, expected {expected} "
            f"({rows} x {layout})" if layout else
            f"{what} has {len(value)} values, expected {expected}")
    array = np.asarray(value)  # numbers give an int or float array; anything else does not
    if array.dtype.kind not in "iuf" or not np.isfinite(array).all():
        raise UnreadableOutputError(f"{what} has keypoint values that are not finite numbers")
    return array.astype(np.float64).reshape(rows, width)


def _area(annotation: dict[str, Any], keypoints: np.ndarray) -> float:
    """The OKS scale: the ``area`` field, else the bbox area, else the keypoints' box area."""
    area = annotation.get("area")
    if _is_number(area) and area > 0:
        return float(area)
    bbox = annotation.get("bbox")
    if isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox):
        if bbox[2] * bbox[3] > 0:
            return float(bbox[2] * bbox[3])
    found = keypoints[:, 2] > 0
    if not found.any():
        return 0.0
    width, height = keypoints[found, :2].max(0) - keypoints[found, :2].min(0)
    return float(width * height)
