"""Many inputs, one model load: plan the jobs (:mod:`.plan`, :mod:`.shard`), run
them (:mod:`.runner`, on an engine of :mod:`.engines`), keep a manifest
(:mod:`.manifest`).

A failed input is recorded and the batch goes on; an interrupted batch
discards only the outputs in progress.
"""

from .engines import ENGINES, EngineChoice
from .manifest import (
    MANIFEST_NAME,
    BatchReport,
    JobResult,
    merge_manifests,
    update_report,
    write_manifest,
)
from .plan import (
    VIDEO_SUFFIXES,
    Job,
    check_writable,
    check_written_paths,
    find_inputs,
    is_posecli_file,
    plan_jobs,
    prepare_dir,
)
from .provenance import Provenance, is_complete, output_info, source_record
from .runner import (
    RunnerSpec,
    VideoJobRunner,
    local_engine,
    run_batch,
    run_job,
)
from .shard import Shard, job_key

__all__ = [
    "ENGINES", "MANIFEST_NAME", "VIDEO_SUFFIXES", "BatchReport", "EngineChoice",
    "Job", "JobResult", "Provenance", "RunnerSpec", "Shard", "VideoJobRunner",
    "check_writable", "check_written_paths", "find_inputs", "is_complete", "is_posecli_file",
    "job_key", "local_engine", "merge_manifests", "output_info", "plan_jobs", "prepare_dir",
    "run_batch", "run_job", "source_record", "update_report", "write_manifest",
]
