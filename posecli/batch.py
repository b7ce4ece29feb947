"""Many inputs, one model load: plan the jobs, run them, keep a manifest.

Inputs are files, directories (searched recursively for video files) or glob
patterns. Each input's output mirrors its path under the output directory
(``a/b/c.mp4`` -> ``OUT/a/b/c.json``). A failed input is recorded and the batch
goes on; an interrupted batch discards only the output in progress.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .errors import InputError, PoseCliError, UsageError
from .formats import write_atomic

#: File name endings taken from directories (explicit files and globs take anything).
VIDEO_SUFFIXES = frozenset({
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".mts",
    ".m2ts", ".wmv", ".flv", ".3gp", ".ogv", ".mxf", ".dv",
})
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class Job:
    """One input and where its outputs go."""

    source: Path
    output: Path
    render: Path | None = None


@dataclass
class JobResult:
    """What happened to one job: status is ok, skipped or failed."""

    input: str
    output: str
    status: str
    frames: int = 0
    people: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class BatchReport:
    """Every job's result, plus totals; written as the manifest."""

    results: list[JobResult] = field(default_factory=list)
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    def totals(self) -> dict[str, Any]:
        seconds = sum(r.seconds for r in self.results)
        frames = sum(r.frames for r in self.results if r.status == "ok")
        return {
            "files": len(self.results), "ok": self.count("ok"),
            "skipped": self.count("skipped"), "failed": self.count("failed"),
            "frames": frames, "people": sum(r.people for r in self.results),
            "seconds": round(seconds, 3), "fps": round(frames / seconds, 3) if seconds else 0.0,
            "interrupted": self.interrupted,
        }


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


def is_complete(output: Path) -> bool:
    """Whether ``output`` is a finished posecli output (a half-written one never is).

    Documents must parse and say ``info.complete``; JSON-lines files (which only
    appear when finished) must have every line parse.
    """
    try:
        data = output.read_bytes()
    except OSError:
        return False
    try:
        if output.suffix == ".jsonl":
            return all(orjson.loads(line) is not None for line in data.splitlines())
        return orjson.loads(data).get("info", {}).get("complete") is True
    except (orjson.JSONDecodeError, AttributeError):
        return False


def write_manifest(path: Path, report: BatchReport, header: dict[str, Any]) -> None:
    """The machine-readable record of a batch (atomic)."""
    document = {**header, "totals": report.totals(),
                "files": [asdict(result) for result in report.results]}
    write_atomic(path, orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")


def run_jobs(jobs: list[Job], run_one: Callable[[Job], tuple[int, int]], skip_existing: bool,
             on_done: Callable[[JobResult], None] = lambda result: None) -> BatchReport:
    """Run each job; record ok / skipped / failed; stop cleanly on Ctrl-C.

    ``run_one`` processes one job and returns (frames, people); it raises
    PoseCliError for a bad input and KeyboardInterrupt when interrupted.
    """
    report = BatchReport()
    for job in jobs:
        started = time.monotonic()
        result = JobResult(str(job.source), str(job.output), "ok")
        if skip_existing and is_complete(job.output):
            result.status = "skipped"
        else:
            try:
                result.frames, result.people = run_one(job)
            except KeyboardInterrupt:
                report.interrupted = True
                break
            except PoseCliError as exc:
                result.status, result.error = "failed", str(exc)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
                result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
        result.seconds = round(time.monotonic() - started, 3)
        report.results.append(result)
        on_done(result)
    return report
