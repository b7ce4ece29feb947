"""Ctrl-C and SIGTERM against real posecli processes (issue 8, point 4).

Signals are sent at controlled points: during start-up (imports, model load),
and twice in a row once frames are being written. Each case is tried at several
delays to catch races; every try must end the same documented way.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.conftest import write_video

POSECLI = [sys.executable, "-m", "posecli"]


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """300 frames of 96 x 64 with a moving bright square: long enough to interrupt."""
    frames = np.full((300, 64, 96, 3), 90, dtype=np.uint8)
    for index, frame in enumerate(frames):
        frame[20:40, index % 70:index % 70 + 20] = 230
    return write_video(tmp_path_factory.mktemp("clip") / "long.mp4", frames)


def _video(clip: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*POSECLI, "video", str(clip), "--out", str(out), "--weights", "demo",
         "--net-height", "96", "-q", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_frames(out: Path, process: subprocess.Popen) -> None:
    """Until the JSON-lines temp file beside ``out`` holds a frame (frames are done)."""
    while process.poll() is None:
        parts = list(out.parent.glob(f".{out.name}.*"))
        if parts and parts[0].exists() and parts[0].stat().st_size > 0:
            return
        time.sleep(0.01)
    pytest.fail(f"posecli ended before writing a frame: {process.stderr.read()}")


def _handles_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (posecli's are installed)."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(status.split("SigCgt:")[1].split()[0], 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def _loading_torch(pid: int) -> bool:
    """Whether torch's C++ library is mapped (its import has begun)."""
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize(("point", "delay"), [
    ("handlers", 0.0), ("handlers", 0.01), ("handlers", 0.03), ("handlers", 0.06),
    ("handlers", 0.1), ("handlers", 0.2), ("torch", 0.0), ("torch", 0.0), ("torch", 0.02),
    ("torch", 0.05), ("torch", 0.1), ("torch", 0.2), ("torch", 0.4)])
def test_ctrl_c_during_start_up_is_one_line(point, delay, small_video, tmp_path):
    """SIGINT while posecli imports its modules (from the moment its handlers are in
    place, or once torch's import has begun) or loads the model: exit 130 and one
    line, never a traceback, an abort in torch's C++ code, or a run that goes on."""
    process = _video(small_video, tmp_path / "o.json")
    reached = _handles_sigterm if point == "handlers" else _loading_torch
    while process.poll() is None and not reached(process.pid):
        time.sleep(0.001)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert "Traceback" not in err and "terminate called" not in err, err
    assert process.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err, err


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("gap", [0.005, 0.02, 0.06, 0.15, 0.3])
def test_second_signal_never_discards_finished_frames(gap, second, long_clip, tmp_path):
    """A second Ctrl-C (or SIGTERM) soon after the first: the frames done are still
    written, marked incomplete; exit 130 with one line, no traceback, no SIGABRT."""
    out = tmp_path / "o.jsonl"
    process = _video(long_clip, out, "--format", "jsonl", "--batch-size", "2")
    _wait_for_frames(out, process)
    process.send_signal(signal.SIGINT)
    time.sleep(gap)
    process.send_signal(second)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "marked incomplete" in lines[0], err
    written = int(lines[0].split("interrupted: ")[1].split(" frames")[0])
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    frames = [record for record in records if "frame_index" in record]
    assert written >= 1 and len(frames) == written
    assert [frame["frame_index"] for frame in frames] == list(range(written))
    assert not list(tmp_path.glob(".*part*"))


def test_handlers_restored_after_main(small_video, tmp_path, capsys):
    """main() in a process of its own (a test, a notebook) puts the previous SIGINT and
    SIGTERM handlers back when it returns."""
    from posecli.cli import main

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit):
        main(["video", str(small_video), "--out", str(tmp_path / "o.json"),
              "--weights", "demo", "--net-height", "96", "-q"])
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


