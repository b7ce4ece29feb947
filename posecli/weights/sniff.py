"""A weights file's format from its structure, without loading it (no torch).

``posecli weights list`` must start without torch, so it cannot load files to
name their format. This module reads only what identifies a format: the first
bytes (Caffe, zip or legacy pickle), a zip archive's central directory and its
``data.pkl``, and the string constants of that pickle, listed with
:func:`pickletools.genops`, which parses opcodes and never builds or calls
anything. The strings are classified with the loader's own rules
(:mod:`posecli.weights.layouts`). A sniffed format is not a check that the file
loads: only ``posecli weights verify`` loads and validates it.
"""

from __future__ import annotations

import io
import pickletools
from pathlib import Path

from ..errors import WeightsError
from .files import CAFFE, HEAD_BYTES, ZIP, check_zip, open_regular, pickle_member, sniff_kind
from .layouts import CHECKPOINT_FORMAT, state_dict_layout

#: At most this many bytes of pickle are parsed (key names take a few kB).
MAX_PICKLE_BYTES = 64 << 20
#: A legacy (pre-1.6) torch file is four pickles: magic number, protocol, system
#: info, then the object.
_LEGACY_PICKLES = 4


def sniff_format(path: str | Path) -> str | None:
    """The format ``path`` appears to have (as :func:`~posecli.weights.load.load_weights`
    would name it), or None for a PyTorch file of an unknown layout.

    Raises a one-line WeightsError for a file that is not weights or is damaged
    (not a regular file, unknown first bytes, corrupt archive or pickle).
    """
    where = f"weights file {path}"
    with open_regular(path) as f:
        kind = sniff_kind(f.read(HEAD_BYTES))
        if kind is None:
            raise WeightsError(f"{where} could not be read: "
                               "neither a PyTorch file nor a Caffe model")
        if kind == CAFFE:
            return "caffemodel"
        if kind == ZIP:
            archive = check_zip(f, where)
            member = pickle_member(archive)
            if member.file_size > MAX_PICKLE_BYTES:
                raise WeightsError(f"{where}: its data.pkl of {member.file_size} bytes is "
                                   "too large to be weights")
            with archive.open(member) as pickled:
                data, pickles = pickled.read(), 1
        else:
            f.seek(0)
            data, pickles = f.read(MAX_PICKLE_BYTES), _LEGACY_PICKLES
    strings = _pickled_strings(data, pickles, where)
    if CHECKPOINT_FORMAT in strings:
        return "posecli"
    return state_dict_layout(strings)


def _pickled_strings(data: bytes, pickles: int, where: str) -> set[str]:
    """Every string constant of the first ``pickles`` pickles in ``data``."""
    stream = io.BytesIO(data)
    strings = set()
    try:
        for _ in range(pickles):
            for _opcode, argument, _position in pickletools.genops(stream):
                if isinstance(argument, str):
                    strings.add(argument)
    except Exception as exc:  # genops reports damage as ValueError and friends
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise WeightsError(f"{where} could not be read: its pickle is corrupt "
                           f"({reason[:200]})") from None
    return strings
