"""What weights are at hand and what is known of them: the facts ``posecli weights list``
and ``verify`` print (no torch).

A cached file's format comes from the record of its last full load when the file
has not changed since (:mod:`.records`), else from sniffing its structure
(:mod:`.sniff`, marked "not verified"). Its licence and provenance come from the
registry (:mod:`.registry`): a file with a model's published SHA-256 is that
model; a file at a model's place in the cache is checked against the published
digest, or, for a model without one, against the digest recorded when posecli
downloaded it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsError
from .records import current_check, downloaded_sha256
from .registry import MODELS, RemoteModel, model_for_file
from .sniff import sniff_format
from .store import builtin_models, cached_model_path, file_sha256, weights_dir

#: The licence of the models shipped inside posecli.
BUILTIN_LICENCE = "MIT, like posecli (trained by posecli on its own synthetic figures)"


@dataclass(frozen=True)
class FileFacts:
    """One weights file: ``status`` is "verified", "not verified", "partial download" or
    "unusable (reason)"; ``format`` None when unknown."""

    name: str
    path: Path
    size: int
    sha256: str
    format: str | None
    status: str
    licence: str | None
    provenance: str | None


@dataclass(frozen=True)
class Provenance:
    """How a file relates to the registry: ``ok`` False when it should match a known
    digest and does not; ``note`` says what was compared."""

    model: RemoteModel | None
    ok: bool
    note: str | None


def provenance(path: Path, sha256: str) -> Provenance:
    """Whether ``path`` (with this digest) is the published file of a registry model.

    A file with a pinned digest is that model wherever it is. A file at a
    model's place in the cache must have the published digest, or, for a model
    without one, the digest recorded at its download (trust on first use).
    """
    by_digest = model_for_file("", sha256)
    if by_digest is not None:
        return Provenance(by_digest, True, "matches the published file (SHA-256)")
    model = next((m for m in MODELS.values() if _same_file(cached_model_path(m), path)), None)
    if model is None:
        return Provenance(None, True, None)
    if model.pinned:
        return Provenance(model, False, f"differs from the published {model.name} model "
                                        f"(SHA-256 {model.sha256})")
    recorded = downloaded_sha256(path)
    if recorded is None:
        return Provenance(model, True, "no published digest, and posecli did not download "
                                       "this copy: nothing to compare with")
    if recorded != sha256:
        return Provenance(model, False, f"changed since it was downloaded (SHA-256 {recorded} "
                                        "then; no published digest exists)")
    return Provenance(model, True, "same SHA-256 as when it was downloaded (no published "
                                   "digest exists: trusted on first download)")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def describe_file(path: Path) -> FileFacts:
    """Facts of one file, without loading it with torch."""
    size = path.stat().st_size
    if path.suffix == ".part":
        return FileFacts(path.name, path, size, file_sha256(path), None, "partial download",
                         None, None)
    check = current_check(path)
    if check is not None:
        sha256 = check["sha256"]
        fmt = check.get("format")
        status = f"unusable ({check['error']})" if check.get("error") else "verified"
    else:
        sha256 = file_sha256(path)
        try:
            fmt, status = sniff_format(path), "not verified"
        except WeightsError as exc:
            fmt, status = None, f"unusable ({exc})"
    origin = provenance(path, sha256)
    licence = origin.model.licence if origin.model else None
    return FileFacts(path.name, path, size, sha256, fmt, status, licence, origin.note)


def builtin_facts() -> list[FileFacts]:
    """The models shipped in the package."""
    facts = []
    for name, path in builtin_models().items():
        try:
            fmt, status = sniff_format(path), "built in"
        except WeightsError as exc:
            fmt, status = None, f"unusable ({exc})"
        facts.append(FileFacts(name, path, path.stat().st_size, file_sha256(path), fmt, status,
                               BUILTIN_LICENCE, None))
    return facts


def cached_facts() -> list[FileFacts]:
    """Every visible regular file in the weights cache, by name."""
    folder = weights_dir()
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())
    return [describe_file(path) for path in files]
