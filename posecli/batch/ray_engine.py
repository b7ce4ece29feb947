"""The Ray engine: a batch's videos on a Ray cluster, or on a local Ray instance.

One unit of work is one whole video (tracking state never splits). Each worker
is a Ray actor that builds its own runner from a
:class:`~posecli.batch.runner.RunnerSpec` (one model load) and runs each job
through :func:`~posecli.batch.runner.run_job`, as the local engine does, so
outputs are written atomically into the output folder (a filesystem that the
driver and every worker see at the same path) and are byte-identical to the
local engine's. This process, the driver, hands videos to idle workers, shows
their progress and yields each result to
:func:`~posecli.batch.runner.run_batch`, which records it.

Faults: a worker that dies mid-video (killed, out of memory) is replaced and
its video goes to another worker, up to :data:`MAX_ATTEMPTS` times. Ctrl-C
asks the running workers to stop (they do within two batches, and discard their
outputs), waits up to :data:`STOP_GRACE_S`, then kills every worker.

Imports Ray: without it, importing this module is a one-line usage error
saying how to install it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import PoseCliError, UsageError, error_reason
from ..outputs import temp_files_of
from .manifest import JobResult
from .plan import Job
from .runner import RunnerSpec, run_job

try:
    import ray
    from ray.exceptions import RayActorError
except ModuleNotFoundError as exc:  # the optional extra is not installed
    if exc.name != "ray":
        raise
    raise UsageError("--engine ray needs Ray: pip install 'posecli[ray]'") from None

#: Attempts per video before it is failed when its workers keep dying.
MAX_ATTEMPTS = 3
#: After Ctrl-C, how long running workers get to stop (they check after each batch).
STOP_GRACE_S = 10.0
#: How long an address may take to answer a TCP connection before it is unreachable.
CONNECT_TIMEOUT_S = 5.0
#: How often the driver collects progress while it waits for results.
POLL_S = 0.2
#: CPUs a worker reserves (its decoding thread and the parse run beside the network).
CPUS_PER_WORKER = 1
#: Ray's default ports: the client server (ray://) and the cluster's GCS.
_DEFAULT_PORTS = {"ray": 10001, "gcs": 6379}


@dataclass(frozen=True)
class RaySettings:
    """``--ray-address`` (None: a new local instance, or ``$RAY_ADDRESS`` when set),
    ``--workers`` (None: as many as the cluster's CPUs and GPUs hold) and
    ``--gpus-per-worker`` (fractions share a GPU)."""

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0

    def check(self, device: str = "auto") -> None:
        """UsageError (exit 2) for values that cannot work, before any work. Workers
        without GPUs see none (Ray hides them), so ``--device cuda`` needs some."""
        if self.workers is not None and self.workers < 1:
            raise UsageError(f"bad --workers {self.workers}: expected >= 1")
        if not self.gpus_per_worker >= 0:  # also NaN
            raise UsageError(f"bad --gpus-per-worker {self.gpus_per_worker}: expected >= 0")
        if self.gpus_per_worker > 1 and self.gpus_per_worker != int(self.gpus_per_worker):
            raise UsageError(f"bad --gpus-per-worker {self.gpus_per_worker}: above 1, "
                             "expected a whole number")
        if self.address not in (None, "auto", "local"):
            _host_and_port(self.address)
        if device.strip().lower().startswith("cuda") and not self.gpus_per_worker:
            raise UsageError(f"--device {device} with --engine ray needs --gpus-per-worker "
                             "(workers without GPUs see none)")


class RaySession:
    """Ray for one batch: joins the cluster (or starts a local instance) on enter and
    leaves on exit; a process already connected (a library user's ``ray.init``) is
    used as it is and left connected. ``engine(...)`` makes the batch's engine."""

    def __init__(self, settings: RaySettings) -> None:
        self.settings = settings
        self.address = settings.address or os.environ.get("RAY_ADDRESS") or None
        self.workers: int | None = None
        self.fits = 0  # workers the cluster holds
        self._owned = False

    def __enter__(self) -> RaySession:
        if ray.is_initialized():
            self.fits = self._fits()
            return self
        quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
        on_sigterm = signal.getsignal(signal.SIGTERM)
        if self.address in (None, "local"):
            ray.init(address="local", include_dashboard=False, **quiet)
        else:
            _check_reachable(self.address)
            try:
                ray.init(address=self.address, **quiet)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise UsageError(f"cannot connect to Ray at {self.address}: "
                                 f"{_first_line(exc)}") from None
        if on_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, on_sigterm)  # ray.init sets its own: keep ours
        self._owned = True
        try:
            self.fits = self._fits()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._owned:
            ray.shutdown()

    def engine(self, spec: RunnerSpec, runner: Any, jobs: int,
               on_frames: Callable[[int], None],
               on_warning: Callable[[str], None]) -> RayEngine:
        """The Ray engine for ``jobs`` jobs, checked against ``runner`` (the driver's
        own model: every worker must load the same weights)."""
        self.workers = max(1, min(self.settings.workers or self.fits, jobs))
        return RayEngine(spec, runner.model.weights.sha256, self.workers,
                         self.settings.gpus_per_worker, on_frames, on_warning)

    def describe(self) -> dict[str, Any]:
        return {"name": "ray", "workers": self.workers,
                "gpus_per_worker": self.settings.gpus_per_worker}

    def _fits(self) -> int:
        """How many workers the cluster holds; UsageError when not even one."""
        resources = ray.cluster_resources()
        gpus = self.settings.gpus_per_worker
        fits = int(resources.get("CPU", 0) // CPUS_PER_WORKER)
        if gpus:
            fits = min(fits, int(resources.get("GPU", 0) / gpus + 1e-9))
        if fits < 1:
            raise UsageError(
                f"the Ray cluster ({resources.get('CPU', 0):g} CPUs, "
                f"{resources.get('GPU', 0):g} GPUs) cannot hold one worker of "
                f"{CPUS_PER_WORKER} CPU and {gpus:g} GPU")
        return fits


def _host_and_port(address: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``ray://HOST:PORT`` (a missing port is Ray's default) ->
    (host, port); UsageError when malformed."""
    scheme, _, rest = address.rpartition("://")
    host, _, port = rest.rstrip("/").rpartition(":")
    if not host or host.endswith(":") and not host.startswith("["):
        host, port = rest.rstrip("/"), ""
    if scheme not in ("", "ray") or not host or (port and not port.isdigit()):
        raise UsageError(f"bad --ray-address {address!r}: expected auto, HOST:PORT "
                         "or ray://HOST:PORT")
    return host.strip("[]"), int(port) if port else _DEFAULT_PORTS[scheme or "gcs"]


def _check_reachable(address: str) -> None:
    """Fail at once (UsageError) when ``address`` takes no TCP connection, instead
    of letting Ray wait for it without bound. ``auto`` is checked where it points."""
    if address == "auto":
        found = _auto_address()
        if found is None:
            raise UsageError("--ray-address auto: no running Ray cluster found "
                             "(start one with `ray start --head`, or give its address)")
        if found == "auto":
            return
        host, port = _host_and_port(found)
    else:
        host, port = _host_and_port(address)
    try:
        socket.create_connection((host, port), CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else error_reason(exc)
        raise UsageError(f"cannot reach Ray at {address}: {reason}") from None


def _auto_address() -> str | None:
    """Where ``ray.init(address="auto")`` would connect ($RAY_ADDRESS, else the
    cluster last started on this machine); None when there is none."""
    try:
        from ray._private.services import canonicalize_bootstrap_address  # Ray's own lookup
    except ImportError:  # moved in another Ray version: let ray.init look
        return "auto"
    try:
        return canonicalize_bootstrap_address("auto")
    except (ConnectionError, ValueError):
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.splitlines()[0].split())


@ray.remote(num_cpus=0)
class ProgressBoard:
    """Frames finished per job attempt, reported by workers after each batch, and
    the driver's request to stop."""

    def __init__(self) -> None:
        self._frames: dict[tuple[int, int], int] = {}
        self._stopping = False

    def report(self, key: tuple[int, int], frames: int) -> bool:
        """Add ``frames`` to ``key``'s count; returns whether to go on."""
        self._frames[key] = self._frames.get(key, 0) + frames
        return not self._stopping

    def take(self) -> dict[tuple[int, int], int]:
        """The counts reported since the last call."""
        frames, self._frames = self._frames, {}
        return frames

    def stop(self) -> None:
        self._stopping = True


class PoseWorker:
    """A Ray actor: one model, loaded once, then jobs one at a time.

    Relative paths mean what they mean to the driver: the actor works in the
    driver's folder when this machine has it.
    """

    def __init__(self, spec: RunnerSpec, sha256: str, folder: str, board: Any) -> None:
        if os.path.isdir(folder):
            os.chdir(folder)
        self.spec, self.sha256, self.board = spec, sha256, board
        self.runner: Any = None
        self.warnings: list[str] = []
        self.key: tuple[int, int] = (-1, 0)
        self.last_report: Any = None  # the running job's last progress report

    def load(self) -> tuple[str, int] | None:
        """Build the runner; returns None, or (error message, exit code)."""
        try:
            self.runner = self.spec.build(self._frames_done, self.warnings.append)
        except PoseCliError as exc:
            return f"{self._who()} could not load the model: {exc}", exc.exit_code
        found = self.runner.model.weights.sha256
        if found != self.sha256:
            return (f"{self._who()} has another {self.spec.weights} than the driver "
                    f"(SHA-256 {found[:12]}..., expected {self.sha256[:12]}...)", 2)
        return None

    @staticmethod
    def _who() -> str:
        return f"the Ray worker on {socket.gethostname()}"

    def run(self, job: Job, key: tuple[int, int]) -> tuple[JobResult | None, list[str]]:
        """(the job's result, its warnings); the result is None when the driver
        stopped the job (its outputs were discarded)."""
        self.key, self.last_report = key, None
        self.warnings.clear()
        try:
            skip = self.runner.provenance() if self.spec.skip_existing else None
            return run_job(job, self.runner, skip), list(self.warnings)
        except KeyboardInterrupt:
            return None, list(self.warnings)

    def _frames_done(self, frames: int) -> None:
        """Report a finished batch without waiting; the answer to the previous report
        says whether the driver is stopping (then this job's outputs are discarded)."""
        previous, self.last_report = self.last_report, self.board.report.remote(self.key, frames)
        if previous is not None and ray.wait([previous], timeout=0)[0] and not ray.get(previous):
            raise KeyboardInterrupt


_RemoteWorker = ray.remote(max_restarts=0, max_task_retries=0)(PoseWorker)


class RayEngine:
    """Runs jobs on Ray workers (see the module doc); an
    :data:`~posecli.batch.runner.Engine` for :func:`~posecli.batch.runner.run_batch`.

    ``sha256``: the driver's weights file digest, which every worker checks;
    ``on_frames``: frames finished (negative when a dead worker's work is redone);
    ``on_warning``: one-line warnings.
    """

    def __init__(self, spec: RunnerSpec, sha256: str, workers: int, gpus_per_worker: float,
                 on_frames: Callable[[int], None] = lambda n: None,
                 on_warning: Callable[[str], None] = lambda message: None) -> None:
        self.spec, self.sha256 = spec, sha256
        self.workers, self.gpus_per_worker = workers, gpus_per_worker
        self.on_frames, self.on_warning = on_frames, on_warning

    def __call__(self, jobs: Sequence[Job], on_start: Callable[[Job], None]
                 ) -> Iterator[tuple[Job, JobResult]]:
        return _Dispatch(self, list(jobs), on_start).run()


class _Dispatch:
    """One batch's run on the workers: the queue, the workers' states, progress."""

    def __init__(self, engine: RayEngine, jobs: list[Job], on_start: Callable[[Job], None]):
        self.engine, self.on_start = engine, on_start
        self.index = {job: i for i, job in enumerate(jobs)}
        self.queue = deque(jobs)
        self.attempts: dict[Job, int] = {}
        self.counted: dict[tuple[int, int], int] = {}  # frames shown, per running attempt
        self.loading: dict[Any, Any] = {}  # load() ref -> actor
        self.running: dict[Any, tuple[Any, Job, tuple[int, int]]] = {}  # run() ref -> ...
        self.idle: list[Any] = []
        self.loaded_once = False
        self.load_errors: list[tuple[str, int]] = []  # before any worker loaded
        self.stopping = False
        self.board: Any = None

    def run(self) -> Iterator[tuple[Job, JobResult]]:
        if not self.queue:
            return
        self.board = ProgressBoard.remote()
        try:
            for _ in range(min(self.engine.workers, len(self.queue))):
                self._start_worker()
            while self.queue or self.running:
                self._dispatch()
                if not (self.idle or self.loading or self.running):
                    raise PoseCliError("no Ray worker is left to run the batch")
                refs = [*self.loading, *self.running]
                ready, _ = ray.wait(refs, num_returns=1, timeout=POLL_S)
                self._show_progress()
                for ref in ready:
                    if ref in self.loading:
                        self._loaded(ref)
                    else:
                        yield from self._finished(ref)
        except KeyboardInterrupt:
            yield from self._stop()
            raise
        finally:
            for actor in {*self.loading.values(), *self.idle,
                          *(actor for actor, _, _ in self.running.values())}:
                ray.kill(actor)
            ray.kill(self.board)

    def _start_worker(self) -> None:
        actor = _RemoteWorker.options(
            num_cpus=CPUS_PER_WORKER, num_gpus=self.engine.gpus_per_worker,
        ).remote(self.engine.spec, self.engine.sha256, os.getcwd(), self.board)
        self.loading[actor.load.remote()] = actor

    def _dispatch(self) -> None:
        while self.idle and self.queue:
            actor, job = self.idle.pop(), self.queue.popleft()
            attempt = self.attempts[job] = self.attempts.get(job, 0) + 1
            key = (self.index[job], attempt)
            self.counted[key] = 0
            self.running[actor.run.remote(job, key)] = (actor, job, key)
            self.on_start(job)

    def _loaded(self, ref: Any) -> None:
        """A worker finished loading: it becomes idle, or its error is reported (the
        batch's error when no worker can load the model)."""
        actor = self.loading.pop(ref)
        try:
            error = ray.get(ref)
        except RayActorError as exc:  # dead, or unreachable (then killed)
            error = (f"a Ray worker died while loading the model ({_first_line(exc)})", 1)
        if error is None:
            self.idle.append(actor)
            self.loaded_once = True
        else:
            ray.kill(actor)
            self.load_errors.append(error)
        if self.loaded_once:
            for message, _ in self.load_errors:
                self.engine.on_warning(f"{message}; the batch goes on without it")
            self.load_errors.clear()
        elif not self.loading:
            message, code = self.load_errors[0]
            failure = PoseCliError(message)
            failure.exit_code = code
            raise failure

    def _finished(self, ref: Any) -> Iterator[tuple[Job, JobResult]]:
        actor, job, key = self.running.pop(ref)
        shown = self.counted.pop(key, 0)
        try:
            result, warnings = ray.get(ref)
        except RayActorError as exc:  # dead, or unreachable (then killed)
            ray.kill(actor)
            self.engine.on_frames(-shown)
            yield from self._worker_died(job, exc)
            return
        self.idle.append(actor)
        for warning in warnings:
            self.engine.on_warning(warning)
        if result is not None:
            if result.status == "ok":
                self.engine.on_frames(result.frames - shown)
            yield job, result

    def _worker_died(self, job: Job, exc: BaseException) -> Iterator[tuple[Job, JobResult]]:
        """A worker died mid-video: discard its partial files, retry the video elsewhere
        (or fail it after MAX_ATTEMPTS), and replace the worker."""
        for dest, suffix in ((job.output, ".part"), (job.render, ".part.mp4")):
            if dest is not None:
                for partial in temp_files_of(dest, suffix):
                    partial.unlink(missing_ok=True)
        attempt = self.attempts[job]
        if self.stopping:
            return  # the batch stops anyway: the video counts as interrupted
        if attempt >= MAX_ATTEMPTS:
            yield job, JobResult(str(job.source), str(job.output), "failed",
                                 error=f"its Ray worker died {attempt} times, the last "
                                       f"time with: {_first_line(exc)}")
        else:
            self.engine.on_warning(f"a Ray worker died while processing {job.source} "
                                   f"(attempt {attempt} of {MAX_ATTEMPTS}); "
                                   "retrying it on another worker")
            self.queue.appendleft(job)
        if self.queue:
            self._start_worker()

    def _show_progress(self) -> None:
        for key, frames in ray.get(self.board.take.remote()).items():
            if key in self.counted:  # reports of finished or dead attempts are settled
                self.counted[key] += frames
                self.engine.on_frames(frames)

    def _stop(self) -> Iterator[tuple[Job, JobResult]]:
        """Ctrl-C: running workers stop within two batches; results that finish
        meanwhile are kept."""
        self.queue.clear()
        self.stopping = True
        if not self.running:
            return
        self.board.stop.remote()
        deadline = time.monotonic() + STOP_GRACE_S
        while self.running and time.monotonic() < deadline:
            ready, _ = ray.wait(list(self.running), num_returns=len(self.running),
                                timeout=max(0.0, deadline - time.monotonic()))
            for ref in ready:
                yield from self._finished(ref)
            if not ready:
                break

