"""Where per-frame results go: whole documents, JSON-lines and CSV streams, (rendered video).

A sink receives each processed batch as it completes (``add``), then either
``finish(info)`` — write or close its output — or ``discard()`` — remove
anything partial. File outputs are written to a temporary file beside the
destination and renamed when finished, so no partial file is ever visible.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from .errors import UsageError
from .formats import (
    FORMATS,
    FrameResult,
    build_document,
    coco_annotation,
    temp_file_beside,
    write_json,
)
from .video import FrameBatch, VideoInfo

JSONL = "jsonl"
CSV = "csv"  # written by posecli.csv_format


class Sink:
    """Base class: receives batches of results, then finishes or discards."""

    def add(self, batch: FrameBatch, frames: list[FrameResult]) -> None:
        raise NotImplementedError

    def finish(self, info: dict[str, Any]) -> None:
        raise NotImplementedError

    def discard(self) -> None:
        """Drop the output (default: nothing was written yet)."""


class DocumentSink(Sink):
    """Collects every frame, writes one COCO or OpenPose document when finished."""

    def __init__(self, fmt: str, out: str | Path) -> None:
        self.fmt, self.out = fmt, out
        self.frames: list[FrameResult] = []

    def add(self, batch: FrameBatch, frames: list[FrameResult]) -> None:
        self.frames.extend(frames)

    def finish(self, info: dict[str, Any]) -> None:
        write_json(build_document(self.fmt, self.frames, info), self.out)


def frame_record(frame: FrameResult) -> dict[str, Any]:
    """One frame as a self-contained JSON object (the JSON-lines record)."""
    people = []
    for person in frame.people:
        annotation = coco_annotation(person, 0, 0)
        for key in ("id", "image_id", "category_id", "iscrowd"):
            del annotation[key]
        people.append(annotation)
    return {"frame_index": frame.frame_index, "timestamp": round(frame.timestamp, 6),
            "width": frame.width, "height": frame.height, "file_name": frame.file_name,
            "people": people}


class JsonLinesSink(Sink):
    """One JSON object per frame, flushed as each batch completes.

    To stdout (``-``) records stream as they come; to a file they go to a
    temporary file renamed when finished.
    """

    def __init__(self, out: str | Path) -> None:
        self._tmp: Path | None = None
        self._dest: Path | None = None
        if str(out) == "-":
            self._handle: BinaryIO = sys.stdout.buffer
            return
        self._dest = Path(out)
        fd, self._tmp = temp_file_beside(self._dest)
        self._handle = os.fdopen(fd, "wb")

    def add(self, batch: FrameBatch, frames: list[FrameResult]) -> None:
        self._handle.write(b"".join(orjson.dumps(frame_record(f)) + b"\n" for f in frames))
        self._handle.flush()

    def finish(self, info: dict[str, Any]) -> None:
        if self._tmp is None:
            return
        self._handle.close()
        os.replace(self._tmp, self._dest)
        self._tmp = None

    def discard(self) -> None:
        if self._tmp is not None:
            self._handle.close()
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


class PeopleCounter(Sink):
    """Counts the people found (for summary lines); writes nothing."""

    def __init__(self) -> None:
        self.people = 0

    def add(self, batch: FrameBatch, frames: list[FrameResult]) -> None:
        self.people += sum(len(frame.people) for frame in frames)

    def finish(self, info: dict[str, Any]) -> None:
        pass


#: Every --format value: whole documents, a JSON-lines stream, or CSV rows.
OUTPUT_FORMATS = (*FORMATS, JSONL, CSV)


def output_suffix(fmt: str) -> str:
    """The file suffix of an output in format ``fmt``: .jsonl, .csv, else .json."""
    return {JSONL: ".jsonl", CSV: ".csv"}.get(fmt, ".json")


def check_format(fmt: str) -> None:
    """Raise UsageError unless ``fmt`` is one of OUTPUT_FORMATS."""
    if fmt not in OUTPUT_FORMATS:
        raise UsageError(f"bad --format {fmt!r}: expected one of {', '.join(OUTPUT_FORMATS)}")


def open_sink(fmt: str, out: str | Path) -> Sink:
    """The sink writing format ``fmt`` (one of OUTPUT_FORMATS) to ``out`` ("-": stdout)."""
    check_format(fmt)
    if fmt == JSONL:
        return JsonLinesSink(out)
    if fmt == CSV:
        from .csv_format import CsvSink  # builds on Sink: imported here, not at the top

        return CsvSink(out)
    return DocumentSink(fmt, out)


def open_outputs(fmt: str, out: str | Path, render: Path | None, info: VideoInfo) -> list[Sink]:
    """The sinks of one video: its output file (``fmt`` to ``out``), plus the annotated
    MP4 at ``render`` when asked for. Nothing is left behind if one cannot be opened."""
    from .render import RenderSink  # render builds on Sink: imported here, not at the top

    sink = open_sink(fmt, out)
    if render is None:
        return [sink]
    try:
        return [sink, RenderSink(render, info)]
    except BaseException:
        sink.discard()
        raise
