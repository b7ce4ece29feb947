"""``posecli weights``: download, list, locate and verify model weights.

Failures raise :mod:`posecli.errors` exceptions; the main CLI turns them into
one ``posecli: error: ...`` line and their exit code. ``list`` and ``path`` do not
import torch; ``download`` and ``verify`` load the file to check it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import UsageError, WeightsError
from ..weights.registry import DEFAULT_MODEL, MODELS, RemoteModel
from ..weights.store import builtin_models, resolve_weights, weights_dir
from .console import say
from .help import PlainHelpCommand

weights_app = typer.Typer(
    help="Find, download and check the pose model weights.", no_args_is_help=True)


def describe_config(config: Any) -> str:
    """One line of a config's sizes, e.g. ``stages 6, vgg 64/128/256/512, ...``."""
    if hasattr(config, "describe"):
        return config.describe()
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


def _registry_model(name: str) -> RemoteModel:
    if name not in MODELS:
        raise UsageError(f"unknown model {name!r}: expected one of {', '.join(MODELS)}")
    return MODELS[name]


@weights_app.command("download", cls=PlainHelpCommand)
def download_command(
    name: Annotated[str, typer.Argument(
        metavar="NAME", help=f"The model: {', '.join(MODELS)}.")] = DEFAULT_MODEL,
    url: Annotated[str | None, typer.Option(
        metavar="URL",
        help="Fetch from here instead (a mirror: still checked against the model's "
             "published size and SHA-256 unless --sha256 is given).")] = None,
    sha256: Annotated[str | None, typer.Option(
        "--sha256", metavar="HEX",
        help="Expected SHA-256 (64 hex digits), instead of the published one; a mismatch "
             "deletes the file.")] = None,
    dest: Annotated[Path | None, typer.Option(
        metavar="FILE",
        help="File to write (default: the weights cache, where --weights NAME finds it).")]
        = None,
) -> None:
    """Download a published model (default: the CMU COCO body model).

    The file is checked (size and SHA-256 where published) and loaded before it
    is kept.

    Example: posecli weights download lightweight
    """
    from ..weights.records import record_check, record_download
    from ..weights.store import download_model

    model = _registry_model(name)
    expected = _check_sha256(sha256)
    if model.licence_notice:
        say(model.licence_notice)
    target, digest = download_model(model, url, dest, expected, progress=True)
    from ..weights.load import load_weights

    in_cache = target.parent.resolve() == weights_dir().resolve()
    if in_cache:
        record_download(target, url or model.url, digest, pinned=bool(expected or model.pinned))
    try:
        loaded = load_weights(target)
    except WeightsError as exc:
        target.unlink(missing_ok=True)
        raise WeightsError(f"downloaded file was removed, it is not usable: {exc}") from None
    if in_cache:
        record_check(target, digest, loaded.format, loaded.num_parameters(), None)
    typer.echo(f"path: {target}")
    typer.echo(f"format: {loaded.format}")
    typer.echo(f"size: {target.stat().st_size:,} bytes")
    typer.echo(f"sha256: {digest}")
    typer.echo(f"licence: {model.licence}")
    if expected or model.pinned:
        typer.echo("checked: size and SHA-256 match" if not expected else "checked: SHA-256 "
                   "matches --sha256")
    elif in_cache:
        typer.echo("checked: no published digest exists; this SHA-256 is recorded and "
                   f"'posecli weights verify {model.name}' compares against it from now on")
    else:
        typer.echo("checked: no published digest exists; keep this SHA-256 to check the file "
                   "later (--sha256)")


@weights_app.command("list", cls=PlainHelpCommand)
def list_command() -> None:
    """List the built-in, cached and downloadable models.

    Each with its size, format, SHA-256 and licence.
    """
    from ..weights.inventory import builtin_facts, cached_facts

    typer.echo("built in (--weights NAME):")
    for facts in builtin_facts():
        typer.echo(f"  {facts.name}  {human_size(facts.size)}  {facts.format}  {facts.sha256}"
                   f"  licence: {facts.licence}")
    folder = weights_dir()
    cached = cached_facts()
    typer.echo(f"in the cache ({folder}):")
    if not cached:
        typer.echo("  no weights (run 'posecli weights download')")
    for facts in cached:
        line = (f"  {facts.name}  {human_size(facts.size)}  {facts.format or 'unknown format'}"
                f"  {facts.status}  {facts.sha256}")
        if facts.licence:
            line += f"  licence: {facts.licence}"
        if facts.provenance:
            line += f"  ({facts.provenance})"
        typer.echo(line)
    typer.echo("downloadable (posecli weights download NAME, then --weights NAME):")
    present = {f.name for f in cached}
    for model in MODELS.values():
        size = human_size(model.size) if model.size else "size not published"
        state = "downloaded" if model.file_name in present else "not downloaded"
        typer.echo(f"  {model.name}  {model.file_name}  {size}  licence: {model.licence}  "
                   f"{state}  {model.title}")


@weights_app.command("path", cls=PlainHelpCommand)
def path_command() -> None:
    """Print the weights file a run would use.

    That is $POSECLI_WEIGHTS, else the downloaded CMU model in the user cache;
    exit code 2 when there is none.
    """
    typer.echo(str(resolve_weights(None)))


@weights_app.command("verify", cls=PlainHelpCommand)
def verify_command(
    weights: Annotated[str, typer.Argument(
        metavar="FILE|NAME", help="A weights file, or a model's name (demo, cmu, lightweight).")],
    sha256: Annotated[str | None, typer.Option(
        "--sha256", metavar="HEX",
        help="Expected SHA-256 (64 hex digits) of the file; exit 1 when it differs.")] = None,
) -> None:
    """Load weights; print their format, size, SHA-256 and licence.

    Also their parameter count and config. A downloadable model's file is
    checked against its published digest (or, without one, the digest it had
    when downloaded).
    """
    from ..weights.inventory import BUILTIN_LICENCE, provenance
    from ..weights.load import load_weights
    from ..weights.records import record_check

    expected = _check_sha256(sha256)
    path = resolve_weights(weights)
    in_cache = path.parent.resolve() == weights_dir().resolve()
    try:
        loaded = load_weights(path)
    except WeightsError as exc:
        if in_cache and path.is_file():
            from ..weights.store import file_sha256

            record_check(path, file_sha256(path), None, None, str(exc))
        raise
    if in_cache:
        record_check(path, loaded.sha256, loaded.format, loaded.num_parameters(), None)
    origin = provenance(path, loaded.sha256)
    builtin = path in builtin_models().values()
    licence = BUILTIN_LICENCE if builtin else origin.model.licence if origin.model else None
    typer.echo(f"path: {path}")
    typer.echo(f"format: {loaded.format}")
    typer.echo(f"size: {path.stat().st_size:,} bytes ({human_size(path.stat().st_size)})")
    typer.echo(f"parameters: {loaded.num_parameters():,}")
    typer.echo(f"config: {describe_config(loaded.config)}")
    typer.echo(f"sha256: {loaded.sha256}")
    typer.echo(f"licence: {licence or 'unknown (not a model posecli knows)'}")
    if origin.note:
        typer.echo(f"published: {origin.note}")
    if not origin.ok:
        raise WeightsError(f"weights file {path} {origin.note}")
    if expected and loaded.sha256 != expected:
        raise WeightsError(f"weights file {path} has SHA-256 {loaded.sha256}, expected {expected}")
