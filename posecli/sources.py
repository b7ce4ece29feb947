"""Where a video comes from: what kind of source a name is, the checks made before
opening it, and what to pass to PyAV to open it.

A source is a file path, stdin (``-``), a pipe (a FIFO, or a shell's ``<(...)``
``/dev/fd/N``), a V4L2 camera (``/dev/video0``) or a stream URL (``rtsp://``,
``http(s)://``, ``udp://``...). Stdin, pipes, cameras and URLs are streams: read
front to back, once. Every problem is a one-line ``InputError``.
"""

from __future__ import annotations

import os
import stat

import av
import av.error

from posecli.errors import InputError, error_reason

# Errors PyAV raises for unreadable input: FFmpeg's own, plus OS-level ones.
AV_ERRORS = (av.error.FFmpegError, OSError, EOFError)

# Network streams: seconds to wait for the connection, and for data once connected.
OPEN_TIMEOUT_S = 20.0
READ_TIMEOUT_S = 30.0

STDIN = "-"
# V4L2 camera devices (and their stable names under /dev/v4l/by-id, by-path).
CAMERA_PREFIX = ("/dev/video", "/dev/v4l/")


def source_name(source: str) -> str:
    """How a source is named in messages."""
    return "stdin" if source == STDIN else source


def is_camera(source: str) -> bool:
    """A V4L2 device path, opened with the ``v4l2`` format."""
    return source.startswith(CAMERA_PREFIX)


def stream_start(stream: av.stream.Stream) -> float:
    """A stream's start time in seconds (0 when unknown)."""
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def is_stream(source: str) -> bool:
    """Stdin, a pipe (a FIFO, or ``<(...)``'s ``/dev/fd/N``), a camera or a URL: an
    input that cannot be read twice."""
    return source == STDIN or is_camera(source) or "://" in source or is_pipe(source)


def is_pipe(source: str) -> bool:
    """A named pipe (FIFO) or a pipe's ``/dev/fd/N``: read as a stream, like stdin."""
    try:
        return stat.S_ISFIFO(os.stat(source).st_mode)
    except (OSError, ValueError):
        return False


# What a path that is not a regular file is, for messages.
_FILE_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"), (stat.S_ISFIFO, "a pipe"))


def check_file(source: str) -> str:
    """Return the path after checking it exists and is a regular file that is not empty."""
    try:
        status = os.stat(source)
    except FileNotFoundError:
        raise InputError(f"input not found: {source}") from None
    except OSError as exc:
        raise InputError(f"cannot read {source} ({error_reason(exc)})") from None
    if stat.S_ISDIR(status.st_mode):
        raise InputError(f"input is a directory, not a file: {source}")
    for is_kind, kind in _FILE_KINDS:
        if is_kind(status.st_mode):
            raise InputError(f"input is {kind}, not a video or image file: {source}")
    if status.st_size == 0:
        raise InputError(f"input is empty: {source}")
    return source


def check_source(path: str | os.PathLike[str]) -> str:
    """Return the video source as a string after the checks that can be made before
    opening it: a local file exists, is a regular file and is not empty (a pipe is
    read as a stream), a camera exists, stdin is not a terminal."""
    source = os.fspath(path)
    if source == STDIN:
        if os.isatty(0):
            raise InputError(
                "no video on stdin: it is a terminal (pipe a video in, "
                "e.g. `cat in.ts | posecli video - ...`)"
            )
        return source
    if "://" in source:
        return source
    if is_camera(source):
        if not os.path.exists(source):
            raise InputError(f"camera not found: {source}")
        return source
    if is_pipe(source):
        return source
    return check_file(source)


def open_args(source: str) -> tuple[str, dict[str, object]]:
    """What to pass to ``av.open`` for a source: the file or URL, and keyword arguments."""
    if source == STDIN:
        return "pipe:0", {}
    if is_camera(source):
        return source, {"format": "v4l2"}
    if "://" not in source:
        return source, {}
    kwargs: dict[str, object] = {"timeout": (OPEN_TIMEOUT_S, READ_TIMEOUT_S)}
    if source.split("://", 1)[0].lower() in ("rtsp", "rtsps"):
        kwargs["options"] = {"rtsp_transport": "tcp"}
    return source, kwargs


NOT_STREAMABLE = (
    "cannot decode {source}: an MP4/MOV file whose index (moov) is at its end cannot be read "
    "from a pipe; pass the file's path instead, or make it streamable with "
    "`ffmpeg -i in.mp4 -c copy -movflags +faststart out.mp4`")


def index_at_end(container: av.container.InputContainer, source: str) -> bool:
    """Whether an MP4/MOV read from a pipe failed to decode because its index (the moov
    box) comes after the media data: the demuxer found it by reading to the end, and
    a pipe cannot go back to the frames."""
    return (source == STDIN or is_pipe(source)) and container.format.name.startswith("mov,")


def count_frames(source: str) -> int | None:
    """Count the video packets of a file without decoding; None for stdin, cameras,
    streams, or on error."""
    if is_stream(source):
        return None
    try:
        with av.open(source) as container:
            stream = container.streams.video[0]
            return sum(1 for packet in container.demux(stream) if packet.size)
    except AV_ERRORS:
        return None
