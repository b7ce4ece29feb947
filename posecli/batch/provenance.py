"""What an output was made from, and whether ``--skip-existing`` may reuse it.

Every output of ``batch`` records, in its ``info`` block, what it was made
from: the input (``info.source.size`` and ``info.source.sha256_head_tail``,
see :func:`source_record`), the weights (``info.model.sha256``) and every
option that changes results (``info.options``). ``--skip-existing`` reuses an
output only when it is complete and that record equals what this run would
write (:meth:`Provenance.redo_reason`); otherwise the job runs again and the
manifest says why.

The input is identified by its size and a SHA-256 of its first and last MiB,
not by its modification time (a copy or a restore from backup changes the
time but not the video, and would redo hours of work) and not by a digest of
the whole file (reading terabytes of video to decide to skip them would cost
as much as decoding them). Another video at the same path differs in size or
in its header and index, which sit in the first or last MiB.

Light at import (no torch).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .plan import Job

#: Bytes digested at each end of an input (all of a file up to twice this size).
HEAD_TAIL_BYTES = 1 << 20
#: How far from the end a JSON-lines trailer line is looked for.
_TRAILER_MAX_BYTES = 1 << 22


def source_record(path: Path) -> dict[str, Any]:
    """``{"size": bytes, "sha256_head_tail": hex}``: the size of the file at ``path`` and
    the SHA-256 of its first and last :data:`HEAD_TAIL_BYTES` (the whole file when it
    is at most twice that). Raises OSError when it cannot be read."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size <= 2 * HEAD_TAIL_BYTES:
            digest.update(handle.read())
        else:
            digest.update(handle.read(HEAD_TAIL_BYTES))
            handle.seek(size - HEAD_TAIL_BYTES)
            digest.update(handle.read(HEAD_TAIL_BYTES))
    return {"size": size, "sha256_head_tail": digest.hexdigest()}


def read_json(path: Path) -> Any:
    """The JSON value in the file at ``path``; None when unreadable or not JSON."""
    try:
        return _json_value(path.read_bytes())
    except OSError:
        return None


def output_info(path: Path) -> dict[str, Any] | None:
    """The ``info`` block of the posecli output at ``path``, or None (no such file, not
    posecli's, or unreadable). Documents (COCO, OpenPose) hold it at the top; a
    JSON-lines file in its last line ``{"complete": true, "frames": N, "info": ...}``;
    a CSV file in its ``OUT.csv.info.json`` sidecar."""
    if path.suffix == ".jsonl":
        record = _last_line(path)
    elif path.suffix == ".csv":
        from ..csv_format import sidecar_path  # (it loads the video stack: on use only)

        record = read_json(sidecar_path(path))
    else:
        record = read_json(path)
    return posecli_info(record)


def posecli_info(record: Any) -> dict[str, Any] | None:
    """``record["info"]`` when it is a posecli info block, else None."""
    info = record.get("info") if isinstance(record, dict) else None
    if isinstance(info, dict) and info.get("tool") == "posecli":
        return info
    return None


def finished_output(path: Path) -> tuple[bool, dict[str, Any] | None]:
    """(whether ``path`` is a finished posecli output, its ``info`` block or None),
    reading the output once.

    Documents must parse and say ``info.complete``; JSON-lines files must end with
    the trailer line counting their records
    (:func:`posecli.readers.jsonl_is_complete`); CSV files need their
    ``.info.json`` sidecar (:func:`posecli.csv_format.csv_is_complete`).
    """
    if path.suffix == ".csv":
        from ..csv_format import csv_is_complete

        return csv_is_complete(path), output_info(path)
    try:
        data = path.read_bytes()
    except OSError:
        return False, None
    if path.suffix == ".jsonl":
        from ..readers import jsonl_is_complete

        record = _json_value(data.rstrip(b"\n").rsplit(b"\n", 1)[-1])
        return jsonl_is_complete(data), posecli_info(record)
    record = _json_value(data)
    info = record.get("info") if isinstance(record, dict) else None
    complete = isinstance(info, dict) and info.get("complete") is True
    return complete, posecli_info(record)


def is_complete(output: Path) -> bool:
    """Whether ``output`` is a finished posecli output (a half-written one never is):
    see :func:`finished_output`."""
    return finished_output(output)[0]


def _json_value(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def _last_line(path: Path) -> Any:
    """The JSON value on the last line of ``path`` (None when there is none)."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            start = max(0, size - _TRAILER_MAX_BYTES)
            handle.seek(start)
            tail = handle.read()
    except OSError:
        return None
    lines = tail.rstrip(b"\n").rsplit(b"\n", 1)
    if len(lines) == 1 and start > 0:
        return None  # the last line is longer than a trailer can be
    try:
        return orjson.loads(lines[-1])
    except orjson.JSONDecodeError:
        return None


@dataclass(frozen=True)
class Provenance:
    """What a reusable output must record: the weights' SHA-256 and ``options`` (the
    ``info.options`` this run writes, as JSON values)."""

    sha256: str
    options: dict[str, Any]

    @classmethod
    def of(cls, sha256: str, options: dict[str, Any]) -> Provenance:
        """``options`` as they read back from an output (tuples become lists...)."""
        return cls(sha256, orjson.loads(orjson.dumps(options, option=orjson.OPT_SERIALIZE_NUMPY)))

    def redo_reason(self, job: Job) -> str | None:
        """None when ``job``'s outputs can be reused (complete, its render there when
        asked for, and made from this input, these weights and these options); else
        why the job runs (one short phrase, for the manifest)."""
        if not job.output.exists():
            return "no output"
        complete, info = finished_output(job.output)
        if not complete:
            return "output incomplete"
        if job.render is not None and not job.render.is_file():
            return "no render"
        source = info.get("source") if info is not None else None
        if not isinstance(source, dict) or "sha256_head_tail" not in source:
            return "output has no record of its input (made by an older posecli)"
        try:
            record = source_record(job.source)
        except OSError:
            return "input unreadable"
        if source.get("size") != record["size"]:
            return f"input changed (size {source.get('size')} -> {record['size']} bytes)"
        if source["sha256_head_tail"] != record["sha256_head_tail"]:
            return "input changed (content)"
        found = (info.get("model") or {}).get("sha256")
        if found != self.sha256:
            return f"other weights (SHA-256 {str(found)[:12]}... -> {self.sha256[:12]}...)"
        options = info.get("options")
        if options != self.options:
            return "options differ: " + _differences(options if isinstance(options, dict)
                                                     else {}, self.options)
        return None


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    """``key old -> new`` for each differing option (just ``key`` for nested ones)."""
    parts = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if isinstance(before, (dict, list)) or isinstance(after, (dict, list)):
            parts.append(key)
        else:
            parts.append(f"{key} {before!r} -> {after!r}")
    return ", ".join(parts)
