"""``posecli weights``: download, list, locate and verify model weights.

Failures raise :mod:`posecli.errors` exceptions; the main CLI turns them into
one ``posecli: error: ...`` line and their exit code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError, WeightsError
from ..model_config import ModelConfig
from ..weights.store import (
    CMU_BODY_URL,
    builtin_models,
    default_weights_path,
    download,
    file_sha256,
    resolve_weights,
    weights_dir,
)
from .help import PlainHelpCommand

weights_app = typer.Typer(
    help="Find, download and check the pose model weights.", no_args_is_help=True)


def describe_config(config: ModelConfig) -> str:
    """One line of a config's sizes, e.g. ``stages 6, vgg 64/128/256/512, ...``."""
    return (f"stages {config.stages}, vgg {'/'.join(map(str, config.vgg_widths))}, "
            f"cpm {'/'.join(map(str, config.cpm_widths))}, "
            f"stage1 {config.stage1_width}/{config.stage1_hidden}, "
            f"refine {config.refine_width} k{config.refine_kernel}")


def human_size(num_bytes: int) -> str:
    """Bytes in binary units with one decimal (``1.5 MiB``)."""
    if num_bytes < 1024:
        return f"{num_bytes} B"
    size = num_bytes / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _check_sha256(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise UsageError(f"--sha256 must be 64 hexadecimal digits, got {value!r}")
    return value.lower() if value else None


@weights_app.command("download", cls=PlainHelpCommand)
def download_command(
    url: Annotated[str, typer.Option(
        metavar="URL", help="Where to fetch the weights from.")
    ] = CMU_BODY_URL,
    sha256: Annotated[str | None, typer.Option(
        "--sha256", metavar="HEX",
        help="Expected SHA-256 (64 hex digits); a mismatch discards the file.")] = None,
    dest: Annotated[Path | None, typer.Option(
        metavar="FILE", help="File to write (default: the CMU model's place in the user "
        "cache, where runs without --weights find it).")] = None,
) -> None:
    """Download weights (default: the CMU COCO body model).

    The file is checked to load before it is kept; it then serves every run
    without --weights (unless --dest puts it elsewhere).
    """
    expected = _check_sha256(sha256)
    target = dest or default_weights_path()
    digest = download(url, target, sha256=expected, progress=True)
    from ..weights.load import load_weights

    try:
        loaded = load_weights(target)
    except WeightsError as exc:
        target.unlink(missing_ok=True)
        raise WeightsError(f"downloaded file was removed, it is not usable: {exc}") from None
    typer.echo(f"path: {target}")
    typer.echo(f"format: {loaded.format}")
    typer.echo(f"sha256: {digest}")


@weights_app.command("list", cls=PlainHelpCommand)
def list_command() -> None:
    """List the built-in models and the cached weights.

    Each with its size, format and SHA-256; unusable or partial files say so.
    """
    for name, path in builtin_models().items():
        typer.echo(f"{name} (built in, --weights {name})  {human_size(path.stat().st_size)}  "
                   f"{_describe_file(path)}")
    folder = weights_dir()
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []
    if not files:
        typer.echo(f"no weights in {folder} (run 'posecli weights download')")
        return
    for path in files:
        typer.echo(f"{path.name}  {human_size(path.stat().st_size)}  {_describe_file(path)}")


def _describe_file(path: Path) -> str:
    """``FORMAT  SHA256`` of a cached file, or why it cannot be used."""
    if path.suffix == ".part":
        return f"partial download  {file_sha256(path)}"
    from ..weights.load import load_weights

    try:
        loaded = load_weights(path)
    except WeightsError as exc:
        return f"unusable ({exc})  {file_sha256(path)}"
    return f"{loaded.format}  {loaded.sha256}"


@weights_app.command("path", cls=PlainHelpCommand)
def path_command() -> None:
    """Print the weights file a run would use.

    That is $POSECLI_WEIGHTS, else the downloaded CMU model in the user cache;
    exit code 2 when there is none.
    """
    typer.echo(str(resolve_weights(None)))


@weights_app.command("verify", cls=PlainHelpCommand)
def verify_command(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The weights file to check.")],
    sha256: Annotated[str | None, typer.Option(
        "--sha256", metavar="HEX",
        help="Expected SHA-256 (64 hex digits) of the file; exit 1 when it differs.")] = None,
) -> None:
    """Load a weights file; print its format, size and SHA-256."""
    from ..weights.load import load_weights

    expected = _check_sha256(sha256)
    loaded = load_weights(file)
    typer.echo(f"path: {file}")
    typer.echo(f"format: {loaded.format}")
    typer.echo(f"parameters: {loaded.num_parameters():,}")
    typer.echo(f"config: {describe_config(loaded.config)}")
    typer.echo(f"sha256: {loaded.sha256}")
    if expected and loaded.sha256 != expected:
        raise WeightsError(f"weights file {file} has SHA-256 {loaded.sha256}, expected {expected}")
