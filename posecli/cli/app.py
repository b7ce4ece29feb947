"""The ``posecli`` Typer app and its entry point: every error becomes one line and an exit code.

Only light modules are imported here and by the command modules at import time
(typer, rich, posecli's option declarations): ``--help``, ``--version`` and
option errors never load torch or PyAV. Each command imports what it runs.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import typer

from .. import __version__
from ..errors import Interrupted, PoseCliError
from ..interrupts import ESTIMATE_THREAD
from ..outputs import OutputPipeClosed, silence_stdout
from .batch import batch
from .compare import compare
from .console import stderr_console
from .help import PlainHelpCommand
from .image import image
from .manifest import manifest_app
from .synth import synth
from .track import track
from .train import eval_command, train_command
from .video import video
from .weights import weights_app

app = typer.Typer(
    name="posecli",
    help="Multi-person 2D pose estimation over video and images (OpenPose CPM/PAF).",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"posecli {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Multi-person 2D pose estimation over video and images (OpenPose CPM/PAF)."""


app.command(cls=PlainHelpCommand)(video)
app.command(cls=PlainHelpCommand)(image)
app.command(cls=PlainHelpCommand)(batch)
app.command(cls=PlainHelpCommand)(synth)
app.command("train", cls=PlainHelpCommand)(train_command)
app.command("eval", cls=PlainHelpCommand)(eval_command)
app.command(cls=PlainHelpCommand)(compare)
app.command(cls=PlainHelpCommand)(track)
app.add_typer(weights_app, name="weights")
app.add_typer(manifest_app, name="manifest")


def main(argv: list[str] | None = None) -> None:
    """Run the app; every error becomes one line on stderr and an exit code."""
    err = stderr_console()
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _terminate)
    interrupted_run = False
    try:
        code = app(args=argv, prog_name="posecli", standalone_mode=False)
    except PoseCliError as exc:
        err.print(f"posecli: error: {exc}", markup=False)
        code = exc.exit_code
        interrupted_run = isinstance(exc, Interrupted)
    except SystemExit as exc:
        if not _click_swallowed_broken_pipe():
            raise
        # Click turned a broken pipe into a silent exit 1: one line and 141, as for data.
        silence_stdout()
        err.print(f"posecli: error: {OutputPipeClosed()}", markup=False)
        code = OutputPipeClosed.exit_code if exc.code in (0, 1) else exc.code
    except Exception as exc:
        if not _is_click_error(exc):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":
            typer.echo(exc.ctx.get_help())
            code = 0
        else:
            err.print(f"posecli: error: {exc.format_message()}", markup=False)
            code = exc.exit_code
    if code == 130 and not interrupted_run:  # Typer turns a bare Ctrl-C into 130
        err.print(f"posecli: interrupted after {time.monotonic() - started:.1f} s; "
                  "no output written", markup=False)
    sys.exit(code if isinstance(code, int) else 0)


def entry() -> None:
    """The console script: main(), then a hard exit if an interrupted network call
    is still running in the background (interpreter shutdown would abort in torch).
    Outputs are complete and flushed by then."""
    try:
        main()
    except SystemExit as exc:
        if any(t.name == ESTIMATE_THREAD and t.is_alive() for t in threading.enumerate()):
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.code if isinstance(exc.code, int) else 1)
        raise


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM stops a run like Ctrl-C: finished work is kept, nothing partial is left."""
    raise KeyboardInterrupt


def _click_swallowed_broken_pipe() -> bool:
    """Whether Click caught a broken pipe (EPIPE) of a command: it then replaces
    sys.stdout with its PacifyFlushWrapper and exits 1 without a word."""
    return type(sys.stdout).__name__ == "PacifyFlushWrapper"


def _is_click_error(exc: Exception) -> bool:
    """Whether ``exc`` is Click's usage/parameter error (Typer may vendor Click)."""
    return any(cls.__name__ == "ClickException" for cls in type(exc).__mro__)
