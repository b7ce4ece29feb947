"""Still images out: PNG and JPEG files, and where ``image --render`` puts them.

``write_still`` encodes with PyAV (PNG, or JPEG for a ``.jpg`` / ``.jpeg`` path)
and writes atomically (temporary file, then rename). ``plan_renders`` chooses
the render file of each input: its name in the render folder, never an input.
No torch here: ``synth`` writes its images with these functions too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .errors import UsageError
from .formats import write_atomic

#: Input suffixes whose render is a JPEG file (with the same name); others render to PNG.
JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})


def _encode(image: np.ndarray, codec_name: str, pix_fmt: str,
            options: dict[str, str]) -> bytes:
    """One ``(H, W, 3)`` uint8 RGB image through one of PyAV's still-image encoders."""
    codec = av.CodecContext.create(codec_name, "w")
    codec.width, codec.height = image.shape[1], image.shape[0]
    codec.pix_fmt = pix_fmt
    codec.time_base = Fraction(1, 1)
    codec.options = options
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    if pix_fmt != "rgb24":
        frame = frame.reformat(format=pix_fmt)
    frame.pts = 0
    packets = list(codec.encode(frame)) + list(codec.encode(None))
    return b"".join(bytes(packet) for packet in packets)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an ``(H, W, 3)`` uint8 RGB image (lossless)."""
    return _encode(image, "png", "rgb24", {"compression_level": "1"})  # fast, barely larger


def encode_jpeg(image: np.ndarray) -> bytes:
    """JPEG bytes of an ``(H, W, 3)`` uint8 RGB image: full-resolution colour (4:4:4),
    so thin coloured limbs keep their colour."""
    return _encode(image, "mjpeg", "yuvj444p", {})


def write_still(path: Path, image: np.ndarray) -> None:
    """Write an ``(H, W, 3)`` uint8 RGB image atomically: JPEG when ``path`` ends in
    .jpg / .jpeg, else PNG."""
    encode = encode_jpeg if path.suffix.lower() in JPEG_SUFFIXES else encode_png
    write_atomic(path, encode(image))


def render_path(source: str | os.PathLike[str], folder: Path) -> Path:
    """Where ``image --render FOLDER`` writes the render of ``source``: its file name in
    ``folder``, as a JPEG for a JPEG input, else as a PNG (``x.webp`` -> ``x.png``)."""
    name = Path(source).name
    if Path(name).suffix.lower() not in JPEG_SUFFIXES:
        name = str(Path(name).with_suffix(".png"))
    return folder / name


def plan_renders(inputs: Sequence[str], folder: Path) -> list[Path]:
    """The render file of each input (see ``render_path``).

    Raises UsageError when two inputs would render to one file, or when a render
    would overwrite one of the inputs (``--render`` pointing at their folder).
    """
    inputs_resolved = {Path(path).resolve(): path for path in inputs}
    owners: dict[Path, str] = {}
    renders = []
    for source in inputs:
        dest = render_path(source, folder)
        key = dest.resolve()
        if key in owners and owners[key] != source:
            raise UsageError(f"inputs {owners[key]} and {source} would both render to {dest}")
        overwritten = inputs_resolved.get(key) or _same_file_input(dest, inputs)
        if overwritten is not None:
            raise UsageError(f"--render {folder}: the render of {source} would overwrite the "
                             f"input {overwritten}; choose another folder")
        owners[key] = source
        renders.append(dest)
    return renders


def _same_file_input(dest: Path, inputs: Sequence[str]) -> str | None:
    """The input that ``dest`` already is (a hard link, say), if any."""
    if not dest.exists():
        return None
    for source in inputs:
        try:
            if os.path.samefile(dest, source):
                return source
        except OSError:
            continue
    return None
