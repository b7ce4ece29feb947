"""posecli batch: many inputs, one model load, mirrored outputs, failures, resume."""

from __future__ import annotations

import os

import numpy as np
import orjson
import pytest
from conftest import write_video
from test_cli import assert_one_line_error, run_cli

from posecli.batch import is_complete
from posecli.pipeline import Estimator


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """videos/a/one.mp4, videos/a/b/two.mp4, videos/three vidéo.mp4, and bad files."""
    monkeypatch.chdir(tmp_path)
    frames = np.full((3, 48, 64, 3), 100, dtype=np.uint8)
    (tmp_path / "videos" / "a" / "b").mkdir(parents=True)
    write_video(tmp_path / "videos" / "a" / "one.mp4", frames)
    write_video(tmp_path / "videos" / "a" / "b" / "two.mp4", frames[:2])
    write_video(tmp_path / "videos" / "three vidéo.mp4", frames)
    (tmp_path / "videos" / "a" / "notes.txt").write_text("not a video, and not picked up\n")
    return tmp_path


def _add_bad_files(root):
    (root / "videos" / "a" / "broken.mp4").write_text("this is text, not a video\n")
    (root / "videos" / "empty.avi").write_bytes(b"")


def test_batch_mirrors_tree_and_reports_failures(tree, tiny_weights, capsys):
    _add_bad_files(tree)
    code, _, err = run_cli(["batch", "videos", "--out-dir", "out", "--weights", tiny_weights,
                            "--net-height", 64], capsys)
    assert code == 1
    for name in ("videos/a/one.json", "videos/a/b/two.json", "videos/three vidéo.json"):
        assert is_complete(tree / "out" / name), name
    assert not (tree / "out" / "videos" / "a" / "broken.json").exists()
    assert not (tree / "out" / "videos" / "a" / "notes.json").exists()
    assert "failed: videos/a/broken.mp4: not a video file" in err
    assert "failed: videos/empty.avi: input is empty" in err
    assert "5 files: 3 ok, 0 skipped, 2 failed; 8 frames" in err
    manifest = orjson.loads((tree / "out" / "manifest.json").read_bytes())
    statuses = {os.path.basename(f["input"]): f["status"] for f in manifest["files"]}
    assert statuses == {"one.mp4": "ok", "two.mp4": "ok", "three vidéo.mp4": "ok",
                        "broken.mp4": "failed", "empty.avi": "failed"}
    assert manifest["totals"]["frames"] == 8
    two = orjson.loads((tree / "out" / "videos" / "a" / "b" / "two.json").read_bytes())
    assert len(two["images"]) == 2


def test_all_good_exits_zero_with_globs(tree, tiny_weights, capsys):
    code, _, err = run_cli(["batch", "videos/**/*.mp4", "--out-dir", "out", "--weights",
                            tiny_weights, "--net-height", 64, "--format", "jsonl"], capsys)
    assert code == 0, err
    outputs = sorted(p.relative_to(tree / "out").as_posix()
                     for p in (tree / "out").rglob("*.jsonl"))
    assert outputs == ["videos/a/b/two.jsonl", "videos/a/one.jsonl", "videos/three vidéo.jsonl"]


def _resumable_batch(weights) -> list:
    return ["batch", "videos", "--out-dir", "out", "--weights", weights, "--net-height", 64,
            "--skip-existing"]


def _outputs(tree) -> list:
    """The output documents under out/ (not the manifest)."""
    return [p for p in (tree / "out").rglob("*.json") if p.name != "manifest.json"]


