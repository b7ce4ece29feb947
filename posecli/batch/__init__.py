"""Many inputs, one model load: plan the jobs (:mod:`.plan`), run them
(:mod:`.runner`), keep a manifest (:mod:`.manifest`).

A failed input is recorded and the batch goes on; an interrupted batch
discards only the output in progress.
"""

from .manifest import MANIFEST_NAME, BatchReport, JobResult, write_manifest
from .plan import VIDEO_SUFFIXES, Job, find_inputs, plan_jobs, prepare_dir
from .runner import VideoJobRunner, is_complete, run_jobs

__all__ = [
    "MANIFEST_NAME", "VIDEO_SUFFIXES", "BatchReport", "Job", "JobResult", "VideoJobRunner",
    "find_inputs", "is_complete", "plan_jobs", "prepare_dir", "run_jobs", "write_manifest",
]
