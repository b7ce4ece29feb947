"""The record of a batch: every job's result and the totals, written as JSON;
and the merge of the manifests of a job array's shards into one.

Light at import (no torch): ``posecli manifest merge`` uses it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import orjson

from ..errors import PoseCliError, UsageError
from ..formats import write_atomic

MANIFEST_NAME = "manifest.json"
#: Statuses of a job: finished (ok, failed), skipped, or stopped by Ctrl-C.
STATUSES = ("ok", "skipped", "failed", "interrupted", "not_started")
#: Header entries that may differ between manifests of one run (how it ran, not what).
_RUN_DETAILS = ("engine", "shard", "totals", "files")
#: Entries every manifest's files have (later versions added the others).
_REQUIRED = frozenset({"input", "output", "status"})


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
    #: With --skip-existing: why the job ran (no output, another input, other options...).
    redo_reason: str | None = None


@dataclass
class BatchReport:
    """Every job's result, plus totals; written as the manifest.

    ``wall_seconds``: the batch's duration (None when unknown, as for a merge);
    the frame rate is frames over it, so it counts every worker of an engine.
    ``failure``: the error that stopped the batch early (its jobs then say
    ``interrupted`` or ``not_started``); in the manifest as ``totals.error``.
    """

    results: list[JobResult] = field(default_factory=list)
    interrupted: bool = False
    wall_seconds: float | None = None
    failure: PoseCliError | None = None
    #: For a merged report: the error of the first manifest that had one.
    error: str | None = None

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    def totals(self) -> dict[str, Any]:
        seconds = sum(r.seconds for r in self.results)
        frames = sum(r.frames for r in self.results if r.status == "ok")
        elapsed = self.wall_seconds if self.wall_seconds is not None else seconds
        return {
            "files": len(self.results), "ok": self.count("ok"),
            "skipped": self.count("skipped"), "failed": self.count("failed"),
            "unfinished": self.count("interrupted") + self.count("not_started"),
            "frames": frames, "people": sum(r.people for r in self.results),
            "seconds": round(seconds, 3), "wall_seconds": self.wall_seconds,
            "fps": round(frames / elapsed, 3) if elapsed else 0.0,
            "interrupted": self.interrupted,
            "error": str(self.failure) if self.failure is not None else self.error,
        }


def write_manifest(path: Path, report: BatchReport, header: dict[str, Any]) -> None:
    """The machine-readable record of a batch (atomic)."""
    document = {**header, "totals": report.totals(),
                "files": [asdict(result) for result in report.results]}
    write_atomic(path, orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")


def merge_manifests(documents: list[tuple[str, bytes]]
                    ) -> tuple[dict[str, Any], BatchReport, list[int]]:
    """One manifest from the manifests of a run's shards: (header, report, indices of
    missing shards), for :func:`write_manifest`.

    ``documents``: (name, bytes) of each manifest. All must come from one run
    (same tool version, model, options, shard count and input list), hold each
    shard once and each output once; otherwise UsageError naming the problem.
    Files are listed by output path; totals are recomputed.
    """
    if not documents:
        raise UsageError("no manifests to merge")
    manifests = [(name, _read_manifest(name, data)) for name, data in documents]
    first_name, first = manifests[0]
    identity = _identity(first)
    shards: dict[int, str] = {}
    owners: dict[str, str] = {}
    results: list[JobResult] = []
    for name, manifest in manifests:
        other = _identity(manifest)
        if other != identity:
            differs = sorted(k for k in identity.keys() | other.keys()
                             if identity.get(k) != other.get(k))
            raise UsageError(f"{name} is from a different run than {first_name} "
                             f"({', '.join(differs)} differ)")
        shard = manifest.get("shard")
        if shard is not None:
            if shard["index"] in shards:
                raise UsageError(f"{name} and {shards[shard['index']]} are both shard "
                                 f"{shard['index']} of {shard['count']}")
            shards[shard["index"]] = name
        for entry in manifest["files"]:
            output = entry["output"]
            if output in owners:
                raise UsageError(f"{name} and {owners[output]} both have an entry for {output}")
            owners[output] = name
            results.append(JobResult(**entry))
    results.sort(key=lambda r: r.output)
    stopped = any(manifest["totals"].get("interrupted") for _, manifest in manifests)
    error = next((m["totals"]["error"] for _, m in manifests if m["totals"].get("error")), None)
    header = {k: v for k, v in first.items() if k not in _RUN_DETAILS}
    missing: list[int] = []
    if "shard" in first:
        count = first["shard"]["count"]
        missing = [k for k in range(count) if k not in shards]
        header["shard"] = {**{k: v for k, v in first["shard"].items() if k != "index"},
                           "merged": sorted(shards), "missing": missing}
    return header, BatchReport(results, interrupted=stopped, error=error), missing


def update_report(previous: tuple[str, bytes], header: dict[str, Any],
                  report: BatchReport) -> tuple[BatchReport, str | None]:
    """The manifest of a rerun on part of a batch (``--skip-existing``): the entries of
    the existing manifest ``previous`` (name, bytes), with those of this run's jobs
    replaced by ``report``'s (but for jobs the run never started) and new ones
    added. Returns (report, None); or
    (``report`` alone, why the old entries were dropped) when ``previous`` is not a
    posecli manifest or is of another run (``header``: model, options, shard...).
    """
    name, data = previous
    try:
        manifest = _read_manifest(name, data)
    except UsageError as exc:
        return report, str(exc)
    old, new = _identity(manifest), _identity(orjson.loads(orjson.dumps(header)))
    if old != new:
        differs = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        return report, f"{name} was written with other settings ({', '.join(differs)} differ)"
    # A job this run never started (stopped before it) keeps its old entry.
    mine = {result.output: result for result in report.results
            if result.status != "not_started"}
    results = [mine.pop(entry["output"], None) or JobResult(**entry)
               for entry in manifest["files"]]
    known = {result.output for result in results}
    results += [result for result in report.results if result.output not in known]
    return BatchReport(results, interrupted=report.interrupted, failure=report.failure), None


def _identity(manifest: dict[str, Any]) -> dict[str, Any]:
    """What makes manifests parts of one run: everything but how it ran and its results."""
    identity = {k: v for k, v in manifest.items() if k not in _RUN_DETAILS}
    shard = manifest.get("shard") or {}
    identity.update({f"shard {k}": v for k, v in shard.items() if k != "index"})
    return identity


def _read_manifest(name: str, data: bytes) -> dict[str, Any]:
    """A posecli batch manifest, checked enough to merge; UsageError otherwise."""
    try:
        manifest = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UsageError(f"{name} is not JSON") from None
    keys = {f.name for f in fields(JobResult)}
    if not (isinstance(manifest, dict) and manifest.get("tool") == "posecli"
            and isinstance(manifest.get("files"), list)
            and isinstance(manifest.get("totals"), dict)
            and all(isinstance(e, dict) and _REQUIRED <= set(e) <= keys
                    for e in manifest["files"])):
        raise UsageError(f"{name} is not a posecli batch manifest")
    shard = manifest.get("shard")
    if shard is not None and not (isinstance(shard, dict)
                                  and isinstance(shard.get("index"), int)
                                  and isinstance(shard.get("count"), int)):
        raise UsageError(f"{name} has a malformed shard entry")
    return manifest
