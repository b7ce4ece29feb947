"""Where weights come from: built-in models, the user cache, and downloads (no torch).

Resolution order: ``--weights`` (a path or a built-in model's name), then
``$POSECLI_WEIGHTS``, then the cached CMU model. Downloads resume with HTTP
Range requests and are checked against a SHA-256 when one is known.
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
from .files import open_regular

__all__ = [
    "BUILTIN_DIR", "BUILTIN_NOTE", "CACHE_ENV", "CMU_BODY_URL", "DEFAULT_WEIGHTS_NAME",
    "NO_WEIGHTS_MESSAGE", "WEIGHTS_ENV", "builtin_models", "cache_dir", "default_weights_path",
    "download", "file_sha256", "resolve_weights", "weights_dir",
]

#: A public mirror of pytorch-openpose's conversion of the CMU COCO body model.
CMU_BODY_URL = "https://huggingface.co/lllyasviel/Annotators/resolve/main/body_pose_model.pth"
#: The file name looked for in the weights cache directory.
DEFAULT_WEIGHTS_NAME = "body_pose_model.pth"
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
    return weights_dir() / DEFAULT_WEIGHTS_NAME


def resolve_weights(option: str | Path | None) -> Path:
    """The weights file to use: ``--weights``, then ``$POSECLI_WEIGHTS``, then the cache.

    An explicit path that does not exist is a WeightsError; nothing anywhere is
    a NoWeightsError (exit code 2) saying how to get the CMU weights.
    """
    explicit = option or os.environ.get(WEIGHTS_ENV)
    builtin = builtin_models()
    if explicit and str(explicit) in builtin:
        return builtin[str(explicit)]
    if explicit:
        path = Path(explicit).expanduser()
        if not path.exists():
            raise WeightsError(f"weights file not found: {path}")
        if not path.is_file():
            raise WeightsError(f"weights path is not a file: {path}")
        return path
    cached = default_weights_path()
    if cached.is_file():
        return cached
    raise NoWeightsError(NO_WEIGHTS_MESSAGE + (BUILTIN_NOTE if "demo" in builtin else ""))


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


def download(url: str, dest: str | Path, sha256: str | None = None,
             progress: bool = True) -> str:
    """Fetch ``url`` to ``dest``; returns the file's hex SHA-256.

    Bytes go to ``dest + ".part"``; an existing .part is resumed with an HTTP
    Range request (a server answering 200 instead of 206 restarts it). The
    digest is checked against ``sha256`` when given: on mismatch the .part is
    deleted and nothing is written at ``dest``. A progress bar (bytes, speed,
    ETA) goes to stderr when ``progress`` is true. Network failures keep the
    .part for a later resume and raise a one-line WeightsError.
    """
    dest = Path(dest)
    part = dest.with_suffix(dest.suffix + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        digest = _fetch(url, part, progress)
    except urllib.error.HTTPError as exc:
        raise WeightsError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise WeightsError(f"download of {url} failed: {_one_line_reason(exc.reason)}") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise WeightsError(f"download of {url} failed: {_one_line_reason(exc)}") from None
    if sha256 and digest != sha256.lower():
        part.unlink(missing_ok=True)
        raise WeightsError(f"download of {url} has SHA-256 {digest}, expected {sha256.lower()}; "
                           "the file was discarded")
    os.replace(part, dest)
    return digest


def _one_line_reason(reason: object) -> str:
    return " ".join(str(reason).split()) or type(reason).__name__


def _fetch(url: str, part: Path, progress: bool) -> str:
    """Download into ``part`` (resuming it if possible); the hex SHA-256 of the whole."""
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
        return _fetch(url, part, progress)
    with response:
        if offset and not _resumes_at(response, offset):
            offset = 0
        digest = _hash_file(hashlib.sha256(), part) if offset else hashlib.sha256()
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
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

