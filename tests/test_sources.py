"""Pipes and other inputs that are not regular files (issue 8, point 15).

A named pipe or ``<(cat x)`` is read as a stream, like stdin; a device that is
not a camera is refused for what it is; an MP4 whose index (moov) is at its end
cannot be read from a pipe, and the message says so and how to fix it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.conftest import write_video
from tests.test_cli import assert_one_line_error, run_cli

POSECLI = [sys.executable, "-m", "posecli"]
FASTSTART_HINT = "ffmpeg -i in.mp4 -c copy -movflags +faststart out.mp4"


@pytest.fixture(scope="module")
def index_at_end(tmp_path_factory) -> Path:
    """An MP4 as PyAV (FFmpeg) writes it by default: the moov box after the media data,
    which is larger than FFmpeg's pipe buffer (noise frames compress badly)."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (60, 64, 96, 3), dtype=np.uint8)
    path = write_video(tmp_path_factory.mktemp("mp4") / "late.mp4", frames)
    data = path.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat") > 0 and data.find(b"moov") > 64 * 1024
    return path


def _feed(fifo: Path, data: bytes) -> threading.Thread:
    """Write ``data`` into the named pipe from a thread (opening it waits for a reader)."""
    def write() -> None:
        with open(fifo, "wb") as pipe:
            pipe.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_named_pipe_is_read_as_a_stream(tmp_path, small_video, capsys):
    from posecli.sources import is_stream

    fifo = tmp_path / "in.pipe"
    os.mkfifo(fifo)
    assert is_stream(str(fifo))
    writer = _feed(fifo, Path(small_video).read_bytes())
    out = tmp_path / "o.json"
    code, _, err = run_cli(["video", fifo, "--out", out, "--weights", "demo",
                            "--net-height", 96, "-q"], capsys)
    writer.join(10)
    assert code == 0, err
    document = orjson.loads(out.read_bytes())
    assert document["info"]["complete"] is True and len(document["images"]) == 6


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_process_substitution_is_read_as_a_stream(tmp_path, small_video):
    """``posecli video <(cat x) ...``: a /dev/fd/N pipe, not "input is empty"."""
    out = tmp_path / "o.jsonl"
    command = " ".join([*map(shlex.quote, [*POSECLI, "video"]),
                        f"<(cat {shlex.quote(str(small_video))})",
                        *map(shlex.quote, ["--out", str(out), "--format", "jsonl", "--weights",
                                           "demo", "--net-height", "96", "-q"])])
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    frames = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [f["frame_index"] for f in frames if "frame_index" in f] == list(range(6))


@pytest.mark.parametrize(("device", "kind"), [("/dev/zero", "a character device"),
                                              ("/dev/null", "a character device")])
def test_device_is_refused_for_what_it_is(device, kind, tmp_path, capsys):
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    code, _, err = run_cli(["video", device, "--out", tmp_path / "o.json"], capsys)
    assert_one_line_error(code, err, f"input is {kind}, not a video", device)
    assert "empty" not in err


def test_socket_is_refused_for_what_it_is(tmp_path, capsys):
    import socket

    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        code, _, err = run_cli(["video", path, "--out", tmp_path / "o.json"], capsys)
    assert_one_line_error(code, err, "input is a socket, not a video")


def test_mp4_with_index_at_end_on_stdin_says_how_to_fix_it(index_at_end, tmp_path):
    with open(index_at_end, "rb") as stdin:
        done = subprocess.run([*POSECLI, "video", "-", "--out", str(tmp_path / "o.json"),
                               "--weights", "demo", "--net-height", "96", "-q"],
                              stdin=stdin, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "index (moov) is at its end" in lines[0] and FASTSTART_HINT in lines[0]
    assert "pass the file's path" in lines[0] and "corrupt packets" not in lines[0]
    assert not (tmp_path / "o.json").exists()


def test_mp4_with_index_at_end_reads_from_its_path(index_at_end, tmp_path, capsys):
    out = tmp_path / "o.json"
    code, _, err = run_cli(["video", index_at_end, "--out", out, "--weights", "demo",
                            "--net-height", 96, "--frames", "0:3", "-q"], capsys)
    assert code == 0, err
    assert len(orjson.loads(out.read_bytes())["images"]) == 3


def test_mp4_with_index_at_end_in_a_named_pipe(index_at_end, tmp_path, capsys):
    fifo = tmp_path / "in.pipe"
    os.mkfifo(fifo)
    writer = _feed(fifo, index_at_end.read_bytes())
    code, _, err = run_cli(["video", fifo, "--out", tmp_path / "o.json", "--weights", "demo",
                            "--net-height", 96, "-q"], capsys)
    writer.join(10)
    assert_one_line_error(code, err, "index (moov) is at its end", FASTSTART_HINT)
