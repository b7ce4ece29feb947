"""Writing outputs safely: temporary files, stale ones, stdout, and outputs that collide.

Every file posecli writes goes first to a temporary file beside its
destination, created like any file the user creates (mode ``0666 & ~umask``),
written, flushed to disk, then renamed over the destination: a crash or an
error never leaves a partial file under the destination's name. A destination
that is a device or named pipe (``/dev/null``) is written directly instead.

A temporary file of destination ``DEST`` is named
``.DEST.HOST.PID.TAG.part`` (``.part.mp4`` for rendered videos, ``.link`` for
checkpoint links): HOST is this machine's name (dots replaced), PID the
writing process, TAG 8 random hex digits. A run about to write ``DEST`` first
removes the *stale* temporary files of that same ``DEST``
(:func:`remove_stale_temp_files`): those of this host
whose process is gone, and those of other hosts untouched for
:data:`FOREIGN_STALE_S` seconds. Temporary files of a live process, of other
destinations, or of other naming schemes are never touched, so several
processes (batch shards) can write into one folder.

Writes to stdout go through :func:`write_stdout`, which loops until every
byte is written (an unbuffered stdout may accept part of a write); a closed
pipe raises :class:`OutputPipeClosed`, which the CLI turns into one line and exit 141.

:func:`check_distinct` refuses, before any work, a run whose outputs would
replace one of its inputs or each other.
"""

from __future__ import annotations

import os
import re
import select
import stat
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from .errors import PoseCliError, UsageError, error_reason

#: A temporary file of another host is stale once untouched for this long (seconds):
#: a live writer touches its file at every batch, and renames it within minutes of its
#: last write.
FOREIGN_STALE_S = 24 * 3600
_TAG_BYTES = 4
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _host_name() -> str:
    """This machine's name as it appears in temporary file names: no dots, 1-40 chars."""
    node = os.uname().nodename if hasattr(os, "uname") else os.environ.get("COMPUTERNAME", "")
    name = re.sub(r"[^A-Za-z0-9_-]", "-", node)[:40]
    return name or "host"


HOST = _host_name()


def output_error(path: str | Path, exc: OSError) -> PoseCliError:
    """The one-line error for a write to ``path`` that failed with ``exc``."""
    return PoseCliError(f"cannot write output {path}: {error_reason(exc)}")


# --------------------------------------------------------------------------- temporary files


#: Any temporary file of this naming: ``.DEST.HOST.PID.TAG`` and one of SUFFIXES (HOST has
#: no dots, so the split is unambiguous).
_TEMP_NAME = re.compile(r"\.(?P<dest>.+)\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>[0-9]+)"
                        rf"\.[0-9a-f]{{{2 * _TAG_BYTES}}}(?P<suffix>\.part\.mp4|\.part|\.link)")
#: Per folder, the temporary files found when this process first wrote there and not yet
#: checked: (destination name, suffix) -> temporary file names.
_unchecked: dict[str, dict[tuple[str, str], list[str]]] = {}


def _temp_files(folder: Path) -> dict[tuple[str, str], list[str]]:
    """The temporary files (of this naming) in ``folder``, by (destination name, suffix)."""
    found: dict[tuple[str, str], list[str]] = {}
    try:
        names = os.listdir(folder)
    except OSError:
        return found
    for name in sorted(names):
        match = _TEMP_NAME.fullmatch(name)
        if match is not None:
            found.setdefault((match["dest"], match["suffix"]), []).append(name)
    return found


def temp_files_of(dest: Path, suffix: str = ".part") -> list[Path]:
    """The temporary files of ``dest`` (see the module docstring) that exist now, of
    any process, sorted by name."""
    dest = Path(dest)
    return [dest.parent / name for name in _temp_files(dest.parent).get((dest.name, suffix), [])]


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def is_stale(path: Path) -> bool:
    """Whether the temporary file ``path``'s writer is gone: this host's whose process no
    longer runs, other hosts' untouched for FOREIGN_STALE_S seconds."""
    match = _TEMP_NAME.fullmatch(path.name)
    if match is None:
        return False
    if match["host"] == HOST:
        return not _process_alive(int(match["pid"]))
    try:
        return time.time() - path.stat().st_mtime > FOREIGN_STALE_S
    except OSError:
        return False