def test_resume_after_interrupt_processes_only_the_rest(tree, tiny_weights, capsys,
                                                        monkeypatch):
    seen = []
    real_call = Estimator.maps

    def interrupt_second_file(self, images):
        seen.append(len(images))
        if len(seen) == 2:  # each file is one batch: the second file is interrupted
            raise KeyboardInterrupt
        return real_call(self, images)

    monkeypatch.setattr(Estimator, "maps", interrupt_second_file)
    args = _resumable_batch(tiny_weights)
    code, _, err = run_cli(args, capsys)
    assert code == 130, err
    done = _outputs(tree)
    assert len(done) == 1 and is_complete(done[0])  # the first file; the second was discarded
    assert not list((tree / "out").rglob("*.part"))
    manifest = orjson.loads((tree / "out" / "manifest.json").read_bytes())
    assert [f["status"] for f in manifest["files"]] == ["ok", "interrupted", "not_started"]
    assert manifest["totals"]["interrupted"] and manifest["totals"]["unfinished"] == 2

    monkeypatch.setattr(Estimator, "maps", real_call)
    calls = []
    monkeypatch.setattr(Estimator, "maps",
                        lambda self, images: calls.append(1) or real_call(self, images))
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert len(calls) == 2  # two.mp4 and three vidéo.mp4 only
    manifest = orjson.loads((tree / "out" / "manifest.json").read_bytes())
    assert sorted(f["status"] for f in manifest["files"]) == ["ok", "ok", "skipped"]


def test_half_written_output_is_not_complete(tmp_path):
    path = tmp_path / "x.json"
    path.write_bytes(b'{"info": {"complete": true}, "images": [')
    assert not is_complete(path)
    path.write_bytes(orjson.dumps({"info": {"complete": False}}))
    assert not is_complete(path)
    path.write_bytes(orjson.dumps({"info": {"complete": True}}))
    assert is_complete(path)


def test_unwritable_out_dir_fails_before_work(tree, tiny_weights, capsys):
    (tree / "blocker").write_text("a file where the folder should be")
    code, _, err = run_cli(["batch", "videos", "--out-dir", "blocker/out", "--weights",
                            tiny_weights], capsys)
    assert_one_line_error(code, err, "not writable")


def test_colliding_outputs_are_refused(tree, tiny_weights, capsys):
    write_video(tree / "videos" / "a" / "one.mkv", np.zeros((2, 48, 64, 3), np.uint8))
    code, _, err = run_cli(["batch", "videos", "--out-dir", "out", "--weights", tiny_weights],
                           capsys)
    assert code == 2
    assert_one_line_error(code, err, "would both write")
    assert not (tree / "out").exists()


def test_input_that_matches_nothing(tree, tiny_weights, capsys):
    code, _, err = run_cli(["batch", "nothing/*.mp4", "--out-dir", "out", "--weights",
                            tiny_weights], capsys)
    assert_one_line_error(code, err, "input not found")


def test_render_dir_mirrors_tree(tree, tiny_weights, capsys):
    import av

    code, _, err = run_cli(["batch", "videos/a", "--out-dir", "out", "--render-dir", "renders",
                            "--weights", tiny_weights, "--net-height", 64], capsys)
    assert code == 0, err
    for name, frames in (("videos/a/one.mp4", 3), ("videos/a/b/two.mp4", 2)):
        with av.open(str(tree / "renders" / name)) as container:
            assert sum(1 for _ in container.decode(video=0)) == frames


def test_ctrl_c_while_an_output_is_written_keeps_it_and_stops(tree, tiny_weights, capsys,
                                                              monkeypatch):
    """A Ctrl-C while the first input's output is written: that output is finished and
    kept (complete), the batch stops there (exit 130), and a rerun with
    --skip-existing reuses it and does the rest."""
    import signal

    from posecli.sinks import OutputGroup

    real_prepare, calls = OutputGroup.prepare, []

    def prepare_interrupted(self, info):
        calls.append(1)
        if len(calls) == 1:
            signal.raise_signal(signal.SIGINT)  # held until the output is in place
        real_prepare(self, info)

    monkeypatch.setattr(OutputGroup, "prepare", prepare_interrupted)
    args = _resumable_batch(tiny_weights)
    code, _, err = run_cli(args, capsys)
    assert code == 130, err
    done = _outputs(tree)
    assert len(done) == 1 and is_complete(done[0])
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    manifest = orjson.loads((tree / "out" / "manifest.json").read_bytes())
    statuses = sorted(f["status"] for f in manifest["files"])
    assert statuses == ["ok", "ok", "skipped"]
