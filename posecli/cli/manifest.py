"""``posecli manifest``: work with batch manifests; ``merge`` joins the manifests of
a job array's shards (``posecli batch --shard K/N``) into one."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import InputError, UsageError, error_reason
from .console import count, say, warn
from .help import PlainHelpCommand

manifest_app = typer.Typer(help="Work with batch manifests.", no_args_is_help=True)


@manifest_app.command("merge", cls=PlainHelpCommand)
def merge_command(
    out: Path = typer.Argument(..., metavar="OUT", help="The merged manifest to write."),
    manifests: list[Path] = typer.Argument(..., metavar="MANIFEST...",
                                           help="The shards' manifests."),
) -> None:
    """Merge the manifests of a batch's shards into one; totals are recomputed.

    Manifests of different runs (other options, model, shard count or inputs),
    the same shard twice or the same output twice are refused (exit 2); missing
    shards are named, and the exit code is then 1.

    Example: posecli manifest merge poses/manifest.json poses/manifest-*-of-4.json
    """
    from ..batch.manifest import merge_manifests, write_manifest

    seen: dict[Path, Path] = {}
    documents = []
    for path in manifests:
        resolved = path.resolve()
        if resolved in seen:
            raise UsageError(f"{path} is given twice")
        if resolved == out.resolve():
            raise UsageError(f"the output {out} is one of the manifests to merge")
        seen[resolved] = path
        try:
            documents.append((str(path), path.read_bytes()))
        except OSError as exc:
            raise InputError(f"cannot read {path}: {error_reason(exc)}") from None
    header, report, missing = merge_manifests(documents)
    write_manifest(out, report, header)
    totals = report.totals()
    say(f"posecli: merged {count(len(documents), 'manifest')} into {out}: "
        f"{count(totals['files'], 'file')}: {totals['ok']} ok, {totals['skipped']} skipped, "
        f"{totals['failed']} failed, {totals['unfinished']} unfinished")
    if missing:
        shard_count = header["shard"]["count"]
        warn(f"{count(len(missing), 'shard')} of {shard_count} missing: "
             f"{', '.join(map(str, missing))}")
        raise typer.Exit(1)
