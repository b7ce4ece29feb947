"""``--format csv``: one row per person per frame, and a sidecar with the run's info.

Columns: ``file, frame_index, timestamp, track_id, score``, then ``x, y, score``
for each of the 17 COCO keypoints (``nose_x, nose_y, nose_score, ...``): pixels
of the displayed frame, and the keypoint's heatmap score. A missing keypoint,
an unknown timestamp and the track id of an untracked run are empty cells;
``pandas.read_csv(path)`` loads it with no options. ``file`` is the frame's
source (``file_name`` without its ``#index``).

A CSV has no place for the run's ``info`` (model, source, options, whether it
is complete), so a file output ``OUT`` comes with ``OUT.info.json``:
``{"info": ..., "csv": {"rows": N, "sha256": HEX}}``. The CSV is written to a
temporary file and renamed when finished; the old sidecar is removed before that
rename and the new one renamed into place after it, so a sidecar that exists, says ``complete`` and
matches the CSV's SHA-256 proves the CSV is a finished run's
(:func:`csv_is_complete`, used by ``batch --skip-existing``). To stdout, no
sidecar is written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from pathlib import Path
from typing import Any

import orjson

from .formats import FrameResult, json_line
from .outputs import PendingFile, output_error
from .sinks import FileOrStdoutSink
from .skeleton import COCO17_NAMES, coco18_to_coco17
from .video import FrameBatch

SIDECAR_SUFFIX = ".info.json"
HEADER: tuple[str, ...] = (
    "file", "frame_index", "timestamp", "track_id", "score",
    *(f"{name}_{field}" for name in COCO17_NAMES for field in ("x", "y", "score")),
)


def sidecar_path(out: str | Path) -> Path:
    """Where the info of the CSV file ``out`` goes: ``OUT.info.json``."""
    path = Path(out)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def frame_rows(frame: FrameResult) -> list[list[object]]:
    """The CSV rows of one frame's people (see the module docstring for the columns)."""
    source = frame.file_name.removesuffix(f"#{frame.frame_index}")
    timestamp = round(frame.timestamp, 6) if math.isfinite(frame.timestamp) else ""
    rows = []
    for person in frame.people:
        row: list[object] = [source, frame.frame_index, timestamp,
                             "" if person.track_id is None else person.track_id,
                             round(person.score, 5)]
        for x, y, score in coco18_to_coco17(person.keypoints):
            row += [round(float(x), 2), round(float(y), 2), round(float(score), 5)] \
                if score > 0 else ["", "", ""]
        rows.append(row)
    return rows


def _encode(rows: list[list[object]] | list[tuple[str, ...]]) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue().encode()


class CsvSink(FileOrStdoutSink):
    """Rows streamed to ``out`` ("-": stdout) as batches complete; to a file, through a
    temporary file renamed when finished, then the ``OUT.info.json`` sidecar (also
    written to a temporary file first, so a full disk fails before any rename)."""

    def __init__(self, out: str | Path) -> None:
        self._file = None if str(out) == "-" else PendingFile(Path(out))
        self._sidecar: PendingFile | None = None
        self._hash = hashlib.sha256()
        self.rows = 0
        try:
            self._write(_encode([HEADER]))
        except BaseException:  # a full disk already: no temporary file left behind
            self.discard()
            raise

    def _write(self, data: bytes) -> None:
        self._emit(data)
        self._hash.update(data)

    def add(self, batch: FrameBatch, frames: list[FrameResult]) -> None:
        rows = [row for frame in frames for row in frame_rows(frame)]
        self.rows += len(rows)
        self._write(_encode(rows))

    def prepare(self, info: dict[str, Any]) -> None:
        if self._file is None:
            return
        self._file.close()
        if self._file.tmp is None:  # a device or named pipe: no sidecar, as for stdout
            return
        record = {"info": info, "csv": {"rows": self.rows, "sha256": self._hash.hexdigest()}}
        self._sidecar = PendingFile(sidecar_path(self._file.dest))
        self._sidecar.write(json_line(record))
        self._sidecar.close()

    def commit(self) -> None:
        """The old sidecar goes first, the CSV next, its new sidecar last: a CSV is never
        beside a sidecar that is not its own."""
        if self._file is None:
            return
        if self._sidecar is None:
            self._file.commit()
            return
        try:
            self._sidecar.dest.unlink(missing_ok=True)
        except OSError as exc:
            raise output_error(self._sidecar.dest, exc) from None
        self._file.commit()
        try:
            self._sidecar.commit()
        except BaseException:
            self._file.retract()
            raise

    def retract(self) -> None:
        if self._sidecar is not None:
            self._sidecar.retract()
        super().retract()

    def discard(self) -> None:
        super().discard()
        if self._sidecar is not None:
            self._sidecar.discard()


def csv_is_complete(path: Path) -> bool:
    """Whether ``path`` is a finished CSV output: its sidecar parses, says
    ``info.complete`` and holds the CSV's SHA-256."""
    try:
        record = orjson.loads(sidecar_path(path).read_bytes())
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except (OSError, orjson.JSONDecodeError):
        return False
    if not isinstance(record, dict) or not isinstance(record.get("info"), dict):
        return False
    csv_record = record.get("csv")
    return (record["info"].get("complete") is True and isinstance(csv_record, dict)
            and csv_record.get("sha256") == digest)
