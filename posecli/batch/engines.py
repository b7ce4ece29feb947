"""Choosing where a batch runs: ``--engine local`` (this process) or ``--engine ray``
(Ray workers; see :mod:`.ray_engine`), with the options that go with it.

A session (:meth:`EngineChoice.session`) is entered before any work (the Ray one
joins a cluster or starts a local instance, and an unreachable address fails at
once); its ``engine(...)`` gives :func:`~posecli.batch.runner.run_batch` an
:data:`~posecli.batch.runner.Engine`, and ``describe()`` says for the manifest
how the batch ran. Ray is imported only when it is chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from .runner import Engine, RunnerSpec, VideoJobRunner, local_engine

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class EngineChoice:
    """``--engine`` and its options; ``ray_address`` None means a new local Ray
    instance (or ``$RAY_ADDRESS``); ``workers`` None: as many as the cluster holds."""

    name: str = "local"
    ray_address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0

    def check(self, device: str = "auto") -> None:
        """UsageError (exit 2), before any work: an unknown engine, Ray options
        without the Ray engine, bad Ray options (for ``--device``), or the Ray
        engine without Ray."""
        if self.name not in ENGINES:
            raise UsageError(f"bad --engine {self.name!r}: expected local or ray")
        if self.name == "local":
            given = [flag for flag, value in (("--ray-address", self.ray_address),
                                               ("--workers", self.workers),
                                               ("--gpus-per-worker", self.gpus_per_worker))
                     if value]
            if given:
                raise UsageError(f"{', '.join(given)}: only with --engine ray")
            return
        from .ray_engine import RaySettings  # a one-line UsageError without Ray

        self._ray_settings(RaySettings).check(device)

    @property
    def driver_device(self) -> str | None:
        """Where this process loads its own model (None: ``--device``); the Ray
        driver loads it on the CPU only to check the weights and describe them."""
        return "cpu" if self.name == "ray" else None

    def session(self) -> AbstractContextManager[Any]:
        """Where the batch will run, entered before any work (see the module doc)."""
        if self.name == "local":
            return nullcontext(LocalSession())
        from .ray_engine import RaySession, RaySettings

        return RaySession(self._ray_settings(RaySettings))

    def _ray_settings(self, settings_type: Any) -> Any:
        return settings_type(self.ray_address, self.workers, self.gpus_per_worker)


class LocalSession:
    """The local engine: jobs one after the other in this process, on its model."""

    def engine(self, spec: RunnerSpec, runner: VideoJobRunner, jobs: int,
               on_frames: Callable[[int], None],
               on_warning: Callable[[str], None]) -> Engine:
        runner.on_frames = on_frames
        return local_engine(runner, runner.provenance() if spec.skip_existing else None)

    def describe(self) -> dict[str, Any]:
        return {"name": "local"}
