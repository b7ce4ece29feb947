"""``--shard K/N``: one part of a batch for a job array (Slurm arrays, Kubernetes
indexed Jobs), without any cluster software.

Each job belongs to shard ``hash(key) mod N``, where the key is its output's
path under the output folder without the format's suffix (``videos/a/b``,
Unicode-normalised): it depends only on the input's own path as given, never on
the machine, the order of a directory listing or which other files exist. So
the N shards are disjoint and together hold every input, and each shard records
a digest of the whole input list so that a merge can tell whether every shard
saw the same one.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .plan import Job

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0 <= index < count)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``K/N`` -> Shard(K, N); UsageError (exit 2) when malformed or out of range."""
        match = _SHARD.fullmatch(text)
        if not match:
            raise UsageError(f"bad --shard {text!r}: expected K/N, e.g. 0/4")
        index, count = int(match[1]), int(match[2])
        if count < 1 or index >= count:
            raise UsageError(f"bad --shard {text!r}: expected 0 <= K < N")
        return cls(index, count)

    @property
    def manifest_name(self) -> str:
        """The shard's default manifest name: ``manifest-K-of-N.json``."""
        return f"manifest-{self.index}-of-{self.count}.json"

    def holds(self, key: str) -> bool:
        """Whether the job with ``key`` (see :func:`job_key`) is in this shard."""
        digest = hashlib.sha256(key.encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index

    def select(self, jobs: Sequence[Job], out_dir: Path) -> list[Job]:
        """This shard's jobs, in plan order."""
        return [job for job in jobs if self.holds(job_key(job, out_dir))]

    def describe(self, jobs: Sequence[Job], out_dir: Path) -> dict[str, Any]:
        """For the manifest: the shard, and the whole input list's size and digest."""
        keys = sorted(job_key(job, out_dir) for job in jobs)
        digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()
        return {"index": self.index, "count": self.count, "inputs": len(keys),
                "inputs_sha256": digest}


def job_key(job: Job, out_dir: Path) -> str:
    """A job's machine-independent name: its output path under ``out_dir``, no suffix."""
    relative = job.output.relative_to(out_dir).with_suffix("")
    return unicodedata.normalize("NFC", relative.as_posix())
