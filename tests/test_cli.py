"""The posecli command end to end: outputs, and one clear line for every bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import orjson
import pytest
import torch
from conftest import save_png
from pycocotools.coco import COCO

from posecli.cli import main
from posecli.model import PoseNet


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run posecli in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("posecli: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def test_video_writes_valid_coco(tmp_path, tiny_weights, small_video, capsys):
    out = tmp_path / "poses.json"
    code, _, err = run_cli(["video", small_video, "--weights", tiny_weights, "--out", out,
                            "--net-height", 64, "--batch-size", 4], capsys)
    assert code == 0, err
    doc = orjson.loads(out.read_bytes())
    assert [img["frame_index"] for img in doc["images"]] == list(range(6))
    assert [img["timestamp"] for img in doc["images"]] == pytest.approx([0.1 * i for i in range(6)])
    assert {(img["width"], img["height"]) for img in doc["images"]} == {(96, 64)}
    assert doc["info"]["model"]["format"] == "body_pose_model"
    assert doc["info"]["options"]["net_height"] == 64
    assert doc["categories"][0]["keypoints"][1] == "left_eye"
    coco = COCO(str(out))
    assert sorted(coco.getImgIds()) == list(range(1, 7))
    assert not list(tmp_path.glob("*.part"))


def test_video_frames_and_stdout(tiny_weights, small_video, capsys):
    code, out, err = run_cli(["video", small_video, "--weights", tiny_weights, "--out", "-",
                              "--net-height", 64, "--frames", "1::2"], capsys)
    assert code == 0, err
    doc = orjson.loads(out)
    assert [img["frame_index"] for img in doc["images"]] == [1, 3, 5]
    assert doc["info"]["options"]["frames"] == "1::2"


def test_openpose_format(tmp_path, tiny_weights, small_video, capsys):
    out = tmp_path / "op.json"
    code, _, err = run_cli(["video", small_video, "--weights", tiny_weights, "--out", out,
                            "--net-height", 64, "--frames", "0:2", "--format", "openpose"],
                           capsys)
    assert code == 0, err
    doc = orjson.loads(out.read_bytes())
    assert [f["frame_index"] for f in doc["frames"]] == [0, 1]
    assert all(isinstance(f["people"], list) for f in doc["frames"])


def test_output_is_deterministic(tmp_path, tiny_weights, small_video, capsys):
    outputs = []
    for name in ("a.json", "b.json"):
        code, _, err = run_cli(["video", small_video, "--weights", tiny_weights, "--out",
                                tmp_path / name, "--net-height", 64, "--frames", "0:2"], capsys)
        assert code == 0, err
        outputs.append((tmp_path / name).read_bytes())
    assert outputs[0] == outputs[1]


def test_image_command(tmp_path, tiny_weights, capsys):
    paths = []
    for i, size in enumerate([(40, 56), (33, 47)]):
        path = tmp_path / f"img{i}.png"
        save_png(np.full((*size, 3), 100 + i, np.uint8), path)
        paths.append(path)
    out = tmp_path / "images.json"
    code, _, err = run_cli(["image", *paths, "--weights", tiny_weights, "--out", out,
                            "--net-height", 64], capsys)
    assert code == 0, err
    doc = orjson.loads(out.read_bytes())
    assert [(i["width"], i["height"]) for i in doc["images"]] == [(56, 40), (47, 33)]
    assert [i["file_name"] for i in doc["images"]] == [str(p) for p in paths]


def test_shared_media_done_criteria(tmp_path, shared_media, capsys):
    """The issue's acceptance runs, on a full-size random CMU-layout model."""
    torch.manual_seed(1)
    weights = tmp_path / "body_pose_model.pth"
    torch.save(PoseNet().state_dict(), weights)
    out = tmp_path / "o.json"
    code, _, err = run_cli(["video", shared_media / "vtest.avi", "--weights", weights,
                            "--frames", "0:3", "--net-height", 184, "--out", out], capsys)
    assert code == 0, err
    doc = orjson.loads(out.read_bytes())
    assert [i["timestamp"] for i in doc["images"]] == [0.0, 0.1, 0.2]
    assert {(i["width"], i["height"]) for i in doc["images"]} == {(768, 576)}
    COCO(str(out))
    out = tmp_path / "i.json"
    code, _, err = run_cli(["image", shared_media / "basketball1.png",
                            shared_media / "messi5.jpg", "--weights", weights,
                            "--net-height", 184, "--out", out], capsys)
    assert code == 0, err
    assert len(orjson.loads(out.read_bytes())["images"]) == 2


