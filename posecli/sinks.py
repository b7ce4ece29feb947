"""Where per-frame results go: whole documents, JSON-lines and CSV streams, (rendered video).

A sink receives each processed batch as it completes (``add``), then either
``finish(info)`` — write or close its output — or ``discard()`` — remove
anything partial. File outputs are written to a temporary file beside the
destination and renamed when finished, so no partial file is ever visible
(:mod:`posecli.outputs`).

``finish`` is two steps, :meth:`Sink.prepare` (write everything into temporary
files, flushed to disk) and :meth:`Sink.commit` (rename them into place), so
that the outputs of one job (``--out`` and ``--render``) succeed or fail
together: :class:`OutputGroup` prepares them all before it renames any, and
removes those it renamed if a later rename fails.

A JSON-lines output (file or stdout) of a complete run ends with one trailer
line, ``{"complete": true, "frames": N, "info": {...}}``: N the number of frame
records (every other line), ``info`` the block a COCO document has. An
interrupted or failed run never writes it (:func:`jsonl_trailer`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from .errors import UsageError
from .formats import FORMATS, FrameResult, build_document, coco_annotation, json_line
from .outputs import PendingFile, write_stdout
from .video import FrameBatch, VideoInfo

JSONL = "jsonl"
CSV = "csv"  # written by posecli.csv_format


class Sink:
    """Base class: receives batches of results, then finishes or discards.

    ``finish(info)`` is ``prepare(info)`` then ``commit()``; a sink with files
    to write implements those two (and ``retract``), one without overrides
    ``finish`` or nothing.
    """

    def add(self, batch: FrameBatch, frames: list[FrameResult]) -> None:
        raise NotImplementedError

    def finish(self, info: dict[str, Any]) -> None:
        self.prepare(info)
        self.commit()

    def prepare(self, info: dict[str, Any]) -> None:
        """Write the whole output into temporary files (none is renamed into place)."""

    def commit(self) -> None:
        """Move what :meth:`prepare` wrote into place (stdout: write what is left)."""

    def retract(self) -> None:
        """Remove what :meth:`commit` put in place (another output of the job failed)."""

    def discard(self) -> None:
        """Drop the output (default: nothing was written yet)."""


class FileOrStdoutSink(Sink):
    """A sink whose output is one file (a :class:`PendingFile`, renamed into place by
    ``commit``) or stdout, where the bytes held back by ``prepare`` go out on commit."""

    _file: PendingFile | None = None
    _held = b""  # for stdout: what commit() writes

    def _emit(self, data: bytes) -> None:
        """Stream ``data`` out now: to stdout, or to the temporary file."""
        if self._file is None:
            write_stdout(data)
        else:
            self._file.write(data)

    def commit(self) -> None:
        if self._file is not None:
            self._file.commit()
        elif self._held:
            data, self._held = self._held, b""
            write_stdout(data)

    def retract(self) -> None:
        if self._file is not None:
            self._file.retract()

    def discard(self) -> None:
        if self._file is not None:
            self._file.discard()
        self._held = b""


class OutputGroup(Sink):
    """The outputs of one job, which succeed or fail together.

    ``finish`` prepares every output before renaming any, then commits them in
    the given order (put the one a later run checks for completeness last); if a
    commit fails, those already committed are removed again.
    """

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = list(sinks)

    def add(self, batch: FrameBatch, frames: list[FrameResult]) -> None:
        for sink in self.sinks:
            sink.add(batch, frames)

    def prepare(self, info: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.prepare(info)

    def commit(self) -> None:
        committed: list[Sink] = []
        try:
            for sink in self.sinks:
                sink.commit()
                committed.append(sink)
        except BaseException:
            for sink in committed:
                sink.retract()
            raise

    def retract(self) -> None:
        for sink in self.sinks:
            sink.retract()

    def discard(self) -> None:
        for sink in self.sinks:
            sink.discard()


class DocumentSink(FileOrStdoutSink):
    """Collects every frame, writes one COCO or OpenPose document when finished."""

    def __init__(self, fmt: str, out: str | Path) -> None:
        self.fmt, self.out = fmt, out
        self.frames: list[FrameResult] = []

    def add(self, batch: FrameBatch, frames: list[FrameResult]) -> None:
        self.frames.extend(frames)

    def prepare(self, info: dict[str, Any]) -> None:
        data = json_line(build_document(self.fmt, self.frames, info))
        if str(self.out) == "-":
            self._held = data
            return
        self.discard()
        self._file = PendingFile(Path(self.out))
        self._file.write(data)
        self._file.close()


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


def jsonl_trailer(frames: int, info: dict[str, Any]) -> bytes:
    """The last line of a complete JSON-lines output: ``frames`` records were written."""
    return json_line({"complete": True, "frames": frames, "info": info})


class JsonLinesSink(FileOrStdoutSink):
    """One JSON object per frame, written as each batch completes; a complete run
    ends with the trailer line (:func:`jsonl_trailer`), an interrupted one without.

    To stdout (``-``) records stream as they come; to a file they go to a
    temporary file renamed when finished.
    """

    def __init__(self, out: str | Path) -> None:
        self._file = None if str(out) == "-" else PendingFile(Path(out))
        self.frames = 0

    def add(self, batch: FrameBatch, frames: list[FrameResult]) -> None:
        self._emit(b"".join(orjson.dumps(frame_record(f)) + b"\n" for f in frames))
        self.frames += len(frames)

    def prepare(self, info: dict[str, Any]) -> None:
        trailer = jsonl_trailer(self.frames, info) if info.get("complete") is True else b""
        if self._file is None:
            self._held = trailer
        else:
            self._file.write(trailer)
            self._file.close()



class PeopleCounter(Sink):
    """Counts the people found (for summary lines); writes nothing."""

    def __init__(self) -> None:
        self.people = 0

    def add(self, batch: FrameBatch, frames: list[FrameResult]) -> None:
        self.people += sum(len(frame.people) for frame in frames)


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
    """The sinks of one video: the annotated MP4 at ``render`` when asked for, then its
    output file (``fmt`` to ``out``), in the order their :class:`OutputGroup` renames
    them into place (the output last). Nothing is left behind if one cannot be opened."""
    from .render import RenderSink  # render builds on Sink: imported here, not at the top

    sink = open_sink(fmt, out)
    if render is None:
        return [sink]
    try:
        return [RenderSink(render, info), sink]
    except BaseException:
        sink.discard()
        raise
