"""A bounds-checked reader for Caffe ``.caffemodel`` files (protobuf wire format).

Only what weights need is decoded: the layer names and their blobs, from
``NetParameter.layer`` (field 100, ``LayerParameter``: name=1, blobs=7) and the
legacy ``NetParameter.layers`` (field 2, ``V1LayerParameter``: name=4, blobs=6).
Every other field is skipped. No caffe or protobuf package is needed.

A ``BlobProto`` becomes a float32 numpy array shaped by its ``shape`` (field 7)
or, in older files, its legacy ``num, channels, height, width`` (fields 1-4).
Any inconsistency (a varint or length running past its message, a data count
that does not match the shape, a dimension no file of this size could hold, more
axes than Caffe allows, a group or an unknown wire type) raises
:class:`~posecli.errors.WeightsError` with one line naming the problem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import WeightsError

# Wire types of the protobuf encoding.
_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
_FIXED_WIDTH = {_FIXED64: 8, _FIXED32: 4}
_MAX_VARINT_BYTES = 10

# (field number, wire type) pairs a NetParameter may start with.
_NET_FIELDS = {(1, _LEN), (2, _LEN), (3, _LEN), (4, _VARINT), (4, _LEN), (5, _VARINT),
               (6, _LEN), (7, _VARINT), (8, _LEN), (100, _LEN)}
# NetParameter field -> (its name field, its blobs field) in that layer message.
_LAYER_FIELDS = {100: (1, 7), 2: (4, 6)}
_LEGACY_DIMS = {1: 0, 2: 1, 3: 2, 4: 3}  # BlobProto num, channels, height, width
_MAX_AXES = 32  # Caffe's kMaxBlobAxes


class _Malformed(Exception):
    """Internal: what is wrong, turned into a WeightsError naming the file."""


def read_caffemodel(path: str | Path) -> dict[str, list[np.ndarray]]:
    """Every layer of the file at ``path``: name -> its blobs (float32 arrays).

    Only regular files are read (see :func:`posecli.weights.files.open_regular`).
    """
    from .weights.files import open_regular  # the weights package imports this module

    try:
        with open_regular(path, "caffemodel") as f:
            data = f.read()
    except OSError as exc:
        raise WeightsError(f"caffemodel {path} could not be read: {exc.strerror or exc}") from None
    return parse_caffemodel(data, str(path))


def parse_caffemodel(data: bytes, source: str = "<bytes>") -> dict[str, list[np.ndarray]]:
    """Decode a serialized NetParameter: layer name -> blobs, in file order.

    ``source`` names the data in error messages. Layers without blobs (ReLU,
    pooling...) are included with an empty list.
    """
    try:
        return _parse_net(memoryview(data))
    except _Malformed as exc:
        raise WeightsError(f"caffemodel {source} is malformed: {exc}") from None


def looks_like_caffemodel(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file) starts like a NetParameter."""
    try:
        tag, _ = _read_varint(memoryview(head), 0, len(head))
    except _Malformed:
        return False
    return (tag >> 3, tag & 7) in _NET_FIELDS


