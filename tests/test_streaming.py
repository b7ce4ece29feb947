"""JSON-lines streams, and interruption: finished frames are kept, marked incomplete."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import orjson
import pytest
from conftest import write_video
from test_cli import run_cli

from posecli.pipeline import Estimator
from posecli.sinks import JsonLinesSink


def test_jsonl_one_object_per_frame(tmp_path, tiny_weights, small_video, capsys):
    out = tmp_path / "poses.jsonl"
    code, _, err = run_cli(["video", small_video, "--weights", tiny_weights, "--out", out,
                            "--net-height", 64, "--format", "jsonl", "--batch-size", 4], capsys)
    assert code == 0, err
    *records, trailer = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [r["frame_index"] for r in records] == list(range(6))
    assert trailer["complete"] is True and trailer["frames"] == 6
    assert trailer["info"]["complete"] is True and trailer["info"]["frames_processed"] == 6
    assert all(isinstance(r["people"], list) and r["width"] == 96 for r in records)
    assert not list(tmp_path.glob("*.part"))


def test_jsonl_to_stdout(tiny_weights, small_video, capsys):
    code, out, err = run_cli(["video", small_video, "--weights", tiny_weights, "--out", "-",
                              "--net-height", 64, "--format", "jsonl", "--frames", "2:5"], capsys)
    assert code == 0, err
    *records, trailer = [orjson.loads(line) for line in out.splitlines()]
    assert [record["frame_index"] for record in records] == [2, 3, 4]
    assert trailer["complete"] is True and trailer["frames"] == 3


@pytest.mark.parametrize("fmt", ["coco", "jsonl"])
def test_interrupt_keeps_finished_frames(fmt, tmp_path, tiny_weights, small_video, capsys,
                                         monkeypatch):
    """Ctrl-C during the third batch: two batches are written, marked incomplete."""
    calls = []
    real_call = Estimator.__call__

    def interrupted_on_third(self, images):
        calls.append(len(images))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_call(self, images)

    monkeypatch.setattr(Estimator, "__call__", interrupted_on_third)
    out = tmp_path / "poses.json"
    code, _, err = run_cli(["video", small_video, "--weights", tiny_weights, "--out", out,
                            "--net-height", 64, "--batch-size", 2, "--format", fmt], capsys)
    assert code == 130
    assert "interrupted: 4 frames written" in err
    if fmt == "coco":
        doc = orjson.loads(out.read_bytes())
        assert doc["info"]["complete"] is False
        assert [i["frame_index"] for i in doc["images"]] == [0, 1, 2, 3]
    else:
        lines = out.read_bytes().splitlines()  # no completion line: the run was interrupted
        assert [orjson.loads(line)["frame_index"] for line in lines] == [0, 1, 2, 3]


def test_complete_run_is_marked_complete(tmp_path, tiny_weights, small_video, capsys):
    out = tmp_path / "poses.json"
    code, _, err = run_cli(["video", small_video, "--weights", tiny_weights, "--out", out,
                            "--net-height", 64], capsys)
    assert code == 0, err
    assert orjson.loads(out.read_bytes())["info"]["complete"] is True


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_a_real_process(signum, tmp_path, tiny_weights):
    """A real posecli process streaming JSON lines stops promptly on SIGINT/SIGTERM."""
    frames = np.full((400, 64, 96, 3), 120, dtype=np.uint8)
    video = write_video(tmp_path / "long.mp4", frames)
    process = subprocess.Popen(
        [sys.executable, "-m", "posecli", "video", str(video), "--weights",
         str(tiny_weights), "--out", "-", "--format", "jsonl", "--net-height", "64",
         "--batch-size", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = process.stdout.readline()  # processing has started
    assert orjson.loads(first)["frame_index"] == 0
    process.send_signal(signum)
    sent = time.monotonic()
    rest, err = process.communicate(timeout=60)
    assert time.monotonic() - sent < 5
    assert process.returncode == 130, err
    assert b"Traceback" not in err
    assert err.strip().splitlines() == [b"posecli: error: interrupted: %d frames written to -, "
                                        b"marked incomplete" % (len(rest.splitlines()) + 1)]
    lines = [first, *rest.splitlines()]
    indices = [orjson.loads(line)["frame_index"] for line in lines]
    assert indices == list(range(len(indices))) and len(indices) < 400


def test_video_render_writes_playable_mp4(tmp_path, tiny_weights, small_video, capsys):
    import av

    out, render = tmp_path / "poses.json", tmp_path / "poses.mp4"
    code, _, err = run_cli(["video", small_video, "--weights", tiny_weights, "--out", out,
                            "--render", render, "--net-height", 64, "--frames", "1:5"], capsys)
    assert code == 0, err
    with av.open(str(render)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        times = [frame.time for frame in container.decode(stream)]
    assert times == pytest.approx([0.1, 0.2, 0.3, 0.4], abs=1e-3)
    assert not list(tmp_path.glob(".*part*"))


def test_render_to_missing_folder_fails_first(tmp_path, tiny_weights, small_video, capsys):
    out = tmp_path / "poses.json"
    code, _, err = run_cli(["video", small_video, "--weights", tiny_weights, "--out", out,
                            "--render", tmp_path / "nope" / "x.mp4"], capsys)
    assert code == 1 and "output folder does not exist" in err
    assert not out.exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_a_write_counts_what_was_written(signum, tmp_path, tiny_weights,
                                                      small_video, capsys, monkeypatch):
    """A signal arriving while a batch is being written stops after the write, and the
    message counts that batch (CI once saw "0 frames written" after one line was out)."""
    import os

    real_add = JsonLinesSink.add

    def add_then_signal(self, batch, frames):
        real_add(self, batch, frames)
        os.kill(os.getpid(), signum)  # delivered right after the write, before the count

    monkeypatch.setattr(JsonLinesSink, "add", add_then_signal)
    out = tmp_path / "poses.jsonl"
    code, _, err = run_cli(["video", small_video, "--weights", tiny_weights, "--out", out,
                            "--net-height", 64, "--batch-size", 2, "--format", "jsonl"], capsys)
    assert code == 130, err
    assert "interrupted: 2 frames written" in err
    assert [orjson.loads(line)["frame_index"] for line in out.read_bytes().splitlines()] == [0, 1]


def test_signals_held_delivers_after_the_block():
    """Inside signals_held a signal waits; it is raised, once, when the block ends."""
    import os

    from posecli.interrupts import signals_held

    steps = []
    with pytest.raises(KeyboardInterrupt):
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("rest of the block ran")
    assert steps == ["rest of the block ran"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_during_a_long_network_call_stops_within_a_second(tmp_path, tiny_weights,
                                                                  small_video, capsys,
                                                                  monkeypatch):
    """A signal arriving mid-batch (a slow CPU network call) does not wait for the call."""
    import os
    import threading

    real_call = Estimator.__call__
    calls, signalled = [], []
    release = threading.Event()  # ends the abandoned call when the test is over

    def interrupt() -> None:
        signalled.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    def slow_second_batch(self, images):
        calls.append(1)
        if len(calls) == 2:
            threading.Timer(0.3, interrupt).start()
            release.wait(30)  # a network call far longer than the allowed second
        return real_call(self, images)

    monkeypatch.setattr(Estimator, "__call__", slow_second_batch)
    out = tmp_path / "poses.json"
    started = time.monotonic()
    try:
        code, _, err = run_cli(["video", small_video, "--weights", tiny_weights, "--out", out,
                                "--net-height", 64, "--batch-size", 2], capsys)
    finally:
        release.set()  # no torch call may still run in the background when pytest exits
    assert time.monotonic() - signalled[0] < 1.0  # stopped and wrote the output
    assert time.monotonic() - started < 10
    assert code == 130, err
    doc = orjson.loads(out.read_bytes())
    assert doc["info"]["complete"] is False
    assert [i["frame_index"] for i in doc["images"]] == [0, 1]
