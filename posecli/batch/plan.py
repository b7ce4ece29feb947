"""Planning a batch: inputs (files, directories, globs) -> jobs with their output paths.

Each input's output mirrors its path under the output directory
(``a/b/c.mp4`` -> ``OUT/a/b/c.json``).

What posecli writes is never an input: directories and globs leave out files
under this run's output and render folders (unless the argument itself lies
in one), files that this run would write (a render folder inside an input
folder), and files that identify themselves as posecli's (renders carry a
container tag, ``posecli.render.RENDER_TAG``; outputs and manifests say ``"tool":
"posecli"``). :func:`check_written_paths` refuses, before any work, a plan
that would write over an input or write one file twice.
"""

from __future__ import annotations

import glob
import os
import struct
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import InputError, UsageError, error_reason
from ..outputs import file_keys

#: File name endings taken from directories (explicit files and globs take anything).
VIDEO_SUFFIXES = frozenset({
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".mts",
    ".m2ts", ".wmv", ".flv", ".3gp", ".ogv", ".mxf", ".dv",
})


@dataclass(frozen=True)
class Job:
    """One input and where its outputs go."""

    source: Path
    output: Path
    render: Path | None = None


@dataclass(frozen=True)
class Found:
    """An input file: its path as found, the path its outputs mirror, and whether it
    was named as such (an explicit file is taken as it is)."""

    file: Path
    mirror: Path
    explicit: bool


def find_inputs(inputs: Iterable[str], exclude: Sequence[Path] = ()) -> list[Found]:
    """Expand files, directories and globs into input files, in order.

    The mirrored path is the file's path as given when that is relative and stays
    inside the working directory, else its path from the given directory's or
    file's parent. Directories and globs leave out files under the folders of
    ``exclude`` (unless the argument lies in that folder) and posecli's own files
    (:func:`is_posecli_file`). Raises InputError for an argument that matches
    nothing.
    """
    folders = [folder.resolve() for folder in exclude]
    found: dict[Path, Found] = {}  # resolved path -> input
    for arg in inputs:
        path = Path(arg)
        explicit = False
        if path.is_dir():
            files = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            base = path
        elif path.exists():
            files, base, explicit = [path], path, True
        else:
            files = sorted(Path(p) for p in glob.glob(arg, recursive=True) if Path(p).is_file())
            if not files:
                raise InputError(f"input not found: {arg}")
            base = _glob_root(arg)
        if not explicit:
            root = base.resolve()
            skipped = [f for f in folders if not root.is_relative_to(f)]
            files = [f for f in files if not any(f.resolve().is_relative_to(s) for s in skipped)
                     and not is_posecli_file(f)]
        for file in files:
            found.setdefault(file.resolve(), Found(file, _mirror(file, base), explicit))
    return list(found.values())


def is_posecli_file(path: Path) -> bool:
    """Whether ``path`` is a file posecli wrote: a render (its container's comment is
    ``posecli.render.RENDER_TAG``), a temporary file of an output or render, an output or
    manifest (JSON, JSON-lines or CSV whose record says ``"tool": "posecli"``)."""
    suffix = path.suffix.lower()
    if path.name.startswith(".") and path.name.endswith((".part", ".part.mp4")):
        return True  # a temporary file of an output or render (its writer was killed)
    if suffix == ".mp4":
        from ..render import RENDER_TAG

        try:
            return mp4_comment(path) == RENDER_TAG
        except OSError:
            return False
    if suffix == ".json":  # a document, a CSV's sidecar or a manifest
        from .provenance import posecli_info, read_json

        document = read_json(path)
        return (isinstance(document, dict) and document.get("tool") == "posecli"
                or posecli_info(document) is not None)
    if suffix in (".jsonl", ".csv"):
        from .provenance import output_info

        return output_info(path) is not None
    return False


def mp4_comment(path: Path) -> str | None:
    """The ``comment`` tag of an MP4 file (``moov/udta/meta/ilst/\xa9cmt/data``), or None.

    Reads only box headers and the tag (FFmpeg's own probe decodes frames:
    about 20 ms per file against 0.02 ms). Raises OSError when unreadable.
    """
    with open(path, "rb") as handle:
        end = os.fstat(handle.fileno()).st_size

        def find(kind: bytes, start: int, stop: int) -> tuple[int, int] | None:
            for found, body, box_end in _mp4_boxes(handle, start, stop):
                if found == kind:
                    return body, box_end
            return None

        body, box_end = 0, end
        for kind in (b"moov", b"udta", b"meta", b"ilst", b"\xa9cmt", b"data"):
            start = body + 4 if kind == b"ilst" else body  # meta has version and flags
            box = find(kind, start, box_end)
            if box is None:
                return None
            body, box_end = box
        if not 8 <= box_end - body <= 4096:  # type and locale, then the text
            return None
        handle.seek(body + 8)
        return handle.read(box_end - body - 8).decode("utf-8", "replace")