def test_no_weights_anywhere_exits_2(tmp_path, small_video, capsys):
    out = tmp_path / "o.json"
    code, _, err = run_cli(["video", small_video, "--out", out], capsys)
    assert code == 2
    assert_one_line_error(code, err, "posecli weights download")
    assert not out.exists()


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16",
                                           layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _bad_inputs(tmp: Path) -> dict[str, tuple[Path, str]]:
    (tmp / "empty.mp4").write_bytes(b"")
    (tmp / "text.mp4").write_text("this is not a video\n")
    return {
        "missing": (tmp / "nope.mp4", "input not found"),
        "empty": (tmp / "empty.mp4", "input is empty"),
        "text": (tmp / "text.mp4", "not a video file"),
        "audio": (_audio_only(tmp / "sound.wav"), "no video stream"),
    }


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "audio"])
def test_bad_video_input(kind, tmp_path, tiny_weights, capsys):
    path, message = _bad_inputs(tmp_path)[kind]
    out = tmp_path / "o.json"
    code, _, err = run_cli(["video", path, "--weights", tiny_weights, "--out", out], capsys)
    assert_one_line_error(code, err, message)
    assert not out.exists()
    assert not list(tmp_path.glob(".o.json*"))


@pytest.mark.parametrize("kind", ["missing", "empty", "text"])
def test_bad_image_input(kind, tmp_path, tiny_weights, capsys):
    path, _ = _bad_inputs(tmp_path)[kind]
    out = tmp_path / "o.json"
    code, _, err = run_cli(["image", path, "--weights", tiny_weights, "--out", out], capsys)
    assert_one_line_error(code, err)
    assert not out.exists()


def _truncated(tmp: Path, weights: Path) -> Path:
    path = tmp / "truncated.pth"
    path.write_bytes(weights.read_bytes()[:2000])
    return path


def _wrong_shape(tmp: Path, weights: Path) -> Path:
    state = torch.load(weights, weights_only=True)
    state["conv1_1.weight"] = torch.zeros(4, 3, 5, 5)
    path = tmp / "wrong.pth"
    torch.save(state, path)
    return path


@pytest.mark.parametrize("make, fragment", [(_truncated, "truncated.pth"),
                                            (_wrong_shape, "conv1_1.weight")])
def test_bad_weights(make, fragment, tmp_path, tiny_weights, small_video, capsys):
    out = tmp_path / "o.json"
    code, _, err = run_cli(["video", small_video, "--weights", make(tmp_path, tiny_weights),
                            "--out", out], capsys)
    assert_one_line_error(code, err, fragment)
    assert not out.exists()


@pytest.mark.parametrize("option", [
    ["--frames", "a:b"], ["--frames", "0:10:0"], ["--device", "tpu"], ["--net-height", "4"],
    ["--format", "xml"], ["--batch-size", "0"], ["--min-parts", "0"],
])
def test_bad_options(option, tmp_path, tiny_weights, small_video, capsys):
    out = tmp_path / "o.json"
    code, _, err = run_cli(["video", small_video, "--weights", tiny_weights, "--out", out,
                            *option], capsys)
    assert code == 2
    assert_one_line_error(code, err)
    assert not out.exists()


def test_missing_output_folder(tmp_path, tiny_weights, small_video, capsys):
    code, _, err = run_cli(["video", small_video, "--weights", tiny_weights, "--out",
                            tmp_path / "no" / "o.json"], capsys)
    assert_one_line_error(code, err, "output folder does not exist")


def test_console_script_prints_no_traceback(tmp_path):
    """The installed entry point, in a real process: one line, exit 1, nothing written."""
    out = tmp_path / "o.json"
    result = subprocess.run([sys.executable, "-m", "posecli", "video",
                             str(tmp_path / "missing.mp4"), "--out", str(out)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == f"posecli: error: input not found: {tmp_path / 'missing.mp4'}"
    assert not out.exists()
