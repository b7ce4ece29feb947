"""Where weights come from: built-in models, the user cache, and downloads (no torch).

Resolution order: ``--weights`` (a built-in model's name such as ``demo``, a
downloadable model's name such as ``lightweight``, or a path), then
``$POSECLI_WEIGHTS``, then the cached CMU model. Downloads resume with HTTP
Range requests and are checked against a size and SHA-256 when they are known
(:mod:`posecli.weights.registry`).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO

import platformdirs
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ..errors import NoWeightsError, WeightsError
from .files import not_regular_reason, open_regular
from .registry import CMU, MODELS, RemoteModel

__all__ = [
    "BUILTIN_DIR", "BUILTIN_NOTE", "CACHE_ENV", "DEFAULT_WEIGHTS_NAME", "NO_WEIGHTS_MESSAGE",
    "WEIGHTS_ENV", "DownloadError", "builtin_models", "cache_dir", "cached_model_path",
    "default_weights_path", "download", "download_model", "file_sha256", "resolve_weights",
    "weights_dir",
]

#: The file name looked for in the weights cache directory.
DEFAULT_WEIGHTS_NAME = CMU.file_name
#: Environment variables: a weights file, and the root of posecli's cache.
WEIGHTS_ENV = "POSECLI_WEIGHTS"
CACHE_ENV = "POSECLI_CACHE_DIR"

#: The one line shown when no weights are given or installed.
NO_WEIGHTS_MESSAGE = (
    "no pose weights found: pass --weights FILE, set POSECLI_WEIGHTS, or run "
    "'posecli weights download' to fetch the CMU COCO model (body_pose_model.pth, ~200 MB)"
)
#: Models shipped inside the package, chosen by name (``--weights demo``).
BUILTIN_DIR = Path(__file__).parent.parent / "models"
BUILTIN_NOTE = ("; or try --weights demo, a small model trained on synthetic figures "
                "(a demonstration, not a model of real people)")


class DownloadError(WeightsError):
    """The network failed (the partial file is kept for a resume)."""


def builtin_models() -> dict[str, Path]:
    """Name -> file of the models shipped in the package."""
    return {path.stem: path for path in sorted(BUILTIN_DIR.glob("*.pt"))}

_CHUNK = 1 << 20  # bytes per read while hashing or downloading


# --------------------------------------------------------------------------- resolution


def cache_dir() -> Path:
    """posecli's cache root: ``$POSECLI_CACHE_DIR`` or the platform user cache dir."""
    return Path(os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("posecli"))


def weights_dir() -> Path:
    """Where downloaded weights live: ``cache_dir() / "weights"``."""
    return cache_dir() / "weights"


def default_weights_path() -> Path:
    """The cached file resolution falls back to (it may not exist)."""
    return cached_model_path(CMU)


def cached_model_path(model: RemoteModel) -> Path:
    """Where ``posecli weights download NAME`` puts a registry model (and a manually
    downloaded copy is picked up)."""
    return weights_dir() / model.file_name


def resolve_weights(option: str | Path | None) -> Path:
    """The weights file to use: ``--weights``, then ``$POSECLI_WEIGHTS``, then the cache.

    ``--weights`` may name a built-in model (``demo``) or a downloadable one
    (``cmu``, ``lightweight``: its cached file, which must be there). An explicit
    path that does not exist is a WeightsError; nothing anywhere is a
    NoWeightsError (exit code 2) saying how to get the CMU weights.
    """
    explicit = option or os.environ.get(WEIGHTS_ENV)
    builtin = builtin_models()
    if explicit and str(explicit) in builtin:
        return builtin[str(explicit)]
    if explicit and str(explicit) in MODELS:
        model = MODELS[str(explicit)]
        cached = cached_model_path(model)
        if not cached.is_file():
            raise NoWeightsError(f"the {model.name} model is not downloaded: run 'posecli "
                                 f"weights download {model.name}' (or put the file at {cached})")
        return cached
    if explicit:
        path = Path(explicit).expanduser()
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            raise WeightsError(f"weights file not found: {path}") from None
        except OSError as exc:
            raise WeightsError(f"weights file {path} could not be read: "
                               f"{exc.strerror or exc}") from None
        if (reason := not_regular_reason(mode)) is not None:
            raise WeightsError(f"weights file {path} is {reason}, not a regular file")
        return path
    cached = default_weights_path()
    if cached.is_file():
        return cached
    others = [m.name for m in MODELS.values() if cached_model_path(m).is_file()]
    note = f"; or use a downloaded model: --weights {' or '.join(others)}" if others else ""
    raise NoWeightsError(NO_WEIGHTS_MESSAGE + note + (BUILTIN_NOTE if "demo" in builtin else ""))


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return _hash_file(hashlib.sha256(), path).hexdigest()


