"""The ``posecli`` Typer app and ``main``: every error becomes one line and an exit code.

Only light modules are imported here and by the command modules at import time
(typer, rich, posecli's option declarations): ``--help``, ``--version`` and
option errors never load torch or PyAV. Each command imports what it runs.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import typer

from .. import __version__
from ..errors import Interrupted, PoseCliError
from ..interrupts import closing, install_handlers
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

if TYPE_CHECKING:
    from rich.console import Console

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
    """Run the app; every error becomes one line on stderr and an exit code.

    SIGINT and SIGTERM get posecli's handlers for the run (see ``interrupts``):
    the first stops it like Ctrl-C, later ones cannot abort finishing its outputs.
    """
    err = stderr_console()
    started = time.monotonic()
    restore = install_handlers()
    try:
        code, interrupted_run = _run(argv, err)
    finally:
        closing()
        restore()
    if code == 130 and not interrupted_run:  # Typer turns a bare Ctrl-C into 130
        err.print(f"posecli: interrupted after {time.monotonic() - started:.1f} s; "
                  "no output written", markup=False)
    sys.exit(code if isinstance(code, int) else 0)


def _run(argv: list[str] | None, err: Console) -> tuple[int | None, bool]:
    """The app's exit code, and whether a command reported its own interruption."""
    try:
        return app(args=argv, prog_name="posecli", standalone_mode=False), False
    except PoseCliError as exc:
        err.print(f"posecli: error: {exc}", markup=False)
        return exc.exit_code, isinstance(exc, Interrupted)
    except SystemExit as exc:
        if not _click_swallowed_broken_pipe():
            raise
        # Click turned a broken pipe into a silent exit 1: one line and 141, as for data.
        silence_stdout()
        err.print(f"posecli: error: {OutputPipeClosed()}", markup=False)
        return (OutputPipeClosed.exit_code if exc.code in (0, 1) else exc.code), False
    except Exception as exc:
        if not _is_click_error(exc):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":
            typer.echo(exc.ctx.get_help())
            return 0, False
        err.print(f"posecli: error: {exc.format_message()}", markup=False)
        return exc.exit_code, False


def _click_swallowed_broken_pipe() -> bool:
    """Whether Click caught a broken pipe (EPIPE) of a command: it then replaces
    sys.stdout with its PacifyFlushWrapper and exits 1 without a word."""
    return type(sys.stdout).__name__ == "PacifyFlushWrapper"


def _is_click_error(exc: Exception) -> bool:
    """Whether ``exc`` is Click's usage/parameter error (Typer may vendor Click)."""
    return any(cls.__name__ == "ClickException" for cls in type(exc).__mro__)
