"""Planning a batch: inputs (files, directories, globs) -> jobs with their output paths.

Each input's output mirrors its path under the output directory
(``a/b/c.mp4`` -> ``OUT/a/b/c.json``).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, PoseCliError, UsageError

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


def find_inputs(inputs: Iterable[str]) -> list[tuple[Path, Path]]:
    """Expand files, directories and globs into (file, path to mirror) pairs, in order.

    The mirrored path is the file's path as given when that is relative and stays
    inside the working directory, else its path from the given directory's or
    file's parent. Raises InputError for an argument that matches nothing.
    """
    found: dict[Path, tuple[Path, Path]] = {}  # resolved path -> (path as found, mirror)
    for arg in inputs:
        path = Path(arg)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            base = path
        elif path.exists():
            files, base = [path], path
        else:
            files = sorted(Path(p) for p in glob.glob(arg, recursive=True) if Path(p).is_file())
            if not files:
                raise InputError(f"input not found: {arg}")
            base = _glob_root(arg)
        for file in files:
            found.setdefault(file.resolve(), (file, _mirror(file, base)))
    return list(found.values())


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
    """One job per input file; two inputs that would share an output are an error."""
    jobs, owners = [], {}
    for source, mirror in find_inputs(inputs):
        output = out_dir / mirror.with_suffix(suffix)
        if output in owners:
            raise UsageError(f"inputs {owners[output]} and {source} would both write {output}")
        owners[output] = source
        render = render_dir / mirror.with_suffix(".mp4") if render_dir else None
        jobs.append(Job(source, output, render))
    if not jobs:
        raise InputError("no video files found in the inputs")
    return jobs


def prepare_dir(folder: Path) -> None:
    """Create an output folder, or fail with one line before any processing."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".posecli-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise PoseCliError(f"output folder {folder} is not writable: "
                           f"{exc.strerror or exc}") from None