def _hash_file(digest: Any, path: str | Path) -> Any:
    """Feed a regular file's bytes to ``digest`` in 1 MiB chunks; returns ``digest``."""
    with open_regular(path) as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest

# --------------------------------------------------------------------------- download


def download_model(model: RemoteModel, url: str | None = None, dest: str | Path | None = None,
                   sha256: str | None = None, progress: bool = True) -> tuple[Path, str]:
    """Fetch a registry model (from ``url``, e.g. a mirror, if given) to ``dest`` (default:
    its place in the cache); returns (path, hex SHA-256).

    Checked against ``sha256`` if given, else against the model's published size
    and digest when it has them. A network failure names the URL and the path
    where a copy downloaded by hand is picked up.
    """
    url = url or model.url
    target = Path(dest) if dest is not None else cached_model_path(model)
    expected_size = model.size if sha256 is None else None
    try:
        digest = download(url, target, sha256=sha256 or model.sha256, size=expected_size,
                          progress=progress)
    except DownloadError as exc:
        raise DownloadError(f"{exc}; without network access, fetch that URL elsewhere and "
                            f"save it as {target}") from None
    return target, digest


def download(url: str, dest: str | Path, sha256: str | None = None, size: int | None = None,
             progress: bool = True) -> str:
    """Fetch ``url`` to ``dest``; returns the file's hex SHA-256.

    Bytes go to ``dest + ".part"``; an existing .part is resumed with an HTTP
    Range request (a server answering 200 instead of 206 restarts it). The
    file's ``size`` (bytes) and digest are checked against the expected ones
    when given: a server announcing another size is refused before the body is
    read, and on any mismatch the .part is deleted and nothing is written at
    ``dest``. A progress bar (bytes, speed, ETA) goes to stderr when
    ``progress`` is true. Network failures keep the .part for a later resume
    and raise a one-line DownloadError.
    """
    dest = Path(dest)
    part = dest.with_suffix(dest.suffix + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        digest = _fetch(url, part, progress, size)
    except _WrongSize as exc:
        part.unlink(missing_ok=True)
        raise WeightsError(f"download of {url} {exc}, expected {size}; "
                           "the partial file was deleted") from None
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"download of {url} failed: {_one_line_reason(exc.reason)}") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise DownloadError(f"download of {url} failed: {_one_line_reason(exc)}") from None
    received = part.stat().st_size
    if size is not None and received != size:
        part.unlink(missing_ok=True)
        raise WeightsError(f"download of {url} has {received} bytes, expected {size}; "
                           "the file was deleted")
    if sha256 and digest != sha256.lower():
        part.unlink(missing_ok=True)
        raise WeightsError(f"download of {url} has SHA-256 {digest}, expected {sha256.lower()}; "
                           "the file was deleted")
    os.replace(part, dest)
    return digest


class _WrongSize(Exception):
    """The server announces a file of another size than expected (message: what it has)."""


def _one_line_reason(reason: object) -> str:
    return " ".join(str(reason).split()) or type(reason).__name__


def _fetch(url: str, part: Path, progress: bool, size: int | None = None) -> str:
    """Download into ``part`` (resuming it if possible); the hex SHA-256 of the whole.

    Raises _WrongSize, before reading the body, when the server's length says the
    whole file is not ``size`` bytes.
    """
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "posecli"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not offset:  # 416: the .part does not fit the file any more
            raise
        part.unlink()
        return _fetch(url, part, progress, size)
    with response:
        if offset and not _resumes_at(response, offset):
            offset = 0
        digest = _hash_file(hashlib.sha256(), part) if offset else hashlib.sha256()
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        if size is not None and total is not None and total != size:
            raise _WrongSize(f"is {total} bytes on the server")
        with open(part, "ab" if offset else "wb") as out:
            received = _copy(response, out, digest, offset, total, progress, part.name)
    if total is not None and received < total:
        raise OSError(f"connection closed after {received} of {total} bytes; "
                      "run again to resume")
    return digest.hexdigest()


def _resumes_at(response: Any, offset: int) -> bool:
    """Whether a response continues the file at byte ``offset`` (206 + Content-Range)."""
    if response.status != 206:
        return False
    match = re.fullmatch(r"bytes (\d+)-\d+/(?:\d+|\*)",
                         response.headers.get("Content-Range", "").strip())
    return bool(match) and int(match[1]) == offset


def _copy(response: BinaryIO, out: BinaryIO, digest: Any, offset: int, total: int | None,
          progress: bool, label: str) -> int:
    """Stream the body into ``out`` and ``digest``; returns the bytes now in the file."""
    received = offset
    with _progress_bar(progress) as bar:
        task = bar.add_task(label, total=total, completed=offset)
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            digest.update(chunk)
            received += len(chunk)
            bar.update(task, completed=received)
    return received


def _progress_bar(enabled: bool) -> Progress:
    """A rich progress bar on stderr: bytes done / total, speed and ETA."""
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not enabled, transient=False)