def _mp4_boxes(handle: BinaryIO, start: int, stop: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, body start, end) of each MP4 box between byte offsets ``start`` and ``stop``."""
    position = start
    while position + 8 <= stop:
        handle.seek(position)
        head = handle.read(16)
        if len(head) < 8:
            return
        size, kind = struct.unpack(">I4s", head[:8])
        body = position + 8
        if size == 1:  # a 64-bit size follows the type
            if len(head) < 16:
                return
            size, body = struct.unpack(">Q", head[8:16])[0], position + 16
        elif size == 0:  # to the end of the enclosing box
            size = stop - position
        if size < body - position or position + size > stop:
            return  # malformed: not an MP4 posecli wrote
        yield kind, body, position + size
        position += size


def _glob_root(pattern: str) -> Path:
    """The longest leading part of a glob pattern without wildcards."""
    parts = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _mirror(file: Path, base: Path) -> Path:
    if not file.is_absolute() and ".." not in file.parts:
        return file
    anchor = base.resolve().parent if base.resolve() != file.resolve() else file.resolve().parent
    return file.resolve().relative_to(anchor)


def plan_jobs(inputs: Iterable[str], out_dir: Path, suffix: str,
              render_dir: Path | None = None) -> list[Job]:
    """One job per input file; two inputs that would share an output are an error.

    A file found in a directory or by a glob that another job would write (its
    output or render) is not an input: a render folder inside an input folder
    is never fed back.
    """
    exclude = [out_dir] if render_dir is None else [out_dir, render_dir]
    planned = []
    for found in find_inputs(inputs, exclude):
        output = out_dir / found.mirror.with_suffix(suffix)
        render = render_dir / found.mirror.with_suffix(".mp4") if render_dir else None
        planned.append((Job(found.file, output, render), found.explicit))
    writer = {path.resolve(): job.source.resolve()
              for job, _ in planned for path in (job.output, job.render) if path}
    jobs, owners = [], {}
    for job, explicit in planned:
        source = job.source.resolve()
        if not explicit and writer.get(source, source) != source:
            continue  # another job writes it (over an input: see check_written_paths)
        if job.output in owners:
            raise UsageError(f"inputs {owners[job.output]} and {job.source} would both write "
                             f"{job.output}")
        owners[job.output] = job.source
        jobs.append(job)
    if not jobs:
        raise InputError("no video files found in the inputs")
    return jobs


def check_written_paths(jobs: Sequence[Job], manifest: Path, csv: bool = False) -> None:
    """UsageError (exit 2), before any work, when a file the batch writes (an output,
    its sidecar when the outputs are ``csv``, a render, the manifest) is an input (same
    path, or the same file through a link) or is written twice."""
    inputs = {key: job.source for job in jobs for key in file_keys(job.source)}
    writers: dict[tuple[object, ...], str] = {}
    written: list[tuple[str, Path]] = [("the manifest", manifest)]
    if csv:
        from ..csv_format import sidecar_path  # (it loads the video stack: on use only)
    for job in jobs:
        written.append((f"the output of {job.source}", job.output))
        if csv:
            written.append((f"the output of {job.source}", sidecar_path(job.output)))
        if job.render is not None:
            written.append((f"the render of {job.source}", job.render))
    for what, path in written:
        keys = file_keys(path)  # device and inode when it exists, and the resolved path
        source = next((inputs[key] for key in keys if key in inputs), None)
        if source is not None:
            raise UsageError(f"{what} ({path}) would overwrite the input {source}")
        other = writers.setdefault(keys[-1], what)
        if other != what:
            raise UsageError(f"{other} and {what} would both be written to {path}")


def prepare_dir(folder: Path) -> None:
    """Create an output folder, or fail with one line (exit 2) before any processing."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"output folder {folder} is not writable: "
                         f"{error_reason(exc)}") from None
    check_writable(folder)


def check_writable(folder: Path) -> None:
    """UsageError (exit 2) unless a file can be created in the existing ``folder``."""
    if not folder.is_dir():
        raise UsageError(f"output folder does not exist: {folder}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".posecli-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"output folder {folder} is not writable: "
                         f"{error_reason(exc)}") from None
