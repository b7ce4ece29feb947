"""What posecli knows about the files in the weights cache, kept beside them (no torch).

One JSON file, ``.records.json`` in the weights directory, maps each cached
file's name to:

``download``
    where it came from and the SHA-256 it had when downloaded (for a model
    without a published digest, the digest trusted on first use);
``check``
    the result of the last full load (``weights download`` or ``weights verify``):
    format, parameter count, SHA-256 or the error, valid only while the file's
    size and modification time are those recorded.

``posecli weights list`` reads it so that it can say whether a file loads without
importing torch; a missing or damaged record file only means less is known.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import WeightsError
from ..outputs import write_atomic
from .files import open_regular

RECORDS_NAME = ".records.json"
MAX_RECORDS_BYTES = 1 << 20  # a few hundred bytes per file: anything larger is not ours


def _records_path(folder: Path) -> Path:
    return folder / RECORDS_NAME


def read_records(folder: Path) -> dict[str, dict[str, Any]]:
    """File name -> its record; empty when there are none or the file is unreadable."""
    try:
        with open_regular(_records_path(folder), "weights record") as f:
            data = json.loads(f.read(MAX_RECORDS_BYTES))
    except (WeightsError, OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) \
        else {}


def _update(path: Path, key: str, value: dict[str, Any]) -> None:
    """Set ``key`` of ``path``'s record, writing the record file atomically."""
    folder = path.parent
    records = read_records(folder)
    records.setdefault(path.name, {})[key] = value
    # atomic, readable as the umask says (a shared cache), one line on a full disk
    write_atomic(_records_path(folder), json.dumps(records, indent=1, sort_keys=True).encode())


def record_download(path: Path, url: str, sha256: str, pinned: bool) -> None:
    """Note where ``path`` was downloaded from and the digest it arrived with."""
    _update(path, "download", {"url": url, "sha256": sha256, "pinned": pinned,
                               "size": path.stat().st_size})


def record_check(path: Path, sha256: str, fmt: str | None, parameters: int | None,
                 error: str | None) -> None:
    """Note the result of loading ``path`` in full (``fmt`` or ``error``), for its current
    size and modification time."""
    info = path.stat()
    _update(path, "check", {"size": info.st_size, "mtime_ns": info.st_mtime_ns,
                            "sha256": sha256, "format": fmt, "parameters": parameters,
                            "error": error})


def downloaded_sha256(path: Path) -> str | None:
    """The SHA-256 ``path`` had when it was downloaded, if posecli downloaded it."""
    download = read_records(path.parent).get(path.name, {}).get("download", {})
    value = download.get("sha256") if isinstance(download, dict) else None
    return value if isinstance(value, str) else None


def current_check(path: Path) -> dict[str, Any] | None:
    """The last check of ``path`` if the file has not changed since (same size and mtime)."""
    check = read_records(path.parent).get(path.name, {}).get("check")
    if not isinstance(check, dict):
        return None
    info = path.stat()
    if (check.get("size"), check.get("mtime_ns")) != (info.st_size, info.st_mtime_ns):
        return None
    return check
