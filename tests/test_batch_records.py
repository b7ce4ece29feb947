"""posecli batch: output locations checked before work, outputs never inputs, what each output
was made from (and --skip-existing redoing what does not match), manifests that list every
input and survive partial reruns, --frames."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest
from conftest import write_video
from test_cli import assert_one_line_error, run_cli

from posecli.batch import (
    Job,
    JobResult,
    is_posecli_file,
    merge_manifests,
    output_info,
    run_batch,
    source_record,
)
from posecli.batch.provenance import HEAD_TAIL_BYTES
from posecli.errors import PoseCliError
from posecli.pipeline import Estimator

ARGS = ["--net-height", 64]


def _clip(path: Path, frames: int, level: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, np.full((frames, 48, 64, 3), level, dtype=np.uint8))


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """videos/a/one.mp4 (3 frames), videos/a/b/two.mp4 (2), videos/three.mp4 (4)."""
    monkeypatch.chdir(tmp_path)
    _clip(tmp_path / "videos" / "a" / "one.mp4", 3)
    _clip(tmp_path / "videos" / "a" / "b" / "two.mp4", 2)
    _clip(tmp_path / "videos" / "three.mp4", 4)
    return tmp_path


def _manifest(path: Path) -> dict:
    return orjson.loads(path.read_bytes())


def _entries(path: Path) -> dict[str, dict]:
    return {Path(f["input"]).name: f for f in _manifest(path)["files"]}


def _batch(capsys, weights, *args):
    return run_cli(["batch", "videos", "--out-dir", "out", "--weights", weights, *ARGS, *args],
                   capsys)


# --- 8.11: every output location is checked before any work ---------------------------------


def _no_work_done(tree: Path) -> None:
    assert not [p for p in tree.rglob("*") if p.suffix in (".json", ".jsonl", ".csv")]


@pytest.mark.parametrize("where", ["nodir/m.json", "blocker/m.json", "videos"])
def test_unusable_manifest_location_fails_before_work(tree, tiny_weights, capsys, monkeypatch,
                                                      where):
    (tree / "blocker").write_text("a file where a folder should be")
    calls = []
    monkeypatch.setattr(Estimator, "__call__", lambda self, images: calls.append(1))
    code, _, err = _batch(capsys, tiny_weights, "--manifest", where)
    assert code == 2
    assert_one_line_error(code, err, "nodir" if where.startswith("nodir")
                          else "blocker" if where.startswith("blocker") else "directory")
    assert not calls
    _no_work_done(tree)
    assert not (tree / "out").exists()


def test_manifest_in_a_new_folder_under_out_dir_is_made(tree, tiny_weights, capsys):
    code, _, err = _batch(capsys, tiny_weights, "--manifest", "out/runs/m.json")
    assert code == 0, err
    assert len(_manifest(tree / "out" / "runs" / "m.json")["files"]) == 3


@pytest.mark.parametrize("option", ["--out-dir", "--render-dir"])
def test_unwritable_output_folders_exit_2_before_work(tree, tiny_weights, capsys, option):
    (tree / "blocker").write_text("a file where a folder should be")
    args = ["batch", "videos", "--weights", tiny_weights, *ARGS]
    args += ["--out-dir", "blocker/out"] if option == "--out-dir" else [
        "--out-dir", "out", "--render-dir", "blocker/renders"]
    code, _, err = run_cli(args, capsys)
    assert code == 2
    assert_one_line_error(code, err, "not writable", "blocker")
    _no_work_done(tree)


# --- 8.1 for batch: nothing the batch writes may land on an input ----------------------------


def test_render_over_an_input_is_refused(tree, tiny_weights, capsys):
    before = (tree / "videos" / "three.mp4").read_bytes()
    code, _, err = _batch(capsys, tiny_weights, "--render-dir", ".")
    assert code == 2
    assert_one_line_error(code, err, "would overwrite the input", "videos/")
    assert (tree / "videos" / "three.mp4").read_bytes() == before
    _no_work_done(tree)


def test_manifest_over_an_input_is_refused(tree, tiny_weights, capsys):
    before = (tree / "videos" / "three.mp4").read_bytes()
    code, _, err = _batch(capsys, tiny_weights, "--manifest", "videos/three.mp4")
    assert_one_line_error(code, err, "the manifest", "would overwrite the input")
    assert code == 2
    assert (tree / "videos" / "three.mp4").read_bytes() == before


def test_output_that_is_a_hard_link_of_an_input_is_refused(tree, tiny_weights, capsys):
    (tree / "out" / "videos").mkdir(parents=True)
    os.link(tree / "videos" / "three.mp4", tree / "out" / "videos" / "three.json")
    before = (tree / "videos" / "three.mp4").read_bytes()
    code, _, err = _batch(capsys, tiny_weights)
    assert_one_line_error(code, err, "would overwrite the input videos/three.mp4")
    assert code == 2
    assert (tree / "videos" / "three.mp4").read_bytes() == before


def test_manifest_on_an_output_is_refused(tree, tiny_weights, capsys):
    code, _, err = _batch(capsys, tiny_weights, "--manifest", "out/videos/three.json")
    assert_one_line_error(code, err, "would both be written to out/videos/three.json")
    assert code == 2


# --- 13.10: outputs, renders and manifests are never inputs ----------------------------------


def test_render_and_out_dirs_inside_the_inputs_are_not_fed_back(tree, tiny_weights, capsys):
    args = ["--out-dir", "videos/poses", "--render-dir", "videos/renders"]
    for _ in range(2):
        code, _, err = run_cli(["batch", "videos", "--weights", tiny_weights, *ARGS, *args],
                               capsys)
        assert code == 0, err
        assert "3 files: 3 ok" in err
    renders = sorted(p.relative_to(tree / "videos" / "renders").as_posix()
                     for p in (tree / "videos" / "renders").rglob("*.mp4"))
    assert renders == ["videos/a/b/two.mp4", "videos/a/one.mp4", "videos/three.mp4"]
    assert len(_manifest(tree / "videos" / "poses" / "manifest.json")["files"]) == 3


def test_renders_of_an_earlier_run_elsewhere_are_not_inputs(tree, tiny_weights, capsys):
    code, _, err = run_cli(["batch", "videos", "--out-dir", "out", "--render-dir",
                            "videos/old_renders", "--weights", tiny_weights, *ARGS], capsys)
    assert code == 0, err
    assert is_posecli_file(tree / "videos" / "old_renders" / "videos" / "three.mp4")
    assert not is_posecli_file(tree / "videos" / "three.mp4")
    # Another render folder, and a glob that takes any file: the old renders, the outputs
    # and the manifest of the first run are left out.
    shutil.copytree(tree / "out", tree / "videos" / "old_out")
    code, _, err = run_cli(["batch", "videos/**/*", "--out-dir", "out2", "--render-dir",
                            "renders2", "--weights", tiny_weights, *ARGS], capsys)
    assert code == 0, err
    assert sorted(_entries(tree / "out2" / "manifest.json")) == ["one.mp4", "three.mp4",
                                                                  "two.mp4"]


@pytest.mark.parametrize("audio", [None, "aac"])
def test_renders_are_recognised_with_and_without_audio(tmp_path, audio):
    from test_render import SKELETON, render, write_timed_video

    source = write_timed_video(tmp_path / "talk.mp4", [i / 10 for i in range(5)], audio=audio)
    out = tmp_path / "rendered.mp4"
    render(source, out, SKELETON)
    assert is_posecli_file(out) and not is_posecli_file(source)
    (tmp_path / "cut.mp4").write_bytes(out.read_bytes()[:-100])  # truncated: read safely
    (tmp_path / "text.mp4").write_text("not a video")
    assert not is_posecli_file(tmp_path / "text.mp4")
    is_posecli_file(tmp_path / "cut.mp4")
    (tmp_path / ".rendered.mp4.k2j4h.part.mp4").write_bytes(b"")  # a killed render's file
    assert is_posecli_file(tmp_path / ".rendered.mp4.k2j4h.part.mp4")
    (tmp_path / ".out.json.k2j4h.part").write_bytes(b"{")
    assert is_posecli_file(tmp_path / ".out.json.k2j4h.part")


def test_a_render_dir_equal_to_the_input_folder_is_not_fed_back(tree, tiny_weights, capsys):
    for _ in range(2):
        code, _, err = run_cli(["batch", "videos", "--out-dir", "out", "--render-dir", "videos",
                                "--weights", tiny_weights, *ARGS], capsys)
        assert code == 0, err
        assert "3 files: 3 ok" in err
    assert not (tree / "videos" / "videos" / "videos").exists()


# --- 13.11: each output records what it was made from; --skip-existing checks it --------------


def test_output_records_input_weights_and_options(tree, tiny_weights, capsys):
    code, _, err = _batch(capsys, tiny_weights, "--frames", "0:2")
    assert code == 0, err
    info = output_info(tree / "out" / "videos" / "three.json")
    assert info["source"]["size"] == (tree / "videos" / "three.mp4").stat().st_size
    assert info["source"] | source_record(tree / "videos" / "three.mp4") == info["source"]
    assert len(info["model"]["sha256"]) == 64
    assert info["options"]["net_height"] == 64 and info["options"]["frames"] == "0:2"
    assert info["options"]["format"] == "coco"
    assert info["frames_processed"] == 2
    assert _manifest(tree / "out" / "manifest.json")["options"] == info["options"]


def test_skip_existing_redoes_what_does_not_match_and_says_why(tree, tiny_weights, capsys,
                                                                tmp_path_factory):
    code, _, err = _batch(capsys, tiny_weights)
    assert code == 0, err
    code, _, err = _batch(capsys, tiny_weights, "--skip-existing")
    assert "3 skipped" in err
    assert {f["redo_reason"] for f in _entries(tree / "out" / "manifest.json").values()} == {None}

    # another video at the same path
    _clip(tree / "videos" / "three.mp4", 6, level=150)
    code, _, err = _batch(capsys, tiny_weights, "--skip-existing")
    assert code == 0 and "1 ok, 2 skipped" in err, err
    entries = _entries(tree / "out" / "manifest.json")
    assert entries["three.mp4"]["status"] == "ok" and entries["three.mp4"]["frames"] == 6
    assert entries["three.mp4"]["redo_reason"].startswith("input changed")

    # another net height: every output is redone
    code, _, err = run_cli(["batch", "videos", "--out-dir", "out", "--weights", tiny_weights,
                            "--net-height", 96, "--skip-existing"], capsys)
    assert "3 ok, 0 skipped" in err, err
    reasons = {f["redo_reason"] for f in _entries(tree / "out" / "manifest.json").values()}
    assert reasons == {"options differ: net_height 64 -> 96"}

    # other weights (same architecture, other values)
    import torch

    state = torch.load(tiny_weights)
    other = tmp_path_factory.mktemp("other") / "other_body_pose_model.pth"
    torch.save({k: v + 0.5 if v.is_floating_point() else v for k, v in state.items()}, other)
    code, _, err = run_cli(["batch", "videos", "--out-dir", "out", "--weights", other,
                            "--net-height", 96, "--skip-existing"], capsys)
    assert "3 ok, 0 skipped" in err, err
    reasons = {f["redo_reason"] for f in _entries(tree / "out" / "manifest.json").values()}
    assert len(reasons) == 1 and reasons.pop().startswith("other weights")


def test_skip_existing_redoes_outputs_without_a_record(tree, tiny_weights, capsys):
    code, _, err = _batch(capsys, tiny_weights)
    assert code == 0, err
    path = tree / "out" / "videos" / "three.json"
    document = orjson.loads(path.read_bytes())
    for key in ("size", "sha256_head_tail"):  # as an older posecli wrote it
        del document["info"]["source"][key]
    path.write_bytes(orjson.dumps(document))
    code, _, err = _batch(capsys, tiny_weights, "--skip-existing")
    assert "1 ok, 2 skipped" in err, err
    assert "older posecli" in _entries(tree / "out" / "manifest.json")["three.mp4"]["redo_reason"]
    assert output_info(path)["source"]["sha256_head_tail"]


def test_skip_existing_checks_csv_records_and_missing_renders(tree, tiny_weights, capsys):
    code, _, err = _batch(capsys, tiny_weights, "--format", "csv", "--render-dir", "renders")
    assert code == 0, err
    assert output_info(tree / "out" / "videos" / "three.csv")["options"]["format"] == "csv"
    (tree / "renders" / "videos" / "three.mp4").unlink()
    code, _, err = _batch(capsys, tiny_weights, "--format", "csv", "--render-dir", "renders",
                          "--skip-existing")
    assert "1 ok, 2 skipped" in err, err
    assert _entries(tree / "out" / "manifest.json")["three.mp4"]["redo_reason"] == "no render"
    code, _, err = _batch(capsys, tiny_weights, "--format", "csv", "--skip-existing",
                          "--frames", "0:1")
    assert "3 ok, 0 skipped" in err, err
    assert {f["redo_reason"] for f in _entries(tree / "out" / "manifest.json").values()} == {
        "options differ: frames None -> '0:1'"}


def test_output_info_reads_each_layout(tmp_path):
    info = {"tool": "posecli", "complete": True, "options": {"net_height": 64}}
    (tmp_path / "a.json").write_bytes(orjson.dumps({"info": info, "images": []}))
    frame = orjson.dumps({"frame_index": 0, "people": []})
    (tmp_path / "a.jsonl").write_bytes(frame + b"\n" + orjson.dumps(
        {"complete": True, "frames": 1, "info": info}) + b"\n")
    (tmp_path / "b.jsonl").write_bytes(frame + b"\n")  # no trailer: no record
    (tmp_path / "a.csv").write_text("file\n")
    (tmp_path / "a.csv.info.json").write_bytes(orjson.dumps({"info": info, "csv": {}}))
    (tmp_path / "c.json").write_bytes(b'{"info": {"tool": "posecli"')  # half written
    for name in ("a.json", "a.jsonl", "a.csv"):
        assert output_info(tmp_path / name) == info, name
    for name in ("b.jsonl", "c.json", "missing.json"):
        assert output_info(tmp_path / name) is None, name


def test_source_record_digests_head_and_tail(tmp_path):
    path = tmp_path / "big.bin"
    data = bytearray(os.urandom(3 * HEAD_TAIL_BYTES))
    path.write_bytes(data)
    record = source_record(path)
    assert record["size"] == len(data)
    data[-1] ^= 1
    path.write_bytes(data)
    assert source_record(path) != record
    data[-1] ^= 1
    data[0] ^= 1
    path.write_bytes(data)
    assert source_record(path) != record


# --- 8.12: the manifest lists every input, and partial reruns update it ------------------------


def test_partial_rerun_updates_the_manifest(tree, tiny_weights, capsys):
    code, _, err = _batch(capsys, tiny_weights)
    assert code == 0, err
    (tree / "out" / "videos" / "a" / "one.json").unlink()
    code, _, err = run_cli(["batch", "videos/a", "--out-dir", "out", "--weights", tiny_weights,
                            *ARGS, "--skip-existing"], capsys)
    assert code == 0 and "2 files: 1 ok, 1 skipped" in err, err
    manifest = _manifest(tree / "out" / "manifest.json")
    statuses = {Path(f["input"]).name: (f["status"], f["redo_reason"])
                for f in manifest["files"]}
    assert statuses == {"one.mp4": ("ok", "no output"), "two.mp4": ("skipped", None),
                        "three.mp4": ("ok", None)}
    assert manifest["totals"]["files"] == 3 and manifest["totals"]["frames"] == 7


def test_rerun_interrupted_while_checking_keeps_entries_it_never_started(tree, tiny_weights, capsys,
                                                                  monkeypatch):
    from posecli.batch import Provenance

    code, _, err = _batch(capsys, tiny_weights)
    assert code == 0, err
    checked = []
    real = Provenance.redo_reason

    def stop_at_the_second(self, job):
        checked.append(job)
        if len(checked) == 2:
            raise KeyboardInterrupt
        return real(self, job)

    monkeypatch.setattr(Provenance, "redo_reason", stop_at_the_second)
    code, _, err = _batch(capsys, tiny_weights, "--skip-existing")
    assert code == 130, err
    statuses = [f["status"] for f in _manifest(tree / "out" / "manifest.json")["files"]]
    assert statuses == ["skipped", "interrupted", "ok"]  # the job never started keeps its own


def test_manifest_of_other_settings_is_replaced_with_a_warning(tree, tiny_weights, capsys):
    code, _, err = _batch(capsys, tiny_weights)
    assert code == 0, err
    code, _, err = run_cli(["batch", "videos/a", "--out-dir", "out", "--weights", tiny_weights,
                            "--net-height", 96, "--skip-existing"], capsys)
    assert code == 0, err
    assert "other settings (options differ): it is replaced" in err
    assert sorted(_entries(tree / "out" / "manifest.json")) == ["one.mp4", "two.mp4"]


def test_a_failing_engine_still_lists_every_job(tmp_path):
    jobs = [Job(tmp_path / f"{n}.mp4", tmp_path / f"{n}.json") for n in "abc"]

    def engine(pending, on_start):
        on_start(pending[0])
        yield pending[0], JobResult(str(pending[0].source), str(pending[0].output), "ok")
        on_start(pending[1])
        raise PoseCliError("no Ray worker is left to run the batch")

    report = run_batch(jobs, engine)
    assert [r.status for r in report.results] == ["ok", "interrupted", "not_started"]
    assert report.totals()["error"] == "no Ray worker is left to run the batch"


def test_merge_keeps_redo_reasons_and_errors():
    def shard(index, files, error=None):
        return orjson.dumps({
            "tool": "posecli", "version": "x", "shard": {"index": index, "count": 2},
            "totals": {"interrupted": False, "error": error}, "files": files})

    entry = {"input": "a.mp4", "output": "a.json", "status": "ok", "frames": 1, "people": 0,
             "seconds": 0.1, "error": None, "redo_reason": "input changed (content)"}
    old = {"input": "b.mp4", "output": "b.json", "status": "not_started"}  # fewer keys
    header, report, missing = merge_manifests([("0", shard(0, [entry])),
                                               ("1", shard(1, [old], "worker lost"))])
    assert not missing
    assert [r.redo_reason for r in report.results] == ["input changed (content)", None]
    assert report.totals()["error"] == "worker lost"


# --- 13.12: --frames that selects nothing warns ------------------------------------------------


def test_frames_selecting_nothing_warns_in_video_and_batch(tree, tiny_weights, capsys):
    code, _, err = run_cli(["video", "videos/three.mp4", "--out", "o.json", "--weights",
                            tiny_weights, *ARGS, "--frames", "100:200"], capsys)
    assert code == 0, err
    assert ("posecli: warning: --frames 100:200 selects none of the 4 frames of "
            "videos/three.mp4: its output holds no frames") in err.splitlines()
    document = orjson.loads((tree / "o.json").read_bytes())
    assert document["images"] == [] and document["info"]["complete"] is True

    code, _, err = _batch(capsys, tiny_weights, "--frames", "3:")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "selects none" in line]
    assert sorted(warnings) == [
        f"posecli: warning: --frames 3: selects none of the {n} frames of {name}: its output "
        "holds no frames" for n, name in ((2, "videos/a/b/two.mp4"), (3, "videos/a/one.mp4"))]
    entries = _entries(tree / "out" / "manifest.json")
    assert {name: e["frames"] for name, e in entries.items()} == {
        "one.mp4": 0, "two.mp4": 0, "three.mp4": 1}


def test_batch_frames_is_checked_before_work(tree, tiny_weights, capsys):
    code, _, err = _batch(capsys, tiny_weights, "--frames", "5:1:0")
    assert_one_line_error(code, err, "--frames", "STEP must be a positive integer")
    assert code == 2
    _no_work_done(tree)