def remove_stale_temp_files(dest: Path, suffix: str = ".part") -> list[Path]:
    """Remove the stale temporary files of ``dest``; returns those removed.

    A folder is listed once per process (the first time a file is written there), so
    writing many outputs into one folder stays linear; temporary files a process
    killed since then left behind are removed by the next run.
    """
    dest = Path(dest)
    folder = os.path.abspath(dest.parent)
    if folder not in _unchecked:
        _unchecked[folder] = _temp_files(dest.parent)
    removed = []
    for name in _unchecked[folder].pop((dest.name, suffix), []):
        path = dest.parent / name
        if is_stale(path):
            try:
                path.unlink()
            except OSError:
                continue
            removed.append(path)
    return removed


def temp_file_beside(dest: Path, suffix: str = ".part") -> tuple[int, Path]:
    """A new temporary file in ``dest``'s folder, to be renamed to ``dest`` when
    complete: (open write-only file descriptor, path). Its mode is what ``open()``
    would give (``0666 & ~umask``). Stale temporary files of ``dest`` are removed first."""
    dest = Path(dest)
    remove_stale_temp_files(dest, suffix)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC
    while True:
        path = dest.with_name(f".{dest.name}.{HOST}.{os.getpid()}."
                              f"{os.urandom(_TAG_BYTES).hex()}{suffix}")
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue
        except OSError as exc:
            raise output_error(dest, exc) from None


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte of ``data`` to file descriptor ``fd`` (looping over short writes)."""
    view = memoryview(data).cast("B")
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:  # a non-blocking descriptor that is full: wait for room
            select.select([], [fd], [])
            continue
        view = view[written:]


def write_atomic(path: Path, data: bytes) -> None:
    """Write bytes to a temporary file in ``path``'s folder, flush it to disk, then rename
    it to ``path`` (a device or named pipe is written directly, see :class:`PendingFile`).
    Raises PoseCliError (one line) when that fails, leaving no temporary file behind."""
    pending = PendingFile(Path(path))
    try:
        pending.write(data)
        pending.commit()
    except BaseException:
        pending.discard()
        raise


def fsync_path(path: Path) -> None:
    """Flush a finished file that another library wrote (PyAV) to disk before its rename."""
    fd = os.open(path, os.O_RDONLY | _CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_device_or_pipe(path: Path) -> bool:
    """Whether ``path`` exists and is not a regular file (``/dev/null``, ``/dev/stdout``, a
    named pipe): an output there is written directly, never replaced by a rename."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)  # follows symbolic links
    except OSError:
        return False


