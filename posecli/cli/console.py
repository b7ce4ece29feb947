"""What the commands print on stderr: warnings, summary lines and progress bars."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


def stderr_console() -> Console:
    """A console on stderr that prints text as it is (no markup, no highlighting)."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def say(message: str) -> None:
    """One line on stderr, as it is."""
    stderr_console().print(message, markup=False)


def warn(message: str) -> None:
    """One warning line on stderr."""
    say(f"posecli: warning: {message}")


def count(number: int, noun: str, plural: str | None = None) -> str:
    """``3 clips``, ``1 clip``; ``plural`` for irregular nouns (person / people)."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def run_summary(done: int, noun: str, rate_unit: str, people: int, seconds: float,
                outputs: list[str], failed: int = 0) -> str:
    """The line ``video`` and ``image`` print when they finish, e.g.
    ``posecli: 20 frames, 70 people in 3.1 s (6.4 fps) -> poses.json``.

    ``done`` items (``noun``) in ``seconds`` of processing (after the model has
    loaded), their rate in ``rate_unit``; ``outputs``: the files written (``-``
    is shown as stdout); ``failed``: inputs that could not be read.
    """
    rate = done / seconds if seconds > 0 else 0.0
    written = ", ".join("stdout" if out == "-" else out for out in outputs)
    failures = f", {failed} failed" if failed else ""
    return (f"posecli: {count(done, noun)}, {count(people, 'person', 'people')} in "
            f"{seconds:.1f} s ({rate:.1f} {rate_unit}){failures} -> {written}")


class _RateColumn(ProgressColumn):
    """Frames per second since the task started."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:6.1f} fps" if speed else "   ... fps", style="progress.data.speed")


class FrameProgress:
    """Progress bars on stderr (frames, and files for a batch), or nothing when off."""

    def __init__(self, progress: Progress | None, files: int | None = None) -> None:
        self._progress = progress
        self._frames = None
        self._files = None
        if progress is not None and files is not None:
            self._files = progress.add_task("files", total=files)
            self._frames = progress.add_task("frames", total=None)

    def start(self, total: int | None) -> None:
        if self._progress is not None:
            self._frames = self._progress.add_task("frames", total=total)

    def advance(self, frames: int) -> None:
        if self._progress is not None and self._frames is not None:
            self._progress.advance(self._frames, frames)

    def file_done(self) -> None:
        if self._progress is not None and self._files is not None:
            self._progress.advance(self._files, 1)


@contextmanager
def progress_bars(quiet: bool, files: int | None = None) -> Iterator[FrameProgress]:
    """Progress bars only when stderr is a terminal and --quiet is off."""
    if quiet or not sys.stderr.isatty():
        yield FrameProgress(None)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), _RateColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        yield FrameProgress(progress, files)