@pytest.mark.parametrize("signals", [1, 2])
def test_reader_on_a_stalled_pipe_is_left_behind_after_ctrl_c(signals, tmp_path, monkeypatch):
    """After Ctrl-C, closing a reader whose input stalled (a pipe kept open with no data)
    does not wait the usual 10 s for its decoding thread: 1 s after the first signal,
    not at all after a second; the process then leaves at once."""
    import os
    import threading

    from posecli import interrupts, video

    monkeypatch.setattr(video, "_JOIN_S", 60.0)
    stream = write_video(tmp_path / "live.ts", np.full((20, 64, 96, 3), 90, dtype=np.uint8))
    fifo = tmp_path / "in.pipe"
    os.mkfifo(fifo)
    release = threading.Event()

    def feed() -> None:
        with open(fifo, "wb") as pipe:
            pipe.write(stream.read_bytes())
            pipe.flush()
            release.wait(120)  # the input stalls: open, no more data

    threading.Thread(target=feed, daemon=True).start()
    restore = interrupts.install_handlers()
    try:
        reader = video.VideoReader(str(fifo), 1, queue_size=64)
        batches = iter(reader)
        next(batches)
        time.sleep(0.5)  # the decoding thread reads what was written, then waits on the pipe
        main = threading.main_thread().ident  # (a signal the decoding thread took would
        with pytest.raises(KeyboardInterrupt):  # end its read with EINTR: not a stall)
            signal.pthread_kill(main, signal.SIGINT)
            time.sleep(5)
        for _ in range(signals - 1):
            signal.pthread_kill(main, signal.SIGINT)  # only counted: nothing is raised
        assert interrupts.interrupt_count() == signals
        started = time.monotonic()
        reader.close()
        waited = time.monotonic() - started
        assert reader._thread.is_alive()  # blocked on the pipe: left behind
        assert waited < 30  # not the 60 s a reader waits when nobody interrupted
        del batches
    finally:
        restore()
        release.set()


@pytest.mark.parametrize("fmt, suffix", [("coco", "json"), ("jsonl", "jsonl")])
def test_ctrl_c_while_writing_finishes_the_outputs_first(fmt, suffix, small_video, tmp_path,
                                                         monkeypatch, capsys):
    """A Ctrl-C once every frame is processed, while the output is written, does not
    throw the run away: the output is finished and in place, marked complete, and the
    command says so in one line (exit 130)."""
    from posecli.cli import main
    from posecli.sinks import OutputGroup

    real_prepare = OutputGroup.prepare

    def prepare_interrupted(self, info):
        signal.raise_signal(signal.SIGINT)  # the handler runs now: held, not raised
        real_prepare(self, info)

    monkeypatch.setattr(OutputGroup, "prepare", prepare_interrupted)
    out = tmp_path / f"o.{suffix}"
    with pytest.raises(SystemExit) as exit_info:
        main(["video", str(small_video), "--out", str(out), "--format", fmt,
              "--weights", "demo", "--net-height", "96", "-q"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 130
    assert err == f"posecli: error: interrupted while writing: all 6 frames written to {out}"
    if fmt == "coco":
        document = orjson.loads(out.read_bytes())
        assert document["info"]["complete"] is True and len(document["images"]) == 6
    else:
        records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
        assert records[-1]["complete"] is True and records[-1]["frames"] == 6
    assert not list(tmp_path.glob(".*part*"))


def test_signal_after_the_outputs_are_in_place_is_only_counted(small_video, tmp_path,
                                                               monkeypatch, capsys):
    """Once the outputs are in place (the reader closing, the summary line), a Ctrl-C
    has nothing left to stop: the run ends as finished, not "no output written"."""
    from posecli.cli import video as video_command

    real_summary = video_command.run_summary

    def summary_interrupted(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)
        return real_summary(*args, **kwargs)

    monkeypatch.setattr(video_command, "run_summary", summary_interrupted)
    from posecli.cli import main

    out = tmp_path / "o.json"
    with pytest.raises(SystemExit) as exit_info:
        main(["video", str(small_video), "--out", str(out), "--weights", "demo",
              "--net-height", "96"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 0, err
    assert "no output written" not in err and "6 frames" in err
    assert orjson.loads(out.read_bytes())["info"]["complete"] is True
