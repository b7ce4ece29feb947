"""The record of a batch: every job's result and the totals, written as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..formats import write_atomic

MANIFEST_NAME = "manifest.json"
#: Statuses of a job: finished (ok, failed), skipped, or stopped by Ctrl-C.
STATUSES = ("ok", "skipped", "failed", "interrupted", "not started")


@dataclass
class JobResult:
    """What happened to one job: a status of :data:`STATUSES`; seconds of wall time."""

    input: str
    output: str
    status: str
    frames: int = 0
    people: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class BatchReport:
    """Every job's result, plus totals; written as the manifest.

    ``wall_seconds``: the batch's duration (None when unknown, as for a merge);
    the frame rate is frames over it, so it counts every worker of an engine.
    """

    results: list[JobResult] = field(default_factory=list)
    interrupted: bool = False
    wall_seconds: float | None = None

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    def totals(self) -> dict[str, Any]:
        seconds = sum(r.seconds for r in self.results)
        frames = sum(r.frames for r in self.results if r.status == "ok")
        elapsed = self.wall_seconds if self.wall_seconds is not None else seconds
        return {
            "files": len(self.results), "ok": self.count("ok"),
            "skipped": self.count("skipped"), "failed": self.count("failed"),
            "unfinished": self.count("interrupted") + self.count("not started"),
            "frames": frames, "people": sum(r.people for r in self.results),
            "seconds": round(seconds, 3), "wall_seconds": self.wall_seconds,
            "fps": round(frames / elapsed, 3) if elapsed else 0.0,
            "interrupted": self.interrupted,
        }


def write_manifest(path: Path, report: BatchReport, header: dict[str, Any]) -> None:
    """The machine-readable record of a batch (atomic)."""
    document = {**header, "totals": report.totals(),
                "files": [asdict(result) for result in report.results]}
    write_atomic(path, orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
