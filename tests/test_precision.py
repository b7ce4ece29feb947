"""--precision: what each value resolves to, its errors, and what it records and finds;
info.options records every setting that can change results."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import orjson
import pytest
import torch
from test_cli import assert_one_line_error, run_cli

from posecli import precision
from posecli.errors import UsageError
from posecli.pipeline import PARSE_THREAD, Estimator, load_model, process_video
from posecli.sinks import Sink
from posecli.video import VideoReader

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
CPU = torch.device("cpu")


@pytest.fixture
def no_native_bf16(monkeypatch):
    """A CPU without AVX512-BF16 or AMX."""
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))


@pytest.fixture
def native_bf16(monkeypatch):
    """A CPU with AMX (oneDNN emulates it where the real one lacks it: same results)."""
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "amx_bf16"}))


def test_auto_is_bf16_where_native_else_fp32(native_bf16, monkeypatch):
    assert precision.resolve_precision("auto", CPU) == "bf16"
    assert precision.resolve_precision(" BF16 ", CPU) == "bf16"
    assert precision.resolve_precision("fp32", CPU) == "fp32"
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f"}))
    assert precision.resolve_precision("auto", CPU) == "fp32"


def test_bad_values_and_unsupported_precisions_are_usage_errors(no_native_bf16):
    with pytest.raises(UsageError, match="expected auto, fp32, bf16, fp16"):
        precision.resolve_precision("int8", CPU)
    with pytest.raises(UsageError, match="fp16 needs a CUDA device"):
        precision.resolve_precision("fp16", CPU)
    with pytest.raises(UsageError, match="no native bf16"):
        precision.resolve_precision("bf16", CPU)


@pytest.mark.parametrize("command", ["video", "image", "batch", "eval"])
def test_cli_rejects_fp16_and_emulated_bf16_with_one_line(command, tmp_path, small_video,
                                                          tiny_weights, no_native_bf16, capsys):
    image = tmp_path / "a.png"
    image.write_bytes(b"not read: the option fails first")
    args = {"video": ["video", small_video, "--out", tmp_path / "o.json"],
            "image": ["image", image, "--out", tmp_path / "o.json"],
            "batch": ["batch", small_video, "--out-dir", tmp_path / "out"],
            "eval": ["eval", "--images", tmp_path, "--annotations", tmp_path / "a.json"]}[command]
    for value, fragment in (("fp16", "fp16 needs a CUDA device"), ("bf16", "no native bf16")):
        code, out, err = run_cli([*args, "--weights", tiny_weights, "--device", "cpu",
                                  "--precision", value, "--quiet"], capsys)
        assert code == 2
        assert_one_line_error(code, err, fragment)
        assert not (tmp_path / "o.json").exists() and not (tmp_path / "out").exists()


def test_load_model_casts_the_network(tiny_weights, native_bf16):
    model = load_model(tiny_weights, "cpu", "bf16")
    assert model.precision == "bf16"
    weight = next(model.network.parameters())
    assert weight.dtype == torch.bfloat16
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert next(load_model(tiny_weights, "cpu", "fp32").network.parameters()).dtype == torch.float32
    heatmaps, pafs = Estimator(model, 64)._predict(torch.zeros(2, 3, 64, 96))
    assert heatmaps.dtype == pafs.dtype == torch.float32  # the parse always gets float32


def test_options_record_every_setting_that_changes_results(tmp_path, small_video, tiny_weights,
                                                           native_bf16, capsys):
    outputs = {}
    for value, batch in (("fp32", 2), ("bf16", 2), ("fp32", 4)):
        out = tmp_path / f"{value}-{batch}.json"
        code, _, err = run_cli(["video", small_video, "--weights", tiny_weights, "--device",
                                "cpu", "--precision", value, "--batch-size", batch,
                                "--net-height", 64, "--quiet", "--out", out], capsys)
        assert code == 0, err
        outputs[value, batch] = orjson.loads(out.read_bytes())["info"]["options"]
    options = outputs["fp32", 2]
    assert options["precision"] == "fp32" and options["batch_size"] == 2
    assert options["device"] == "cpu" and options["torch"] == torch.__version__
    assert outputs["bf16", 2]["precision"] == "bf16"
    assert outputs["fp32", 4]["batch_size"] == 4
    assert len({orjson.dumps(o) for o in outputs.values()}) == 3


def test_bf16_finds_the_people_fp32_finds_on_the_sample(tmp_path, native_bf16, capsys):
    """The demo model on samples/walkers.mp4: bf16 finds nearly every person fp32 finds,
    most at the same place (measured: 68 of 70 matched, median OKS 1.0); it moves only
    borderline parts, so a run in bf16 is not byte-equal to one in fp32."""
    from posecli.compare import Tolerances, compare_files

    clip = SAMPLES / "walkers.mp4"
    for value in ("fp32", "bf16"):
        code, _, err = run_cli(["video", clip, "--weights", "demo", "--device", "cpu",
                                "--precision", value, "--net-height", 256, "--quiet",
                                "--out", tmp_path / f"{value}.json"], capsys)
        assert code == 0, err
    result = compare_files(tmp_path / "fp32.json", tmp_path / "bf16.json",
                           Tolerances(min_oks=0.0, max_missing=99, max_extra=99))
    summary = result.summary
    assert summary.matched >= 0.9 * summary.people_expected, summary
    assert abs(summary.people_actual - summary.people_expected) <= 3, summary
    oks = [match.oks for frame in result.frames for match in frame.matches]
    assert np.median(oks) > 0.99, oks
    assert (tmp_path / "fp32.json").read_bytes() != (tmp_path / "bf16.json").read_bytes()


class _Collect(Sink):
    def __init__(self) -> None:
        self.frames = []

    def add(self, batch, frames) -> None:
        self.frames.extend(frames)

    def finish(self, info) -> None:
        pass


def test_parse_overlaps_the_next_batch_and_gives_the_sequential_people():
    """Batch k is parsed on the parse thread while the network runs batch k+1 (the parse
    of every batch but the last waits until the next batch's network call has started:
    a sequential loop would time out here), on one CPU thread, and the people equal
    batch-by-batch ones."""
    clip = SAMPLES / "walkers.mp4"  # 20 frames: batches of 8, 8 and 4
    model = load_model("demo", "cpu", "fp32")
    estimator = Estimator(model, 128)
    network_started = [threading.Event() for _ in range(3)]
    parsed_on, calls, network_threads = [], {"maps": 0, "decode": 0}, []
    threads = torch.get_num_threads()
    real_maps, real_decode = estimator.maps, estimator.decode

    def maps(images):
        network_threads.append(torch.get_num_threads())
        network_started[calls["maps"]].set()
        calls["maps"] += 1
        return real_maps(images)

    def decode(batch_maps):
        k = calls["decode"]
        calls["decode"] += 1
        if k + 1 < 3:
            assert network_started[k + 1].wait(60), "batch k+1 did not start during parse k"
        parsed_on.append((threading.current_thread().name, torch.get_num_threads()))
        return real_decode(batch_maps)

    estimator.maps, estimator.decode = maps, decode
    sink = _Collect()
    with VideoReader(clip, 8) as reader:
        run = process_video(reader, estimator, [sink])
    assert run.complete and run.frames_processed == 20 and calls == {"maps": 3, "decode": 3}
    # On its own thread, whose torch CPU operations run on one thread (the network's
    # operations keep theirs).
    assert all(name.startswith(PARSE_THREAD) and n == 1 for name, n in parsed_on)
    assert network_threads == [threads] * 3 and torch.get_num_threads() == threads
    with VideoReader(clip, 8) as reader:
        batches = list(reader)
    sequential = [people for batch in batches for people in Estimator(model, 128)(batch.images)]
    assert [f.frame_index for f in sink.frames] == list(range(20))
    assert sum(len(people) for people in sequential) > 10  # there are people to compare
    for frame, people in zip(sink.frames, sequential):
        assert len(frame.people) == len(people)
        for a, b in zip(frame.people, people):
            assert np.array_equal(a.keypoints, b.keypoints) and a.score == b.score


@pytest.mark.parametrize("family", ["cmu", "lightweight"])
def test_bf16_networks_give_the_same_bytes_on_any_thread_count(family):
    """A one-CPU Ray worker writes what a many-thread process writes, in bf16 too."""
    from conftest import TINY, assert_thread_count_does_not_matter

    from posecli.lightweight.network import LightweightNet
    from posecli.model import PoseNet

    torch.manual_seed(0)
    network = PoseNet(TINY) if family == "cmu" else LightweightNet()
    precision.cast_network(network.eval(), "bf16")
    assert_thread_count_does_not_matter(network, torch.randn(2, 3, 64, 96))  # cast in predict