def _read_varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    """(value, next position) of the base-128 varint at ``pos``, before ``end``."""
    value = 0
    for i in range(_MAX_VARINT_BYTES):
        if pos + i >= end:
            raise _Malformed(f"truncated varint at byte {pos}")
        byte = buf[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            return value, pos + i + 1
    raise _Malformed(f"varint longer than {_MAX_VARINT_BYTES} bytes at byte {pos}")


def _next_field(buf: memoryview, pos: int, end: int) -> tuple[int, int, int, int]:
    """(field number, wire type, payload start, payload end) of the field at ``pos``.

    For varints the payload is the varint itself. Groups and unknown wire types
    are rejected, and the payload is checked to lie inside ``[pos, end)``.
    """
    tag, start = _read_varint(buf, pos, end)
    number, wire = tag >> 3, tag & 7
    if number == 0:
        raise _Malformed(f"field number 0 at byte {pos}")
    if wire == _VARINT:
        _, stop = _read_varint(buf, start, end)
    elif wire == _LEN:
        length, start = _read_varint(buf, start, end)
        stop = start + length
    elif wire in _FIXED_WIDTH:
        stop = start + _FIXED_WIDTH[wire]
    else:
        raise _Malformed(f"unsupported wire type {wire} at byte {pos}")
    if stop > end:
        raise _Malformed(f"field {number} at byte {pos} runs past the end of its message")
    return number, wire, start, stop


def _fields(buf: memoryview, start: int, end: int):
    """Yield (field number, wire type, tag position, payload start, payload end)."""
    pos = start
    while pos < end:
        number, wire, s, e = _next_field(buf, pos, end)
        yield number, wire, pos, s, e
        pos = e


def _parse_net(buf: memoryview) -> dict[str, list[np.ndarray]]:
    layers: dict[str, list[np.ndarray]] = {}
    for number, wire, tag_pos, start, end in _fields(buf, 0, len(buf)):
        if number not in _LAYER_FIELDS or wire != _LEN:
            continue
        name, blobs = _parse_layer(buf, start, end, *_LAYER_FIELDS[number])
        if name in layers:
            raise _Malformed(f"duplicate layer name {name!r} at byte {tag_pos}")
        layers[name] = blobs
    return layers


def _parse_layer(buf: memoryview, start: int, end: int, name_field: int,
                 blobs_field: int) -> tuple[str, list[np.ndarray]]:
    name = None
    blobs = []
    for number, wire, tag_pos, s, e in _fields(buf, start, end):
        if number == name_field and wire == _LEN:
            try:
                name = bytes(buf[s:e]).decode("utf-8")
            except UnicodeDecodeError:
                raise _Malformed(f"layer name at byte {tag_pos} is not UTF-8") from None
        elif number == blobs_field and wire == _LEN:
            blobs.append(_parse_blob(buf, s, e, tag_pos))
    if name is None:
        raise _Malformed(f"layer at byte {start} has no name")
    return name, blobs


def _parse_blob(buf: memoryview, start: int, end: int, blob_pos: int) -> np.ndarray:
    """One BlobProto -> float32 array of its shape."""
    legacy = [None] * 4
    shape = None
    chunks: list[np.ndarray] = []
    doubles: list[np.ndarray] = []
    pos = start
    while pos < end:
        tag_pos = pos
        number, wire, s, pos = _next_field(buf, pos, end)
        if number in _LEGACY_DIMS and wire == _VARINT:
            legacy[_LEGACY_DIMS[number]] = _as_int64(_read_varint(buf, s, pos)[0])
        elif number == 7 and wire == _LEN:
            shape = _parse_shape(buf, s, pos)
        elif number in (5, 8):
            values, pos = _repeated_floats(buf, number, wire, tag_pos, s, pos, end)
            (chunks if number == 5 else doubles).append(values)
    if shape is None and any(d is not None for d in legacy):
        shape = tuple(d or 0 for d in legacy)
    if shape is not None:
        _check_shape(shape, blob_pos, len(buf))
    return _assemble(chunks, doubles, shape, blob_pos)


def _check_shape(shape: tuple[int, ...], blob_pos: int, file_bytes: int) -> None:
    """Reject shapes no array can take: too many axes, negative or impossibly large dims.

    A dimension larger than the file's size in bytes cannot describe data in it
    (even an empty blob: numpy refuses such shapes, e.g. 2^62 x 0).
    """
    if len(shape) > _MAX_AXES:
        raise _Malformed(f"blob at byte {blob_pos} has {len(shape)} axes, "
                         f"more than Caffe's {_MAX_AXES}")
    if any(d < 0 for d in shape):
        raise _Malformed(f"blob at byte {blob_pos} has a negative dimension in {shape}")
    if any(d > file_bytes for d in shape):
        raise _Malformed(f"blob at byte {blob_pos} has a dimension of {max(shape)}, "
                         f"more than a {file_bytes}-byte file can hold")


def _repeated_floats(buf: memoryview, number: int, wire: int, tag_pos: int, s: int, e: int,
                     end: int) -> tuple[np.ndarray, int]:
    """Values of a packed (``_LEN``) or a run of unpacked fixed-width fields.

    Returns the values and the position after the last field consumed; a run of
    unpacked values (tag byte + 4 or 8 bytes each) is decoded in one numpy step.
    """
    width, dtype = (4, "<f4") if number == 5 else (8, "<f8")
    if wire == _LEN:
        if (e - s) % width:
            raise _Malformed(f"packed data at byte {tag_pos} is not a multiple of {width} bytes")
        return np.frombuffer(buf, dtype, (e - s) // width, s), e
    if _FIXED_WIDTH.get(wire) != width:
        raise _Malformed(f"data field {number} at byte {tag_pos} has wire type {wire}")
    stride = width + 1  # the one-byte tag (field numbers 5 and 8 fit in one byte)
    rows = np.frombuffer(buf, np.uint8, (end - tag_pos) // stride * stride, tag_pos)
    rows = rows.reshape(-1, stride)
    breaks = np.flatnonzero(rows[:, 0] != buf[tag_pos])
    count = int(breaks[0]) if breaks.size else len(rows)
    values = np.ascontiguousarray(rows[:count, 1:]).view(dtype).reshape(-1)
    return values, tag_pos + count * stride


def _parse_shape(buf: memoryview, start: int, end: int) -> tuple[int, ...]:
    """BlobShape: ``dim`` (field 1), packed or one varint per field."""
    dims = []
    for number, wire, _, s, e in _fields(buf, start, end):
        if number != 1:
            continue
        if wire == _VARINT:
            dims.append(_as_int64(_read_varint(buf, s, e)[0]))
        elif wire == _LEN:
            while s < e:
                value, s = _read_varint(buf, s, e)
                dims.append(_as_int64(value))
    return tuple(dims)


def _as_int64(value: int) -> int:
    """A varint read as a two's-complement int64 (negative ints use 10 bytes)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _assemble(chunks: list[np.ndarray], doubles: list[np.ndarray],
              shape: tuple[int, ...] | None, blob_pos: int) -> np.ndarray:
    if chunks and doubles:
        raise _Malformed(f"blob at byte {blob_pos} has both float and double data")
    data = np.concatenate(chunks or doubles) if chunks or doubles else np.zeros(0, np.float32)
    if shape is None:
        shape = (data.size,)
    expected = int(np.prod(shape, dtype=np.float64))
    if data.size != expected:
        raise _Malformed(
            f"blob at byte {blob_pos} has {data.size} values, its shape "
            f"{'x'.join(map(str, shape))} needs {expected}")
    return data.astype(np.float32).reshape(shape)