class PendingFile:
    """A file being written: a temporary file beside ``dest`` (see :func:`temp_file_beside`)
    until :meth:`commit` renames it to ``dest``.

    When ``dest`` is a device or a named pipe (:func:`is_device_or_pipe`) the bytes
    go to it directly (``tmp`` is None): a rename would replace ``/dev/null`` itself.
    Every failure to write, flush or rename raises PoseCliError (one line naming
    ``dest``); :meth:`discard` removes the temporary file, :meth:`retract` the
    committed file.
    """

    def __init__(self, dest: Path, suffix: str = ".part") -> None:
        self.dest = Path(dest)
        self._fd: int | None
        self.tmp: Path | None
        self.committed = False
        if is_device_or_pipe(self.dest):
            try:
                self._fd, self.tmp = os.open(self.dest, os.O_WRONLY | _CLOEXEC), None
            except OSError as exc:
                raise output_error(self.dest, exc) from None
            return
        self._fd, self.tmp = temp_file_beside(self.dest, suffix)

    def write(self, data: bytes) -> None:
        """Append ``data`` (all of it)."""
        if self._fd is None:
            raise PoseCliError(f"output {self.dest} was already closed")
        try:
            write_all(self._fd, data)
        except OSError as exc:
            raise output_error(self.dest, exc) from None

    def close(self) -> None:
        """Flush the temporary file to disk and close it (nothing is renamed yet)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            try:
                if self.tmp is not None:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise output_error(self.dest, exc) from None

    def commit(self) -> None:
        """Close, then rename the temporary file to ``dest``."""
        self.close()
        if self.tmp is None:
            return
        try:
            os.replace(self.tmp, self.dest)
        except OSError as exc:
            raise output_error(self.dest, exc) from None
        self.committed = True

    def retract(self) -> None:
        """Remove ``dest`` if :meth:`commit` put it there (another output failed)."""
        if self.committed:
            self.dest.unlink(missing_ok=True)
            self.committed = False

    def discard(self) -> None:
        """Close and remove the temporary file (never raises for a failed close)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError:
                pass
        if self.tmp is not None and not self.committed:
            self.tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- stdout


class OutputPipeClosed(PoseCliError):
    """stdout is a pipe whose reader went away before everything was written."""

    exit_code = 141  # 128 + SIGPIPE, what a shell reports for a process killed by it

    def __init__(self) -> None:
        super().__init__("output pipe closed before everything was written (broken pipe)")


def write_stdout(data: bytes) -> None:
    """Write ``data`` to stdout in full, and flush it: a short write (an unbuffered
    stdout) is continued. A closed pipe raises :class:`OutputPipeClosed` (after
    :func:`silence_stdout`)."""
    try:
        sys.stdout.flush()  # text written before stays before
        stream = sys.stdout.buffer
        view = memoryview(data).cast("B")
        while view:
            written = stream.write(view)
            if written is None:  # a non-blocking stdout that is full
                select.select([], [stream.fileno()], [])
                continue
            view = view[written:]
        stream.flush()
    except BrokenPipeError:
        silence_stdout()
        raise OutputPipeClosed from None


def silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null, so nothing more is written to the
    pipe and the interpreter's final flush does not fail (as Python's docs advise)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


# --------------------------------------------------------------------------- collisions


def _is_local_path(value: str) -> bool:
    return value not in ("", "-") and "://" not in value


def file_keys(path: Path) -> list[tuple[object, ...]]:
    """What identifies the file at ``path``: its device and inode when it exists (hard
    links share them), and its resolved path."""
    keys: list[tuple[object, ...]] = [("path", str(path.resolve()))]
    try:
        stat = path.stat()
    except OSError:
        return keys
    return [("inode", stat.st_dev, stat.st_ino), *keys]


def check_distinct(named_paths: Iterable[tuple[str, str | Path | None]]) -> None:
    """Refuse (UsageError, exit code 2) when two of the paths are one file.

    ``named_paths``: (name for messages, path) pairs, e.g. ``[("input", "x.mp4"),
    ("--out", "x.json"), ("--render", "r.mp4")]`` (a dict's ``items()`` will do).
    Paths of one name are not compared with each other (an input given twice is not
    refused here). None, ``-`` (stdin/stdout) and URLs are ignored. Paths that exist are compared by
    device and inode (hard links and symbolic links included) and all by their
    resolved form; linear in the number of paths.
    """
    seen: dict[tuple[object, ...], tuple[str, Path]] = {}
    for name, value in named_paths:
        if value is None or not _is_local_path(str(value)):
            continue
        path = Path(str(value))
        keys = file_keys(path)
        for key in keys:
            if key in seen and seen[key][0] != name:  # one name's paths (inputs) may repeat
                first_name, first = seen[key]
                raise UsageError(f"{name} {path} is the same file as {first_name} {first}: "
                                 "choose another path")
        for key in keys:
            seen[key] = (name, path)
