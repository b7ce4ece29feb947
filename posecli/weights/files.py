"""Reading an untrusted weights file: regular files only, its kind known from its first bytes.

Every reader of weights goes through :func:`read_weights_file`: it refuses anything
that is not a regular file (a device such as ``/dev/zero``, a FIFO, a directory,
a symlink to one of those) before reading a byte, reads only
:data:`HEAD_BYTES` until the kind of file is known, and checks the structure of
a zip archive (torch.save's format) before torch sees it. No torch here: the
command line lists and sniffs weights without it.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..caffemodel import looks_like_caffemodel
from ..errors import WeightsError

#: Bytes read before the kind of file is known.
HEAD_BYTES = 64

#: The kinds of weights file, by their first bytes.
ZIP, PICKLE, CAFFE = "zip", "pickle", "caffemodel"

_NOT_REGULAR = (
    (stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


@dataclass(frozen=True)
class WeightsBytes:
    """A weights file's content and its kind (:data:`ZIP`, :data:`PICKLE` or :data:`CAFFE`)."""

    kind: str
    data: bytes


def sniff_kind(head: bytes) -> str | None:
    """The kind of weights file that starts with ``head``, or None.

    torch.save writes a zip archive ("PK"); files of torch before 1.6 start with a
    pickle (0x80 and a protocol number 2..5); a Caffe model starts with a
    NetParameter field.
    """
    if head[:2] == b"PK":
        return ZIP
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return PICKLE
    if looks_like_caffemodel(head[:16]):
        return CAFFE
    return None


def not_regular_reason(mode: int) -> str | None:
    """Why a file of this ``st_mode`` is not a regular file ("a directory"...), or None."""
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _NOT_REGULAR if test(mode)), "not a regular file")


def open_regular(path: str | Path, what: str = "weights file") -> io.BufferedReader:
    """Open ``path`` for reading, refusing anything but a regular file (one-line WeightsError).

    The file is opened without blocking (a FIFO without a writer would block
    forever) and checked with fstat on the open descriptor, so a file swapped
    for a device between the check and the read is still refused.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise WeightsError(f"{what} not found: {path}") from None
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket, or a FIFO opened in an odd way
            raise WeightsError(f"{what} {path} is not a regular file") from None
        raise WeightsError(f"{what} {path} could not be read: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if (reason := not_regular_reason(mode)) is not None:
            raise WeightsError(f"{what} {path} is {reason}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_weights_file(path: str | Path, what: str = "weights file") -> WeightsBytes:
    """The content of a weights file whose first bytes say it is one.

    Only :data:`HEAD_BYTES` are read from a file that is neither a PyTorch file
    nor a Caffe model. A zip archive is checked with :func:`check_zip`.
    """
    try:
        with open_regular(path, what) as f:
            head = f.read(HEAD_BYTES)
            kind = sniff_kind(head)
            if kind is None:
                raise WeightsError(f"{what} {path} could not be read: "
                                   "neither a PyTorch file nor a Caffe model")
            data = head + f.read()
    except OSError as exc:
        raise WeightsError(f"{what} {path} could not be read: {exc.strerror or exc}") from None
    if kind == ZIP:
        check_zip(data, f"{what} {path}")
    return WeightsBytes(kind, data)


def check_zip(source: bytes | BinaryIO, where: str) -> zipfile.ZipFile:
    """Raise a one-line WeightsError unless ``source`` is a whole zip archive with a data.pkl.

    ``source``: the archive's bytes, or a seekable binary file of it (then only
    its central directory is read). Every member's recorded data must lie
    inside the archive, so a corrupt or truncated archive, or one declaring
    members larger than itself, is named as such before torch reads it. Returns
    the opened archive.
    """
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    size = handle.seek(0, io.SEEK_END)
    corrupt = f"{where} could not be read: it is a corrupt or truncated zip archive"
    try:
        archive = zipfile.ZipFile(handle)
        members = archive.infolist()
    except zipfile.BadZipFile as exc:
        reason = "no central directory" if "not a zip file" in str(exc) else _reason(exc)
        raise WeightsError(f"{corrupt} ({reason})") from None
    except (ValueError, EOFError, OSError, struct.error, NotImplementedError) as exc:
        raise WeightsError(f"{corrupt} ({_reason(exc)})") from None
    for member in members:
        if member.header_offset + 30 + member.compress_size > size:
            raise WeightsError(f"{corrupt} (member {member.filename!r} declares "
                               f"{member.compress_size} bytes past the end of the file)")
    if pickle_member(archive) is None:
        raise WeightsError(f"{where} could not be read: it is a zip archive but not a "
                           "PyTorch file (no data.pkl)")
    return archive


def pickle_member(archive: zipfile.ZipFile) -> zipfile.ZipInfo | None:
    """The ``data.pkl`` member of a torch.save archive (the pickled object), or None."""
    return next((m for m in archive.infolist()
                 if m.filename == "data.pkl" or m.filename.endswith("/data.pkl")), None)


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
